"""The training run's figure: the distribution of test-period scores, normal against anomalous."""

from __future__ import annotations

import numpy as np


def _figure(scores: np.ndarray, labels: np.ndarray, threshold: float):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4))
    ax = fig.add_subplot(1, 1, 1)
    bins = np.linspace(0, 1, 41)
    ax.hist(scores[~labels], bins=bins, alpha=0.6, label=f"normal ({int((~labels).sum())})", density=True)
    if labels.any():
        ax.hist(scores[labels], bins=bins, alpha=0.6, label=f"anomalous ({int(labels.sum())})", density=True)
    ax.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:.3f}")
    ax.set_yscale("log")
    ax.set_xlabel("anomaly score")
    ax.set_ylabel("density (log)")
    ax.set_title("Anomaly scores on the test period")
    ax.legend()
    fig.tight_layout()
    return fig
