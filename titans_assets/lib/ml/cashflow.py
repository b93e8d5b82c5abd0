"""Cash-flow forecast: the next days' net flow (income - expenses) with prediction intervals.

Input: one row per calendar day, columns `metric_date` and `net_flow` (features.ml_daily_cashflow;
marts.fct_daily_metrics with its column `net` is accepted too). Days missing between the first and
the last date are filled with 0 (a day without transactions has no flow, as in fct_daily_metrics);
a missing `net_flow` value is 0 as well; duplicate dates are rejected. Fewer than `MIN_DAYS` days
(or not enough for the backtest horizon) raise `TrainingDataError`.

Model choice: a nested rolling-origin backtest (`origin_plan`, used by train() and score() alike).
The series is cut at up to `n_origins` origins (12 by default) spaced by the horizon when the data
allows it with the evaluation origins in the later half of the series, else by 7 days. The earlier
half are *selection* origins, the later half *evaluation* origins, and the test window of every
selection origin ends before the first evaluation origin. At each origin a method is fitted on the
past and forecasts the next `horizon` days; MASE is the origin's MAE divided by the in-sample MAE of
the seasonal naive(7) on that origin's training window.

1. The method is the candidate with the lowest mean MASE on the selection origins (ties: the order
   given); a candidate that fails there is skipped with a note.
2. Only that method is backtested on the evaluation origins: TrainResult.metrics are its errors
   there, which played no part in choosing it.
3. The baselines are scored on the same evaluation origins (TrainResult.baselines) and refitted on
   the whole series as servable models (TrainResult.baseline_models), built exactly like the model.

The baselines are never the model's candidates (a model that *is* a baseline can only tie it):

- `seasonal_naive_7`: the last week repeated (the reference of MASE);
- `mean_28`: the mean of the last 28 days, flat.

The model's candidates (`CANDIDATES`; `candidates=` takes a subset, baseline names in it are ignored):

- `ets`: statsforecast AutoETS(season_length=7);
- `arima`: statsforecast AutoARIMA(season_length=7) with a bounded stepwise search (approximate
  likelihood, p, q <= 2, P, Q <= 1) fitted by conditional sum of squares (exact maximum likelihood
  took up to 3 s a fit on some two-year ledgers), so that a fit takes well under a second;
- `gbm`: a direct multi-step gradient-boosted model (HistGradientBoostingRegressor) on the target
  day's calendar (`features.time_features`, first/last business day of the month, paydays on the
  1st and 15th, the parity of a biweekly payroll) and on what is known at the origin: the last known
  value, rolling means (7, 28, 91 days), a 28-day rolling std, the same weekday over four weeks and
  the same day a year earlier, all lagged by at least the horizon so that one model serves every
  step 1..horizon; further steps are forecast block by block on its own predictions;
- `combo`: the equal-weight mean of the ets, arima and gbm forecasts (in the backtest it reuses
  their fits).

One-off amounts (a house deposit, a bonus): `robust` sets what the model's candidates are fitted on
(`robust_series`; the baselines always see the raw series). Each fit, at every origin and in the
refit, works out its band from its own training window only: median +- ROBUST_MULTIPLIER (4) x the
ROBUST_QUANTILE (98th percentile) of |y - median| (`robust_threshold`), wide enough that paydays and
rent stay untouched.

- `none`: the series as it is;
- `winsor`: days beyond the band are cut to it (the one-off is forgotten);
- `lumpy`: the same winsorised series (the regular flows) plus the cut-off flows' mean daily rate
  over the last LUMPY_WINDOW days (lumpy flows forecast as their expected rate);
- `auto` (train() only): the robust mode is chosen together with the method, the pair with the lowest
  mean MASE on the selection origins over AUTO_MODES x candidates (ties: candidate order, then mode
  order); it becomes the model's `config.robust`, so `score` refits the same way.

benchmarks/cashflow_oneoffs.py measures them: 2-3 days of 10-30x the median monthly net flow
injected into each dev ledger's history, the forecasts scored on the series without them.

Small data: with fewer selection origins than asked they may start earlier (down to
`MIN_TRAIN_DAYS` of history); a series shorter than 2 * horizon + MIN_TRAIN_DAYS days (75 by
default) cannot be nested: the method is then the first candidate, in the order given, that runs on
the single evaluation origin, chosen a priori and not on its score (a note says so). When only
baselines are given as candidates, or no model candidate runs, the model is the baseline that was
best on the selection origins, with a note that it cannot beat the baselines.

Intervals are empirical: quantiles of the backtest errors (actual - forecast) of the method (the
chosen one, or each baseline for its own model) on the evaluation origins, pooled over the origins
and a window of neighbouring horizon steps, with a finite-sample (split conformal) correction, made
monotone in the step by isotonic regression so that they never shrink.
When the backtest errors cover fewer than `CALIBRATION_DAYS` distinct days, the in-sample seasonal
differences (y[t] - y[t-7], wider than a good model's errors) join the pool: small data gets wide,
honest intervals. Beyond the backtest horizon the widths grow as (step/horizon)**0.25,
a heuristic whose coverage is not measured. The reported `interval_coverage` is cross-validated:
each evaluation origin's interval is calibrated on the errors of the other evaluation origins on
days outside its own test window (plus the in-sample seasonal differences when those are too few).

Metrics (the same evaluation origins for the chosen model, the baselines and `score`): mase, mae, rmse,
total_error_30d (mean absolute error of the forecast total over the horizon, 30 days by default),
total_error_30d_pct (that error in percent of the mean absolute actual total), interval_coverage,
interval_width (mean upper - lower) and interval_width_rel (that width over the mean absolute daily
flow). TrainResult.metrics adds `select_<name>_mase` (mean MASE on the selection origins) for every
candidate and baseline that ran there; data_window and params log the selection and evaluation
origins. `score(model, holdout)` backtests the model's method on the evaluation origins of the
holdout (with the model's BacktestConfig): on a training's own holdout it reproduces the metrics,
and baselines[b] for baseline_models[b].

Every fitted `CashflowModel` (the model and each baseline) is refitted on the whole series with its
method; it computes the 365-day forecast path once, so `forecast()` only slices it (no refit, well
under a millisecond of model work) and unpickling needs neither statsforecast nor numba.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from titans_assets.lib.ml.common import TrainingDataError, TrainResult
from titans_assets.lib.ml.features import time_features

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
METRIC_NAMES = ("mase", "mae", "rmse", "total_error_30d", "total_error_30d_pct", "interval_coverage",
                "interval_width", "interval_width_rel")
DAY = pd.Timedelta(days=1)


# ---------------------------------------------------------------------------------------------------
# Input


def daily_series(data: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The validated daily series (columns metric_date, net_flow; sorted, gap-free) and notes.

    Missing days and missing values become 0; duplicate or unparseable dates, infinite values and
    series shorter than `MIN_DAYS` raise TrainingDataError."""
    if not isinstance(data, pd.DataFrame):
        raise TrainingDataError(f"expected a DataFrame with metric_date and net_flow, got {type(data).__name__}")
    date_col = next((c for c in ("metric_date", "date") if c in data.columns), None)
    value_col = next((c for c in ("net_flow", "net") if c in data.columns), None)
    if date_col is None or value_col is None:
        raise TrainingDataError(f"the daily series needs columns metric_date and net_flow; got {list(data.columns)}")
    if data.empty:
        raise TrainingDataError("the daily series is empty")
    dates = pd.to_datetime(data[date_col], errors="coerce")
    if getattr(dates.dt, "tz", None) is not None:
        dates = dates.dt.tz_localize(None)
    dates = dates.dt.normalize()
    if dates.isna().any():
        raise TrainingDataError(f"{int(dates.isna().sum())} rows have no valid {date_col}")
    values = pd.to_numeric(data[value_col], errors="coerce").astype(float)
    notes: list[str] = []
    if np.isinf(values.to_numpy()).any():
        raise TrainingDataError(f"{value_col} has infinite values")
    if values.isna().any():
        notes.append(f"{int(values.isna().sum())} days without a {value_col} value counted as 0")
        values = values.fillna(0.0)
    if dates.duplicated().any():
        dup = sorted({d.date().isoformat() for d in dates[dates.duplicated()]})
        raise TrainingDataError(f"one row per day expected; duplicated dates: {', '.join(dup[:5])}"
                                + (" ..." if len(dup) > 5 else ""))
    s = pd.Series(values.to_numpy(), index=pd.DatetimeIndex(dates.to_numpy())).sort_index()
    full = pd.date_range(s.index[0], s.index[-1], freq="D")
    if len(full) > len(s):
        notes.append(f"{len(full) - len(s)} missing days between {full[0].date()} and {full[-1].date()} "
                     "filled with 0 (no transactions)")
        s = s.reindex(full, fill_value=0.0)
    if len(s) < MIN_DAYS:
        raise TrainingDataError(
            f"the cash-flow forecast needs at least {MIN_DAYS} days of daily net flow, got {len(s)} "
            f"({s.index[0].date()}..{s.index[-1].date()})")
    y = s.to_numpy(dtype=float)
    if not np.any(y[SEASON:] != y[:-SEASON]):
        raise TrainingDataError("the daily net flow repeats the same week (or is constant): nothing to forecast")
    out = pd.DataFrame({"metric_date": s.index.astype("datetime64[ns]"), "net_flow": y})
    return out, notes


