"""The cash-flow model's input: the daily net-flow series, validated and made gap-free."""

from __future__ import annotations

import numpy as np
import pandas as pd

from titans_assets.lib.ml.cashflow.config import MIN_DAYS, SEASON
from titans_assets.lib.ml.common import TrainingDataError


def daily_series(data: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The validated daily series (columns metric_date, net_flow; sorted, gap-free) and notes.

    Missing days and missing values become 0; duplicate or unparseable dates, infinite values and
    series shorter than `MIN_DAYS` raise TrainingDataError."""
    if not isinstance(data, pd.DataFrame):
        raise TrainingDataError(
            f"expected a DataFrame with metric_date and net_flow, got {type(data).__name__}"
        )
    date_col = next((c for c in ("metric_date", "date") if c in data.columns), None)
    value_col = next((c for c in ("net_flow", "net") if c in data.columns), None)
    if date_col is None or value_col is None:
        raise TrainingDataError(
            f"the daily series needs columns metric_date and net_flow; got {list(data.columns)}"
        )
    if data.empty:
        raise TrainingDataError("the daily series is empty")
    dates = pd.to_datetime(data[date_col], errors="coerce")
    if getattr(dates.dt, "tz", None) is not None:
        dates = dates.dt.tz_localize(None)
    dates = dates.dt.normalize()
    if dates.isna().any():
        raise TrainingDataError(f"{int(dates.isna().sum())} rows have no valid {date_col}")
    values = pd.to_numeric(data[value_col], errors="coerce").astype(float)
    notes: list[str] = []
    if np.isinf(values.to_numpy()).any():
        raise TrainingDataError(f"{value_col} has infinite values")
    if values.isna().any():
        notes.append(f"{int(values.isna().sum())} days without a {value_col} value counted as 0")
        values = values.fillna(0.0)
    if dates.duplicated().any():
        dup = sorted({d.date().isoformat() for d in dates[dates.duplicated()]})
        raise TrainingDataError(
            f"one row per day expected; duplicated dates: {', '.join(dup[:5])}"
            + (" ..." if len(dup) > 5 else "")
        )
    s = pd.Series(values.to_numpy(), index=pd.DatetimeIndex(dates.to_numpy())).sort_index()
    full = pd.date_range(s.index[0], s.index[-1], freq="D")
    if len(full) > len(s):
        notes.append(
            f"{len(full) - len(s)} missing days between {full[0].date()} and {full[-1].date()} "
            "filled with 0 (no transactions)"
        )
        s = s.reindex(full, fill_value=0.0)
    if len(s) < MIN_DAYS:
        raise TrainingDataError(
            f"the cash-flow forecast needs at least {MIN_DAYS} days of daily net flow, got {len(s)} "
            f"({s.index[0].date()}..{s.index[-1].date()})"
        )
    y = s.to_numpy(dtype=float)
    if not np.any(y[SEASON:] != y[:-SEASON]):
        raise TrainingDataError(
            "the daily net flow repeats the same week (or is constant): nothing to forecast"
        )
    out = pd.DataFrame({"metric_date": s.index.astype("datetime64[ns]"), "net_flow": y})
    return out, notes
