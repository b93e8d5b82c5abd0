"""The fitted anomaly model (`AnomalyModel`, what is pickled and served): its tables, the evidence of
its components combined into a score, the flag, the risk level and the reasons. Rows go through
evidence.py (a batch, or a request of a few rows) or request.py (one row)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import IsolationForest

from titans_assets.lib.ml import features as F
from titans_assets.lib.ml.anomaly import evidence
from titans_assets.lib.ml.anomaly.canon import _canon, _canon_columns, _col
from titans_assets.lib.ml.anomaly.constants import (
    _REASON_LEVEL,
    _SHRINK_MEDIAN,
    _SHRINK_SCALE,
    COMPONENTS,
    DEFAULT_WEIGHTS,
)
from titans_assets.lib.ml.anomaly.forest import _Forest
from titans_assets.lib.ml.anomaly.reasons import _reasons
from titans_assets.lib.ml.anomaly.request import predict_one
from titans_assets.lib.ml.anomaly.stats import _clip01, _clip1, _nan_to_num
from titans_assets.lib.ml.features import Rows, Vocabulary, input_rows


@dataclass
class AnomalyModel:
    """Fitted statistics, the isolation forest, the weights and the threshold (picklable)."""

    vocabulary: Vocabulary
    merchant_category: pd.DataFrame  # (merchant, category) key -> n, med, scale
    # merchant key -> n, med, scale, bday_share, day_max, active_days, small_rate, twin_rate
    merchants: pd.DataFrame
    categories: pd.DataFrame  # category key -> n, med, scale, q95
    directions: pd.DataFrame  # "e" (expenses) / "i" (income) -> n, med, scale, q95
    cat_prob: np.ndarray  # P(category | merchant), merchants x categories (expense merchants)
    cat_merchants: pd.Index
    cat_labels: pd.Index
    forest: IsolationForest | None
    forest_ref: np.ndarray  # sorted training isolation scores (higher = more anomalous)
    threshold: float = 0.5
    weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    small_amount: float = 5.0
    min_group: int = 8
    params: dict[str, Any] = field(default_factory=dict)
    new_rate: float | None = None  # share of the latest training rows from a merchant not seen before them
    # merchant key -> components that no longer count for it: the user marked `expected_after` of its
    # flags for that reason as expected (see `expected_suppressions`)
    suppressed: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def _memo(self) -> dict:
        """What requests reuse (dicts of the fitted tables, the forest's arrays): built on first use,
        not pickled."""
        memo = self.__dict__.get("_request_memo")
        if memo is None:
            memo = self._request_memo = {}
        return memo

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_request_memo"}

    # -- components ---------------------------------------------------------------------------------
    def components(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Per-row evidence (p_<component> in [0, 1]), the numbers the reasons quote and the isolation
        forest's inputs (f_*), aligned to frame's index: for inspection and ablations."""
        return pd.DataFrame(self._components(_canon_columns(frame, self.vocabulary)), index=frame.index)

    def _shrunk(self, k, c_n, m_n, mc_n):
        """(centre, spread) of log amount for the z: each level's median and spread (category, merchant,
        merchant under this category) shrunk towards its parent's by its number of rows. `k(table, key,
        column, default)` looks values up for the batch (arrays) and for one request (scalars) alike."""
        centre = k(self.directions, "dir", "med", 0.0)
        spread = k(self.directions, "dir", "scale", 1.0)
        for n_rows, table, key in (
            (c_n, self.categories, "ckey"),
            (m_n, self.merchants, "mkey"),
            (mc_n, self.merchant_category, "mckey"),
        ):
            w_med = n_rows / (n_rows + _SHRINK_MEDIAN)
            w_scale = n_rows / (n_rows + _SHRINK_SCALE)
            centre = w_med * k(table, key, "med", 0.0) + (1.0 - w_med) * centre
            own = k(table, key, "scale", 1.0)
            spread = np.sqrt(w_scale * (own * own) + (1.0 - w_scale) * (spread * spread))
        return centre, spread

    def _components(self, c, isolation: bool = True, memo: dict | None = None) -> dict[str, np.ndarray]:
        """`evidence.components` of canonical rows."""
        return evidence.components(self, c, isolation, memo)

    def _isolation_frame(self, c, stat) -> np.ndarray:
        """`evidence.isolation_frame`: the isolation forest's inputs."""
        return evidence.isolation_frame(c, stat)

    def _fast_forest(self) -> _Forest | None:
        """The forest's arrays for a few rows (None when this forest cannot use them: the sklearn path)."""
        memo = self._memo()
        entry = memo.get("forest")
        if entry is None or entry[0] is not self.forest:
            try:
                fast = _Forest(self.forest)
            except (AttributeError, ImportError, NotImplementedError):
                fast = None
            entry = memo["forest"] = (self.forest, fast)
        return entry[1]

    # -- scores ----------------------------------------------------------------------------------------
    def _novelty(self) -> float:
        """How much a never-seen merchant says: 1 when under 1% of the latest training rows came from a
        merchant not seen before them, falling to 0 at 10% (raw bank strings: every other row is new)."""
        rate = getattr(self, "new_rate", None)
        if rate is None or rate != rate:
            return 1.0
        return _clip1(-math.log10(max(rate, 1e-6)) - 1.0, 0.0, 1.0)

    def _combine(self, comp) -> np.ndarray:
        """Noisy-OR of the weighted evidence. The amount counts at any level (it ranks the rows); any other
        component only from the reporting level up, so weak evidence that no reason would name does not
        lift a row above one with a larger amount."""
        keep = np.ones(len(comp["p_amount"]))
        for name in COMPONENTS:
            wp = self.weights.get(name, 0.0) * _nan_to_num(_col(comp, f"p_{name}"))
            if name != "amount":
                wp = np.where(wp >= _REASON_LEVEL, wp, 0.0)
            keep *= 1.0 - wp
        return _clip01(1.0 - keep)

    def score_rows(self, frame: pd.DataFrame) -> np.ndarray:
        """Scores only (no reasons): what evaluation and threshold search need."""
        return self._combine(self._components(_canon(frame, self.vocabulary)))

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        """anomaly_score, is_anomaly, risk_level and reasons per row, aligned to frame's index.

        Accepts warehouse rows and service requests alike (`date` for `txn_date`; account,
        category, description, payment_method, reference optional). In-frame context (repeats,
        bursts, charges per day) is computed among the rows given together."""
        return prediction_frame(self, frame)

    def predict_columns(self, rows: Rows) -> dict[str, Any]:
        """`predict`'s columns (anomaly_score, is_anomaly, risk_level as arrays, reasons as a list), of
        a non-empty DataFrame or a request's columns (`features.Rows`)."""
        n = input_rows(rows)
        if n == 1 and n <= F.SMALL:
            return predict_one(self, rows)
        memo = self._memo() if n <= F.SMALL else None
        return self._predictions(_canon_columns(rows, self.vocabulary), memo)

    def _predict_canon(self, c, index: pd.Index, memo: dict | None = None) -> pd.DataFrame:
        return pd.DataFrame(self._predictions(c, memo), index=index)

    def _predictions(self, c, memo: dict | None = None) -> dict[str, Any]:
        comp = self._components(c, memo=memo)
        score = self._combine(comp)
        flagged = score >= self.threshold
        risk = risk_levels(score, self.threshold)
        reasons = _reasons(comp, c, self, flagged, risk != "low")
        return {
            "anomaly_score": score,
            "is_anomaly": flagged,
            "risk_level": risk.astype(object),
            "reasons": reasons,
        }


def risk_levels(score: np.ndarray, threshold: float) -> np.ndarray:
    """high at or above the threshold, medium from half of it, low below."""
    return np.where(score >= threshold, "high", np.where(score >= threshold / 2.0, "medium", "low"))


def prediction_frame(model, frame: pd.DataFrame) -> pd.DataFrame:
    """`model.predict_columns(frame)` as a DataFrame on frame's index (typed empty columns for no rows)."""
    if len(frame) == 0:
        return pd.DataFrame(
            {
                "anomaly_score": pd.Series(dtype=float),
                "is_anomaly": pd.Series(dtype=bool),
                "risk_level": pd.Series(dtype=object),
                "reasons": pd.Series(dtype=object),
            },
            index=frame.index,
        )
    return pd.DataFrame(model.predict_columns(frame), index=frame.index)
