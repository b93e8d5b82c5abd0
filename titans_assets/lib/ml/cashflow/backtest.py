"""The nested rolling-origin backtest: where the series is cut (`origin_plan`), one method's
forecasts at every origin (`run_backtest`) and the memoised backtests train() chooses from."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from titans_assets.lib.ml.cashflow.config import COMBO_PARTS, MIN_TRAIN_DAYS, SEASON, BacktestConfig
from titans_assets.lib.ml.cashflow.methods import combine, run_method
from titans_assets.lib.ml.common import TrainingDataError


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
        raise TrainingDataError(
            f"a {horizon}-day backtest needs at least {horizon + MIN_TRAIN_DAYS} days, got {n_days}"
        )
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


def run_backtest(
    method: str,
    y: np.ndarray,
    first: pd.Timestamp,
    config: BacktestConfig,
    origins: Sequence[int],
    truth: np.ndarray | None = None,
) -> Backtest:
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
        path, _ = run_method(method, train, first, h, config)
        preds.append(path)
        actuals.append(ref[o : o + h])
        scales.append(float(np.mean(np.abs(ref[SEASON:o] - ref[: o - SEASON]))))
    return Backtest(
        method,
        np.asarray(origins),
        np.vstack(preds),
        np.vstack(actuals),
        np.asarray(scales),
        time.perf_counter() - t0,
    )


def mase_only(bt: Backtest) -> float:
    """Mean MASE over a backtest's origins (no intervals): the selection score."""
    with np.errstate(divide="ignore", invalid="ignore"):
        mase_o = np.abs(bt.actual - bt.pred).mean(axis=1) / bt.scale
    mase_o = mase_o[np.isfinite(mase_o)]
    return float(mase_o.mean()) if len(mase_o) else float("nan")


class Backtests:
    """Memoised backtests of one series on one set of origins; `combo` averages its parts' forecasts
    origin by origin (as the combo method does), so the parts are fitted once."""

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
                    pred = np.vstack([combine([b.pred[i] for b in parts]) for i in range(len(self.origins))])
                    self.done[method] = Backtest(
                        method, parts[0].origins, pred, parts[0].actual, parts[0].scale, 0.0
                    )  # the time is in its parts' backtests
                else:
                    self.done[method] = run_backtest(method, self.y, self.first, self.config, self.origins)
            except Exception as exc:
                self.failed[method] = f"{type(exc).__name__}: {exc}"
                raise
        return self.done[method]
