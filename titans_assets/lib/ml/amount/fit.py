"""Training the amount model: `train()` splits expense rows by time, fits the target encodings out of
fold and the booster, calibrates the intervals (conformal.py), then scores the model and its baselines
on the test rows. Design notes and their measurements: docs/model-design.md ("Amount")."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.feature_extraction.text import HashingVectorizer

from titans_assets.lib.ml import features as F
from titans_assets.lib.ml.amount.baselines import _baseline_models
from titans_assets.lib.ml.amount.conformal import _conformal_bounds, calibrate, score_tiers
from titans_assets.lib.ml.amount.encoder import _Encoder
from titans_assets.lib.ml.amount.figures import _figures
from titans_assets.lib.ml.amount.model import _GLOBAL_PROBS, AmountModel, _threads
from titans_assets.lib.ml.amount.rows import _TIER_REF, _enrich, _strip, expense_rows
from titans_assets.lib.ml.amount.score import _score_detail, score
from titans_assets.lib.ml.common import TrainingDataError, TrainResult, time_split, window_of

log = logging.getLogger(__name__)

MIN_TRAIN_ROWS = 40  # expense rows in the training period (fit + calibration)
MAX_CATEGORY_CODES = 250  # HGB categorical cardinality limit is 255 bins
DEFAULT_PARAMS: dict[str, Any] = {
    "level": 0.9,
    "test_fraction": 0.2,
    "calibration_fraction": 0.2,
    "max_train_rows": 300_000,
    "loss": "squared_error",
    "max_bins": 255,
    "max_iter": 300,
    "learning_rate": 0.08,
    "max_leaf_nodes": 31,
    "min_samples_leaf": 20,
    "l2_regularization": 1.0,
    "category_shrinkage": 10.0,
    "merchant_shrinkage": 3.0,
    "seasonal_shrinkage": 20.0,
    "text_hash_features": 2**18,
    "text_alpha": 3.0,
    "augment_fraction": 0.3,
    "oof_folds": 5,
    "min_group_calibration": 100,
    "min_match_calibration": 10,
    "refit_tables": True,
    "seed": 0,
    "threads": 1,
}

_CAT_COLS = ["cat_code", "pm_code"]


def _codes(values: pd.Series) -> dict[str, int]:
    top = values.dropna().value_counts().index[:MAX_CATEGORY_CODES]
    return {v: i for i, v in enumerate(sorted(top))}


def _augment(
    rows: pd.DataFrame, fraction: float, rng: np.random.Generator
) -> tuple[pd.DataFrame, np.ndarray]:
    """Copies of a random share of rows as partial requests: half description-only, half bare
    (no description nor reference; the payment method dropped on half of those). Returns the copies
    and the positions of their originals."""
    n_aug = int(round(len(rows) * fraction))
    if n_aug < 2:
        return rows.iloc[:0], np.zeros(0, dtype=int)
    pick = rng.choice(len(rows), size=n_aug, replace=False)
    half = n_aug // 2
    bare = pick[half:]
    drop_pm = rng.random(len(bare)) < 0.5
    parts = [
        _strip(rows.iloc[pick[:half]], reference=True, description=False, payment=False),
        _strip(rows.iloc[bare[drop_pm]], reference=True, description=True, payment=True),
        _strip(rows.iloc[bare[~drop_pm]], reference=True, description=True, payment=False),
    ]
    return pd.concat(parts), np.concatenate([pick[:half], bare[drop_pm], bare[~drop_pm]])


def _fit_booster(X: pd.DataFrame, y: np.ndarray, params: dict[str, Any], small: bool):
    n = len(X)
    booster = HistGradientBoostingRegressor(
        loss=params["loss"],
        max_bins=params["max_bins"],
        learning_rate=params["learning_rate"],
        max_iter=params["max_iter"] if not small else min(params["max_iter"], 150),
        max_leaf_nodes=params["max_leaf_nodes"] if not small else 8,
        min_samples_leaf=params["min_samples_leaf"] if not small else max(5, n // 20),
        l2_regularization=params["l2_regularization"],
        categorical_features=[c in _CAT_COLS for c in X.columns],
        early_stopping=n >= 5000,
        validation_fraction=0.1,
        n_iter_no_change=20,
        random_state=params["seed"],
    )
    booster.fit(X.to_numpy(dtype=float), y)
    return booster


def _vectorizer(n_features: int) -> HashingVectorizer:
    return HashingVectorizer(
        n_features=n_features,
        alternate_sign=False,
        lowercase=True,
        norm="l2",
        token_pattern=r"(?u)\b[a-z][a-z0-9&']+\b",
    )


def train(data: pd.DataFrame, **params: Any) -> TrainResult:
    """Fit the expense-amount model on warehouse rows (design notes: docs/model-design.md, "Amount")."""
    unknown = set(params) - set(DEFAULT_PARAMS)
    if unknown:
        raise ValueError(f"unknown parameters: {sorted(unknown)}")
    p = {**DEFAULT_PARAMS, **params}
    level = float(p["level"])
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    with _threads(p["threads"]):  # also keeps BLAS sums (ridge) reproducible whatever the environment says
        return _train(data, p, level)


@dataclass
class _Data:
    """Expense rows split by time: the fit rows (encodings, booster), the calibration rows (the latest
    training days: the point predictor and the conformal sets) and the test rows (metrics), with the
    prepared training and test rows and the enriched categorised fit and calibration rows."""

    train_rows: pd.DataFrame
    test_rows: pd.DataFrame
    fit_rows: pd.DataFrame
    cal_rows: pd.DataFrame
    n_before_cap: int
    train_p: pd.DataFrame
    test_p: pd.DataFrame
    fit_e: pd.DataFrame
    cal_e: pd.DataFrame
    small: bool


def _split_by_time(
    data: pd.DataFrame, p: dict[str, Any], notes: list[str]
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame, int]:
    """(train, test, fit, calibration rows, training rows before the cap) of the expense rows."""
    rows = expense_rows(data)
    if len(rows) < MIN_TRAIN_ROWS + 20:
        raise TrainingDataError(
            f"{len(rows)} expense rows; the amount model needs at least {MIN_TRAIN_ROWS + 20}"
        )
    train_rows, test_rows = time_split(rows, "txn_date", test_fraction=p["test_fraction"])
    n_before_cap = len(train_rows)
    if n_before_cap > p["max_train_rows"]:
        train_rows = train_rows.iloc[-int(p["max_train_rows"]) :]
        notes.append(
            f"training capped to the latest {len(train_rows):,} of {n_before_cap:,} expense rows "
            "before the test period (max_train_rows)"
        )
    if len(train_rows) < MIN_TRAIN_ROWS:
        raise TrainingDataError(
            f"{len(train_rows)} expense rows before the test period; need {MIN_TRAIN_ROWS}"
        )
    fit_rows, cal_rows = time_split(
        train_rows,
        "txn_date",
        test_fraction=p["calibration_fraction"],
        min_test_rows=min(20, len(train_rows) // 3),
    )
    return train_rows, test_rows, fit_rows, cal_rows, n_before_cap


def _training_data(
    data: pd.DataFrame, p: dict[str, Any], vocabulary: F.Vocabulary, notes: list[str]
) -> _Data:
    """The rows split by time and prepared; fit and calibration rows without a category are left out."""
    train_rows, test_rows, fit_rows, cal_rows, n_before_cap = _split_by_time(data, p, notes)
    train_p = F.prepare(train_rows, vocabulary)
    test_p = F.prepare(test_rows, vocabulary)
    missing_cat = int(train_p["category"].isna().sum())
    if missing_cat:
        notes.append(
            f"{missing_cat} training expense rows have no category: not used for fitting "
            "(a request without a category gets the global interval)"
        )
    fit_e = _enrich(train_p.loc[fit_rows.index][lambda d: d["category"].notna()])
    cal_e = _enrich(train_p.loc[cal_rows.index][lambda d: d["category"].notna()])
    if len(fit_e) < MIN_TRAIN_ROWS // 2 or len(cal_e) < 5:
        raise TrainingDataError(
            f"{len(fit_e)} categorised expense rows to fit on and {len(cal_e)} to calibrate "
            f"on; need {MIN_TRAIN_ROWS // 2} and 5"
        )
    small = len(fit_e) < 2000
    if small:
        notes.append(
            f"small data: {len(fit_e)} fitting and {len(cal_e)} calibration rows; a shallow booster and "
            "one global conformal interval per input tier (not per category), wide on purpose"
        )
    return _Data(
        train_rows, test_rows, fit_rows, cal_rows, n_before_cap, train_p, test_p, fit_e, cal_e, small
    )


def _out_of_fold(
    enc: _Encoder,
    fit_e: pd.DataFrame,
    y_fit: np.ndarray,
    codes: dict[str, dict[str, int]],
    text_fit,
    p: dict[str, Any],
    rng: np.random.Generator,
) -> tuple[pd.DataFrame, np.ndarray, int]:
    """The booster's training matrix and targets: the fit rows and their augmented copies (partial
    requests), each encoded by tables fitted on the other folds; and the number of copies."""
    aug_e, aug_src = _augment(fit_e, p["augment_fraction"], rng)
    y_aug = y_fit[aug_src]
    k = int(p["oof_folds"]) if len(fit_e) >= 20 * int(p["oof_folds"]) else 2
    fold = rng.integers(0, k, size=len(fit_e))
    fold_aug = fold[aug_src]
    parts, targets = [], []
    for f in range(k):
        state_f = enc.fit(fit_e[fold != f], y_fit[fold != f], text_fit)
        parts += [
            enc.matrix(state_f, fit_e[fold == f], codes, text_fit),
            enc.matrix(state_f, aug_e[fold_aug == f], codes, text_fit),
        ]
        targets += [y_fit[fold == f], y_aug[fold_aug == f]]
    return pd.concat(parts, ignore_index=True), np.concatenate(targets), len(aug_e)


def _category_report(train_p: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame]:
    """|amount| of the whole training period (fit + calibration rows) and, per category, its mean,
    median and count: the reporting state of the model's factors."""
    a_train = np.abs(train_p["amount"].to_numpy())
    report = (
        pd.DataFrame({"a": a_train, "c": train_p["category"].to_numpy(dtype=object)})
        .dropna()
        .groupby("c")["a"]
        .agg(mean_amount="mean", median_amount="median", n="size")
    )
    return a_train, report


