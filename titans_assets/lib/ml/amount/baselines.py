"""The amount model's baselines (global, category and description medians with empirical intervals):
served like the model, compared with it by the promotion gate, served when it loses."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from titans_assets.lib.ml import features as F
from titans_assets.lib.ml.amount.rows import _enrich


class MedianBaseline:
    """A baseline served like the model: the training-period median |amount| (of the row's category when
    `per_category` and the category is known, else of all expenses) with the empirical (1-level)/2 ..
    (1+level)/2 quantiles as its interval. The sorted training amounts are kept, so any level works."""

    def __init__(
        self, name: str, vocabulary: F.Vocabulary, train_p: pd.DataFrame, level: float, per_category: bool
    ):
        a = np.abs(train_p["amount"].to_numpy(dtype=float))
        self.name, self.vocabulary, self.level, self.n_train = name, vocabulary, level, len(a)
        self.all = np.sort(a)
        self.by_category: dict[str, np.ndarray] = {}
        if per_category:
            cats = train_p["category"].to_numpy(dtype=object)
            for c in pd.unique(cats[pd.notna(cats)]):
                self.by_category[c] = np.sort(a[cats == c])

    def _probabilities(self, level: float | None) -> tuple[float, list[float]]:
        """The level asked (the trained one when None) and its lower, median and upper probabilities."""
        level = self.level if level is None else float(level)
        if not 0 < level < 1:
            raise ValueError(f"level must be in (0, 1), got {level}")
        return level, [(1 - level) / 2, 0.5, (1 + level) / 2]

    def predict_columns(
        self, frame: F.Rows, level: float | None = None, explain: bool = True
    ) -> dict[str, Any]:
        level, qs = self._probabilities(level)
        cats = np.asarray(F.column(F.prepare_columns(frame, self.vocabulary), "category"), dtype=object)
        table = {c: np.quantile(v, qs) for c, v in self.by_category.items()}
        fallback = np.quantile(self.all, qs)
        q = np.array(
            [table.get(c, fallback) if isinstance(c, str) else fallback for c in cats.tolist()], dtype=float
        ).reshape(len(cats), 3)
        factors = None
        if explain:
            factors = [
                {
                    "baseline": self.name,
                    "median": round(float(m), 2),
                    "n_history": int(len(self.by_category[c])) if c in self.by_category else self.n_train,
                    "unknown_category": bool(self.by_category) and c not in self.by_category,
                }
                for c, m in zip(cats.tolist(), q[:, 1].tolist())
            ]
        return {
            "predicted_amount": q[:, 1],
            "lower": q[:, 0],
            "upper": q[:, 2],
            "level": level,
            "factors": factors if explain else [None] * len(cats),
        }

    def predict(self, frame: pd.DataFrame, level: float | None = None, explain: bool = True) -> pd.DataFrame:
        if len(frame) == 0:
            return pd.DataFrame(
                {c: [] for c in ("predicted_amount", "lower", "upper", "level", "factors")}, index=frame.index
            )
        return pd.DataFrame(self.predict_columns(frame, level, explain), index=frame.index)


class DescriptionMedianBaseline(MedianBaseline):
    """The description median, served like the model: the training-period median |amount| of the rows
    whose cleaned description (`features.clean_description_text`, the key of the model's merchant
    lookup) is the request's, else of the request's category, else of all expenses. The interval is the
    empirical (1-level)/2 .. (1+level)/2 quantiles of the same training amounts when that description has
    at least `min_interval_rows` of them, else of the category's (else of all), widened to hold the point:
    a handful of identical amounts would give an interval of zero width."""

    def __init__(
        self,
        name: str,
        vocabulary: F.Vocabulary,
        train_p: pd.DataFrame,
        level: float,
        min_interval_rows: int = 20,
    ):
        super().__init__(name, vocabulary, train_p, level, per_category=True)
        a = np.abs(train_p["amount"].to_numpy(dtype=float))
        keys = _enrich(train_p)["_desc"].to_numpy(dtype=object)
        known = pd.notna(keys)
        groups = pd.Series(a[known]).groupby(keys[known], sort=False).indices
        self.by_description = {k: np.sort(a[known][idx]) for k, idx in groups.items()}
        self.min_interval_rows = int(min_interval_rows)

    def predict_columns(
        self, frame: F.Rows, level: float | None = None, explain: bool = True
    ) -> dict[str, Any]:
        level, qs = self._probabilities(level)
        rows = _enrich(F.prepare_columns(frame, self.vocabulary))
        cats = np.asarray(F.column(rows, "category"), dtype=object).tolist()
        descs = np.asarray(F.column(rows, "_desc"), dtype=object).tolist()
        memo: dict[Any, tuple] = {}

        def answer(d: Any, c: Any) -> tuple:
            """(lower, median, upper, n of the served median, match) of one (description, category)."""
            hit = memo.get((d, c))
            if hit is None:
                cat = self.by_category.get(c) if isinstance(c, str) else None
                spread = cat if cat is not None else self.all
                own = self.by_description.get(d) if d is not None else None
                values, match = (
                    (own, "description")
                    if own is not None
                    else (cat, "category")
                    if cat is not None
                    else (self.all, "global")
                )
                med = float(np.quantile(values, 0.5))
                lo, hi = np.quantile(
                    values if len(values) >= self.min_interval_rows else spread, [qs[0], qs[2]]
                )
                hit = memo[(d, c)] = (min(float(lo), med), med, max(float(hi), med), len(values), match)
            return hit

        q = [answer(d, c) for d, c in zip(descs, cats)]
        factors = None
        if explain:
            factors = [
                {
                    "baseline": self.name,
                    "median": round(m, 2),
                    "n_history": int(n),
                    "match": match,
                    "unknown_category": not (isinstance(c, str) and c in self.by_category),
                }
                for (_, m, _, n, match), c in zip(q, cats)
            ]
        return {
            "predicted_amount": np.array([r[1] for r in q], dtype=float),
            "lower": np.array([r[0] for r in q], dtype=float),
            "upper": np.array([r[2] for r in q], dtype=float),
            "level": level,
            "factors": factors if explain else [None] * len(cats),
        }


def _baseline_models(
    train_p: pd.DataFrame, vocabulary: F.Vocabulary, level: float
) -> dict[str, MedianBaseline]:
    """Training-period medians (global, per category, per cleaned description) with their empirical
    intervals: what the gate compares the model with, and serves when the model loses."""
    return {
        "global_median": MedianBaseline("global_median", vocabulary, train_p, level, per_category=False),
        "category_median": MedianBaseline("category_median", vocabulary, train_p, level, per_category=True),
        "description_median": DescriptionMedianBaseline("description_median", vocabulary, train_p, level),
    }
