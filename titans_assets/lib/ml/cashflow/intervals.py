"""Prediction intervals: split-conformal quantiles of backtest errors, pooled over neighbouring
steps and made monotone in the step."""

from __future__ import annotations

import numpy as np

from titans_assets.lib.ml.cashflow.config import CALIBRATION_DAYS, MIN_POOL, SEASON


def _quantile_levels(level: float, m: int) -> tuple[float, float]:
    hi = min(1.0, (1 + level) / 2 * (1 + 1 / m))  # split-conformal finite-sample correction
    return 1.0 - hi, hi


def interval_offsets(
    resid: np.ndarray, steps: np.ndarray, level: float, horizon: int, out_steps: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Offsets (lower <= 0 <= upper) to add to the point forecast at steps 1..out_steps.

    `resid` are errors (actual - forecast) at 1-based horizon `steps` (0: any step). Each step pools
    the errors of neighbouring steps until MIN_POOL are found; the quantiles are then made monotone
    (isotonic) so the interval never shrinks with the step, and grow as (step/horizon)**0.25 beyond
    the horizon."""
    from sklearn.isotonic import IsotonicRegression

    out_steps = out_steps or horizon
    resid = np.asarray(resid, dtype=float)
    steps = np.asarray(steps)
    k = np.arange(1, horizon + 1)
    lo = np.zeros(horizon)
    hi = np.zeros(horizon)
    anywhere = steps == 0
    for i, step in enumerate(k):
        width = 3
        while True:
            pool = resid[anywhere | (np.abs(steps - step) <= width)]
            if len(pool) >= MIN_POOL or width >= horizon:
                break
            width *= 2
        q_lo, q_hi = _quantile_levels(level, len(pool))
        lo[i], hi[i] = np.quantile(pool, [q_lo, q_hi])
    lo, hi = np.minimum(lo, 0.0), np.maximum(hi, 0.0)
    if horizon > 1:
        hi = IsotonicRegression(increasing=True).fit_transform(k, hi)
        lo = -IsotonicRegression(increasing=True).fit_transform(k, -lo)
    if out_steps > horizon:
        growth = (np.arange(horizon + 1, out_steps + 1) / horizon) ** 0.25
        lo = np.concatenate([lo, lo[-1] * growth])
        hi = np.concatenate([hi, hi[-1] * growth])
    return lo[:out_steps], hi[:out_steps]


def _seasonal_diffs(y: np.ndarray) -> np.ndarray:
    d = y[SEASON:] - y[:-SEASON]
    return d - np.mean(d)


def calibration_set(
    resid: np.ndarray, steps: np.ndarray, distinct_days: int, history: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The errors an interval is calibrated on: the backtest errors, plus the in-sample seasonal
    differences of `history` (at any step) when those errors cover fewer than CALIBRATION_DAYS days."""
    if distinct_days >= CALIBRATION_DAYS:
        return resid, steps
    extra = _seasonal_diffs(history)
    return np.concatenate([resid, extra]), np.concatenate([steps, np.zeros(len(extra), dtype=int)])