# ---------------------------------------------------------------------------------------------------
# Forecasting methods: fn(y, first_date, steps, config) -> (path of `steps` values, picklable state)


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


ROBUST_MODES = ("none", "winsor", "lumpy")
AUTO_MODES = ("none", "winsor")  # robust="auto" in train(): the mode is chosen with the method, on the selection origins
ROBUST_QUANTILE = 0.98  # winsorising threshold: ROBUST_MULTIPLIER x this quantile of |y - median|
ROBUST_MULTIPLIER = 4.0
LUMPY_WINDOW = 365  # days whose lumpy flows give the expected lumpy rate


def robust_threshold(y: np.ndarray, quantile: float | None = None,
                     multiplier: float | None = None) -> tuple[float, float]:
    """(center, half-width) of the band a day's net flow is winsorised to: the median of the series
    and `multiplier` x the `quantile` of the absolute deviations from it. Both come from `y` alone
    (the training window), so a backtest origin never sees its future. A quantile rather than a MAD:
    most days of a ledger are small, and a MAD-based band would clip every payday and rent day; the
    98th percentile sits at about the size of the regular large flows, and a one-off several times
    that is what gets cut. A half-width of 0 (a series of mostly identical days) means no clipping."""
    quantile = ROBUST_QUANTILE if quantile is None else quantile
    multiplier = ROBUST_MULTIPLIER if multiplier is None else multiplier
    y = np.asarray(y, dtype=float)
    if len(y) == 0:
        return 0.0, math.inf
    center = float(np.median(y))
    width = multiplier * float(np.quantile(np.abs(y - center), quantile))
    return center, (width if width > 0 else math.inf)