def _calibrate(
    model: AmountModel, enc: _Encoder, d: _Data, p: dict[str, Any], level: float, notes: list[str]
) -> tuple[dict[str, float], str]:
    """Choose the model's point predictor and calibrate its intervals (conformal.calibrate), refit the
    lookup tables when the lookup won; returns the calibration MAE of both points and the interval
    method."""
    scored = score_tiers(enc, model.state, model.booster, model.feature_names, model.codes, d.cal_e)
    model.point, cal_mae, model.calibration = calibrate(scored, p, d.small)
    if model.point == "lookup":
        notes.append(
            f"the booster did not beat the merchant/category median lookup on the calibration rows "
            f"(MAE {cal_mae['booster']:.2f} vs {cal_mae['lookup']:.2f}): the model predicts the lookup"
        )
    if p["refit_tables"] and model.point == "lookup":
        # The lookup was chosen and calibrated on the calibration rows; the tables it is (merchant and
        # category medians) are then refitted on the whole training period, so the latest days'
        # merchants and amounts are known when serving. Not for the booster: it learned from encodings
        # of the fitting rows, and on generated data its MAE got worse with refitted inputs (62.1 vs 57.7).
        all_e = _enrich(d.train_p[d.train_p["category"].notna()])
        model.state = enc.fit(all_e, np.log1p(np.abs(all_e["amount"].to_numpy())), enc.text_matrix(all_e))
    method = _conformal_bounds(model.calibration[("*", _TIER_REF)].astype(float), level)[2]
    if method != "signed":
        notes.append(
            f"only {len(d.cal_e)} calibration rows: the {level:.0%} interval uses the "
            f"{'absolute residual' if method == 'absolute' else 'largest residual doubled'}"
        )
    return cal_mae, method


