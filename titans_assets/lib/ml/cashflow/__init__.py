"""Cash-flow forecast: the next days' net flow (income - expenses) with prediction intervals.

The model contract of lib/ml/common.py (NAME, PRIMARY_METRIC, HIGHER_IS_BETTER, train, score) and
what the tests and benchmarks use, re-exported from the package's modules: config (constants and
BacktestConfig), series (the input), robust (one-off amounts), methods and gbm (the forecasters),
backtest, intervals, score (metrics), model (CashflowModel), figure and fit (train). Pickles made
before the package existed name `titans_assets.lib.ml.cashflow.CashflowModel` and `.BacktestConfig`:
both resolve here."""

from titans_assets.lib.ml.cashflow.backtest import Backtest, OriginPlan, origin_plan, run_backtest
from titans_assets.lib.ml.cashflow.config import (
    AUTO_MODES,
    BASELINES,
    CANDIDATES,
    COMBO_PARTS,
    HIGHER_IS_BETTER,
    LUMPY_WINDOW,
    MAX_HORIZON,
    METRIC_NAMES,
    MIN_DAYS,
    MIN_TRAIN_DAYS,
    NAME,
    PRIMARY_METRIC,
    ROBUST,
    ROBUST_MODES,
    SEASON,
    BacktestConfig,
)
from titans_assets.lib.ml.cashflow.fit import train
from titans_assets.lib.ml.cashflow.intervals import interval_offsets
from titans_assets.lib.ml.cashflow.model import CashflowModel
from titans_assets.lib.ml.cashflow.robust import robust_series, robust_threshold, split_lumpy
from titans_assets.lib.ml.cashflow.score import evaluate, score
from titans_assets.lib.ml.cashflow.series import daily_series

__all__ = [
    "AUTO_MODES",
    "BASELINES",
    "CANDIDATES",
    "COMBO_PARTS",
    "HIGHER_IS_BETTER",
    "LUMPY_WINDOW",
    "MAX_HORIZON",
    "METRIC_NAMES",
    "MIN_DAYS",
    "MIN_TRAIN_DAYS",
    "NAME",
    "PRIMARY_METRIC",
    "ROBUST",
    "ROBUST_MODES",
    "SEASON",
    "Backtest",
    "BacktestConfig",
    "CashflowModel",
    "OriginPlan",
    "daily_series",
    "evaluate",
    "interval_offsets",
    "origin_plan",
    "robust_series",
    "robust_threshold",
    "run_backtest",
    "score",
    "split_lumpy",
    "train",
]
