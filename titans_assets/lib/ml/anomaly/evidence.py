"""The batch path: per-row evidence of each component (p_<component> in [0, 1]) and the numbers the
reasons quote, of canonical rows and a fitted model, as arrays. A request of one row takes
request.py's scalar twin of it."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from titans_assets.lib.ml import features as F
from titans_assets.lib.ml.anomaly.canon import _col, _n
from titans_assets.lib.ml.anomaly.constants import _IF_COLUMNS, _STAT_FEATURES, _Z_CENTRE, COMPONENTS
from titans_assets.lib.ml.anomaly.lookup import _Keys, _positions
from titans_assets.lib.ml.anomaly.stats import (
    _clip01,
    _day_counts,
    _nan_to_num,
    _poisson_surprise,
    _sigmoid,
    _twins,
)


def amount_stats(model, c, k: _Keys | None = None) -> dict[str, np.ndarray]:
    """The amount's shrunk z, its ratio to the median of the most specific group with enough rows
    (`level`: merchant, category or global) and to the category's median."""
    k = k or _Keys(c)
    la = _col(c, "log_abs")
    mc_n = k(model.merchant_category, "mckey", "n", 0.0)
    m_n = k(model.merchants, "mkey", "n", 0.0)
    c_n = k(model.categories, "ckey", "n", 0.0)
    levels = [
        ("merchant", mc_n >= model.min_group, model.merchant_category, "mckey"),
        ("merchant", m_n >= model.min_group, model.merchants, "mkey"),
        ("category", c_n >= model.min_group, model.categories, "ckey"),
        ("global", np.ones(_n(c), dtype=bool), model.directions, "dir"),
    ]
    med = np.full(_n(c), np.nan)
    scale = np.full(_n(c), np.nan)
    level = np.full(_n(c), "", dtype=object)
    for name, ok, table, key in levels:
        take = ok & np.isnan(med)
        if not take.any():
            continue
        med[take] = k(table, key, "med")[take]
        scale[take] = k(table, key, "scale")[take]
        level[take] = name
    med = np.where(np.isnan(med), 0.0, med)
    scale = np.where(np.isnan(scale), 1.0, scale)
    centre, spread = model._shrunk(k, c_n, m_n, mc_n)
    z = (la - centre) / spread
    cmed = np.where(c_n >= model.min_group, k(model.categories, "ckey", "med"), np.nan)
    return {
        "z": z,
        "median": np.exp(med),
        "ratio": np.exp(la - med),
        "level": level,
        "m_n": m_n,
        "cat_ratio": np.exp(la - cmed),
        "cat_median": np.exp(cmed),
    }


def components(model, c, isolation: bool = True, memo: dict | None = None) -> dict[str, np.ndarray]:
    """Per-row evidence and what the reasons quote, as columns, of canonical rows (a DataFrame, or a
    request's dict of columns; `memo`: the request lookups kept on the model)."""
    n = _n(c)
    k = _Keys(c, memo)
    amount = amount_stats(model, c, k)
    expense = _col(c, "expense")
    has_m = _col(c, "has_merchant")
    known = has_m & (k(model.merchants, "mkey", "n", 0.0) > 0)
    m_n = amount["m_n"]
    p = {
        "amount": _p_amount(amount),
        "new_merchant": _p_new_merchant(model, c, k, has_m, known),
    }
    prob, surprise, p["atypical_category"] = _atypical_category(model, c, memo, expense, known, m_n)
    share, off_rate, off_day, p["unusual_day"] = _unusual_day(model, c, k, known, m_n)
    ctx = _in_frame(model, c, k, expense, known)
    p.update(duplicate=ctx["p_dup"], burst=ctx["p_burst"], frequency=ctx["p_freq"])

    # multivariate: the raw evidence above (not its calibrated form) beside the row features
    stat = {
        "f_z_amount": np.clip(_nan_to_num(amount["z"]), -10, 10),
        "f_log_merchant_n": np.log1p(m_n),
        "f_cat_surprise": np.where(expense & known, surprise, 0.0),
        "f_off_day_surprise": np.where(known & off_day, -np.log10(off_rate), 0.0),
        "f_twins": np.minimum(ctx["same"] + ctx["prev"], 5).astype(float),
        "f_small_surprise": np.where(ctx["bursty"], ctx["small_surprise"], 0.0),
        "f_day_excess": np.clip(_nan_to_num(ctx["k_day"] - ctx["day_max"], nan=0.0), -5, 5),
    }
    iso_rank = isolation_rank(model, c, stat) if isolation else np.zeros(n)
    p["isolation"] = _clip01((iso_rank - 0.98) / 0.02)
    _suppress(model, c, p)
    return {
        **{f"p_{name}": p[name] for name in COMPONENTS},
        "z": amount["z"],
        "ratio": amount["ratio"],
        "median": amount["median"],
        "level": amount["level"],
        "cat_ratio": amount["cat_ratio"],
        "cat_median": amount["cat_median"],
        "merchant_n": m_n,
        "mc_n": k(model.merchant_category, "mckey", "n", 0.0),
        "bday_share": share,
        "twins_same_day": ctx["same"],
        "twins_prev_day": ctx["prev"],
        "small_count": ctx["k_small"],
        "day_count": ctx["k_day"],
        "day_max": ctx["day_max"],
        "isolation_rank": iso_rank,
        "cat_prob": prob,
        **stat,
    }


