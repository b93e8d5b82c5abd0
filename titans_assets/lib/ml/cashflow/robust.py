"""How the model's candidates see one-off amounts: the robust modes (none, winsor, lumpy) that
winsorise the daily series before a candidate is fitted (benchmarks/cashflow_oneoffs.py)."""

from __future__ import annotations

import math

import numpy as np

from titans_assets.lib.ml.cashflow.config import (
    LUMPY_WINDOW,
    ROBUST_MODES,
    ROBUST_MULTIPLIER,
    ROBUST_QUANTILE,
)


def robust_threshold(
    y: np.ndarray, quantile: float | None = None, multiplier: float | None = None
) -> tuple[float, float]:
    """(center, half-width) of the band a day's net flow is winsorised to: the median of the series
    and `multiplier` x the `quantile` of the absolute deviations from it. Both come from `y` alone
    (the training window), so a backtest origin never sees its future. A quantile rather than a MAD:
    most days of a ledger are small, and a MAD-based band would clip every payday and rent day; the
    98th percentile sits at about the size of the regular large flows, and a one-off several times
    that is what gets cut. A half-width of 0 (a series of mostly identical days) means no clipping."""
    quantile = ROBUST_QUANTILE if quantile is None else quantile
    multiplier = ROBUST_MULTIPLIER if multiplier is None else multiplier
    y = np.asarray(y, dtype=float)
    if len(y) == 0:
        return 0.0, math.inf
    center = float(np.median(y))
    width = multiplier * float(np.quantile(np.abs(y - center), quantile))
    return center, (width if width > 0 else math.inf)


def split_lumpy(
    y: np.ndarray, quantile: float | None = None, multiplier: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(regular, lumpy) with regular + lumpy == y: regular is y winsorised to `robust_threshold`,
    lumpy what was cut off (0 on every ordinary day)."""
    y = np.asarray(y, dtype=float)
    center, width = robust_threshold(y, quantile, multiplier)
    regular = np.clip(y, center - width, center + width)
    return regular, y - regular


def robust_series(y: np.ndarray, mode: str) -> tuple[np.ndarray, float, dict]:
    """What a model candidate is fitted on, the flat daily rate added to its forecast, and a note of
    both for the model's state. `none`: y itself; `winsor`: y winsorised (one-offs cut to the band
    and forgotten); `lumpy`: y winsorised (the regular flows) plus the lumpy flows' expected rate, i.e.
    their mean over the last LUMPY_WINDOW days, spread evenly over the forecast days."""
    if mode not in ROBUST_MODES:
        raise ValueError(f"unknown robust mode {mode!r}; known: {ROBUST_MODES}")
    y = np.asarray(y, dtype=float)
    if mode == "none":
        return y, 0.0, {"mode": "none"}
    regular, lumpy = split_lumpy(y)
    center, width = robust_threshold(y)
    rate = float(np.mean(lumpy[-LUMPY_WINDOW:])) if mode == "lumpy" and len(y) else 0.0
    info = {
        "mode": mode,
        "center": center,
        "half_width": width,
        "days_cut": int(np.count_nonzero(lumpy)),
        "lumpy_rate": rate,
    }
    return regular, rate, info
