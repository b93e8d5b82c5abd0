"""What the category model's training chooses on the training period alone: the regime (on small data,
by rolling origins) and the softmax temperature that calibrates its probabilities."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar
from sklearn.model_selection import KFold

from titans_assets.lib.ml.category.classifier import _fit, _logits_and_target
from titans_assets.lib.ml.category.params import REGIMES
from titans_assets.lib.ml.common import TrainingDataError, time_split


def fit_temperature(pools: list[tuple[np.ndarray, np.ndarray]]) -> float:
    """The T > 0 minimising the mean log loss of softmax(logits / T) over (logits, true index) pools
    (one pool per fitted model: fold models may know different class sets)."""
    n = sum(len(t) for _, t in pools)

    def nll(log_t: float) -> float:
        total = 0.0
        for logits, target in pools:
            z = logits / math.exp(log_t)
            z -= z.max(axis=1, keepdims=True)
            total += float(np.sum(np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(target)), target]))
        return total / n

    return float(
        math.exp(minimize_scalar(nll, bounds=(-5.0, 5.0), method="bounded", options={"xatol": 1e-3}).x)
    )


def _calibrate(train_p: pd.DataFrame, p: dict[str, Any]) -> dict[str, Any]:
    """Temperature from a model fitted before the last slice of the training period (scored on that
    slice), else from out-of-fold predictions; T = 1 with fewer than 20 usable rows."""
    pools: list[tuple[np.ndarray, np.ndarray]] = []
    out: dict[str, Any] = {"method": "time_slice", "parts": None, "fit_rows": None}
    try:
        fit_rows, cal_rows = time_split(
            train_p,
            "txn_date",
            test_fraction=float(p["calibration_fraction"]),
            min_test_rows=int(p["min_calibration_rows"]),
        )
        if fit_rows["category"].nunique() < 2:
            raise TrainingDataError("one category before the calibration slice")
        out["parts"], out["fit_rows"] = _fit(fit_rows, p), len(fit_rows)
        pools.append(_logits_and_target(out["parts"], cal_rows))
    except TrainingDataError:
        out["method"] = "out_of_fold"
        folds = min(int(p["calibration_folds"]), len(train_p) // 10)
        if folds >= 2:
            splitter = KFold(n_splits=folds, shuffle=True, random_state=int(p["seed"]))
            for fit_idx, eval_idx in splitter.split(train_p):
                fit_rows = train_p.iloc[fit_idx]
                if fit_rows["category"].nunique() >= 2:
                    pools.append(_logits_and_target(_fit(fit_rows, p), train_p.iloc[eval_idx]))
    pools = [(logits[target >= 0], target[target >= 0]) for logits, target in pools]
    out["rows"] = int(sum(len(t) for _, t in pools))
    if out["rows"] < 20:
        out.update(method="none", temperature=1.0)
    else:
        out["temperature"] = fit_temperature(pools)
    return out


def _origin_folds(
    train_p: pd.DataFrame, fractions, min_scored: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(fit rows, scored rows) masks of a rolling-origin split of the training period: at each origin
    (the day holding that fraction of the rows) fit on every earlier day, score up to the next origin.
    Origins whose earlier days hold fewer than 10 rows or a single category are skipped. Only the
    latest origins whose scored rows reach `min_scored` are kept (all of them if they never do): on a
    larger ledger the last origin alone scores enough rows, and each origin costs a fit per regime."""
    dates = train_p["txn_date"].to_numpy()
    ordered = np.sort(dates)
    n = len(dates)
    cuts = sorted({ordered[int(n * float(f))] for f in fractions if 0 < int(n * float(f)) < n})
    labels = train_p["category"].to_numpy(dtype=object)
    folds = []
    for i, cut in enumerate(cuts):
        fit = dates < cut
        scored = (dates >= cut) & (dates < cuts[i + 1]) if i + 1 < len(cuts) else dates >= cut
        if fit.sum() >= 10 and scored.any() and len(set(labels[fit])) >= 2:
            folds.append((fit, scored))
    kept, n_scored = [], 0
    for fold in reversed(folds):
        if n_scored >= min_scored > 0:
            break
        kept.insert(0, fold)
        n_scored += int(fold[1].sum())
    return kept


def _pooled_log_loss(pools: list[tuple[np.ndarray, np.ndarray]], temperature: float) -> float:
    total, n = 0.0, 0
    for logits, target in pools:
        z = logits / temperature
        z = z - z.max(axis=1, keepdims=True)
        total += float(np.sum(np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(target)), target]))
        n += len(target)
    return total / n if n else float("inf")


def _select(train_p: pd.DataFrame, base: dict[str, Any], given: dict[str, Any]) -> dict[str, Any] | None:
    """Choose the regime on the training period alone: each of `regimes` (REGIMES overrides, then the
    caller's own parameters) is fitted at each rolling origin (`_origin_folds`) and its predictions of
    the next rows are pooled. The most accurate wins; a tie goes to the lower log loss after temperature
    scaling, then to the earlier (simpler) regime. The winner's pooled predictions give its temperature.
    None when no origin can be fitted (too few rows)."""
    folds = _origin_folds(train_p, base["select_origins"], int(base["select_min_scored"]))
    if not folds:
        return None
    scores: dict[str, dict[str, Any]] = {}
    for name in base["regimes"]:
        q = {**base, **REGIMES[name], **given}
        pools, correct, total = [], 0, 0
        for fit, scored in folds:
            logits, target = _logits_and_target(_fit(train_p[fit], q), train_p[scored])
            correct += int((logits.argmax(axis=1) == target).sum())
            total += len(target)
            pools.append((logits[target >= 0], target[target >= 0]))
        usable = int(sum(len(t) for _, t in pools))
        temperature = fit_temperature(pools) if usable >= 20 else 1.0
        scores[name] = {
            "correct": correct,
            "rows": total,
            "usable_rows": usable,
            "temperature": temperature,
            "log_loss": _pooled_log_loss(pools, temperature),
        }
    order = list(base["regimes"])
    best = max(order, key=lambda r: (scores[r]["correct"], -scores[r]["log_loss"], -order.index(r)))
    return {"regime": best, "scores": scores, "folds": len(folds)}