def _p_amount(amount: dict[str, np.ndarray]) -> np.ndarray:
    """The amount: calibrated z (per-category centre) and a ratio of at least 3x."""
    p_amount = _sigmoid(2.0 * (amount["z"] - _Z_CENTRE)) * _sigmoid(
        6.0 * (np.log(amount["ratio"]) - math.log(3.0))
    )
    return np.where(np.isfinite(p_amount), p_amount, 0.0)


def _p_new_merchant(model, c, k: _Keys, has_m: np.ndarray, known: np.ndarray) -> np.ndarray:
    """A never-seen merchant, weighed by size against the category's 95th percentile."""
    q95 = k(model.categories, "ckey", "q95", np.nan)
    q95 = np.where(
        np.isnan(q95) | (k(model.categories, "ckey", "n", 0.0) < model.min_group),
        k(model.directions, "dir", "q95", np.nan),
        q95,
    )
    size = np.log(np.maximum(_col(c, "abs"), 0.01) / np.where(np.isnan(q95), np.inf, q95))
    return np.where(has_m & ~known, _sigmoid(3.0 * size + 1.0) * model._novelty(), 0.0)


def _cat_prob(model, c, memo: dict | None = None) -> np.ndarray:
    """P(category | merchant) of each row (NaN for a merchant or category the model has not seen)."""
    prob = np.full(_n(c), np.nan)
    if model.cat_prob.size == 0:
        return prob
    mi = _positions(model.cat_merchants, _col(c, "mkey"), memo)
    ci = _positions(model.cat_labels, _col(c, "ckey"), memo)
    ok = (mi >= 0) & (ci >= 0)
    prob[ok] = model.cat_prob[mi[ok], ci[ok]]
    return prob


def _atypical_category(model, c, memo, expense, known, m_n) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A known merchant under a category it is not used for: (P(category | merchant), its surprise in
    log10 units, the evidence)."""
    prob = _cat_prob(model, c, memo)
    surprise = -np.log10(np.maximum(np.where(np.isnan(prob), 1.0, prob), 1e-6))
    confidence = _clip01((m_n - 2.0) / 8.0)
    p_atyp = np.where(expense & known & ~np.isnan(prob), _clip01(surprise - 2.0) * confidence, 0.0)
    return prob, surprise, p_atyp


def _unusual_day(model, c, k: _Keys, known, m_n) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A weekend or holiday posting from a business-day merchant: (the merchant's business-day share,
    its off-day rate, whether the row is on an off day, the evidence). The rate is (off-day postings +
    0.2) / (postings + 1): 0 of 40 is a habit, 5 of 130 is not."""
    share = k(model.merchants, "mkey", "bday_share", np.nan)
    off_rate = ((1.0 - _nan_to_num(share, nan=1.0)) * m_n + 0.2) / (m_n + 1.0)
    off_day = ~_col(c, "bday")
    p_day = np.where(
        known & off_day & (m_n >= 5) & ~np.isnan(share), _clip01((-np.log10(off_rate) - 1.6) / 0.6), 0.0
    )
    return share, off_rate, off_day, p_day


