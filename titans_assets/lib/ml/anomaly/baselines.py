"""One-rule baselines (`RobustBaseline`) the model must beat, served like it when it does not."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from titans_assets.lib.ml.anomaly.canon import _canon_columns, _col, _n
from titans_assets.lib.ml.anomaly.constants import _MAD_K, _MIN_SCALE
from titans_assets.lib.ml.anomaly.lookup import _lookup
from titans_assets.lib.ml.anomaly.model import prediction_frame, risk_levels
from titans_assets.lib.ml.anomaly.reasons import _baseline_reasons
from titans_assets.lib.ml.anomaly.stats import _robust_table, _sigmoid
from titans_assets.lib.ml.features import Rows, Vocabulary


class RobustBaseline:
    """A one-rule baseline served like the model when no trained model beats it.

    `abs_amount`: the larger |amount|, the more anomalous; `category_zscore`: the robust z of log
    |amount| within the row's category (all expenses, or all income, when the category has no
    history). The score is a strictly increasing logistic of that raw value (so its ranking, and the
    ranking metrics, are the raw value's), flagged at a threshold chosen like the model's: on a
    validation part of the training period, never on the holdout."""

    def __init__(self, name: str, vocabulary: Vocabulary, history: pd.DataFrame):
        if name not in ("abs_amount", "category_zscore"):
            raise ValueError(f"unknown anomaly baseline {name!r}")
        self.name, self.vocabulary, self.threshold = name, vocabulary, 0.5
        self.categories = _robust_table(history, "ckey")
        self.directions = _robust_table(history, "dir")
        x = history["log_abs"].to_numpy(dtype=float)
        med = float(np.median(x)) if len(x) else 0.0
        self.overall = (med, max(_MAD_K * float(np.median(np.abs(x - med))) if len(x) else 1.0, _MIN_SCALE))

    def _raw(self, c) -> dict[str, np.ndarray]:
        gmed = _lookup(self.directions, _col(c, "dir"), "med", 0.0)
        gscale = _lookup(self.directions, _col(c, "dir"), "scale", 1.0)
        if self.name == "abs_amount":  # one scale for every row: the ranking is that of |amount|
            med, scale = self.overall
            return {
                "raw": (_col(c, "log_abs") - med) / scale,
                "med": np.full(_n(c), med),
                "known": np.zeros(_n(c), bool),
                "all": True,
            }
        med = _lookup(self.categories, _col(c, "ckey"), "med")
        scale = _lookup(self.categories, _col(c, "ckey"), "scale")
        known = ~np.isnan(med)
        med, scale = np.where(known, med, gmed), np.where(known, scale, gscale)
        return {"raw": (_col(c, "log_abs") - med) / scale, "med": med, "known": known}

    def _scores(self, c) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        r = self._raw(c)
        return _sigmoid(np.nan_to_num(r["raw"], nan=0.0) - 3.0), r

    def predict_columns(self, rows: Rows) -> dict[str, Any]:
        c = _canon_columns(rows, self.vocabulary)
        score, r = self._scores(c)
        flagged = score >= self.threshold
        risk = risk_levels(score, self.threshold)
        reasons = _baseline_reasons(self.name, c, r, risk)
        return {
            "anomaly_score": score,
            "is_anomaly": flagged,
            "risk_level": risk.astype(object),
            "reasons": reasons,
        }

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        return prediction_frame(self, frame)


BASELINES = ("abs_amount", "category_zscore")