def split_lumpy(y: np.ndarray, quantile: float | None = None,
                multiplier: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(regular, lumpy) with regular + lumpy == y: regular is y winsorised to `robust_threshold`,
    lumpy what was cut off (0 on every ordinary day)."""
    y = np.asarray(y, dtype=float)
    center, width = robust_threshold(y, quantile, multiplier)
    regular = np.clip(y, center - width, center + width)
    return regular, y - regular


def robust_series(y: np.ndarray, mode: str) -> tuple[np.ndarray, float, dict]:
    """What a model candidate is fitted on, the flat daily rate added to its forecast, and a note of
    both for the model's state. `none`: y itself; `winsor`: y winsorised (one-offs cut to the band
    and forgotten); `lumpy`: y winsorised (the regular flows) plus the lumpy flows' expected rate, i.e.
    their mean over the last LUMPY_WINDOW days, spread evenly over the forecast days."""
    if mode not in ROBUST_MODES:
        raise ValueError(f"unknown robust mode {mode!r}; known: {ROBUST_MODES}")
    y = np.asarray(y, dtype=float)
    if mode == "none":
        return y, 0.0, {"mode": "none"}
    regular, lumpy = split_lumpy(y)
    center, width = robust_threshold(y)
    rate = float(np.mean(lumpy[-LUMPY_WINDOW:])) if mode == "lumpy" and len(y) else 0.0
    info = {"mode": mode, "center": center, "half_width": width, "days_cut": int(np.count_nonzero(lumpy)),
            "lumpy_rate": rate}
    return regular, rate, info


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
        model = AutoARIMA(season_length=SEASON, approximation=True, max_p=2, max_q=2, max_P=1, max_Q=1,
                          max_d=1, max_D=1, method="CSS").fit(y)
        path = np.asarray(model.predict(h=steps)["mean"], dtype=float)
    return path, _plain(model.model_, ("arma", "coef", "sigma2", "aic"))


def _business_day_edges(dates: pd.DatetimeIndex) -> tuple[np.ndarray, np.ndarray]:
    """Whether each date is the first / the last business day of its month."""
    span = pd.date_range(dates.min().to_period("M").to_timestamp(),
                         dates.max().to_period("M").to_timestamp() + pd.offsets.MonthEnd(0), freq="D")
    cal = time_features(pd.Series(span))
    business = pd.Series(span[cal["is_business_day"].to_numpy() > 0])
    months = business.dt.to_period("M")
    firsts = pd.DatetimeIndex(business.groupby(months).min().to_numpy())
    lasts = pd.DatetimeIndex(business.groupby(months).max().to_numpy())
    return dates.isin(firsts), dates.isin(lasts)


_EPOCH_MONDAY = pd.Timestamp("1970-01-05")


def _gbm_design(values: np.ndarray, first: pd.Timestamp, targets: np.ndarray, gap: int) -> pd.DataFrame:
    """Features of the days at positions `targets` using only values[: target - gap + 1]."""
    dates = pd.DatetimeIndex(first + pd.to_timedelta(targets, unit="D"))
    cal = time_features(pd.Series(dates)).drop(columns=["day_of_year"])
    first_bd, last_bd = _business_day_edges(dates)
    cal["is_payday"] = np.isin(dates.day, (1, 15)).astype(float)
    cal["is_first_business_day"] = first_bd.astype(float)
    cal["is_last_business_day"] = last_bd.astype(float)
    cal["biweek_parity"] = (((dates - _EPOCH_MONDAY).days // 7) % 2).astype(float)
    end = targets - gap + 1  # exclusive end of the known history, >= 1
    csum = np.concatenate([[0.0], np.cumsum(values)])
    csq = np.concatenate([[0.0], np.cumsum(values ** 2)])

    def window(w: int) -> tuple[np.ndarray, np.ndarray]:
        start = np.maximum(end - w, 0)
        return start, (end - start).astype(float)

    feats: dict[str, np.ndarray] = {"last_known": values[end - 1]}
    for w in (7, 28, 91):
        start, count = window(w)
        feats[f"mean_{w}"] = (csum[end] - csum[start]) / count
    start, count = window(28)
    mean = (csum[end] - csum[start]) / count
    feats["std_28"] = np.sqrt(np.maximum((csq[end] - csq[start]) / count - mean ** 2, 0.0))
    j0 = math.ceil(gap / SEASON)
    same_dow = []
    for j in range(j0, j0 + 4):
        pos = targets - SEASON * j
        same_dow.append(np.where(pos >= 0, values[np.maximum(pos, 0)], np.nan))
    stacked = np.vstack(same_dow)
    feats["same_weekday_last"] = stacked[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        feats["same_weekday_mean_4"] = np.nanmean(stacked, axis=0)
    if gap <= 364:
        pos = targets - 364
        feats["same_day_last_year"] = np.where(pos >= 0, values[np.maximum(pos, 0)], np.nan)
    out = pd.concat([cal.reset_index(drop=True), pd.DataFrame(feats)], axis=1)
    return out


def _gbm(y: np.ndarray, first: pd.Timestamp, steps: int, config: BacktestConfig):
    from sklearn.ensemble import HistGradientBoostingRegressor
    from threadpoolctl import threadpool_limits

    gap = config.horizon
    rows = len(y) - gap
    if rows < GBM_MIN_ROWS:
        raise ValueError(f"gbm needs {gap + GBM_MIN_ROWS}+ days of history (horizon {gap} + {GBM_MIN_ROWS} "
                         f"training days), got {len(y)}")
    targets = np.arange(gap, len(y))
    X = _gbm_design(y, first, targets, gap)
    columns = [c for c in X.columns if X[c].notna().any()]  # e.g. no day a year earlier yet
    X = X[columns]
    model = HistGradientBoostingRegressor(
        loss=config.gbm_loss, learning_rate=0.03, max_iter=config.gbm_max_iter, max_leaf_nodes=7,
        min_samples_leaf=max(5, min(30, rows // 10)), l2_regularization=1.0, early_stopping=False,
        random_state=0)
    ext = y.astype(float).copy()
    path: list[float] = []
    # One thread: OpenMP on a busy machine is 20x slower for these small matrices, and results stay
    # bit-identical between runs.
    with threadpool_limits(limits=1, user_api="openmp"):
        model.fit(X, y[targets])
        while len(path) < steps:  # direct within a block of `gap` days, recursive across blocks
            block = min(gap, steps - len(path))
            idx = np.arange(len(ext), len(ext) + block)
            pred = model.predict(_gbm_design(ext, first, idx, gap)[columns])
            path.extend(pred.tolist())
            ext = np.concatenate([ext, pred])
    return np.asarray(path), {"regressor": model, "gap": gap, "features": columns}


def _combine(paths: Sequence[np.ndarray]) -> np.ndarray:
    """The equal-weight combination of forecasts (one helper, so train and score agree bit for bit)."""
    return np.mean(np.vstack(paths), axis=0)


def _combo(y: np.ndarray, first: pd.Timestamp, steps: int, config: BacktestConfig):
    paths, states = [], {}
    for part in COMBO_PARTS:  # `y` is already what the robust mode made of it: the parts run on it as is
        path, states[part] = _run_raw(part, y, first, steps, config)
        paths.append(path)
    return _combine(paths), {"parts": states}


ForecastFn = Callable[[np.ndarray, pd.Timestamp, int, BacktestConfig], tuple[np.ndarray, Any]]
_METHODS: dict[str, ForecastFn] = {
    "seasonal_naive_7": _seasonal_naive,
    "mean_28": _mean_28,
    "ets": _ets,
    "arima": _arima,
    "gbm": _gbm,
    "combo": _combo,
}


# ---------------------------------------------------------------------------------------------------
# Backtest and intervals


@dataclass(frozen=True)
class OriginPlan:
    """Where the nested rolling-origin backtest cuts a series of `n_days` days (positions of the
    first test day of each origin, ascending). The method is chosen on `selection` only; the chosen
    method and the baselines are scored on `evaluation`, all of whose origins come after the test
    windows of the selection origins end (selection origin + horizon <= first evaluation origin)."""

    selection: tuple[int, ...]
    evaluation: tuple[int, ...]
    step: int  # spacing of the origins within each group

    @property
    def nested(self) -> bool:
        return bool(self.selection)


def origin_plan(n_days: int, config: BacktestConfig) -> OriginPlan:
    """The backtest origins of train() and score() (one function, so both use the same ones).

    `config.n_origins` in all: the later ceil(n/2) score (evaluation), the earlier floor(n/2) choose
    (selection). The evaluation origins are the last day that leaves a full horizon and the ones
    before it every `step` days, none before half of the series; the selection origins end a full
    horizon (or `step`, if larger) before the first evaluation origin and go back every `step`
    days, keeping MIN_TRAIN_DAYS of history. `step` is the horizon when every origin fits that way,
    else 7 days; when not all selection origins fit after half of the series they may start earlier
    (down to MIN_TRAIN_DAYS of history), and when none fits at all only the last evaluation origin is
    kept to make room for one. A series too short for any selection origin (fewer than
    2 * horizon + MIN_TRAIN_DAYS days) gets none: the plan is not nested."""
    horizon = config.horizon
    last = n_days - horizon
    if last < MIN_TRAIN_DAYS:
        raise TrainingDataError(f"a {horizon}-day backtest needs at least {horizon + MIN_TRAIN_DAYS} days, "
                                f"got {n_days}")
    total = max(int(config.n_origins), 1)
    n_select, n_eval = total // 2, total - total // 2
    floor = max(MIN_TRAIN_DAYS, n_days // 2)

    def layout(step: int, select_floor: int, n_ev: int) -> tuple[list[int], list[int]]:
        ev = [last - i * step for i in range(n_ev) if last - i * step >= floor] or [last]
        start = min(ev) - max(step, horizon)
        sel = [start - i * step for i in range(n_select) if start - i * step >= select_floor]
        return sorted(ev), sorted(sel)

    steps = [config.origin_step] if config.origin_step else [horizon, SEASON]
    for step in steps:
        ev, sel = layout(step, floor, n_eval)
        if len(ev) == n_eval and len(sel) == n_select:
            break
    if len(sel) < n_select:  # small data: selection origins with less history rather than fewer of them
        ev, sel = layout(step, MIN_TRAIN_DAYS, n_eval)
    if n_select and not sel:
        ev, sel = layout(step, MIN_TRAIN_DAYS, 1)
    return OriginPlan(tuple(sel), tuple(ev), step)


@dataclass
class Backtest:
    """One method's rolling-origin forecasts: arrays of shape (origins, horizon)."""

    method: str
    origins: np.ndarray
    pred: np.ndarray
    actual: np.ndarray
    scale: np.ndarray  # in-sample seasonal naive MAE of each origin's training window
    seconds: float
    lower: np.ndarray | None = None
    upper: np.ndarray | None = None


