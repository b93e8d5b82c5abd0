"""Training the category model (`train`): the time split of the labelled rows, the regime and the
temperature chosen on the training period, the final fit, and the metrics of the model and its
baselines on the test period. Design notes and their measurements: docs/model-design.md ("Category")."""

from __future__ import annotations

import logging
import time
from typing import Any

import pandas as pd

from titans_assets.lib.ml import features as F
from titans_assets.lib.ml.category.baselines import LookupBaseline, MajorityBaseline
from titans_assets.lib.ml.category.calibrate import _calibrate, _select
from titans_assets.lib.ml.category.classifier import _epochs, _fit
from titans_assets.lib.ml.category.figures import _figures
from titans_assets.lib.ml.category.model import CategoryModel
from titans_assets.lib.ml.category.params import DEFAULT_PARAMS, MIN_ROWS, REGIMES
from titans_assets.lib.ml.category.rows import _labelled_raw, _prepare_labelled, display_spellings
from titans_assets.lib.ml.category.score import _detail, _metrics
from titans_assets.lib.ml.common import TrainingDataError, TrainResult, time_split, window_of

log = logging.getLogger(__name__)


def _checked(params: dict[str, Any]) -> dict[str, Any]:
    """DEFAULT_PARAMS with the caller's `params`, which must be known parameters naming known regimes."""
    unknown = set(params) - set(DEFAULT_PARAMS)
    if unknown:
        raise ValueError(f"unknown parameters: {sorted(unknown)}")
    p = {**DEFAULT_PARAMS, **params}
    for name in p["regimes"]:
        if name not in REGIMES:
            raise ValueError(f"unknown regime {name!r} (one of {sorted(REGIMES)})")
    return p


