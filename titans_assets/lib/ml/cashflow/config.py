"""The cash-flow model's constants and its backtest settings (`BacktestConfig`, pickled with every
model): what the other modules of the package share."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

NAME = "titans_cashflow"
PRIMARY_METRIC = "mase"
HIGHER_IS_BETTER = False

SEASON = 7
MIN_DAYS = 45  # the smallest series train() accepts (with the default 30-day horizon)
MIN_TRAIN_DAYS = 15  # history before the earliest backtest origin
MAX_HORIZON = 365
CALIBRATION_DAYS = 90  # below this many distinct backtest days, intervals also use seasonal differences
MIN_POOL = 40  # errors pooled (over neighbouring steps) for one step's quantiles
GBM_MIN_ROWS = 30
BASELINES = ("seasonal_naive_7", "mean_28")  # always scored, never the model's candidates
COMBO_PARTS = ("ets", "arima", "gbm")  # the `combo` candidate: the mean of their forecasts
CANDIDATES = ("ets", "arima", "gbm", "combo")  # the model's candidates (default)
ROBUST = "auto"  # the robust mode train() uses by default (`robust_series`; benchmarks/cashflow_oneoffs.py)
METRIC_NAMES = (
    "mase",
    "mae",
    "rmse",
    "total_error_30d",
    "total_error_30d_pct",
    "interval_coverage",
    "interval_width",
    "interval_width_rel",
)
DAY = pd.Timedelta(days=1)

ROBUST_MODES = ("none", "winsor", "lumpy")
AUTO_MODES = (
    "none",
    "winsor",
)  # robust="auto" in train(): the mode is chosen with the method, on the selection origins
ROBUST_QUANTILE = 0.98  # winsorising threshold: ROBUST_MULTIPLIER x this quantile of |y - median|
ROBUST_MULTIPLIER = 4.0
LUMPY_WINDOW = 365  # days whose lumpy flows give the expected lumpy rate


@dataclass(frozen=True)
class BacktestConfig:
    horizon: int = 30
    level: float = 0.9
    n_origins: int = 12  # in all: the earlier half chooses the method, the later half scores it
    origin_step: int | None = None  # None: the horizon when the data allows, else 7 days
    gbm_loss: str = "squared_error"
    gbm_max_iter: int = 100
    # How the model's candidates see one-off amounts (`robust_series`; baselines always see the raw
    # series). The class default stays "none", so a model pickled before the option existed still
    # scores as it was fitted; train() passes ROBUST (the adopted mode) explicitly.
    robust: str = "none"
