"""Split-conformal intervals of the amount model: the calibration sets fitted at training (sorted
residuals per category, input tier and merchant match: Mondrian), which set a request uses, and the
interval offsets read from it."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingRegressor

from titans_assets.lib.ml.amount.encoder import _Encoder, _State
from titans_assets.lib.ml.amount.rows import _TIER_BARE, _TIER_DESC, _TIER_REF, _strip, _tiers

# per input tier: (rows, log targets, log predictions of each point predictor, merchant match source)
_Scored = dict[str, tuple[pd.DataFrame, np.ndarray, dict[str, np.ndarray], np.ndarray]]
_SEEN, _NEW = "seen", "new"  # the request's reference or whole description was in the fitted history, or not


def _conformal_bounds(scores: np.ndarray, level: float) -> tuple[float, float, str]:
    """(lower offset, upper offset, method) from signed log residuals actual - predicted."""
    s = np.sort(scores[np.isfinite(scores)])
    n = len(s)
    alpha = 1.0 - level
    lo_rank = math.floor((n + 1) * alpha / 2)  # 1-based rank of the lower quantile
    hi_rank = math.ceil((n + 1) * (1 - alpha / 2))
    if n and lo_rank >= 1 and hi_rank <= n:
        return float(s[lo_rank - 1]), float(s[hi_rank - 1]), "signed"
    a = np.sort(np.abs(s))
    rank = math.ceil((n + 1) * level)
    if n and rank <= n:
        return -float(a[rank - 1]), float(a[rank - 1]), "absolute"
    q = 2.0 * float(a[-1]) if n else 3.0
    return -q, q, "max_doubled"


def _match_groups(source: np.ndarray) -> np.ndarray:
    """Merchant match of each request (from the merchant summary's match source): "seen" when its
    reference or its whole cleaned description was in the fitted history (source >= 1), else "new"
    (only the first word matched, or nothing: the point falls back toward the category median and
    misses by more)."""
    return np.where(np.asarray(source, dtype=float) >= 1, _SEEN, _NEW)


def _calibration_keys(category: Any, tier: str, match: str) -> tuple[tuple[str, str], ...]:
    """The calibration sets a request may use, most specific first: (category, tier/match),
    (*, tier/match), (category, tier), (*, tier). The bare tier has no merchant to match."""
    if tier == _TIER_BARE:
        return ((category, tier), ("*", tier))
    group = f"{tier}/{match}"
    return ((category, group), ("*", group), (category, tier), ("*", tier))


def score_tiers(
    enc: _Encoder,
    state: _State,
    booster: HistGradientBoostingRegressor,
    feature_names: list[str],
    codes: dict[str, dict[str, int]],
    cal_e: pd.DataFrame,
) -> _Scored:
    """Per input tier, the calibration rows asked that way (as they are, with the description only,
    bare): (rows, log targets, both points' log predictions, merchant match source)."""
    text_cal = enc.text_matrix(cal_e)
    variants = {
        _TIER_REF: cal_e,
        _TIER_DESC: _strip(cal_e, True, False, False),
        _TIER_BARE: _strip(cal_e, True, True, True),
    }
    scored: _Scored = {}
    for tier, frame in variants.items():
        frame = frame[_tiers(frame) == tier]  # rows without a reference are already in the description tier
        if frame.empty:
            continue
        X_cal = enc.matrix(state, frame, codes, text_cal)
        options = {
            "booster": booster.predict(X_cal[feature_names].to_numpy(dtype=float)),
            "lookup": X_cal["merchant_median"].to_numpy(),
        }
        scored[tier] = (
            frame,
            np.log1p(np.abs(frame["amount"].to_numpy())),
            options,
            X_cal["merchant_source"].to_numpy(),
        )
    return scored


def _mondrian_sets(
    scored: _Scored,
    point: str,
    p: dict[str, Any],
    small: bool,
) -> dict[tuple[str, str], np.ndarray]:
    """The sorted signed log residuals of `point` per (category or '*', tier or tier/match): pooled
    per tier, by merchant match, and (not on small data) per category with enough rows."""
    calibration: dict[tuple[str, str], np.ndarray] = {}
    for tier, (frame, y, options, source) in scored.items():
        resid = y - options[point]
        calibration[("*", tier)] = np.sort(resid).astype(np.float32)
        cats = frame["category"].to_numpy(dtype=object)
        if tier != _TIER_BARE:  # Mondrian by merchant match: unseen merchants miss by more
            matches = _match_groups(source)
            for g in (_SEEN, _NEW):
                in_g = matches == g
                if in_g.sum() >= p["min_match_calibration"]:
                    calibration[("*", f"{tier}/{g}")] = np.sort(resid[in_g]).astype(np.float32)
                if not small:
                    members = np.flatnonzero(in_g)
                    for c, idx in pd.Series(members).groupby(cats[members]).indices.items():
                        if len(idx) >= max(p["min_group_calibration"], p["min_match_calibration"]):
                            calibration[(c, f"{tier}/{g}")] = np.sort(resid[members[idx]]).astype(np.float32)
        if not small:
            groups = pd.Series(np.arange(len(frame))).groupby(cats).indices
            for c, idx in groups.items():
                if len(idx) >= p["min_group_calibration"]:
                    calibration[(c, tier)] = np.sort(resid[idx]).astype(np.float32)
    for tier in (_TIER_REF, _TIER_DESC):  # a tier absent from the calibration rows borrows the next one
        calibration.setdefault(
            ("*", tier), calibration.get(("*", _TIER_DESC), calibration[("*", _TIER_BARE)])
        )
    return calibration


def calibrate(
    scored: _Scored,
    p: dict[str, Any],
    small: bool,
) -> tuple[str, dict[str, float], dict[tuple[str, str], np.ndarray]]:
    """Split-conformal calibration on the latest training days (`score_tiers`), per input tier and,
    with enough rows, per category: (point predictor, calibration MAE of both points, calibration sets).
    The point is the booster, unless the plain lookup (merchant, else category median) has the lower
    MAE on the calibration rows (it can, on a hundred rows)."""
    cal_mae = {
        name: float(
            np.mean(
                np.concatenate(
                    [np.abs(np.expm1(opt[name]) - np.expm1(y)) for _, y, opt, _ in scored.values()]
                )
            )
        )
        for name in ("booster", "lookup")
    }
    point = "booster" if cal_mae["booster"] <= cal_mae["lookup"] else "lookup"
    return point, cal_mae, _mondrian_sets(scored, point, p, small)