def _logged(
    p: dict[str, Any],
    d: _Data,
    model: AmountModel,
    n_aug: int,
    cal_mae: dict[str, float],
    method: str,
    seconds: dict[str, float],
) -> dict[str, Any]:
    """The run's logged parameters: the training parameters, what was fitted, and the timings."""
    calibration = model.calibration
    per_cat = sorted({c for c, t in calibration if c != "*" and t == _TIER_REF})
    return {
        **p,
        "target": "log1p(abs(expense amount))",
        "booster": "HistGradientBoostingRegressor",
        "interval": "split conformal, signed log residuals, Mondrian by category and input tier",
        "n_features": len(model.feature_names),
        "n_fit_rows": len(d.fit_e),
        "n_calibration_rows": len(d.cal_e),
        "n_augmented_rows": n_aug,
        "n_boost_iter": int(model.booster.n_iter_),
        "train_rows_before_cap": d.n_before_cap,
        "mondrian_categories": len(per_cat),
        "mondrian_match_groups": ",".join(sorted(t for c, t in calibration if c == "*" and "/" in t)),
        "calibration_method": method,
        "point_predictor": model.point,
        "calibration_mae_booster": round(cal_mae["booster"], 4),
        "calibration_mae_lookup": round(cal_mae["lookup"], 4),
        **{f"{step}_seconds": round(t, 2) for step, t in seconds.items()},
    }