def _run_raw(method: str, y: np.ndarray, first: pd.Timestamp, steps: int, config: BacktestConfig):
    if method not in _METHODS:
        raise ValueError(f"unknown cash-flow method {method!r}; known: {sorted(_METHODS)}")
    path, state = _METHODS[method](y, first, steps, config)
    path = np.asarray(path, dtype=float)
    if path.shape != (steps,) or not np.all(np.isfinite(path)):
        raise ValueError(f"{method} returned {path.shape} values, not {steps} finite ones")
    return path, state


def _run_method(method: str, y: np.ndarray, first: pd.Timestamp, steps: int, config: BacktestConfig):
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


def run_backtest(method: str, y: np.ndarray, first: pd.Timestamp, config: BacktestConfig,
                 origins: Sequence[int], truth: np.ndarray | None = None) -> Backtest:
    """`method` fitted on y[:o] at each origin o. The actuals (y[o:o+h]) and the MASE scale (the
    seasonal naive's in-sample MAE on y[:o]) come from `truth` when given (same length as y): a
    series with injected one-offs is then scored against the series without them."""
    t0 = time.perf_counter()
    h = config.horizon
    ref = y if truth is None else np.asarray(truth, dtype=float)
    if len(ref) != len(y):
        raise ValueError(f"truth has {len(ref)} days, the series {len(y)}")
    preds, actuals, scales = [], [], []
    for o in origins:
        train = y[:o]
        path, _ = _run_method(method, train, first, h, config)
        preds.append(path)
        actuals.append(ref[o:o + h])
        scales.append(float(np.mean(np.abs(ref[SEASON:o] - ref[:o - SEASON]))))
    return Backtest(method, np.asarray(origins), np.vstack(preds), np.vstack(actuals), np.asarray(scales),
                    time.perf_counter() - t0)


