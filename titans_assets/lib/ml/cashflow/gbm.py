"""The gradient-boosting candidate: a scikit-learn regressor on calendar and lag features of the
daily series, direct within a block of `horizon` days and recursive across blocks."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd

from titans_assets.lib.ml.cashflow.config import GBM_MIN_ROWS, SEASON, BacktestConfig
from titans_assets.lib.ml.features import time_features


def _business_day_edges(dates: pd.DatetimeIndex) -> tuple[np.ndarray, np.ndarray]:
    """Whether each date is the first / the last business day of its month."""
    span = pd.date_range(
        dates.min().to_period("M").to_timestamp(),
        dates.max().to_period("M").to_timestamp() + pd.offsets.MonthEnd(0),
        freq="D",
    )
    cal = time_features(pd.Series(span))
    business = pd.Series(span[cal["is_business_day"].to_numpy() > 0])
    months = business.dt.to_period("M")
    firsts = pd.DatetimeIndex(business.groupby(months).min().to_numpy())
    lasts = pd.DatetimeIndex(business.groupby(months).max().to_numpy())
    return dates.isin(firsts), dates.isin(lasts)


_EPOCH_MONDAY = pd.Timestamp("1970-01-05")


def _gbm_design(values: np.ndarray, first: pd.Timestamp, targets: np.ndarray, gap: int) -> pd.DataFrame:
    """Features of the days at positions `targets` using only values[: target - gap + 1]."""
    dates = pd.DatetimeIndex(first + pd.to_timedelta(targets, unit="D"))
    cal = time_features(pd.Series(dates)).drop(columns=["day_of_year"])
    first_bd, last_bd = _business_day_edges(dates)
    cal["is_payday"] = np.isin(dates.day, (1, 15)).astype(float)
    cal["is_first_business_day"] = first_bd.astype(float)
    cal["is_last_business_day"] = last_bd.astype(float)
    cal["biweek_parity"] = (((dates - _EPOCH_MONDAY).days // 7) % 2).astype(float)
    end = targets - gap + 1  # exclusive end of the known history, >= 1
    csum = np.concatenate([[0.0], np.cumsum(values)])
    csq = np.concatenate([[0.0], np.cumsum(values**2)])

    def window(w: int) -> tuple[np.ndarray, np.ndarray]:
        start = np.maximum(end - w, 0)
        return start, (end - start).astype(float)

    feats: dict[str, np.ndarray] = {"last_known": values[end - 1]}
    for w in (7, 28, 91):
        start, count = window(w)
        feats[f"mean_{w}"] = (csum[end] - csum[start]) / count
    start, count = window(28)
    mean = (csum[end] - csum[start]) / count
    feats["std_28"] = np.sqrt(np.maximum((csq[end] - csq[start]) / count - mean**2, 0.0))
    j0 = math.ceil(gap / SEASON)
    same_dow = []
    for j in range(j0, j0 + 4):
        pos = targets - SEASON * j
        same_dow.append(np.where(pos >= 0, values[np.maximum(pos, 0)], np.nan))
    stacked = np.vstack(same_dow)
    feats["same_weekday_last"] = stacked[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        feats["same_weekday_mean_4"] = np.nanmean(stacked, axis=0)
    if gap <= 364:
        pos = targets - 364
        feats["same_day_last_year"] = np.where(pos >= 0, values[np.maximum(pos, 0)], np.nan)
    out = pd.concat([cal.reset_index(drop=True), pd.DataFrame(feats)], axis=1)
    return out


def gbm_forecast(y: np.ndarray, first: pd.Timestamp, steps: int, config: BacktestConfig):
    from sklearn.ensemble import HistGradientBoostingRegressor
    from threadpoolctl import threadpool_limits

    gap = config.horizon
    rows = len(y) - gap
    if rows < GBM_MIN_ROWS:
        raise ValueError(
            f"gbm needs {gap + GBM_MIN_ROWS}+ days of history (horizon {gap} + {GBM_MIN_ROWS} "
            f"training days), got {len(y)}"
        )
    targets = np.arange(gap, len(y))
    X = _gbm_design(y, first, targets, gap)
    columns = [c for c in X.columns if X[c].notna().any()]  # e.g. no day a year earlier yet
    X = X[columns]
    model = HistGradientBoostingRegressor(
        loss=config.gbm_loss,
        learning_rate=0.03,
        max_iter=config.gbm_max_iter,
        max_leaf_nodes=7,
        min_samples_leaf=max(5, min(30, rows // 10)),
        l2_regularization=1.0,
        early_stopping=False,
        random_state=0,
    )
    ext = y.astype(float).copy()
    path: list[float] = []
    # One thread: OpenMP on a busy machine is 20x slower for these small matrices, and results stay
    # bit-identical between runs.
    with threadpool_limits(limits=1, user_api="openmp"):
        model.fit(X, y[targets])
        while len(path) < steps:  # direct within a block of `gap` days, recursive across blocks
            block = min(gap, steps - len(path))
            idx = np.arange(len(ext), len(ext) + block)
            pred = model.predict(_gbm_design(ext, first, idx, gap)[columns])
            path.extend(pred.tolist())
            ext = np.concatenate([ext, pred])
    return np.asarray(path), {"regressor": model, "gap": gap, "features": columns}
