"""Permutation importance of a trained model on its own holdout, logged with its training run.

For each request column the model reads (the catalog's request example), the column is shuffled
across the holdout rows (`repeats` times, seeded) and the model rescored with its module's `score`:
the importance is how much the primary metric worsens (positive = the model relies on the column;
about 0 = it does not; negative = noise helped). Derived columns the holdout already carries (e.g.
the category model's `merchant`) are not shuffled with their source, so the figure is a lower bound
for the columns they come from. The cash-flow model forecasts one daily series and has no input
columns to permute: its artifact says so.

Logged as `feature_importance.json` in the training run (MLflow artifact); the dashboard's model page
reads it. Computing it never fails a training: an error is logged in the artifact instead.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import pandas as pd

ARTIFACT = "feature_importance.json"
REPEATS = 3
MAX_ROWS = 5000  # holdout rows used (a seeded sample beyond this): bounds the cost per training


def _split(holdout) -> tuple[pd.DataFrame | None, Any]:
    """The holdout's feature frame and how to put a permuted frame back into the holdout's shape."""
    if isinstance(holdout, pd.DataFrame):
        return holdout, None
    if isinstance(holdout, tuple) and holdout and isinstance(holdout[0], pd.DataFrame):
        return holdout[0], holdout[1:]
    return None, None


def _join(frame: pd.DataFrame, rest):
    return frame if rest is None else (frame, *rest)


def _sample(frame: pd.DataFrame, rest, max_rows: int, rng: np.random.Generator):
    if len(frame) <= max_rows:
        return frame, rest
    idx = np.sort(rng.choice(len(frame), size=max_rows, replace=False))
    rest = (
        None
        if rest is None
        else tuple(np.asarray(r)[idx] if len(np.asarray(r)) == len(frame) else r for r in rest)
    )
    return frame.iloc[idx], rest


def worsening(base: float, permuted: float, higher_is_better: bool) -> float:
    """How much worse the metric got when a column was shuffled (positive = worse)."""
    return (base - permuted) if higher_is_better else (permuted - base)


def permutation_importance(
    score,
    model,
    holdout,
    columns: list[str],
    metric: str,
    higher_is_better: bool,
    repeats: int = REPEATS,
    seed: int = 0,
    max_rows: int = MAX_ROWS,
) -> dict[str, Any]:
    """Importance of each of `columns` for `model` on `holdout` (see the module's docstring)."""
    frame, rest = _split(holdout)
    if frame is None:
        return {
            "supported": False,
            "metric": metric,
            "reason": "the holdout is a single series (no input columns to permute)",
        }
    present = [c for c in columns if c in frame.columns]
    if not present:  # cash flow: its holdout is the daily series, its request only a horizon
        return {
            "supported": False,
            "metric": metric,
            "reason": f"the holdout carries none of the request columns ({', '.join(columns)}): "
            "no input columns to permute",
        }
    rng = np.random.default_rng(seed)
    frame, rest = _sample(frame, rest, max_rows, rng)
    started = time.perf_counter()
    base = float(score(model, _join(frame, rest))[metric])
    features = []
    for column in present:
        drops = []
        for _ in range(repeats):
            shuffled = frame.copy()
            shuffled[column] = rng.permutation(shuffled[column].to_numpy())
            value = float(score(model, _join(shuffled, rest))[metric])
            if math.isfinite(value) and math.isfinite(base):
                drops.append(worsening(base, value, higher_is_better))
        features.append(
            {
                "feature": column,
                "importance_mean": float(np.mean(drops)) if drops else None,
                "importance_std": float(np.std(drops)) if drops else None,
            }
        )
    features.sort(
        key=lambda f: -math.inf if f["importance_mean"] is None else f["importance_mean"], reverse=True
    )
    return {
        "supported": True,
        "metric": metric,
        "higher_is_better": higher_is_better,
        "base_score": base,
        "repeats": repeats,
        "rows": int(len(frame)),
        "seed": seed,
        "features": features,
        "seconds": round(time.perf_counter() - started, 2),
    }


def log_importance(registry, run_id: str, spec, result) -> dict[str, Any]:
    """Compute the challenger's permutation importance on its holdout and log it to its run."""
    try:
        out = permutation_importance(
            spec.module.score,
            result.model,
            result.holdout,
            list(spec.example_frame().columns),
            spec.primary_metric,
            spec.higher_is_better,
        )
    except Exception as exc:  # noqa: BLE001 - importance is a report, never a reason to fail a training
        out = {
            "supported": False,
            "metric": spec.primary_metric,
            "reason": f"not computed: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}",
        }
    registry._call("logging the feature importance", registry.client.log_dict, run_id, out, ARTIFACT)
    return out
