"""Metrics of an anomaly model (or a baseline) on held-out rows: ranking and threshold metrics."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score


def _ranking_metrics(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    labels = np.asarray(labels, dtype=bool)
    scores = np.asarray(scores, dtype=float)
    k = int(labels.sum())
    out = {"n_test": float(len(labels)), "n_anomalies_test": float(k)}
    if 0 < k < len(labels):
        out["roc_auc"] = float(roc_auc_score(labels, scores))
        out["average_precision"] = float(average_precision_score(labels, scores))
        top = np.argsort(-scores, kind="stable")[:k]
        out["precision_at_k"] = float(labels[top].mean())
    else:
        out.update(roc_auc=float("nan"), average_precision=float("nan"), precision_at_k=float("nan"))
    return out


def _threshold_metrics(flags: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    labels = np.asarray(labels, dtype=bool)
    flags = np.asarray(flags, dtype=bool)
    tp = float((flags & labels).sum())
    precision = tp / flags.sum() if flags.any() else 0.0
    recall = tp / labels.sum() if labels.any() else float("nan")
    f1 = 2 * precision * recall / (precision + recall) if (precision + recall) > 0 else 0.0
    return {"precision": float(precision), "recall": float(recall), "f1": float(f1)}


def score(model: Any, holdout) -> dict[str, float]:
    """Metrics of any anomaly model on a holdout `(frame, labels)` (TrainResult.holdout)."""
    frame, labels = holdout
    labels = np.asarray(labels, dtype=bool)
    pred = model.predict(frame)
    out = _ranking_metrics(pred["anomaly_score"].to_numpy(), labels)
    out.update(_threshold_metrics(pred["is_anomaly"].to_numpy(), labels))
    out["threshold"] = float(getattr(model, "threshold", float("nan")))
    return out
