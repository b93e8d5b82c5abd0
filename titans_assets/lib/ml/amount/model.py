"""The fitted amount model (`AmountModel`, what is pickled and served): predictions with their
conformal intervals, for a DataFrame or a request's columns."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.feature_extraction.text import HashingVectorizer
from threadpoolctl import ThreadpoolController

from titans_assets.lib.ml import features as F
from titans_assets.lib.ml.amount import reasons
from titans_assets.lib.ml.amount.conformal import _calibration_keys, _conformal_bounds, _match_groups
from titans_assets.lib.ml.amount.encoder import _Encoder, _positions, _State
from titans_assets.lib.ml.amount.request import _Trees
from titans_assets.lib.ml.amount.rows import _SEP, _enrich, _tiers

_GLOBAL_PROBS = np.linspace(0.0, 1.0, 201)


_CONTROLLER: list[ThreadpoolController] = []


def _threads(n: int | None):
    """`threadpool_limits(limits=n)` with one ThreadpoolController for the process (building one looks
    up every loaded library: milliseconds per call)."""
    if not n:
        return nullcontext()
    if not _CONTROLLER:
        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0].limit(limits=n)


@dataclass
class AmountModel:
    """The fitted expense-amount model (picklable).

    `predict(frame, level=None, explain=True)` -> predicted_amount, lower, upper, level, factors."""

    vocabulary: F.Vocabulary
    params: dict[str, Any]
    state: _State
    vectorizer: HashingVectorizer
    booster: HistGradientBoostingRegressor
    codes: dict[str, dict[str, int]]
    feature_names: list[str]
    calibration: dict[tuple[str, str], np.ndarray]  # (category or '*', tier) -> sorted signed log residuals
    global_quantiles: np.ndarray  # log1p|amount| of the training period at `_GLOBAL_PROBS`
    category_report: pd.DataFrame  # per category: mean_amount, median_amount, n
    global_mean: float  # training-period mean and median |amount| (all categories)
    global_median: float
    level: float = 0.9
    n_train: int = 0
    point: str = "booster"  # or "lookup": the shrunk merchant / category median (chosen on calibration MAE)
    notes: list[str] = field(default_factory=list)

    def _encoder(self) -> _Encoder:
        return _Encoder(self.params, self.vectorizer)

    def _fast(self) -> dict[str, Any]:
        """What small requests reuse (the tree arrays, conformal offsets, index dicts): built on first
        use, not pickled."""
        fast = self.__dict__.get("_fast_state")
        owner = (self.booster, self.calibration, self.category_report)
        if fast is None or any(
            a is not b for a, b in zip(fast["owner"], owner)
        ):  # refitted parts: start over
            fast = self._fast_state = {"owner": owner, "bounds": {}, "memo": {}}
        return fast

    def _trees(self) -> _Trees | None:
        """The booster's trees as arrays (None when this booster cannot use them: the sklearn path)."""
        fast = self._fast()
        if "trees" not in fast:
            try:
                fast["trees"] = _Trees(self.booster)
            except (AttributeError, KeyError, NotImplementedError):
                fast["trees"] = None
        return fast["trees"]

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_fast_state"}

    def _bounds(
        self, categories: np.ndarray, tiers: np.ndarray, matches: np.ndarray, level: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Conformal offsets (log space) per row: the first calibrated set of `_calibration_keys`
        (category and merchant match within its input tier, falling back to the pooled tier)."""
        memo = self._fast()["bounds"]
        if len(memo) > 10_000:  # arbitrary request categories and levels: keep the memo bounded
            memo.clear()
        keys = [f"{c}{_SEP}{t}{_SEP}{m}" for c, t, m in zip(categories, tiers, matches)]
        if len(keys) > F.SMALL:
            codes, uniques = pd.factorize(pd.Series(keys, dtype=object))
        else:
            codes, uniques = np.arange(len(keys)), keys
        lo_u, hi_u = np.empty(len(uniques)), np.empty(len(uniques))
        for j, key in enumerate(uniques):
            bounds = memo.get((key, level))
            if bounds is None:
                c, t, m = key.split(_SEP)
                scores = next(
                    self.calibration[k] for k in _calibration_keys(c, t, m) if k in self.calibration
                )
                bounds = memo[(key, level)] = _conformal_bounds(scores.astype(float), level)[:2]
            lo_u[j], hi_u[j] = bounds
        lo, hi = lo_u[codes], hi_u[codes]
        return lo, hi

    def _predict_rows(self, rows: pd.DataFrame, text, level: float) -> dict[str, Any]:
        if not 0 < level < 1:
            raise ValueError(f"level must be in (0, 1), got {level}")
        X, merchant = self._encoder().columns(self.state, rows, self.codes, text)
        if self.point == "booster":
            values = np.column_stack([X[c] for c in self.feature_names])
            trees = self._trees() if len(values) <= F.SMALL else None
            if trees is not None:
                pred_log = trees.predict(values)
            else:
                with _threads(self.params.get("threads")):
                    pred_log = self.booster.predict(values)
        else:
            pred_log = X["merchant_median"]
        cats = np.asarray(F.column(rows, "category"), dtype=object)
        known = _positions(self.state.category.index, cats, self.state.memo, "category") >= 0
        lo, hi = self._bounds(cats, _tiers(rows), _match_groups(merchant[4]), level)
        lower_log, upper_log = pred_log + lo, pred_log + hi
        if (~known).any():  # unknown or missing category: global median and empirical quantiles
            g_lo, g_mid, g_hi = np.interp(
                [(1 - level) / 2, 0.5, (1 + level) / 2], _GLOBAL_PROBS, self.global_quantiles
            )
            pred_log = np.where(known, pred_log, g_mid)
            lower_log = np.where(known, lower_log, g_lo)
            upper_log = np.where(known, upper_log, g_hi)
        predicted = np.round(np.maximum(np.expm1(pred_log), 0.01), 2)
        lower = np.minimum(np.floor(np.maximum(np.expm1(lower_log), 0.0) * 100) / 100, predicted)
        upper = np.maximum(np.ceil(np.expm1(upper_log) * 100) / 100, predicted)
        return {
            "X": X,
            "merchant": merchant,
            "known": known,
            "level": level,
            "predicted": predicted,
            "lower": lower,
            "upper": upper,
        }

    def predict(self, frame: pd.DataFrame, level: float | None = None, explain: bool = True) -> pd.DataFrame:
        """One row per input row (same index): predicted_amount, lower, upper (currency units, >= 0),
        level, factors (a dict per row; None when explain=False). Needs category and txn_date (or
        date); payment_method, description and reference are optional."""
        if len(frame) == 0:
            columns = ["predicted_amount", "lower", "upper", "level", "factors"]
            return pd.DataFrame({c: [] for c in columns}, index=frame.index)
        return pd.DataFrame(self.predict_columns(frame, level, explain), index=frame.index)

    def predict_columns(
        self, frame: F.Rows, level: float | None = None, explain: bool = True
    ) -> dict[str, Any]:
        """`predict`'s columns (arrays; level a float, factors a list), of a non-empty DataFrame or a
        request's columns (`features.Rows`)."""
        level = self.level if level is None else float(level)
        rows = _enrich(F.prepare_columns(frame, self.vocabulary))
        r = self._predict_rows(rows, self._encoder().text_matrix(rows), level)
        factors = (
            reasons.factors(
                rows, r, self.category_report, self._fast()["memo"], self.global_mean, self.global_median
            )
            if explain
            else [None] * F.input_rows(frame)
        )
        return {
            "predicted_amount": r["predicted"],
            "lower": r["lower"],
            "upper": r["upper"],
            "level": level,
            "factors": factors,
        }