def _train(data: pd.DataFrame, p: dict[str, Any], level: float) -> TrainResult:
    t0 = time.perf_counter()
    notes: list[str] = []
    rng = np.random.default_rng(p["seed"])
    vocabulary = F.Vocabulary.from_seeds()
    d = _training_data(data, p, vocabulary, notes)
    fit_e = d.fit_e
    y_fit = np.log1p(np.abs(fit_e["amount"].to_numpy()))

    vectorizer = _vectorizer(int(p["text_hash_features"]))
    enc = _Encoder(p, vectorizer)
    codes = {"category": _codes(fit_e["category"]), "payment_method": _codes(fit_e["payment_method"])}
    t_enc = time.perf_counter()
    text_fit = enc.text_matrix(fit_e)
    X_fit, y_all, n_aug = _out_of_fold(enc, fit_e, y_fit, codes, text_fit, p, rng)
    state = enc.fit(fit_e, y_fit, text_fit)
    t_enc = time.perf_counter() - t_enc
    t_gbm = time.perf_counter()
    booster = _fit_booster(X_fit, y_all, p, d.small)
    t_gbm = time.perf_counter() - t_gbm

    a_train, report = _category_report(d.train_p)
    model = AmountModel(
        vocabulary=vocabulary,
        params=p,
        state=state,
        vectorizer=vectorizer,
        booster=booster,
        codes=codes,
        feature_names=list(X_fit.columns),
        calibration={},
        global_quantiles=np.quantile(np.log1p(a_train), _GLOBAL_PROBS),
        category_report=report,
        global_mean=float(a_train.mean()),
        global_median=float(np.median(a_train)),
        level=level,
        n_train=len(d.train_p),
        notes=notes,
    )
    t_cal = time.perf_counter()
    cal_mae, method = _calibrate(model, enc, d, p, level, notes)
    t_cal = time.perf_counter() - t_cal
    train_seconds = time.perf_counter() - t0

    # Test metrics, baselines, figures.
    metrics, actual, (pred, lower, upper) = _score_detail(model, d.test_rows, d.test_p)
    baseline_models = _baseline_models(d.train_p[d.train_p["category"].notna()], vocabulary, level)
    baselines = {name: score(b, d.test_rows) for name, b in baseline_models.items()}
    figures = _figures(actual, pred, lower, upper, level, rng)
    log.info(
        "amount model: %d train rows, mae %.2f (category median %.2f), coverage %.3f, trained in %.1fs",
        len(d.train_p),
        metrics["mae"],
        baselines["category_median"]["mae"],
        metrics["interval_coverage"],
        train_seconds,
    )
    seconds = {"encode": t_enc, "boost": t_gbm, "calibrate": t_cal, "train": train_seconds}
    return TrainResult(
        model=model,
        metrics=metrics,
        baselines=baselines,
        params=_logged(p, d, model, n_aug, cal_mae, method, seconds),
        data_window={
            **window_of(d.train_rows, d.test_rows, "txn_date"),
            "fit_rows": len(d.fit_rows),
            "calibration_rows": len(d.cal_rows),
        },
        holdout=d.test_rows,
        figures=figures,
        notes=notes,
        baseline_models=baseline_models,
    )
