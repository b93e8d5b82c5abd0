"""The amount model's training figures: predicted vs actual, residuals, and intervals on test rows."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure


def _figures(
    actual: np.ndarray,
    predicted: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    level: float,
    rng: np.random.Generator,
) -> dict[str, Figure]:
    n = len(actual)
    sample = rng.choice(n, size=min(n, 5000), replace=False)
    a, p = actual[sample], predicted[sample]
    fig = Figure(figsize=(11, 4.5))
    ax1, ax2 = fig.subplots(1, 2)
    ax1.scatter(p, a, s=4, alpha=0.3)
    lim = [max(0.1, min(a.min(), p.min())), max(a.max(), p.max())]
    ax1.plot(lim, lim, color="black", lw=1)
    ax1.set(
        xscale="log",
        yscale="log",
        xlabel="predicted |amount|",
        ylabel="actual |amount|",
        title="Predicted vs actual (test)",
    )
    ax2.scatter(p, np.log(a / p), s=4, alpha=0.3)
    ax2.axhline(0, color="black", lw=1)
    ax2.set(xscale="log", xlabel="predicted |amount|", ylabel="log(actual / predicted)", title="Residuals")
    fig.tight_layout()
    cover = float(np.mean((actual >= lower) & (actual <= upper)))
    pick = np.sort(rng.choice(n, size=min(n, 60), replace=False))
    pick = pick[np.argsort(predicted[pick])]
    inside = (actual[pick] >= lower[pick]) & (actual[pick] <= upper[pick])
    fig2 = Figure(figsize=(11, 4.5))
    ax = fig2.subplots()
    x = np.arange(len(pick))
    ax.vlines(x, lower[pick], upper[pick], color="tab:blue", alpha=0.5, lw=3, label=f"{level:.0%} interval")
    ax.scatter(x, predicted[pick], marker="_", color="tab:blue", s=80, label="predicted")
    ax.scatter(x[inside], actual[pick][inside], color="tab:green", s=14, label="actual (inside)")
    ax.scatter(x[~inside], actual[pick][~inside], color="tab:red", s=14, label="actual (outside)")
    ax.set(
        yscale="log",
        xlabel="test rows (sorted by prediction)",
        ylabel="|amount|",
        title=f"{level:.0%} intervals on a sample of test rows: coverage {cover:.1%} on all {n} test rows",
    )
    ax.legend(loc="upper left", fontsize=8)
    fig2.tight_layout()
    return {"residuals.png": fig, "intervals.png": fig2}
