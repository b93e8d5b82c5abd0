"""Training the anomaly model: periods by date, the threshold on a validation period (on labels or
injected anomalies), the model on the whole training period, its metrics and the baselines' on the
test period, and the merchants whose flags the user marked expected."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from titans_assets.lib.ml.anomaly import evidence
from titans_assets.lib.ml.anomaly.baselines import BASELINES, RobustBaseline
from titans_assets.lib.ml.anomaly.canon import _canon, _col
from titans_assets.lib.ml.anomaly.constants import _REASON_LEVEL, COMPONENTS, DEFAULT_WEIGHTS, INJECTED_KINDS
from titans_assets.lib.ml.anomaly.estimate import _fit
from titans_assets.lib.ml.anomaly.figures import _figure
from titans_assets.lib.ml.anomaly.inject import inject_anomalies
from titans_assets.lib.ml.anomaly.model import AnomalyModel
from titans_assets.lib.ml.anomaly.score import _ranking_metrics, _threshold_metrics, score
from titans_assets.lib.ml.anomaly.stats import _nan_to_num
from titans_assets.lib.ml.common import TrainingDataError, TrainResult, time_split, window_of
from titans_assets.lib.ml.features import Vocabulary


def choose_threshold(scores: np.ndarray, labels: np.ndarray, precision_target: float | None = None) -> float:
    """The score cut (flag = score >= cut) with the best F1 on labelled rows, or the lowest cut whose
    precision reaches `precision_target` (the most recall at that precision; best F1 when no cut
    reaches it)."""
    scores = np.asarray(scores, dtype=float)
    labels = np.asarray(labels, dtype=bool)
    if not labels.any():
        raise TrainingDataError("no anomalies in the validation rows: cannot choose a threshold")
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    tp = np.cumsum(y)
    fp = np.cumsum(~y)
    last = np.r_[s[1:] != s[:-1], True]  # cut after the last row of each tied score
    tp, fp, cut = tp[last], fp[last], s[last]
    precision = tp / (tp + fp)
    recall = tp / y.sum()
    f1 = np.where(tp > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)
    ok = np.flatnonzero(precision >= precision_target) if precision_target is not None else np.zeros(0, int)
    i = int(ok[-1]) if len(ok) else int(np.argmax(f1))
    # halfway down to the next lower score: the same rows are flagged, with a margin either side
    lower = cut[i + 1] if i + 1 < len(cut) else 0.0
    return float(max((cut[i] + lower) / 2.0, 1e-6))


def _baseline_models(
    fit_history: pd.DataFrame,
    train_history: pd.DataFrame,
    vocabulary: Vocabulary,
    val_draws: list[tuple[pd.DataFrame, np.ndarray]],
    precision_target: float | None,
) -> dict[str, RobustBaseline]:
    """Each baseline's threshold from the validation period (its pooled draws) scored on the history
    before it (as the model's), then its statistics from the whole training period."""
    out = {}
    val_y = np.concatenate([y for _, y in val_draws])
    for name in BASELINES:
        early = RobustBaseline(name, vocabulary, fit_history)
        model = RobustBaseline(name, vocabulary, train_history)
        scores = np.concatenate([early._scores(c)[0] for c, _ in val_draws])
        model.threshold = choose_threshold(scores, val_y, precision_target)
        out[name] = model
    return out


def _as_labels(labels, frame: pd.DataFrame) -> np.ndarray | None:
    """Labels as a boolean array in frame's row order (a Series is aligned on the index first)."""
    if labels is None:
        return None
    if (
        isinstance(labels, pd.Series)
        and not labels.index.equals(frame.index)
        and frame.index.is_unique
        and labels.index.is_unique
        and frame.index.isin(labels.index).all()
    ):
        labels = labels.reindex(frame.index)
    arr = pd.Series(np.asarray(labels, dtype=object)).fillna(False).to_numpy(dtype=bool)
    if len(arr) != len(frame):
        raise ValueError(f"labels have {len(arr)} values for {len(frame)} rows")
    return arr


EXPECTED_AFTER = 3  # marks "expected" of one merchant's flags for one reason that switch the reason off


def expected_suppressions(
    model: AnomalyModel, c: pd.DataFrame, expected: np.ndarray, after: int = EXPECTED_AFTER
) -> dict[str, tuple[str, ...]]:
    """Merchant key -> the components to switch off for it: those that flagged (reached the reporting
    level on) at least `after` of the merchant's rows the user marked as expected. `c`: canonical rows
    (in-frame context computed over all of them), `expected`: booleans aligned with `c`."""
    rows = np.flatnonzero(expected)
    if len(rows) == 0 or after < 1:
        return {}
    comp = model._components(c)
    mkeys = np.asarray(_col(c, "mkey"), dtype=object)[rows]
    counts: dict[tuple[str, str], int] = {}
    for name in COMPONENTS:
        shown = (
            model.weights.get(name, 0.0) * _nan_to_num(np.asarray(comp[f"p_{name}"])[rows]) >= _REASON_LEVEL
        )
        for m in mkeys[shown]:
            if m is not None:
                counts[(m, name)] = counts.get((m, name), 0) + 1
    out: dict[str, list[str]] = {}
    for (m, name), k in counts.items():
        if k >= after:
            out.setdefault(m, []).append(name)
    return {m: tuple(n for n in COMPONENTS if n in names) for m, names in sorted(out.items())}


def train(data: pd.DataFrame, labels=None, expected=None, **params) -> TrainResult:
    """Fit the anomaly model on the past, choose its threshold on a validation period and measure it on
    the most recent period.

    data: transactions with the warehouse columns (txn_date, amount and, when available, account,
    source_file, line_number, txn_type, description, category, payment_method, reference).
    labels: optional booleans aligned with data (True = known anomaly); without them the threshold
    and the metrics use anomalies injected by `inject_anomalies`.
    expected: optional booleans aligned with data (True = the user marked the row's flag "expected",
    app.anomaly_feedback): such rows are negatives in the evaluation (a known anomaly the user calls
    expected is not one) and normal rows in the statistics; a merchant with `expected_after` (3) such
    rows flagged for one reason is no longer flagged for that reason (`expected_suppressions`).
    params: test_fraction (0.2), validation_fraction (0.2 of the training period), min_group (8 rows
    for a group's own statistics), small_amount (5.0), precision_target (None: best F1), weights
    (component -> weight), n_estimators (100), if_sample (20,000 rows for the isolation forest),
    injected_rate (0.01 of rows when evaluating on injected anomalies), seed (0)."""
    cfg = _Config.of(params)
    notes: list[str] = []
    frame, y, labelled, x, expected_after = _training_rows(data, labels, expected, params)
    cfg.expected_after = expected_after
    periods = _Periods(frame, y, labelled, cfg, notes)
    threshold, val_draws = _validation_threshold(periods, cfg)

    # 2. the model: statistics of the whole training period, the validated threshold
    train_c = periods.history("train")
    model = _fit(train_c, periods.vocabulary, **cfg.fit_kw)
    model.threshold = threshold
    if x is not None and x.any():
        _suppress_expected(model, periods.c_all, x, cfg.expected_after, notes)

    # 3. the test period
    test_frame, test_c, test_y, test_kinds = periods.holdout("test", "train", 2)
    test_pred = model._predict_canon(test_c, test_frame.index)
    scores = test_pred["anomaly_score"].to_numpy()
    metrics = _ranking_metrics(scores, test_y)
    metrics.update(_threshold_metrics(test_pred["is_anomaly"].to_numpy(), test_y))
    metrics["threshold"] = threshold
    baseline_models = _baseline_models(
        periods.history("fit"), train_c, periods.vocabulary, val_draws, cfg.precision_target
    )
    baselines = {name: score(b, (test_frame, test_y)) for name, b in baseline_models.items()}
    notes += _test_notes(model, test_c, periods.evaluation, val_draws, cfg.fit_kw["min_group"])
    run_params = _run_params(cfg, periods.evaluation, val_draws, x, model)
    if test_kinds is not None:
        run_params["injected_test_kinds"] = {k: int((test_kinds == k).sum()) for k in INJECTED_KINDS}
    model.params = dict(run_params)
    return TrainResult(
        model=model,
        metrics=metrics,
        baselines=baselines,
        params=run_params,
        data_window=periods.window(),
        holdout=(test_frame, np.asarray(test_y, dtype=bool)),
        figures={
            "anomaly_score_distribution.png": _figure(scores, np.asarray(test_y, dtype=bool), threshold)
        },
        notes=notes,
        baseline_models=baseline_models,
    )


@dataclass
class _Config:
    """`train`'s parameters, defaults filled in."""

    t_frac: float
    v_frac: float
    seed: int
    fit_kw: dict[str, Any]  # `_fit`'s keyword arguments
    precision_target: float | None
    rate: float
    min_val_anomalies: int
    max_val_draws: int
    expected_after: int = EXPECTED_AFTER

    @classmethod
    def of(cls, params: dict[str, Any]) -> _Config:
        t_frac = float(params.get("test_fraction", 0.2))
        v_frac = float(params.get("validation_fraction", 0.2))
        seed = int(params.get("seed", 0))
        fit_kw = {
            "min_group": int(params.get("min_group", 8)),
            "small_amount": float(params.get("small_amount", 5.0)),
            "weights": {**DEFAULT_WEIGHTS, **(params.get("weights") or {})},
            "n_estimators": int(params.get("n_estimators", 100)),
            "if_sample": int(params.get("if_sample", 20_000)),
            "seed": seed,
        }
        return cls(
            t_frac,
            v_frac,
            seed,
            fit_kw,
            precision_target=params.get("precision_target"),
            rate=float(params.get("injected_rate", 0.01)),
            min_val_anomalies=int(params.get("min_validation_anomalies", 200)),
            max_val_draws=int(params.get("max_validation_draws", 10)),
        )


def _training_rows(data: pd.DataFrame, labels, expected, params: dict[str, Any]):
    """(the usable rows: a date and an amount, their labels, whether labels were given, their
    "expected" marks or None, `expected_after`); a TrainingDataError when they cannot train."""
    if data is None or len(data) == 0:
        raise TrainingDataError("no transactions to train the anomaly model on")
    missing = {"txn_date", "amount"} - set(data.columns)
    if missing:
        raise TrainingDataError(f"the anomaly model needs the columns {sorted(missing)}")
    y_all = _as_labels(labels, data)
    x_all = _as_labels(expected, data)
    if y_all is not None and x_all is not None:
        y_all = y_all & ~x_all  # flagged but expected: a negative
    expected_after = int(params.get("expected_after", EXPECTED_AFTER))
    usable = (
        pd.to_datetime(data["txn_date"], errors="coerce").notna()
        & pd.to_numeric(data["amount"], errors="coerce").notna()
    ).to_numpy()
    frame = data[usable]
    y = y_all[usable] if y_all is not None else np.zeros(len(frame), dtype=bool)
    if len(frame) < 60:
        raise TrainingDataError(f"{len(frame)} usable rows: the anomaly model needs at least 60")
    x = x_all[usable] if x_all is not None else None
    return frame, y, y_all is not None, x, expected_after


class _Periods:
    """The usable rows split by date: train (fit, then validation) and test, with their canonical rows;
    `evaluation` says whether the validation and test periods are measured on the labels
    ("ground_truth") or on injected anomalies ("injected")."""

    def __init__(self, frame: pd.DataFrame, y: np.ndarray, labelled: bool, cfg: _Config, notes: list[str]):
        self.frame, self.y, self.cfg = frame, y, cfg
        self.vocabulary = Vocabulary.from_seeds()
        self.c_all = _canon(frame, self.vocabulary)  # once: text cleaning is the expensive part
        order = pd.DataFrame(
            {"txn_date": pd.to_datetime(frame["txn_date"]).to_numpy(), "_pos": np.arange(len(frame))}
        )
        train_o, test_o = time_split(order, "txn_date", test_fraction=cfg.t_frac)
        fit_o, val_o = time_split(train_o, "txn_date", test_fraction=cfg.v_frac)
        self.pos = pos = {
            name: np.sort(o["_pos"].to_numpy())
            for name, o in (("train", train_o), ("test", test_o), ("fit", fit_o), ("val", val_o))
        }
        self.evaluation = "ground_truth" if labelled else "injected"
        if labelled and (not y[pos["test"]].any() or not y[pos["val"]].any()):
            notes.append(
                "labels given but the validation or test period holds no labelled anomaly: "
                "evaluated on injected anomalies instead"
            )
            self.evaluation = "injected"

    def history(self, name: str) -> pd.DataFrame:
        """A period's canonical rows as history: known anomalies are not normal behaviour, they stay out
        of the statistics."""
        p = self.pos[name][~self.y[self.pos[name]]]
        return self.c_all.iloc[p].reset_index(drop=True)

    def holdout(self, name: str, reference: str, salt: int):
        """(raw frame, canonical rows, labels, kinds) of the validation or test period."""
        p = self.pos[name]
        raw = self.frame.iloc[p]
        if self.evaluation == "ground_truth":
            return raw, self.c_all.iloc[p].reset_index(drop=True), self.y[p], None
        injected, y_inj, kinds = inject_anomalies(
            raw,
            self.frame.iloc[self.pos[reference]],
            rate=self.cfg.rate,
            seed=self.cfg.seed + salt,
            vocabulary=self.vocabulary,
        )
        return injected, _canon(injected, self.vocabulary), y_inj, kinds

    def window(self) -> dict[str, Any]:
        frame, pos = self.frame, self.pos
        window = window_of(frame.iloc[pos["train"]], frame.iloc[pos["test"]], "txn_date")
        window.update(
            validation_start=pd.to_datetime(frame["txn_date"].iloc[pos["val"]]).min().date().isoformat(),
            validation_rows=len(pos["val"]),
        )
        return window


def _validation_threshold(
    periods: _Periods, cfg: _Config
) -> tuple[float, list[tuple[pd.DataFrame, np.ndarray]]]:
    """1. The threshold, on the validation period scored by statistics of the period before it, and the
    validation draws it was chosen on ((canonical rows, labels) each). Injected anomalies are drawn
    again with new seeds until the pooled draws hold `min_validation_anomalies` (at most
    `max_validation_draws` draws): on a small ledger one draw holds a handful, and a cut chosen on a
    handful flags whatever those few happened to sit above."""
    _, val_c, val_y, _ = periods.holdout("val", "fit", 1)
    if periods.evaluation == "injected" and not val_y.any():
        raise TrainingDataError(
            "no anomalies could be injected into the validation period: it needs expense "
            "rows with a merchant (reference or description) and a category"
        )
    val_draws = [(val_c, val_y)]
    if periods.evaluation == "injected":
        wanted = int(math.ceil(cfg.min_val_anomalies / max(int(val_y.sum()), 1)))
        for draw in range(1, min(max(wanted, 1), cfg.max_val_draws)):
            _, c_d, y_d, _ = periods.holdout("val", "fit", 1 + 1000 * draw)
            val_draws.append((c_d, y_d))
    early = _fit(periods.history("fit"), periods.vocabulary, **cfg.fit_kw)
    val_scores = np.concatenate([early._combine(early._components(c_d)) for c_d, _ in val_draws])
    val_y = np.concatenate([y_d for _, y_d in val_draws])
    return choose_threshold(val_scores, val_y, cfg.precision_target), val_draws


def _suppress_expected(
    model: AnomalyModel, c_all: pd.DataFrame, x: np.ndarray, expected_after: int, notes: list[str]
) -> None:
    """Switch off, on the model, the reasons the user marked expected `expected_after`+ times per merchant."""
    model.suppressed = expected_suppressions(model, c_all, x, expected_after)
    if model.suppressed:
        notes.append(
            f"{len(model.suppressed)} merchant(s) marked expected {expected_after}+ times are no "
            "longer flagged for those reasons: "
            + "; ".join(
                f"{m.split(':', 1)[-1]} ({', '.join(v)})" for m, v in list(model.suppressed.items())[:10]
            )
        )


def _test_notes(
    model: AnomalyModel, test_c: pd.DataFrame, evaluation: str, val_draws: list, min_group: int
) -> list[str]:
    """Which statistics the test rows could use (small data), and what the evaluation means."""
    notes = []
    levels = evidence.amount_stats(model, test_c)["level"]
    share = {lv: float(np.mean(levels == lv)) for lv in ("merchant", "category", "global")}
    if share["merchant"] < 0.5:
        notes.append(
            f"small history: only {share['merchant']:.0%} of test rows have merchant statistics "
            f"({share['category']:.0%} fall back to their category, {share['global']:.0%} to all rows)"
        )
    rare = model.categories.index[model.categories["n"] < min_group]
    if len(rare):
        notes.append(
            f"{len(rare)} categories with under {min_group} training rows use the global "
            f"statistics: {', '.join(sorted(map(str, rare))[:10])}"
        )
    if evaluation == "injected":
        notes.append(
            "no ground truth: threshold and metrics use anomalies injected into the validation and "
            "test periods (inject_anomalies); genuine anomalies already in those periods count as "
            "normal rows, so precision is understated"
        )
    if (~test_c["expense"].to_numpy()).any():
        notes.append(
            "income rows are scored with income-only statistics; every test row counts in the metrics"
        )
    val_anomalies = _pooled_anomalies(val_draws)
    if val_anomalies < 10:
        notes.append(
            f"threshold chosen on only {val_anomalies} validation anomalies ({len(val_draws)} draws)"
        )
    return notes


def _run_params(
    cfg: _Config, evaluation: str, val_draws: list, x: np.ndarray | None, model: AnomalyModel
) -> dict[str, Any]:
    """The training run's parameters as logged (and kept on the model)."""
    fit_kw, precision_target = cfg.fit_kw, cfg.precision_target
    return {
        "evaluation": evaluation,
        "test_fraction": cfg.t_frac,
        "validation_fraction": cfg.v_frac,
        "min_group": fit_kw["min_group"],
        "small_amount": fit_kw["small_amount"],
        "weights": fit_kw["weights"],
        "n_estimators": fit_kw["n_estimators"],
        "if_sample": fit_kw["if_sample"],
        "threshold_objective": "precision_target" if precision_target is not None else "f1",
        "precision_target": precision_target,
        "injected_rate": cfg.rate if evaluation == "injected" else None,
        "seed": cfg.seed,
        "validation_rows": len(val_draws[0][0]),
        "validation_anomalies": _pooled_anomalies(val_draws),
        "validation_draws": len(val_draws),
        "combination": "noisy_or",
        "expected_rows": int(x.sum()) if x is not None else 0,
        "expected_after": cfg.expected_after,
        "suppressed_merchants": len(model.suppressed),
    }


def _pooled_anomalies(val_draws: list[tuple[pd.DataFrame, np.ndarray]]) -> int:
    return int(sum(int(y.sum()) for _, y in val_draws))
