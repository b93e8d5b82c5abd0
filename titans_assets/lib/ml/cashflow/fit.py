"""Training: `train` chooses the forecasting method (and, with robust="auto", the robust mode) on
the earlier backtest origins, scores it and the baselines on the later ones, and refits each on the
whole series. Design notes and their measurements: docs/model-design.md ("Cash flow")."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from titans_assets.lib.ml.cashflow.backtest import Backtest, Backtests, OriginPlan, mase_only, origin_plan
from titans_assets.lib.ml.cashflow.config import (
    AUTO_MODES,
    BASELINES,
    CALIBRATION_DAYS,
    CANDIDATES,
    COMBO_PARTS,
    MAX_HORIZON,
    MIN_DAYS,
    MIN_TRAIN_DAYS,
    PRIMARY_METRIC,
    ROBUST,
    ROBUST_MODES,
    BacktestConfig,
)
from titans_assets.lib.ml.cashflow.figure import backtest_figure
from titans_assets.lib.ml.cashflow.intervals import calibration_set
from titans_assets.lib.ml.cashflow.methods import METHODS, run_method
from titans_assets.lib.ml.cashflow.model import CashflowModel
from titans_assets.lib.ml.cashflow.score import evaluate
from titans_assets.lib.ml.cashflow.series import daily_series
from titans_assets.lib.ml.common import TrainingDataError, TrainResult


def _fitted_model(
    method: str, y: np.ndarray, dates: pd.DatetimeIndex, config: BacktestConfig, bt: Backtest
) -> tuple[CashflowModel, float]:
    """`method` refitted on the whole series, its intervals from the errors of its backtest `bt` (the
    evaluation origins): the chosen model and every baseline model are built here, the same way."""
    t0 = time.perf_counter()
    path, state = run_method(method, y, dates[0], MAX_HORIZON, config)
    seconds = time.perf_counter() - t0
    h = config.horizon
    days = (bt.origins[:, None] + np.arange(h)[None, :]).ravel()
    err, steps = calibration_set(
        (bt.actual - bt.pred).ravel(),
        np.broadcast_to(np.arange(1, h + 1), bt.pred.shape).ravel(),
        len(np.unique(days)),
        y,
    )
    model = CashflowModel(
        method=method,
        as_of=dates[-1],
        path=path,
        state=state,
        residuals=err.copy(),
        residual_steps=np.asarray(steps, dtype=int).copy(),
        level=config.level,
        config=config,
        recent=pd.Series(y[-365:], index=dates[-365:], name="net_flow"),
        volatility=float(np.std(y[-90:], ddof=1)),
    )
    return model, seconds


@dataclass
class _Training:
    """One training's series, its backtest plan and settings (one config per robust mode tried), the
    memoised backtests on the selection and evaluation origins, and the notes so far."""

    series: pd.DataFrame
    y: np.ndarray
    dates: pd.DatetimeIndex
    horizon: int
    level: float
    n_origins: int
    modes: tuple[str, ...]
    configs: dict[str, BacktestConfig]
    plan: OriginPlan
    candidates: list[str]  # the model's candidates (the baselines given, when nothing else was)
    selects: dict[str, Backtests]
    evaluations: dict[str, Backtests]
    notes: list[str]

    def key(self, name: str, mode: str) -> str:
        """The metric name of a (candidate, robust mode) on the selection origins."""
        return name if mode == self.modes[0] else f"{name}_{mode}"


@dataclass
class _Choice:
    """The method that was scored on the evaluation origins and refitted on the whole series."""

    method: str
    mode: str  # its robust mode
    bt: Backtest  # its backtest on the evaluation origins
    model: CashflowModel
    refit_seconds: float


def train(
    data: pd.DataFrame,
    *,
    horizon: int = 30,
    level: float = 0.9,
    n_origins: int = 12,
    origin_step: int | None = None,
    candidates: Sequence[str] = CANDIDATES,
    gbm_loss: str = "squared_error",
    robust: str = ROBUST,
    make_figures: bool = True,
) -> TrainResult:
    """Choose the method on the earlier backtest origins, score it and the baselines on the later
    ones, refit it and every baseline on the whole series (see the module docstring)."""
    t_start = time.perf_counter()
    candidates = _checked_candidates(horizon, level, robust, candidates)
    run = _prepare(data, horizon, level, n_origins, origin_step, candidates, gbm_loss, robust)
    select_mase, ranked = _choose(run)
    choice = _score_and_refit(run, ranked)
    metrics = evaluate(choice.bt, run.y, level)
    baselines, baseline_models = _fit_baselines(run, choice.mode)
    for name, value in select_mase.items():
        metrics[f"select_{name}_mase"] = value
    best_b, best_b_mase = min(((b, m[PRIMARY_METRIC]) for b, m in baselines.items()), key=lambda kv: kv[1])
    _add_caveats(run, choice, metrics[PRIMARY_METRIC], best_b, best_b_mase)
    params = _params(run, choice, gbm_loss, robust)
    data_window = _data_window(run, choice.bt)
    figures = {}
    if make_figures:
        figures["backtest_forecast.png"] = backtest_figure(
            run.series, choice.bt, metrics, best_b, best_b_mase, level
        )
    params["train_seconds"] = round(time.perf_counter() - t_start, 3)
    return TrainResult(
        model=choice.model,
        metrics=metrics,
        baselines=baselines,
        params=params,
        data_window=data_window,
        holdout=run.series,
        figures=figures,
        notes=run.notes,
        baseline_models=baseline_models,
    )


def _checked_candidates(
    horizon: int, level: float, robust: str, candidates: Sequence[str]
) -> tuple[str, ...]:
    """The candidates without repeats, after checking train()'s arguments (ValueError if one is off)."""
    if not 1 <= horizon <= MAX_HORIZON:
        raise ValueError(f"horizon must be in 1..{MAX_HORIZON}, got {horizon}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if robust not in (*ROBUST_MODES, "auto"):
        raise ValueError(f"unknown robust mode {robust!r}; known: {(*ROBUST_MODES, 'auto')}")
    candidates = tuple(dict.fromkeys(candidates))
    unknown = [c for c in candidates if c not in METHODS]
    if unknown or not candidates:
        raise ValueError(f"unknown or no candidates {unknown or list(candidates)}; known: {sorted(METHODS)}")
    return candidates


def _prepare(
    data: pd.DataFrame,
    horizon: int,
    level: float,
    n_origins: int,
    origin_step: int | None,
    candidates: tuple[str, ...],
    gbm_loss: str,
    robust: str,
) -> _Training:
    """The validated series, the backtest origins and one config per robust mode to try."""
    series, notes = daily_series(data)
    modes = AUTO_MODES if robust == "auto" else (robust,)
    configs = {
        m: BacktestConfig(
            horizon=horizon,
            level=level,
            n_origins=n_origins,
            origin_step=origin_step,
            gbm_loss=gbm_loss,
            robust=m,
        )
        for m in modes
    }
    y = series["net_flow"].to_numpy(dtype=float)
    dates = pd.DatetimeIndex(series["metric_date"])
    first = dates[0]
    plan = origin_plan(len(y), configs[modes[0]])
    n_sel, n_ev = len(plan.selection), len(plan.evaluation)
    if n_sel + n_ev < n_origins:
        notes.append(
            f"{len(y)} days allow {n_sel} selection and {n_ev} evaluation origin(s) (asked "
            f"{n_origins} in all), spaced by {plan.step} days: metrics and coverage are rough"
        )
    model_candidates = [c for c in candidates if c not in BASELINES]
    if not model_candidates:
        model_candidates = list(candidates)
        notes.append(
            f"only baselines were given as candidates ({', '.join(candidates)}): the model is one of "
            "them and cannot beat the baselines"
        )
    return _Training(
        series=series,
        y=y,
        dates=dates,
        horizon=horizon,
        level=level,
        n_origins=n_origins,
        modes=modes,
        configs=configs,
        plan=plan,
        candidates=model_candidates,
        selects={m: Backtests(y, first, configs[m], plan.selection) for m in modes},
        evaluations={m: Backtests(y, first, configs[m], plan.evaluation) for m in modes},
        notes=notes,
    )


def _choose(run: _Training) -> tuple[dict[str, float], list[tuple[str, str]]]:
    """Step 1, on the selection origins only: the selection MASE of every (candidate, robust mode)
    and the (candidate, mode) pairs in the order they are to be tried."""
    if run.plan.nested:
        select_mase, ranked = _rank_on_selection(run)
    else:
        select_mase, ranked = {}, _rank_a_priori(run)
    if not ranked:
        raise TrainingDataError(
            "no cash-flow candidate could be backtested on this series: " + "; ".join(run.notes)
        )
    return select_mase, ranked


def _rank_on_selection(run: _Training) -> tuple[dict[str, float], list[tuple[str, str]]]:
    """Candidates (and robust modes) by their mean MASE on the selection origins; the baselines
    when no candidate could be backtested."""
    modes, candidates = run.modes, run.candidates
    select_mase: dict[str, float] = {}
    for j, mode in enumerate(modes):
        for name in dict.fromkeys([*candidates, *BASELINES]):
            if j and name in BASELINES:
                continue  # the baselines ignore the robust mode
            try:
                select_mase[run.key(name, mode)] = mase_only(run.selects[mode].get(name))
            except Exception:
                if name in candidates:
                    run.notes.append(
                        f"candidate {run.key(name, mode)} skipped: {run.selects[mode].failed[name]}"
                    )
    ranked = [
        (c, m)
        for _, _, _, c, m in sorted(
            (select_mase[run.key(c, m)], i, j, c, m)
            for j, m in enumerate(modes)
            for i, c in enumerate(candidates)
            if np.isfinite(select_mase.get(run.key(c, m), np.nan))
        )
    ]
    if not ranked:
        ranked = [
            (b, modes[0])
            for _, _, b in sorted(
                (select_mase[b], i, b)
                for i, b in enumerate(BASELINES)
                if np.isfinite(select_mase.get(b, np.nan))
            )
        ]
        if ranked:
            run.notes.append(
                "no model candidate could be backtested: the model is the best baseline on the "
                "selection origins, so it cannot beat the baselines"
            )
    return select_mase, ranked


def _rank_a_priori(run: _Training) -> list[tuple[str, str]]:
    """Too few days (or origins) to choose on a score: the candidates in the order given, then the
    baselines, all in the first robust mode."""
    mode = run.modes[0]
    ranked = [(c, mode) for c in run.candidates] + [(b, mode) for b in BASELINES if b not in run.candidates]
    why = (
        f"n_origins={run.n_origins} leaves no selection origin"
        if run.n_origins < 2
        else f"{len(run.y)} days are too few to nest the backtest (a selection origin needs "
        f"{2 * run.horizon + MIN_TRAIN_DAYS}+ days)"
    )
    run.notes.append(
        f"{why}: the method is the first of the candidates, in the order given, that runs "
        f"({', '.join(c for c, _ in ranked)}), chosen a priori and not on its score"
        + (f" (robust mode {mode})" if len(run.modes) > 1 else "")
    )
    return ranked


def _score_and_refit(run: _Training, ranked: list[tuple[str, str]]) -> _Choice:
    """Step 2: the first of `ranked` that can be backtested on the evaluation origins and refitted
    on the whole series."""
    for chosen, mode in ranked:
        evaluation, config = run.evaluations[mode], run.configs[mode]
        try:
            bt = evaluation.get(chosen)
            model, refit_seconds = _fitted_model(chosen, run.y, run.dates, config, bt)
        except Exception as exc:
            where = (
                "on the evaluation origins"
                if chosen in evaluation.failed
                else "in the refit on the full series"
            )
            run.notes.append(
                f"candidate {run.key(chosen, mode)} skipped {where}: {type(exc).__name__}: {exc}; next in line"
            )
        else:
            return _Choice(chosen, mode, bt, model, refit_seconds)
    raise TrainingDataError(
        "no cash-flow candidate could be scored and refitted on this series: " + "; ".join(run.notes)
    )


def _fit_baselines(run: _Training, mode: str) -> tuple[dict[str, dict[str, float]], dict[str, CashflowModel]]:
    """Step 3: the baselines on the chosen method's evaluation origins, each refitted and servable
    like the model: (metrics by baseline, model by baseline)."""
    evaluation, config = run.evaluations[mode], run.configs[mode]
    baselines: dict[str, dict[str, float]] = {}
    baseline_models: dict[str, CashflowModel] = {}
    for b in BASELINES:
        b_bt = evaluation.get(b)
        baselines[b] = evaluate(b_bt, run.y, run.level)
        baseline_models[b], _ = _fitted_model(b, run.y, run.dates, config, b_bt)
    return baselines, baseline_models


def _add_caveats(run: _Training, choice: _Choice, mase: float, best_b: str, best_b_mase: float) -> None:
    """Notes on what makes the result rough: few distinct evaluation days, a short history, a model
    that does not beat the best baseline."""
    bt, y = choice.bt, run.y
    covered = len(np.unique((bt.origins[:, None] + np.arange(run.horizon)[None, :]).ravel()))
    if covered < CALIBRATION_DAYS:
        run.notes.append(
            f"the evaluation origins cover only {covered} distinct days (< {CALIBRATION_DAYS}): the "
            "intervals also use the in-sample seasonal differences, so they are wide (conservative)"
        )
    if len(y) < 180:
        run.notes.append(
            f"only {len(y)} days of history: seasonality beyond the week and any trend are barely "
            "identifiable"
        )
    if not mase < best_b_mase:
        run.notes.append(
            f"the chosen model ({choice.method}, MASE {mase:.3f} on the evaluation origins) "
            f"does not beat the best baseline {best_b} ({best_b_mase:.3f})"
        )


def _params(run: _Training, choice: _Choice, gbm_loss: str, robust: str) -> dict[str, Any]:
    """The training's MLflow params: the choices made and the seconds each backtest took."""
    plan, modes, key = run.plan, run.modes, run.key
    n_sel, n_ev = len(plan.selection), len(plan.evaluation)
    selection_rule = (
        f"lowest mean MASE on the {n_sel} selection origins; metrics and baselines on the {n_ev} "
        "later evaluation origins"
        if plan.nested
        else f"not nested ({len(run.y)} days): first runnable candidate, scored on {n_ev} origin(s)"
    )
    return {
        "method": choice.method,
        "horizon": run.horizon,
        "level": run.level,
        "n_origins": run.n_origins,
        "n_selection_origins": n_sel,
        "n_evaluation_origins": n_ev,
        "nested": plan.nested,
        "selection": selection_rule,
        "origin_step": plan.step,
        "candidates": ",".join(run.candidates),
        "baselines": ",".join(BASELINES),
        "combo_parts": ",".join(COMBO_PARTS),
        "gbm_loss": gbm_loss,
        "robust": robust,
        "robust_mode": choice.mode,
        "min_days": MIN_DAYS,
        "interval_method": "evaluation-origin error quantiles (split conformal, isotonic in step)",
        "refit_seconds": round(choice.refit_seconds, 3),
        **{
            f"select_{key(n, m)}_seconds": round(b.seconds, 3)
            for m in modes
            for n, b in run.selects[m].done.items()
        },
        **{
            f"eval_{key(n, m)}_seconds": round(b.seconds, 3)
            for m in modes
            for n, b in run.evaluations[m].done.items()
        },
    }


def _data_window(run: _Training, bt: Backtest) -> dict[str, Any]:
    """The series' span and where the backtest cut it (logged with the run)."""
    plan, dates, y, horizon = run.plan, run.dates, run.y, run.horizon
    n_sel, n_ev = len(plan.selection), len(plan.evaluation)
    sel_dates = [dates[o].date().isoformat() for o in plan.selection]
    ev_dates = [dates[o].date().isoformat() for o in plan.evaluation]
    return {
        "series_start": dates[0].date().isoformat(),
        "series_end": dates[-1].date().isoformat(),
        "days": len(y),
        "n_origins": n_sel + n_ev,
        "n_selection_origins": n_sel,
        "n_evaluation_origins": n_ev,
        "horizon": horizon,
        "origin_step": plan.step,
        "selection_origins": ",".join(sel_dates),
        "evaluation_origins": ",".join(ev_dates),
        "selection_test_end": (
            dates[plan.selection[-1] + horizon - 1].date().isoformat() if plan.nested else None
        ),
        "train_start": dates[0].date().isoformat(),
        "train_end": dates[-1].date().isoformat(),
        "test_start": ev_dates[0],
        "test_end": dates[-1].date().isoformat(),
        "train_rows": len(y),
        "test_rows": int(bt.actual.size),
    }
