"""Numeric building blocks of the batch path: robust statistics per group, in-frame counts (repeats,
rows per day), array helpers and their one-value twins (the request path's)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from titans_assets.lib.ml import features as F
from titans_assets.lib.ml.anomaly.canon import _col
from titans_assets.lib.ml.anomaly.constants import _MAD_K, _MIN_SCALE


def _robust_table(c: pd.DataFrame, key: str) -> pd.DataFrame:
    """n, median and robust scale of log |amount| per key (rows with a missing key skipped)."""
    keys = c[key].to_numpy(dtype=object)
    ok = pd.notna(keys)
    if not ok.any():
        return pd.DataFrame({"n": [], "med": [], "scale": []}, index=pd.Index([], dtype=object))
    codes, uniques = pd.factorize(keys[ok])
    x = c["log_abs"].to_numpy()[ok]
    g = pd.Series(x).groupby(codes, sort=True)
    med = g.median().to_numpy()
    dev = pd.Series(np.abs(x - med[codes])).groupby(codes, sort=True).median().to_numpy()
    return pd.DataFrame(
        {
            "n": np.bincount(codes, minlength=len(uniques)).astype(float),
            "med": med,
            "scale": np.maximum(_MAD_K * dev, _MIN_SCALE),
        },
        index=pd.Index(uniques, dtype=object),
    )


def _window_counts(
    group: np.ndarray, day: np.ndarray, mask: np.ndarray, shifts: tuple[int, ...]
) -> np.ndarray:
    """Per row: rows in `mask` of the same group on day + s, summed over `shifts`."""
    out = np.zeros(len(group), dtype=np.int64)
    if not mask.any():
        return out
    if len(group) <= F.SMALL and max(map(abs, shifts)) <= 2:  # a request: count (group, day) pairs in a dict
        pairs = list(zip(group.tolist(), day.tolist()))
        seen: dict[tuple[int, int], int] = {}
        for pair, m in zip(pairs, mask.tolist()):
            if m:
                seen[pair] = seen.get(pair, 0) + 1
        out[:] = [sum(seen.get((g, d + s), 0) for s in shifts) for g, d in pairs]
        return out
    d0 = int(day.min()) - 2
    span = int(day.max()) - d0 + 3
    key = group.astype(np.int64) * span + (day - d0)
    uniq, counts = np.unique(key[mask], return_counts=True)
    for shift in shifts:
        q = key + shift
        pos = np.searchsorted(uniq, q)
        pos = np.minimum(pos, len(uniq) - 1)
        out += np.where(uniq[pos] == q, counts[pos], 0)
    return out


def _twins(c: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Per row: other rows with the same account, merchant, amount and description text on the same
    day, and on the day before (rows without a merchant never match). A repeated charge carries the
    same descriptor (and the same reference code, when the bank prints one)."""
    has = _col(c, "has_merchant") & _col(c, "has_date")
    group, day = _col(c, "g_dup"), _col(c, "day")
    same = np.where(has, _window_counts(group, day, has, (0,)) - 1, 0)
    prev = np.where(has, _window_counts(group, day, has, (-1,)), 0)
    return same, prev


def _day_counts(c: pd.DataFrame, mask: np.ndarray, window: int) -> np.ndarray:
    """Per row: rows in `mask` with the same account and merchant within +-window days (0 = same day)."""
    has = _col(c, "has_merchant") & _col(c, "has_date")
    counts = _window_counts(_col(c, "g_am"), _col(c, "day"), has & mask, tuple(range(-window, window + 1)))
    return np.where(has, counts, 0)


def _poisson_surprise(k: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """-log10 P(K >= k) for K ~ Poisson(lam), vectorised for small k (k capped at 30)."""
    k = np.minimum(np.asarray(k, dtype=np.int64), 30)
    lam = np.maximum(np.asarray(lam, dtype=float), 1e-6)
    term = np.exp(-lam)
    cdf = np.zeros_like(lam)
    for j in range(31):
        cdf = cdf + np.where(j < k, term, 0.0)
        term = term * lam / (j + 1)
    tail = np.clip(1.0 - cdf, 1e-12, 1.0)
    return -np.log10(tail)


def _nan_to_num(x, nan: float = 0.0) -> np.ndarray:
    """`np.nan_to_num(x, nan=nan)` (infinities to the largest finite floats): the same values, with
    two ufunc calls fewer when nothing is infinite (the usual case; it matters for a request's 1-row
    arrays, where numpy's fixed cost per call is the whole cost)."""
    x = np.asarray(x)
    if x.dtype == np.float64 and not np.isinf(x).any():
        return np.where(np.isnan(x), nan, x)
    return np.nan_to_num(x, nan=nan)


def _clip01(x: np.ndarray) -> np.ndarray:
    return np.clip(x, 0.0, 1.0)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -50, 50)))


# one value: the request path's twins of the array helpers above


def _max1(x, b):
    """`np.maximum` of one value (NaN propagates)."""
    return x if x != x or x >= b else b


def _clip1(x, lo, hi):
    """`np.clip` of one value (NaN propagates)."""
    return x if x != x else lo if x < lo else hi if x > hi else x


def _nan_to_num1(x, nan: float = 0.0):
    """`np.nan_to_num(x, nan=nan)` of one value."""
    if x != x:
        return nan
    if x == np.inf:
        return np.finfo(np.float64).max
    if x == -np.inf:
        return np.finfo(np.float64).min
    return x


def _sigmoid1(x):
    return 1.0 / (1.0 + np.exp(-_clip1(x, -50.0, 50.0)))
