"""The metrics of a category model or baseline on labelled rows: accuracy, F1, top-3 accuracy, log
loss and expected calibration error."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score

from titans_assets.lib.ml import features as F
from titans_assets.lib.ml.category.rows import labelled_rows
from titans_assets.lib.ml.common import TrainingDataError

ECE_BINS = 10
LOG_LOSS_EPS = 1e-15


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, n_bins: int = ECE_BINS) -> float:
    """Sum over equal-width confidence bins of |accuracy - mean confidence| x share of rows."""
    if len(confidence) == 0:
        return float("nan")
    bins = np.clip((confidence * n_bins).astype(int), 0, n_bins - 1)
    total = 0.0
    for b in range(n_bins):
        m = bins == b
        if m.any():
            total += abs(correct[m].mean() - confidence[m].mean()) * m.mean()
    return float(total)


def _proba(model, prepared: pd.DataFrame) -> np.ndarray:
    """Class probabilities of prepared rows (this module's models skip preparing them a second time)."""
    if len(prepared) == 0:
        return np.zeros((0, len(model.classes_)))
    own = getattr(model, "proba_of_prepared", None)
    return own(prepared) if own is not None else np.asarray(model.predict_proba(prepared))


def _detail(model, rows: pd.DataFrame) -> dict[str, Any]:
    """Predictions of `model` on prepared labelled `rows`, with what the metrics need."""
    y = rows["category"].to_numpy(dtype=object)
    classes = np.asarray(model.classes_, dtype=object)
    proba = _proba(model, rows)
    index = {c: i for i, c in enumerate(classes)}
    target = np.array([index.get(c, -1) for c in y], dtype=int)
    pred = classes[proba.argmax(axis=1)] if len(rows) else np.array([], dtype=object)
    return {
        "y": y,
        "classes": classes,
        "proba": proba,
        "target": target,
        "pred": pred,
        "n_train": getattr(model, "n_train_", float("nan")),
    }


def _metrics(d: dict[str, Any]) -> dict[str, float]:
    y, proba, target, pred = d["y"], d["proba"], d["target"], d["pred"]
    n = len(y)
    if n == 0:
        raise TrainingDataError("the holdout has no categorised rows")
    labels = np.unique(y)
    rows = np.arange(n)
    p_true = np.where(target >= 0, proba[rows, np.maximum(target, 0)], 0.0)
    k = min(3, proba.shape[1])
    top = (
        np.argpartition(-proba, k - 1, axis=1)[:, :k] if proba.shape[1] > k else np.tile(np.arange(k), (n, 1))
    )
    confidence = proba.max(axis=1)
    correct = pred == y
    return {
        "accuracy": float(correct.mean()),
        "macro_f1": float(f1_score(y, pred, labels=labels, average="macro", zero_division=0)),
        "weighted_f1": float(f1_score(y, pred, labels=labels, average="weighted", zero_division=0)),
        "top3_accuracy": float((top == target[:, None]).any(axis=1).mean()),
        "log_loss": float(-np.mean(np.log(np.clip(p_true, LOG_LOSS_EPS, 1.0)))),
        "ece": expected_calibration_error(confidence, correct),
        "n_train": float(d["n_train"]),
        "n_test": float(n),
        "n_classes": float(len(d["classes"])),
    }


def score(model, holdout: pd.DataFrame) -> dict[str, float]:
    """The metrics of any fitted category model (or baseline) on a holdout of categorised rows
    (raw warehouse rows or `TrainResult.holdout`, which is already prepared)."""
    vocabulary = getattr(model, "vocabulary", None) or F.Vocabulary.from_seeds()
    return _metrics(_detail(model, labelled_rows(holdout, vocabulary)))
