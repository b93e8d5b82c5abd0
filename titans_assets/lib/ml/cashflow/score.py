"""Scoring: the backtest metrics of a method (`evaluate`, with its cross-validated intervals) and
`score`, which rescores any fitted model on a holdout series."""

from __future__ import annotations

import numpy as np
import pandas as pd

from titans_assets.lib.ml.cashflow.backtest import Backtest, origin_plan, run_backtest
from titans_assets.lib.ml.cashflow.intervals import calibration_set, interval_offsets
from titans_assets.lib.ml.cashflow.model import CashflowModel
from titans_assets.lib.ml.cashflow.series import daily_series


def evaluate(bt: Backtest, y: np.ndarray, level: float) -> dict[str, float]:
    """The backtest metrics; sets bt.lower / bt.upper to the cross-validated intervals."""
    n_orig, h = bt.pred.shape
    err = bt.actual - bt.pred
    day = bt.origins[:, None] + np.arange(h)[None, :]
    step = np.broadcast_to(np.arange(1, h + 1), (n_orig, h))
    lower, upper = np.empty_like(bt.pred), np.empty_like(bt.pred)
    for i, o in enumerate(bt.origins):
        keep = np.ones((n_orig, h), dtype=bool)
        keep[i] = False
        keep &= (day < o) | (day >= o + h)
        resid, steps = calibration_set(err[keep], step[keep], len(np.unique(day[keep])), y[:o])
        lo, hi = interval_offsets(resid, steps, level, h)
        lower[i], upper[i] = bt.pred[i] + lo, bt.pred[i] + hi
    bt.lower, bt.upper = lower, upper
    abs_err = np.abs(err)
    with np.errstate(divide="ignore", invalid="ignore"):
        mase_o = abs_err.mean(axis=1) / bt.scale
    mase_o = mase_o[np.isfinite(mase_o)]
    total_err = np.abs(err.sum(axis=1))
    actual_total = np.abs(bt.actual.sum(axis=1)).mean()
    width = (upper - lower).mean()
    mean_abs = np.abs(bt.actual).mean()
    return {
        "mase": float(mase_o.mean()) if len(mase_o) else float("nan"),
        "mae": float(abs_err.mean()),
        "rmse": float(np.sqrt((err**2).mean())),
        "total_error_30d": float(total_err.mean()),
        "total_error_30d_pct": float(100 * total_err.mean() / actual_total)
        if actual_total > 0
        else float("nan"),
        "interval_coverage": float(((bt.actual >= lower) & (bt.actual <= upper)).mean()),
        "interval_width": float(width),
        "interval_width_rel": float(width / mean_abs) if mean_abs > 0 else float("nan"),
    }


def score(model: CashflowModel, holdout: pd.DataFrame) -> dict[str, float]:
    """Re-run the backtest of the model's method (with its backtest settings) on the holdout series'
    evaluation origins (`origin_plan`, as train() cut it): the same metric names as
    TrainResult.metrics without the per-candidate selection ones. On a training's own holdout it
    reproduces that training's metrics (the model) or baselines[b] (baseline_models[b])."""
    series, _ = daily_series(holdout)
    y = series["net_flow"].to_numpy(dtype=float)
    first = pd.Timestamp(series["metric_date"].iloc[0])
    plan = origin_plan(len(y), model.config)
    bt = run_backtest(model.method, y, first, model.config, plan.evaluation)
    return evaluate(bt, y, model.config.level)
