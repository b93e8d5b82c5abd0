"""The training report's figure: the backtest forecasts and intervals over the actual series."""

from __future__ import annotations

import pandas as pd

from titans_assets.lib.ml.cashflow.backtest import Backtest


def backtest_figure(
    series: pd.DataFrame,
    bt: Backtest,
    metrics: dict[str, float],
    baseline: str,
    baseline_mase: float,
    level: float,
):
    from matplotlib.figure import Figure

    dates = pd.DatetimeIndex(series["metric_date"])
    y = series["net_flow"].to_numpy()
    h = bt.pred.shape[1]
    start = max(0, int(bt.origins[0]) - 3 * h)
    fig = Figure(figsize=(11, 4.5), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(dates[start:], y[start:], color="0.35", lw=0.8, label="actual daily net flow")
    for i, o in enumerate(bt.origins):
        d = dates[o : o + h]
        last = i == len(bt.origins) - 1
        ax.plot(
            d,
            bt.pred[i],
            color="tab:blue",
            lw=1.6 if last else 0.9,
            alpha=1.0 if last else 0.45,
            label="forecast (last origin)"
            if last
            else ("forecasts (earlier evaluation origins)" if i == 0 else None),
        )
        ax.fill_between(
            d,
            bt.lower[i],
            bt.upper[i],
            color="tab:blue",
            alpha=0.2 if last else 0.06,
            label=f"{level:.0%} interval" if last else None,
        )
        ax.axvline(dates[o], color="tab:blue", lw=0.5, alpha=0.3)
    ax.axhline(0, color="0.6", lw=0.5)
    ax.set_title(
        f"{bt.method}: MASE {metrics['mase']:.3f} on {len(bt.origins)} evaluation origins (best baseline "
        f"{baseline} {baseline_mase:.3f}), coverage {metrics['interval_coverage']:.0%} at {level:.0%}",
        fontsize=10,
    )
    ax.set_ylabel("net flow per day")
    ax.legend(loc="upper left", fontsize=8)
    return fig
