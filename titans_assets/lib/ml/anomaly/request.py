"""The one-row path: a single request (one /predict/anomaly row) scored on Python scalars instead of
1-row arrays, value for value the batch path's (evidence.py; tests/test_ml_anomaly.py holds them equal).

Kept because it is faster: 200 single-row requests in-process (2026-12-07, 2-core machine under load)
took 1.7x (fastest run) to 2.1x (median of 30) less time here than through the batch path with its
small-frame branches, and 12-15x less than through the plain batch path."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from pandas._libs.missing import checknull

from titans_assets.lib.ml.anomaly.constants import (
    _IF_COLUMNS,
    _INCOME_CAT,
    _NO_CAT,
    _REASON_LEVEL,
    _SEP,
    _STAT_FEATURES,
    _Z_CENTRE,
    COMPONENTS,
)
from titans_assets.lib.ml.anomaly.lookup import _position, _table_column
from titans_assets.lib.ml.anomaly.reasons import _REASONS
from titans_assets.lib.ml.anomaly.stats import _clip1, _max1, _nan_to_num1, _sigmoid1
from titans_assets.lib.ml.features import (
    AMOUNT_COLUMNS,
    TIME_COLUMNS,
    Rows,
    Vocabulary,
    amount_values,
    input_column,
    prepare_columns,
    time_values,
)


def predict_one(model, rows: Rows) -> dict[str, Any]:
    """`_predictions` of one row, computed on Python scalars instead of 1-row arrays (numpy's fixed
    cost per call was most of a request's time). Every value is the batch path's, operation for
    operation: the same formulas in the same order (IEEE arithmetic is the same on scalars; logs
    and exponentials are numpy's own ufuncs on scalars), and with a single row in the frame the
    in-frame context is known (no repeats, no bursts, one charge that day). tests/test_ml_anomaly.py
    holds it equal to the batch path on generated rows."""
    c = _canon_one(rows, model.vocabulary)
    memo = model._memo()

    def k(table: pd.DataFrame, key: str, column: str, default: float = np.nan):
        values = _table_column(table, column, memo)
        if values is None:
            return default
        pos = _position(table.index, c[key], memo)
        return values[pos] if pos >= 0 else default

    v = _amount_one(model, c, k)
    v["known"] = c["has_merchant"] and k(model.merchants, "mkey", "n", 0.0) > 0
    p = {
        "amount": _p_amount_one(v),
        "new_merchant": _p_new_merchant_one(model, c, k, v),
        "atypical_category": _atypical_category_one(model, c, memo, v),
        "unusual_day": _unusual_day_one(model, c, k, v),
        **_in_frame_one(model, c, k, v),
    }
    known, expense, m_n = v["known"], c["expense"], v["m_n"]
    stat = {
        "f_z_amount": _clip1(_nan_to_num1(v["z"]), -10.0, 10.0),
        "f_log_merchant_n": np.log1p(m_n),
        "f_cat_surprise": v["surprise"] if expense and known else 0.0,
        "f_off_day_surprise": -np.log10(v["off_rate"]) if known and v["off_day"] else 0.0,
        "f_twins": float(min(v["same"] + v["prev"], 5)),
        "f_small_surprise": 0.0,
        "f_day_excess": _clip1(_nan_to_num1(v["k_day"] - v["day_max"], 0.0), -5.0, 5.0),
    }
    v["iso_rank"] = _isolation_rank_one(model, c, stat)
    p["isolation"] = _clip1((v["iso_rank"] - 0.98) / 0.02, 0.0, 1.0)
    return _outcome_one(model, c, v, p)


def _amount_one(model, c: dict[str, Any], k) -> dict[str, Any]:
    """`evidence.amount_stats` of one row: the median it is measured against (of the most specific
    group with enough rows), its level, and the shrunk z."""
    la = c["log_abs"]
    mc_n = k(model.merchant_category, "mckey", "n", 0.0)
    m_n = k(model.merchants, "mkey", "n", 0.0)
    c_n = k(model.categories, "ckey", "n", 0.0)
    med = np.nan
    level = ""
    for name, ok, table, key in (
        ("merchant", mc_n >= model.min_group, model.merchant_category, "mckey"),
        ("merchant", m_n >= model.min_group, model.merchants, "mkey"),
        ("category", c_n >= model.min_group, model.categories, "ckey"),
        ("global", True, model.directions, "dir"),
    ):
        if ok and med != med:
            med, level = k(table, key, "med"), name
    med = 0.0 if med != med else med
    centre, spread = model._shrunk(k, c_n, m_n, mc_n)
    z = (la - centre) / np.float64(spread)
    cmed = k(model.categories, "ckey", "med") if c_n >= model.min_group else np.nan
    ratio = np.exp(la - med)
    return {
        "la": la,
        "mc_n": mc_n,
        "m_n": m_n,
        "med": med,
        "level": level,
        "z": z,
        "cmed": cmed,
        "ratio": ratio,
    }


def _p_amount_one(v: dict[str, Any]) -> float:
    p_amount = _sigmoid1(2.0 * (v["z"] - _Z_CENTRE)) * _sigmoid1(6.0 * (np.log(v["ratio"]) - math.log(3.0)))
    return p_amount if math.isfinite(p_amount) else 0.0


def _p_new_merchant_one(model, c: dict[str, Any], k, v: dict[str, Any]) -> float:
    q95 = k(model.categories, "ckey", "q95", np.nan)
    if q95 != q95 or k(model.categories, "ckey", "n", 0.0) < model.min_group:
        q95 = k(model.directions, "dir", "q95", np.nan)
    size = np.log(_max1(c["abs"], 0.01) / np.float64(np.inf if q95 != q95 else q95))
    return _sigmoid1(3.0 * size + 1.0) * model._novelty() if c["has_merchant"] and not v["known"] else 0.0


def _atypical_category_one(model, c: dict[str, Any], memo: dict, v: dict[str, Any]) -> float:
    """The evidence; P(category | merchant) and its surprise go into `v`."""
    prob = np.nan
    if model.cat_prob.size:
        mi, ci = (
            _position(model.cat_merchants, c["mkey"], memo),
            _position(model.cat_labels, c["ckey"], memo),
        )
        if mi >= 0 and ci >= 0:
            prob = float(model.cat_prob[mi, ci])  # into float64, as the batch path's `prob` array
    surprise = -np.log10(_max1(1.0 if prob != prob else prob, 1e-6))
    confidence = _clip1((v["m_n"] - 2.0) / 8.0, 0.0, 1.0)
    v.update(prob=prob, surprise=surprise)
    known = v["known"]
    return _clip1(surprise - 2.0, 0.0, 1.0) * confidence if c["expense"] and known and prob == prob else 0.0


def _unusual_day_one(model, c: dict[str, Any], k, v: dict[str, Any]) -> float:
    """The evidence; the business-day share, the off-day rate and whether the day is off go into `v`."""
    m_n, known = v["m_n"], v["known"]
    share = k(model.merchants, "mkey", "bday_share", np.nan)
    off_rate = ((1.0 - _nan_to_num1(share, 1.0)) * m_n + 0.2) / (m_n + 1.0)
    off_day = not c["bday"]
    v.update(share=share, off_rate=off_rate, off_day=off_day)
    return (
        _clip1((-np.log10(off_rate) - 1.6) / 0.6, 0.0, 1.0)
        if known and off_day and m_n >= 5 and share == share
        else 0.0
    )


def _in_frame_one(model, c: dict[str, Any], k, v: dict[str, Any]) -> dict[str, float]:
    """The in-frame evidence of a frame of one row (duplicate, burst, frequency); the counts go into `v`."""
    in_frame = c["has_merchant"] and c["has_date"]
    same = prev = 0
    twin_rate = _nan_to_num1(k(model.merchants, "mkey", "twin_rate", 0.0))
    p_dup = (1.0 if same > 0 else 0.7 if prev > 0 else 0.0) * np.exp(-twin_rate / 0.02)
    small = c["expense"] and c["abs"] < model.small_amount
    k_small = 1 if in_frame and small else 0
    p_burst = 0.0  # a burst needs 2+ small charges in the frame: never with one row
    k_day = 1 if in_frame else 0
    day_max = k(model.merchants, "mkey", "day_max", np.nan)
    active = k(model.merchants, "mkey", "active_days", 0.0)
    p_freq = (
        _clip1((k_day - _nan_to_num1(day_max, np.inf)) / 2.0, 0.0, 1.0)
        if v["known"] and active >= 10 and day_max == day_max
        else 0.0
    )
    v.update(same=same, prev=prev, k_small=k_small, k_day=k_day, day_max=day_max)
    return {"duplicate": p_dup, "burst": p_burst, "frequency": p_freq}


def _outcome_one(model, c: dict[str, Any], v: dict[str, Any], p: dict[str, float]) -> dict[str, Any]:
    """`_combine`, the risk level and `_reasons` of one row, as `predict_columns` returns them."""
    for name in (getattr(model, "suppressed", None) or {}).get(c["mkey"], ()):
        p[name] = 0.0
    w = [model.weights.get(name, 0.0) * _nan_to_num1(p[name]) for name in COMPONENTS]
    keep = 1.0
    for name, wk in zip(COMPONENTS, w):
        keep *= 1.0 - (wk if name == "amount" or wk >= _REASON_LEVEL else 0.0)
    score = _clip1(1.0 - keep, 0.0, 1.0)
    flagged = score >= model.threshold
    risk = "high" if flagged else "medium" if score >= model.threshold / 2.0 else "low"
    show = [wk >= _REASON_LEVEL for wk in w]
    top = max(w)
    if risk != "low" and not any(show) and top > 0:
        show[w.index(top)] = True  # argmax: the first of the largest
    return {
        "anomaly_score": np.array([score], dtype=float),
        "is_anomaly": np.array([flagged]),
        "risk_level": np.array([risk], dtype=object),
        "reasons": [_reasons_one(model, c, v, w, show) if any(show) else []],
    }


def _reasons_one(model, c: dict[str, Any], v: dict[str, Any], w: list[float], show: list[bool]) -> list[str]:
    """The shown components' reasons, strongest first (`_reasons` of one row)."""
    r = {
        "level": v["level"],
        "ratio": float(v["ratio"]),
        "median": float(np.exp(v["med"])),
        "merchant_n": float(v["m_n"]),
        "mc_n": float(v["mc_n"]),
        "bday_share": float(v["share"]),
        "twins_same_day": v["same"],
        "small_count": v["k_small"],
        "day_count": v["k_day"],
        "day_max": float(v["day_max"]),
        "isolation_rank": float(v["iso_rank"]),
        "cat_ratio": float(np.exp(v["la"] - v["cmed"])),
        "cat_median": float(np.exp(v["cmed"])),
    }
    cr = {
        "merchant": c["merchant"],
        "category": c["category"],
        "abs": float(c["abs"]),
        "expense": c["expense"],
        "holiday": c["holiday"],
        "small_amount": model.small_amount,
    }
    order = sorted(range(len(COMPONENTS)), key=lambda j: -w[j])  # stable, as argsort(kind="stable")
    return [_REASONS[COMPONENTS[j]](r, cr) for j in order if show[j]]


def _isolation_rank_one(model, c: dict[str, Any], stat: dict[str, Any]) -> float:
    if model.forest is None or len(model.forest_ref) == 0:
        return 0.0
    values = [c[f"rf_{col}"] for col in _IF_COLUMNS] + [stat[f"f_{k}"] for k in _STAT_FEATURES]
    x = np.array(
        [[0.0 if v != v else 10.0 if v == np.inf else -10.0 if v == -np.inf else v for v in values]],
        dtype=float,
    )
    fast = model._fast_forest()
    s = fast.scores(x) if fast is not None else -model.forest.score_samples(x)
    return float(np.searchsorted(model.forest_ref, s, side="right")[0] / len(model.forest_ref))


def _canon_one(rows: Rows, vocabulary: Vocabulary) -> dict[str, Any]:
    """`_canon_columns` of a single row, as scalars (what `predict_one` reads)."""
    p = prepare_columns(rows, vocabulary)
    amount = p["amount"][0]
    category = p["category"][0]
    has_cat = not checknull(category)
    ttype = input_column(rows, "txn_type")
    if ttype is not None:
        t = str(ttype[0]).strip().lower() if not checknull(ttype[0]) else ""
        expense = False if t == "income" else True if t == "expense" else bool(amount < 0 or has_cat)
    else:
        expense = bool(amount < 0 or has_cat)
    merchant = p["merchant"][0]
    direction = "e" if expense else "i"
    ckey = (category if has_cat else _NO_CAT) if expense else _INCOME_CAT
    mkey = direction + ":" + merchant if merchant is not None else None
    absolute = abs(amount)
    date = p["txn_date"]
    rf = dict(
        zip(
            TIME_COLUMNS + AMOUNT_COLUMNS,
            [*time_values(date.astype("datetime64[D]")), *amount_values(p["amount"])],
        )
    )
    out = {
        "amount": amount,
        "abs": absolute,
        "log_abs": np.log(_max1(absolute, 0.01)),
        "expense": expense,
        "dir": direction,
        "merchant": merchant,
        "has_merchant": not checknull(merchant),
        "category": category,
        "ckey": ckey,
        "mkey": mkey,
        "mckey": mkey + _SEP + ckey if mkey is not None else None,
        "has_date": not np.isnat(date[0]),
        "bday": bool(rf["is_business_day"][0] > 0),
        "holiday": bool(rf["is_holiday"][0] > 0),
    }
    for col in _IF_COLUMNS:
        out[f"rf_{col}"] = rf[col][0]
    return out