def _in_frame(model, c, k: _Keys, expense, known) -> dict[str, np.ndarray]:
    """The evidence among the rows given together: repeats of an amount (duplicate), bursts of small
    charges (burst), more rows on a day than the merchant ever had on one day, with 10+ active days of
    history (frequency); with the counts the reasons and the isolation forest read."""
    n = _n(c)
    same, prev = _twins(c)
    twin_rate = _nan_to_num(k(model.merchants, "mkey", "twin_rate", 0.0))
    p_dup = np.where(same > 0, 1.0, np.where(prev > 0, 0.7, 0.0)) * np.exp(-twin_rate / 0.02)
    small = expense & (_col(c, "abs") < model.small_amount)
    k_small = _day_counts(c, small, window=1)
    small_rate = np.where(known, _nan_to_num(k(model.merchants, "mkey", "small_rate", 0.0)), 0.0)
    lam_small = 3.0 * np.maximum(small_rate, 0.03)  # three days in the window
    bursty = small & (k_small >= 2)
    small_surprise = np.zeros(n)  # only bursty rows use it (elementwise: computed on those alone)
    if bursty.any():
        small_surprise[bursty] = _poisson_surprise(k_small[bursty], lam_small[bursty])
    p_burst = np.where(bursty, _clip01((small_surprise - 1.5) / 1.5), 0.0)
    k_day = _day_counts(c, np.ones(n, dtype=bool), window=0)
    day_max = k(model.merchants, "mkey", "day_max", np.nan)
    active = k(model.merchants, "mkey", "active_days", 0.0)
    p_freq = np.where(
        known & (active >= 10) & ~np.isnan(day_max),
        _clip01((k_day - _nan_to_num(day_max, nan=np.inf)) / 2.0),
        0.0,
    )
    return {
        "same": same,
        "prev": prev,
        "p_dup": p_dup,
        "k_small": k_small,
        "bursty": bursty,
        "small_surprise": small_surprise,
        "p_burst": p_burst,
        "k_day": k_day,
        "day_max": day_max,
        "p_freq": p_freq,
    }


def _suppress(model, c, p: dict[str, np.ndarray]) -> None:
    """Merchants the user marked expected often enough for a reason: that reason is off (in place)."""
    suppressed = getattr(model, "suppressed", None)
    if suppressed:
        mkeys = np.asarray(_col(c, "mkey"), dtype=object)
        for name in COMPONENTS:
            off = [m for m, names in suppressed.items() if name in names]
            if off:
                p[name] = np.where(pd.Index(off).get_indexer(mkeys) >= 0, 0.0, p[name])


def isolation_frame(c, stat: dict[str, Any]) -> np.ndarray:
    """The isolation forest's inputs: the row features beside the raw evidence (`stat`, f_*)."""
    cols = [np.asarray(_col(c, f"rf_{col}"), dtype=float) for col in _IF_COLUMNS]
    cols += [np.asarray(stat[f"f_{k}"], dtype=float) for k in _STAT_FEATURES]
    return np.nan_to_num(np.column_stack(cols), nan=0.0, posinf=10.0, neginf=-10.0)


def isolation_rank(model, c, stat: dict[str, Any]) -> np.ndarray:
    """Each row's isolation score as its rank among the training rows' (0 = least anomalous)."""
    n = _n(c)
    if model.forest is None or n == 0 or len(model.forest_ref) == 0:
        return np.zeros(n)
    x = isolation_frame(c, stat)
    fast = model._fast_forest() if n <= F.SMALL else None
    s = fast.scores(x) if fast is not None else -model.forest.score_samples(x)
    return np.searchsorted(model.forest_ref, s, side="right") / len(model.forest_ref)