def _quantile_levels(level: float, m: int) -> tuple[float, float]:
    hi = min(1.0, (1 + level) / 2 * (1 + 1 / m))  # split-conformal finite-sample correction
    return 1.0 - hi, hi


def interval_offsets(resid: np.ndarray, steps: np.ndarray, level: float, horizon: int,
                     out_steps: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Offsets (lower <= 0 <= upper) to add to the point forecast at steps 1..out_steps.

    `resid` are errors (actual - forecast) at 1-based horizon `steps` (0: any step). Each step pools
    the errors of neighbouring steps until MIN_POOL are found; the quantiles are then made monotone
    (isotonic) so the interval never shrinks with the step, and grow as (step/horizon)**0.25 beyond
    the horizon."""
    from sklearn.isotonic import IsotonicRegression

    out_steps = out_steps or horizon
    resid = np.asarray(resid, dtype=float)
    steps = np.asarray(steps)
    k = np.arange(1, horizon + 1)
    lo = np.zeros(horizon)
    hi = np.zeros(horizon)
    anywhere = steps == 0
    for i, step in enumerate(k):
        width = 3
        while True:
            pool = resid[anywhere | (np.abs(steps - step) <= width)]
            if len(pool) >= MIN_POOL or width >= horizon:
                break
            width *= 2
        q_lo, q_hi = _quantile_levels(level, len(pool))
        lo[i], hi[i] = np.quantile(pool, [q_lo, q_hi])
    lo, hi = np.minimum(lo, 0.0), np.maximum(hi, 0.0)
    if horizon > 1:
        hi = IsotonicRegression(increasing=True).fit_transform(k, hi)
        lo = -IsotonicRegression(increasing=True).fit_transform(k, -lo)
    if out_steps > horizon:
        growth = (np.arange(horizon + 1, out_steps + 1) / horizon) ** 0.25
        lo = np.concatenate([lo, lo[-1] * growth])
        hi = np.concatenate([hi, hi[-1] * growth])
    return lo[:out_steps], hi[:out_steps]


def _seasonal_diffs(y: np.ndarray) -> np.ndarray:
    d = y[SEASON:] - y[:-SEASON]
    return d - np.mean(d)


def _calibration_set(resid: np.ndarray, steps: np.ndarray, distinct_days: int,
                     history: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The errors an interval is calibrated on: the backtest errors, plus the in-sample seasonal
    differences of `history` (at any step) when those errors cover fewer than CALIBRATION_DAYS days."""
    if distinct_days >= CALIBRATION_DAYS:
        return resid, steps
    extra = _seasonal_diffs(history)
    return np.concatenate([resid, extra]), np.concatenate([steps, np.zeros(len(extra), dtype=int)])


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
        resid, steps = _calibration_set(err[keep], step[keep], len(np.unique(day[keep])), y[:o])
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
        "rmse": float(np.sqrt((err ** 2).mean())),
        "total_error_30d": float(total_err.mean()),
        "total_error_30d_pct": float(100 * total_err.mean() / actual_total) if actual_total > 0 else float("nan"),
        "interval_coverage": float(((bt.actual >= lower) & (bt.actual <= upper)).mean()),
        "interval_width": float(width),
        "interval_width_rel": float(width / mean_abs) if mean_abs > 0 else float("nan"),
    }


# ---------------------------------------------------------------------------------------------------
# The fitted model


