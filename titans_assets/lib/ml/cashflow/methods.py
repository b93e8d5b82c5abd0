"""The forecasting methods, each `fn(y, first_date, steps, config) -> (path of `steps` values,
picklable state)`: the baselines (seasonal naive, 28-day mean), ETS, ARIMA, the gradient-boosting
regressor (gbm.py) and their combination; `run_method` runs one through the config's robust mode."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from titans_assets.lib.ml.cashflow.config import BASELINES, COMBO_PARTS, SEASON, BacktestConfig
from titans_assets.lib.ml.cashflow.gbm import gbm_forecast
from titans_assets.lib.ml.cashflow.robust import robust_series


def _seasonal_naive(y: np.ndarray, first: pd.Timestamp, steps: int, config: BacktestConfig):
    last_week = y[-SEASON:]
    return np.resize(last_week, steps).astype(float), {"last_week": last_week.copy()}


def _mean_28(y: np.ndarray, first: pd.Timestamp, steps: int, config: BacktestConfig):
    mean = float(np.mean(y[-28:]))
    return np.full(steps, mean), {"mean": mean, "window": int(min(28, len(y)))}


def _plain(model_: dict, keys: Sequence[str]) -> dict:
    """The fitted statsforecast state as plain values (unpickling needs no statsforecast)."""
    out = {}
    for k in keys:
        v = model_.get(k)
        if isinstance(v, np.ndarray | list | tuple | dict | str | int | float | np.number) or v is None:
            out[k] = v
    return out


def _ets(y: np.ndarray, first: pd.Timestamp, steps: int, config: BacktestConfig):
    from statsforecast.models import AutoETS

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = AutoETS(season_length=SEASON).fit(y)
        path = np.asarray(model.predict(h=steps)["mean"], dtype=float)
    state = _plain(model.model_, ("method", "components", "par", "aic", "sigma2", "n_params"))
    state["last_state"] = np.asarray(model.model_["states"])[-1].copy()
    return path, state


def _arima(y: np.ndarray, first: pd.Timestamp, steps: int, config: BacktestConfig):
    from statsforecast.models import AutoARIMA

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = AutoARIMA(
            season_length=SEASON,
            approximation=True,
            max_p=2,
            max_q=2,
            max_P=1,
            max_Q=1,
            max_d=1,
            max_D=1,
            method="CSS",
        ).fit(y)
        path = np.asarray(model.predict(h=steps)["mean"], dtype=float)
    return path, _plain(model.model_, ("arma", "coef", "sigma2", "aic"))


def combine(paths: Sequence[np.ndarray]) -> np.ndarray:
    """The equal-weight combination of forecasts (one helper, so train and score agree bit for bit)."""
    return np.mean(np.vstack(paths), axis=0)


def _combo(y: np.ndarray, first: pd.Timestamp, steps: int, config: BacktestConfig):
    paths, states = [], {}
    for part in COMBO_PARTS:  # `y` is already what the robust mode made of it: the parts run on it as is
        path, states[part] = _run_raw(part, y, first, steps, config)
        paths.append(path)
    return combine(paths), {"parts": states}


ForecastFn = Callable[[np.ndarray, pd.Timestamp, int, BacktestConfig], tuple[np.ndarray, Any]]
METHODS: dict[str, ForecastFn] = {
    "seasonal_naive_7": _seasonal_naive,
    "mean_28": _mean_28,
    "ets": _ets,
    "arima": _arima,
    "gbm": gbm_forecast,
    "combo": _combo,
}


def _run_raw(method: str, y: np.ndarray, first: pd.Timestamp, steps: int, config: BacktestConfig):
    if method not in METHODS:
        raise ValueError(f"unknown cash-flow method {method!r}; known: {sorted(METHODS)}")
    path, state = METHODS[method](y, first, steps, config)
    path = np.asarray(path, dtype=float)
    if path.shape != (steps,) or not np.all(np.isfinite(path)):
        raise ValueError(f"{method} returned {path.shape} values, not {steps} finite ones")
    return path, state


def run_method(method: str, y: np.ndarray, first: pd.Timestamp, steps: int, config: BacktestConfig):
    """`method` fitted on `y` and its `steps`-day path; a model candidate (not a baseline) sees the
    series through `config.robust` (`robust_series`), computed on this `y` alone."""
    mode = getattr(config, "robust", "none")
    if mode == "none" or method in BASELINES:
        return _run_raw(method, y, first, steps, config)
    fit_on, rate, info = robust_series(y, mode)
    path, state = _run_raw(method, fit_on, first, steps, config)
    if isinstance(state, dict):
        state = {**state, "robust": info}
    return path + rate, state
