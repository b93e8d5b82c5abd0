"""The category model's training figures: the confusion matrix and the reliability diagram of the test
rows."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from titans_assets.lib.ml.category.score import ECE_BINS, expected_calibration_error


def _figures(d: dict[str, Any]) -> dict[str, Figure]:
    return {
        "confusion_matrix.png": _confusion_figure(d["y"], d["pred"]),
        "calibration.png": _reliability_figure(d["proba"].max(axis=1), d["pred"] == d["y"]),
    }


def _confusion_figure(y: np.ndarray, pred: np.ndarray) -> Figure:
    labels = pd.Series(np.concatenate([y, pred])).value_counts().index.tolist()  # commonest first
    pos = {c: i for i, c in enumerate(labels)}
    m = np.zeros((len(labels), len(labels)))
    np.add.at(m, ([pos[c] for c in y], [pos[c] for c in pred]), 1)
    totals = m.sum(axis=1, keepdims=True)
    norm = np.divide(m, totals, out=np.zeros_like(m), where=totals > 0)
    size = max(5.0, 0.42 * len(labels) + 3)
    fig = Figure(figsize=(size + 1.2, size))
    ax = fig.subplots()
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=8)
    ax.set_yticks(range(len(labels)), [f"{c} ({int(t)})" for c, t in zip(labels, totals[:, 0])], fontsize=8)
    ax.set(
        xlabel="predicted",
        ylabel="actual (test rows)",
        title="Category confusion matrix (row-normalised, test)",
    )
    for i, j in zip(*np.nonzero(norm >= 0.01)):
        ax.text(
            j,
            i,
            f"{norm[i, j]:.2f}".lstrip("0"),
            ha="center",
            va="center",
            fontsize=6,
            color="white" if norm[i, j] > 0.6 else "black",
        )
    fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02, label="share of the actual category")
    fig.tight_layout()
    return fig


def _reliability_figure(confidence: np.ndarray, correct: np.ndarray) -> Figure:
    edges = np.linspace(0, 1, ECE_BINS + 1)
    bins = np.clip((confidence * ECE_BINS).astype(int), 0, ECE_BINS - 1)
    n = np.bincount(bins, minlength=ECE_BINS)
    acc = np.bincount(bins, weights=correct.astype(float), minlength=ECE_BINS) / np.maximum(n, 1)
    conf = np.bincount(bins, weights=confidence, minlength=ECE_BINS) / np.maximum(n, 1)
    ece = expected_calibration_error(confidence, correct)
    fig = Figure(figsize=(6, 6.5))
    ax1, ax2 = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    centers = (edges[:-1] + edges[1:]) / 2
    has = n > 0
    ax1.bar(centers[has], acc[has], width=1 / ECE_BINS, edgecolor="black", alpha=0.7, label="accuracy")
    ax1.plot(conf[has], acc[has], "o", color="darkred", ms=4, label="(mean confidence, accuracy)")
    ax1.plot([0, 1], [0, 1], "--", color="gray", lw=1, label="perfect calibration")
    ax1.set(
        xlim=(0, 1),
        ylim=(0, 1),
        ylabel="accuracy",
        title=f"Reliability of the top prediction (test), ECE {ece:.3f}",
    )
    ax1.legend(loc="upper left", fontsize=8)
    ax2.bar(centers, n, width=1 / ECE_BINS, edgecolor="black", color="gray")
    ax2.set(
        xlabel="confidence (calibrated probability of the prediction)",
        ylabel="rows",
        yscale="log" if n.max() > 0 else "linear",
    )
    fig.tight_layout()
    return fig