def _flatten_weekly(path: np.ndarray) -> np.ndarray:
    """Each value replaced by the mean of a full week of the path around it (no weekly pattern)."""
    n = len(path)
    if n < SEASON:
        return np.full(n, path.mean())
    csum = np.concatenate([[0.0], np.cumsum(path)])
    start = np.clip(np.arange(n) - SEASON // 2, 0, n - SEASON)
    return (csum[start + SEASON] - csum[start]) / SEASON


@dataclass
class CashflowModel:
    """A fitted daily net-flow forecaster (picklable; needs only numpy, pandas and scikit-learn)."""

    method: str
    as_of: pd.Timestamp  # the last observed day; forecasts start the day after
    path: np.ndarray  # point forecast for days 1..MAX_HORIZON
    state: Any  # the method's fitted state (last week, mean, ETS/ARIMA parameters, the regressor)
    residuals: np.ndarray  # backtest errors (actual - forecast) used for the intervals
    residual_steps: np.ndarray  # their 1-based horizon step (0: any step)
    level: float
    config: BacktestConfig
    recent: pd.Series  # the last (up to) 365 observed days
    volatility: float  # std of the last 90 days of daily net flow
    flat_path: np.ndarray = field(init=False, repr=False)
    _offsets: dict = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.flat_path = _flatten_weekly(self.path)
        self._offsets[round(self.level, 6)] = interval_offsets(
            self.residuals, self.residual_steps, self.level, self.config.horizon, MAX_HORIZON)

    def interval(self, level: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Offsets (lower, upper) to add to the point forecast at steps 1..MAX_HORIZON."""
        level = self.level if level is None else float(level)
        if not 0 < level < 1:
            raise ValueError(f"level must be in (0, 1), got {level}")
        key = round(level, 6)
        if key not in self._offsets:
            self._offsets[key] = interval_offsets(self.residuals, self.residual_steps, level,
                                                  self.config.horizon, MAX_HORIZON)
        return self._offsets[key]

    def forecast(self, horizon_days: int = 30, level: float | None = None,
                 include_seasonality: bool = True) -> pd.DataFrame:
        """Daily forecast for the `horizon_days` (1..365) days after `as_of`: date, predicted_amount,
        lower, upper (the `level` interval, default the training level). include_seasonality=False
        replaces every day by its week's mean (the weekly pattern flattened)."""
        if isinstance(horizon_days, bool) or int(horizon_days) != horizon_days or not 1 <= horizon_days <= MAX_HORIZON:
            raise ValueError(f"horizon_days must be an integer in 1..{MAX_HORIZON}, got {horizon_days!r}")
        h = int(horizon_days)
        point = (self.path if include_seasonality else self.flat_path)[:h].copy()
        lo, hi = self.interval(level)
        return pd.DataFrame({
            "date": pd.date_range(self.as_of + DAY, periods=h, freq="D"),
            "predicted_amount": point,
            "lower": point + lo[:h],
            "upper": point + hi[:h],
        })

    def summary(self, forecast_df: pd.DataFrame) -> dict[str, Any]:
        """total_predicted, trend (increasing/decreasing/stable: the change of the weekly-smoothed
        forecast over its span, compared with 10% of the volatility), volatility (std of the last 90
        days of actual daily net flow), as_of, and a few more figures."""
        values = forecast_df["predicted_amount"].to_numpy(dtype=float)
        n = len(values)
        smooth = np.convolve(values, np.ones(SEASON) / SEASON, mode="valid") if n >= 2 * SEASON else values
        slope = float(np.polyfit(np.arange(len(smooth)), smooth, 1)[0]) if len(smooth) >= 2 else 0.0
        change = slope * max(n - 1, 0)
        threshold = 0.1 * self.volatility
        trend = "stable"
        if change > threshold:
            trend = "increasing"
        elif change < -threshold:
            trend = "decreasing"
        return {
            "total_predicted": round(float(values.sum()), 2),
            "mean_daily": round(float(values.mean()), 2) if n else 0.0,
            "trend": trend,
            "slope_per_day": round(slope, 4),
            "volatility": round(float(self.volatility), 2),
            "as_of": self.as_of.date().isoformat(),
            "horizon_days": n,
            "method": self.method,
        }

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Serving entry point: one forecast per request row (columns horizon_days, default 30;
        optional include_seasonality and level). Rows: request (position), date, predicted_amount,
        lower, upper."""
        def get(row: pd.Series, name: str, default: Any) -> Any:
            value = row[name] if name in row.index else None
            return default if value is None or (not isinstance(value, str) and pd.isna(value)) else value

        parts = []
        for i in range(len(frame)):
            row = frame.iloc[i]
            out = self.forecast(int(get(row, "horizon_days", 30)), level=get(row, "level", None),
                                include_seasonality=bool(get(row, "include_seasonality", True)))
            out.insert(0, "request", i)
            parts.append(out)
        if not parts:
            return pd.DataFrame(columns=["request", "date", "predicted_amount", "lower", "upper"])
        return pd.concat(parts, ignore_index=True)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()  # keep only the training level's offsets
        key = round(self.level, 6)
        state["_offsets"] = {key: self._offsets[key]} if key in self._offsets else {}
        return state


# ---------------------------------------------------------------------------------------------------
# train / score


def _figure(series: pd.DataFrame, bt: Backtest, metrics: dict[str, float], baseline: str, baseline_mase: float,
            level: float):
    from matplotlib.figure import Figure

    dates = pd.DatetimeIndex(series["metric_date"])
    y = series["net_flow"].to_numpy()
    h = bt.pred.shape[1]
    start = max(0, int(bt.origins[0]) - 3 * h)
    fig = Figure(figsize=(11, 4.5), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(dates[start:], y[start:], color="0.35", lw=0.8, label="actual daily net flow")
    for i, o in enumerate(bt.origins):
        d = dates[o:o + h]
        last = i == len(bt.origins) - 1
        ax.plot(d, bt.pred[i], color="tab:blue", lw=1.6 if last else 0.9, alpha=1.0 if last else 0.45,
                label="forecast (last origin)" if last else ("forecasts (earlier evaluation origins)" if i == 0 else None))
        ax.fill_between(d, bt.lower[i], bt.upper[i], color="tab:blue", alpha=0.2 if last else 0.06,
                        label=f"{level:.0%} interval" if last else None)
        ax.axvline(dates[o], color="tab:blue", lw=0.5, alpha=0.3)
    ax.axhline(0, color="0.6", lw=0.5)
    ax.set_title(f"{bt.method}: MASE {metrics['mase']:.3f} on {len(bt.origins)} evaluation origins (best baseline "
                 f"{baseline} {baseline_mase:.3f}), coverage {metrics['interval_coverage']:.0%} at {level:.0%}",
                 fontsize=10)
    ax.set_ylabel("net flow per day")
    ax.legend(loc="upper left", fontsize=8)
    return fig


def _fitted_model(method: str, y: np.ndarray, dates: pd.DatetimeIndex, config: BacktestConfig,
                  bt: Backtest) -> tuple[CashflowModel, float]:
    """`method` refitted on the whole series, its intervals from the errors of its backtest `bt` (the
    evaluation origins): the chosen model and every baseline model are built here, the same way."""
    t0 = time.perf_counter()
    path, state = _run_method(method, y, dates[0], MAX_HORIZON, config)
    seconds = time.perf_counter() - t0
    h = config.horizon
    days = (bt.origins[:, None] + np.arange(h)[None, :]).ravel()
    err, steps = _calibration_set((bt.actual - bt.pred).ravel(),
                                  np.broadcast_to(np.arange(1, h + 1), bt.pred.shape).ravel(),
                                  len(np.unique(days)), y)
    model = CashflowModel(
        method=method, as_of=dates[-1], path=path, state=state, residuals=err.copy(),
        residual_steps=np.asarray(steps, dtype=int).copy(), level=config.level, config=config,
        recent=pd.Series(y[-365:], index=dates[-365:], name="net_flow"),
        volatility=float(np.std(y[-90:], ddof=1)))
    return model, seconds


def _mase_only(bt: Backtest) -> float:
    """Mean MASE over a backtest's origins (no intervals): the selection score."""
    with np.errstate(divide="ignore", invalid="ignore"):
        mase_o = np.abs(bt.actual - bt.pred).mean(axis=1) / bt.scale
    mase_o = mase_o[np.isfinite(mase_o)]
    return float(mase_o.mean()) if len(mase_o) else float("nan")


class _Backtests:
    """Memoised backtests of one series on one set of origins; `combo` averages its parts' forecasts
    origin by origin (what _combo computes), so the parts are fitted once."""

    def __init__(self, y: np.ndarray, first: pd.Timestamp, config: BacktestConfig, origins: Sequence[int]):
        self.y, self.first, self.config, self.origins = y, first, config, list(origins)
        self.done: dict[str, Backtest] = {}
        self.failed: dict[str, str] = {}

    def get(self, method: str) -> Backtest:
        if method in self.failed:
            raise ValueError(self.failed[method])
        if method not in self.done:
            try:
                if method == "combo":
                    parts = [self.get(p) for p in COMBO_PARTS]
                    pred = np.vstack([_combine([b.pred[i] for b in parts]) for i in range(len(self.origins))])
                    self.done[method] = Backtest(method, parts[0].origins, pred, parts[0].actual, parts[0].scale,
                                                 0.0)  # the time is in its parts' backtests
                else:
                    self.done[method] = run_backtest(method, self.y, self.first, self.config, self.origins)
            except Exception as exc:
                self.failed[method] = f"{type(exc).__name__}: {exc}"
                raise
        return self.done[method]


def train(data: pd.DataFrame, *, horizon: int = 30, level: float = 0.9, n_origins: int = 12,
          origin_step: int | None = None, candidates: Sequence[str] = CANDIDATES,
          gbm_loss: str = "squared_error", robust: str = ROBUST, make_figures: bool = True) -> TrainResult:
    """Choose the method on the earlier backtest origins, score it and the baselines on the later
    ones, refit it and every baseline on the whole series (see the module docstring)."""
    t_start = time.perf_counter()
    if not 1 <= horizon <= MAX_HORIZON:
        raise ValueError(f"horizon must be in 1..{MAX_HORIZON}, got {horizon}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if robust not in (*ROBUST_MODES, "auto"):
        raise ValueError(f"unknown robust mode {robust!r}; known: {(*ROBUST_MODES, 'auto')}")
    candidates = tuple(dict.fromkeys(candidates))
    unknown = [c for c in candidates if c not in _METHODS]
    if unknown or not candidates:
        raise ValueError(f"unknown or no candidates {unknown or list(candidates)}; known: {sorted(_METHODS)}")
    series, notes = daily_series(data)
    modes = AUTO_MODES if robust == "auto" else (robust,)
    configs = {m: BacktestConfig(horizon=horizon, level=level, n_origins=n_origins, origin_step=origin_step,
                                 gbm_loss=gbm_loss, robust=m) for m in modes}
    config = configs[modes[0]]
    y = series["net_flow"].to_numpy(dtype=float)
    dates = pd.DatetimeIndex(series["metric_date"])
    first = dates[0]
    plan = origin_plan(len(y), config)
    n_sel, n_ev = len(plan.selection), len(plan.evaluation)
    if n_sel + n_ev < n_origins:
        notes.append(f"{len(y)} days allow {n_sel} selection and {n_ev} evaluation origin(s) (asked "
                     f"{n_origins} in all), spaced by {plan.step} days: metrics and coverage are rough")
    model_candidates = [c for c in candidates if c not in BASELINES]
    if not model_candidates:
        model_candidates = list(candidates)
        notes.append(f"only baselines were given as candidates ({', '.join(candidates)}): the model is one of "
                     "them and cannot beat the baselines")
    selects = {m: _Backtests(y, first, configs[m], plan.selection) for m in modes}
    evaluations = {m: _Backtests(y, first, configs[m], plan.evaluation) for m in modes}

    def key(name: str, mode: str) -> str:  # metric name of a (candidate, robust mode) on the selection origins
        return name if mode == modes[0] else f"{name}_{mode}"

    # 1. choose on the selection origins only (the method and, with robust="auto", the robust mode)
    select_mase: dict[str, float] = {}
    if plan.nested:
        for j, mode in enumerate(modes):
            for name in dict.fromkeys([*model_candidates, *BASELINES]):
                if j and name in BASELINES:
                    continue  # the baselines ignore the robust mode
                try:
                    select_mase[key(name, mode)] = _mase_only(selects[mode].get(name))
                except Exception:
                    if name in model_candidates:
                        notes.append(f"candidate {key(name, mode)} skipped: {selects[mode].failed[name]}")
        ranked = [(c, m) for _, _, _, c, m in sorted(
            (select_mase[key(c, m)], i, j, c, m) for j, m in enumerate(modes) for i, c in enumerate(model_candidates)
            if np.isfinite(select_mase.get(key(c, m), np.nan)))]
        if not ranked:
            ranked = [(b, modes[0]) for _, _, b in sorted((select_mase[b], i, b) for i, b in enumerate(BASELINES)
                                                          if np.isfinite(select_mase.get(b, np.nan)))]
            if ranked:
                notes.append("no model candidate could be backtested: the model is the best baseline on the "
                             "selection origins, so it cannot beat the baselines")
    else:
        ranked = [(c, modes[0]) for c in model_candidates] + [(b, modes[0]) for b in BASELINES
                                                              if b not in model_candidates]
        why = (f"n_origins={n_origins} leaves no selection origin" if n_origins < 2 else
               f"{len(y)} days are too few to nest the backtest (a selection origin needs "
               f"{2 * horizon + MIN_TRAIN_DAYS}+ days)")
        notes.append(f"{why}: the method is the first of the candidates, in the order given, that runs "
                     f"({', '.join(c for c, _ in ranked)}), chosen a priori and not on its score"
                     + (f" (robust mode {modes[0]})" if len(modes) > 1 else ""))
    if not ranked:
        raise TrainingDataError("no cash-flow candidate could be backtested on this series: " + "; ".join(notes))

    # 2. score the chosen method on the evaluation origins, refit it on the whole series
    for chosen, mode in ranked:
        evaluation, config = evaluations[mode], configs[mode]
        try:
            bt = evaluation.get(chosen)
            model, refit_seconds = _fitted_model(chosen, y, dates, config, bt)
            break
        except Exception as exc:
            where = "on the evaluation origins" if chosen in evaluation.failed else "in the refit on the full series"
            notes.append(f"candidate {key(chosen, mode)} skipped {where}: {type(exc).__name__}: {exc}; next in line")
    else:
        raise TrainingDataError("no cash-flow candidate could be scored and refitted on this series: "
                                + "; ".join(notes))
    metrics = evaluate(bt, y, level)

    # 3. the baselines on the same evaluation origins, each refitted and servable like the model
    baselines: dict[str, dict[str, float]] = {}
    baseline_models: dict[str, CashflowModel] = {}
    for b in BASELINES:
        b_bt = evaluation.get(b)
        baselines[b] = evaluate(b_bt, y, level)
        baseline_models[b], _ = _fitted_model(b, y, dates, config, b_bt)

    for name, value in select_mase.items():
        metrics[f"select_{name}_mase"] = value
    best_b, best_b_mase = min(((b, m[PRIMARY_METRIC]) for b, m in baselines.items()), key=lambda kv: kv[1])
    covered = len(np.unique((bt.origins[:, None] + np.arange(horizon)[None, :]).ravel()))
    if covered < CALIBRATION_DAYS:
        notes.append(f"the evaluation origins cover only {covered} distinct days (< {CALIBRATION_DAYS}): the "
                     "intervals also use the in-sample seasonal differences, so they are wide (conservative)")
    if len(y) < 180:
        notes.append(f"only {len(y)} days of history: seasonality beyond the week and any trend are barely "
                     "identifiable")
    if not metrics[PRIMARY_METRIC] < best_b_mase:
        notes.append(f"the chosen model ({chosen}, MASE {metrics[PRIMARY_METRIC]:.3f} on the evaluation origins) "
                     f"does not beat the best baseline {best_b} ({best_b_mase:.3f})")
    sel_dates = [dates[o].date().isoformat() for o in plan.selection]
    ev_dates = [dates[o].date().isoformat() for o in plan.evaluation]
    selection_rule = (f"lowest mean MASE on the {n_sel} selection origins; metrics and baselines on the {n_ev} "
                      "later evaluation origins" if plan.nested else
                      f"not nested ({len(y)} days): first runnable candidate, scored on {n_ev} origin(s)")
    params = {
        "method": chosen, "horizon": horizon, "level": level, "n_origins": n_origins,
        "n_selection_origins": n_sel, "n_evaluation_origins": n_ev, "nested": plan.nested,
        "selection": selection_rule, "origin_step": plan.step, "candidates": ",".join(model_candidates),
        "baselines": ",".join(BASELINES), "combo_parts": ",".join(COMBO_PARTS), "gbm_loss": gbm_loss,
        "robust": robust, "robust_mode": mode, "min_days": MIN_DAYS, "interval_method": "evaluation-origin error quantiles (split conformal, isotonic in step)",
        "refit_seconds": round(refit_seconds, 3),
        **{f"select_{key(n, m)}_seconds": round(b.seconds, 3) for m in modes for n, b in selects[m].done.items()},
        **{f"eval_{key(n, m)}_seconds": round(b.seconds, 3) for m in modes for n, b in evaluations[m].done.items()},
    }
    data_window = {
        "series_start": dates[0].date().isoformat(), "series_end": dates[-1].date().isoformat(),
        "days": len(y), "n_origins": n_sel + n_ev, "n_selection_origins": n_sel, "n_evaluation_origins": n_ev,
        "horizon": horizon, "origin_step": plan.step,
        "selection_origins": ",".join(sel_dates), "evaluation_origins": ",".join(ev_dates),
        "selection_test_end": (dates[plan.selection[-1] + horizon - 1].date().isoformat() if plan.nested else None),
        "train_start": dates[0].date().isoformat(), "train_end": dates[-1].date().isoformat(),
        "test_start": ev_dates[0], "test_end": dates[-1].date().isoformat(),
        "train_rows": len(y), "test_rows": int(bt.actual.size),
    }
    figures = {}
    if make_figures:
        figures["backtest_forecast.png"] = _figure(series, bt, metrics, best_b, best_b_mase, level)
    params["train_seconds"] = round(time.perf_counter() - t_start, 3)
    return TrainResult(model=model, metrics=metrics, baselines=baselines, params=params,
                       data_window=data_window, holdout=series, figures=figures, notes=notes,
                       baseline_models=baseline_models)


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