def _split(
    data: pd.DataFrame, p: dict[str, Any], vocabulary: F.Vocabulary, notes: list[str]
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, int]:
    """(training rows raw, prepared; test rows prepared; training rows before the cap): the labelled rows
    split in time, the training period capped to its latest `max_train_rows`."""
    raw = _labelled_raw(data)
    if len(raw) < MIN_ROWS:
        raise TrainingDataError(f"{len(raw)} categorised rows; the category model needs at least {MIN_ROWS}")
    train_raw, test_raw = time_split(
        raw, "_date", test_fraction=float(p["test_fraction"]), min_test_rows=min(20, len(raw) // 4)
    )
    n_before_cap = len(train_raw)
    if n_before_cap > int(p["max_train_rows"]):
        train_raw = train_raw.iloc[-int(p["max_train_rows"]) :]
        notes.append(
            f"training capped to the latest {len(train_raw):,} of {n_before_cap:,} categorised rows "
            "before the test period (max_train_rows)"
        )
    train_p = _prepare_labelled(train_raw, vocabulary)
    test_p = _prepare_labelled(test_raw, vocabulary)
    if test_p.empty:
        raise TrainingDataError("no categorised rows in the test period")
    if train_p["category"].nunique() < 2:
        raise TrainingDataError("the training period holds a single category: nothing to classify")
    return train_raw, train_p, test_p, n_before_cap


def _class_notes(train_p: pd.DataFrame, test_p: pd.DataFrame, p: dict[str, Any]) -> list[str]:
    """Notes on the rare training categories and on the categories seen only in the test period."""
    notes = []
    counts = train_p["category"].value_counts()
    rare = counts[counts < int(p["rare_class_rows"])]
    if len(rare):
        notes.append(
            f"categories with fewer than {p['rare_class_rows']} training rows (kept as classes, their "
            f"probabilities stay low): {', '.join(f'{c} ({n})' for c, n in rare.items())}"
        )
    test_only = sorted(set(test_p["category"]) - set(counts.index))
    if test_only:
        n_rows = int(test_p["category"].isin(test_only).sum())
        notes.append(
            f"categories seen only in the test period ({n_rows} rows, counted as errors): "
            f"{', '.join(test_only)}"
        )
    return notes


def _choose_regime(
    train_p: pd.DataFrame, p: dict[str, Any], params: dict[str, Any], notes: list[str]
) -> tuple[dict[str, Any], str, dict[str, Any] | None]:
    """(parameters of the regime, its name, the selection): small data tries `regimes` on rolling
    origins (`_select`), larger data keeps the given parameters (regime "given")."""
    regime, selection = "given", None
    if p["regimes"] and len(train_p) <= int(p["select_max_rows"]):
        selection = _select(train_p, p, params)
        regime = selection["regime"] if selection is not None else p["regimes"][0]
        p = {**p, **REGIMES[regime], **params}
        if selection is None:
            notes.append(
                f"too few rows to compare regimes on earlier origins: {regime} (the simplest) is used"
            )
        else:
            s = selection["scores"]
            notes.append(
                f"regime {regime} chosen on {selection['folds']} rolling origins of the training period ("
                + ", ".join(f"{r} {v['correct']}/{v['rows']}" for r, v in s.items())
                + " correct)"
            )
    return p, regime, selection


def _temperature(
    train_p: pd.DataFrame, p: dict[str, Any], regime: str, selection: dict[str, Any] | None
) -> dict[str, Any]:
    """The calibration (`_calibrate`'s dict): the chosen regime's own rolling-origin temperature when it
    had 20+ usable rows, else a time slice or out-of-fold predictions."""
    if selection is not None and selection["scores"][regime]["usable_rows"] >= 20:
        chosen = selection["scores"][regime]
        return {
            "method": "rolling_origins",
            "parts": None,
            "fit_rows": None,
            "rows": chosen["usable_rows"],
            "temperature": chosen["temperature"],
        }
    return _calibrate(train_p, p)


def _calibration_notes(cal: dict[str, Any], p: dict[str, Any]) -> list[str]:
    if cal["method"] == "none":
        return [f"only {cal['rows']} held-out rows to calibrate on: probabilities are uncalibrated (T = 1)"]
    if cal["method"] == "out_of_fold":
        return [
            f"small data: temperature fitted on out-of-fold predictions of {cal['rows']} training rows "
            f"(no later time slice of {p['min_calibration_rows']}+ rows)"
        ]
    return []


def _final_fit(
    train_p: pd.DataFrame, p: dict[str, Any], cal: dict[str, Any], notes: list[str]
) -> tuple[tuple, int]:
    """(fitted parts, rows fitted): a refit on the whole training period, or the calibrated model."""
    if p["refit"] or cal["parts"] is None:
        return _fit(train_p, p), len(train_p)
    # the calibrated model itself: fitted on the training period minus its last slice
    notes.append(f"refit=False: the model is fitted on the first {cal['fit_rows']:,} training rows only")
    return cal["parts"], cal["fit_rows"]


def _evaluate(
    model: CategoryModel, train_p: pd.DataFrame, test_p: pd.DataFrame, spellings: dict[str, str]
) -> tuple[dict[str, float], dict[str, dict[str, float]], dict[str, Any], dict[str, Any]]:
    """(metrics, baselines' metrics, baseline models, figures) on the test rows."""
    detail = _detail(model, test_p)
    metrics = _metrics(detail)
    baseline_models = {
        "majority": MajorityBaseline(model.vocabulary, train_p["category"]),
        "description_lookup": LookupBaseline(model.vocabulary, train_p),
    }
    for b in baseline_models.values():  # served like the model when it loses: same spelling
        b.set_display(spellings)
    baselines = {name: _metrics(_detail(b, test_p)) for name, b in baseline_models.items()}
    return metrics, baselines, baseline_models, _figures(detail)


def _logged(
    p: dict[str, Any],
    regime: str,
    selection: dict[str, Any] | None,
    cal: dict[str, Any],
    model: CategoryModel,
    n_before_cap: int,
    seconds: dict[str, float],
) -> dict[str, Any]:
    """The run's parameters as logged: the parameters used and what training chose and measured."""
    n_fitted = model.n_train_
    return {
        **p,
        "regime": regime,
        "regime_accuracy": (
            {r: round(v["correct"] / max(v["rows"], 1), 4) for r, v in selection["scores"].items()}
            if selection
            else None
        ),
        "regime_origins": selection["folds"] if selection else None,
        "estimator": (
            "LinearSVC(one-vs-rest)"
            if p["classifier"] == "svm"
            else "SGDClassifier(log_loss, averaged, one-vs-rest)"
        ),
        "text": f"tfidf {p['char_analyzer']} + word n-grams of description | reference",
        "calibration": "temperature scaling",
        "calibration_method": cal["method"],
        "calibration_rows": cal["rows"],
        "temperature": round(cal["temperature"], 4),
        "n_features": model.encoder.n_features,
        "n_fitted_rows": n_fitted,
        "train_rows_before_cap": n_before_cap,
        "epochs_used": _epochs(n_fitted + int(round(n_fitted * float(p["request_fraction"]))), p),
        **{f"{step}_seconds": round(s, 2) for step, s in seconds.items()},
    }


def train(data: pd.DataFrame, **params: Any) -> TrainResult:
    """Fit the category classifier on warehouse rows (docs/model-design.md explains every choice)."""
    p = _checked(params)
    t0 = time.perf_counter()
    notes: list[str] = []
    vocabulary = F.Vocabulary.from_seeds()
    train_raw, train_p, test_p, n_before_cap = _split(data, p, vocabulary, notes)
    notes += _class_notes(train_p, test_p, p)

    t_cal = time.perf_counter()
    p, regime, selection = _choose_regime(train_p, p, params, notes)
    cal = _temperature(train_p, p, regime, selection)
    t_cal = time.perf_counter() - t_cal
    notes += _calibration_notes(cal, p)

    t_fit = time.perf_counter()
    parts, n_fitted = _final_fit(train_p, p, cal, notes)
    t_fit = time.perf_counter() - t_fit
    model = CategoryModel(vocabulary, *parts, cal["temperature"], int(p["top_k"]), n_fitted)
    spellings = display_spellings(train_raw, train_p)
    model.set_display(spellings)
    train_seconds = time.perf_counter() - t0

    metrics, baselines, baseline_models, figures = _evaluate(model, train_p, test_p, spellings)
    log.info(
        "category model: %d train rows (%d fitted), macro_f1 %.3f (lookup %.3f), ece %.3f, T %.2f, %.1fs",
        len(train_p),
        n_fitted,
        metrics["macro_f1"],
        baselines["description_lookup"]["macro_f1"],
        metrics["ece"],
        cal["temperature"],
        train_seconds,
    )
    seconds = {"calibrate": t_cal, "fit": t_fit, "train": train_seconds}
    return TrainResult(
        model=model,
        metrics=metrics,
        baselines=baselines,
        params=_logged(p, regime, selection, cal, model, n_before_cap, seconds),
        data_window={**window_of(train_p, test_p, "txn_date"), "train_rows_before_cap": n_before_cap},
        holdout=test_p,
        figures=figures,
        notes=notes,
        baseline_models=baseline_models,
    )
