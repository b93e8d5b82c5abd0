"""The fitted model (`CashflowModel`, pickled into the registry): its forecast with intervals for
1..365 days, the summary the service returns, and `predict(frame)`, one forecast per request row."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from titans_assets.lib.ml.cashflow.config import DAY, MAX_HORIZON, SEASON, BacktestConfig
from titans_assets.lib.ml.cashflow.intervals import interval_offsets


def _flatten_weekly(path: np.ndarray) -> np.ndarray:
    """Each value replaced by the mean of a full week of the path around it (no weekly pattern)."""
    n = len(path)
    if n < SEASON:
        return np.full(n, path.mean())
    csum = np.concatenate([[0.0], np.cumsum(path)])
    start = np.clip(np.arange(n) - SEASON // 2, 0, n - SEASON)
    return (csum[start + SEASON] - csum[start]) / SEASON


@dataclass
class CashflowModel:
    """A fitted daily net-flow forecaster (picklable; needs only numpy, pandas and scikit-learn)."""

    method: str
    as_of: pd.Timestamp  # the last observed day; forecasts start the day after
    path: np.ndarray  # point forecast for days 1..MAX_HORIZON
    state: Any  # the method's fitted state (last week, mean, ETS/ARIMA parameters, the regressor)
    residuals: np.ndarray  # backtest errors (actual - forecast) used for the intervals
    residual_steps: np.ndarray  # their 1-based horizon step (0: any step)
    level: float
    config: BacktestConfig
    recent: pd.Series  # the last (up to) 365 observed days
    volatility: float  # std of the last 90 days of daily net flow
    flat_path: np.ndarray = field(init=False, repr=False)
    _offsets: dict = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.flat_path = _flatten_weekly(self.path)
        self._offsets[round(self.level, 6)] = interval_offsets(
            self.residuals, self.residual_steps, self.level, self.config.horizon, MAX_HORIZON
        )

    def interval(self, level: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Offsets (lower, upper) to add to the point forecast at steps 1..MAX_HORIZON."""
        level = self.level if level is None else float(level)
        if not 0 < level < 1:
            raise ValueError(f"level must be in (0, 1), got {level}")
        key = round(level, 6)
        if key not in self._offsets:
            self._offsets[key] = interval_offsets(
                self.residuals, self.residual_steps, level, self.config.horizon, MAX_HORIZON
            )
        return self._offsets[key]

    def forecast(
        self, horizon_days: int = 30, level: float | None = None, include_seasonality: bool = True
    ) -> pd.DataFrame:
        """Daily forecast for the `horizon_days` (1..365) days after `as_of`: date, predicted_amount,
        lower, upper (the `level` interval, default the training level). include_seasonality=False
        replaces every day by its week's mean (the weekly pattern flattened)."""
        if (
            isinstance(horizon_days, bool)
            or int(horizon_days) != horizon_days
            or not 1 <= horizon_days <= MAX_HORIZON
        ):
            raise ValueError(f"horizon_days must be an integer in 1..{MAX_HORIZON}, got {horizon_days!r}")
        h = int(horizon_days)
        point = (self.path if include_seasonality else self.flat_path)[:h].copy()
        lo, hi = self.interval(level)
        return pd.DataFrame(
            {
                "date": pd.date_range(self.as_of + DAY, periods=h, freq="D"),
                "predicted_amount": point,
                "lower": point + lo[:h],
                "upper": point + hi[:h],
            }
        )

    def summary(self, forecast_df: pd.DataFrame) -> dict[str, Any]:
        """total_predicted, trend (increasing/decreasing/stable: the change of the weekly-smoothed
        forecast over its span, compared with 10% of the volatility), volatility (std of the last 90
        days of actual daily net flow), as_of, and a few more figures."""
        values = forecast_df["predicted_amount"].to_numpy(dtype=float)
        n = len(values)
        smooth = np.convolve(values, np.ones(SEASON) / SEASON, mode="valid") if n >= 2 * SEASON else values
        slope = float(np.polyfit(np.arange(len(smooth)), smooth, 1)[0]) if len(smooth) >= 2 else 0.0
        change = slope * max(n - 1, 0)
        threshold = 0.1 * self.volatility
        trend = "stable"
        if change > threshold:
            trend = "increasing"
        elif change < -threshold:
            trend = "decreasing"
        return {
            "total_predicted": round(float(values.sum()), 2),
            "mean_daily": round(float(values.mean()), 2) if n else 0.0,
            "trend": trend,
            "slope_per_day": round(slope, 4),
            "volatility": round(float(self.volatility), 2),
            "as_of": self.as_of.date().isoformat(),
            "horizon_days": n,
            "method": self.method,
        }

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Serving entry point: one forecast per request row (columns horizon_days, default 30;
        optional include_seasonality and level). Rows: request (position), date, predicted_amount,
        lower, upper."""

        def get(row: pd.Series, name: str, default: Any) -> Any:
            value = row[name] if name in row.index else None
            return default if value is None or (not isinstance(value, str) and pd.isna(value)) else value

        parts = []
        for i in range(len(frame)):
            row = frame.iloc[i]
            out = self.forecast(
                int(get(row, "horizon_days", 30)),
                level=get(row, "level", None),
                include_seasonality=bool(get(row, "include_seasonality", True)),
            )
            out.insert(0, "request", i)
            parts.append(out)
        if not parts:
            return pd.DataFrame(columns=["request", "date", "predicted_amount", "lower", "upper"])
        return pd.concat(parts, ignore_index=True)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()  # keep only the training level's offsets
        key = round(self.level, 6)
        state["_offsets"] = {key: self._offsets[key]} if key in self._offsets else {}
        return state
