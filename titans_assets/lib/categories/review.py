"""The review queue: which transactions are most worth a person's look.

`scores` / `rank` order the rows whose category is uncertain (`needs_review`) by doubt, money at
stake, a never-labelled merchant, that merchant's open rows and the row's rank among them
(`ReviewWeights`). Pure functions over arrays and frames: the dashboard's Review page and the
correction-loop benchmark (benchmarks/correction_loop.py).

Design notes (the score and why each factor): docs/design-notes.md#titans_assetslibcategoriesreviewpy
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

# category_source values (marts.fct_transactions_enriched) that settle a row: nothing to review
SETTLED_SOURCES = ("export", "correction", "rule")


@dataclass(frozen=True)
class ReviewWeights:
    new_merchant_boost: float = 2.0
    # 0: a merchant's open rows do not count; 2 measured best of 1, 2, 3 (benchmarks/correction_loop.py)
    merchant_rows_weight: float = 2.0
    merchant_decay: bool = True  # a merchant's k-th row is divided by k (one page, many merchants)

    def __post_init__(self) -> None:
        if self.new_merchant_boost < 1.0:
            raise ValueError(f"new_merchant_boost must be >= 1 (got {self.new_merchant_boost})")
        if self.merchant_rows_weight < 0.0:
            raise ValueError(f"merchant_rows_weight must be >= 0 (got {self.merchant_rows_weight})")


DEFAULT_WEIGHTS = ReviewWeights()


def _floats(values) -> np.ndarray:
    """Numbers as float64; None, NaN and text that is no number become NaN."""
    return pd.to_numeric(pd.Series(np.asarray(values, dtype=object)), errors="coerce").to_numpy(dtype=float)


def uncertainty(confidence) -> np.ndarray:
    """1 - confidence, clipped to [0, 1]; a missing confidence (nothing categorised the row) is 1."""
    c = _floats(confidence)
    return 1.0 - np.clip(np.where(np.isfinite(c), c, 0.0), 0.0, 1.0)


def amount_weight(amount) -> np.ndarray:
    """log(1 + |amount|); a missing amount weighs 0 (nothing to misplace)."""
    a = _floats(amount)
    return np.log1p(np.abs(np.where(np.isfinite(a), a, 0.0)))


def merchant_key(merchant: pd.Series, description: pd.Series | None = None) -> pd.Series:
    """The merchant a row belongs to, for grouping: the merchant when known, else the description
    (trimmed, lower case), else '' (rows with neither are one group)."""
    m = merchant.astype(object).where(merchant.notna(), None)
    key = m.map(lambda v: str(v).strip().lower() if v is not None else "")
    if description is not None:
        d = description.astype(object).map(
            lambda v: str(v).strip().lower() if v is not None and v == v else ""
        )
        key = key.where(key != "", d)
    return key


def new_merchant_mask(keys: pd.Series, labelled_keys: Iterable[str]) -> np.ndarray:
    """True where the row's merchant key has never been labelled (no export label, no correction)."""
    known = {k for k in labelled_keys if k}
    return ~keys.isin(known).to_numpy() & (keys != "").to_numpy()


def needs_review(category_source: pd.Series) -> np.ndarray:
    """Rows the queue holds: those a model categorised, or nothing did (source 'model', 'none' or null)."""
    return ~category_source.astype(object).isin(SETTLED_SOURCES).to_numpy()


def scores(
    confidence, amount, is_new: np.ndarray, keys: pd.Series, weights: ReviewWeights = DEFAULT_WEIGHTS
) -> np.ndarray:
    """The review score of each row (see the module docstring), same order as the inputs."""
    base = uncertainty(confidence) * amount_weight(amount)
    base = base * np.where(np.asarray(is_new, dtype=bool), weights.new_merchant_boost, 1.0)
    keys = pd.Series(keys.to_numpy(dtype=object))
    if weights.merchant_rows_weight > 0:
        open_rows = keys.map(keys.value_counts()).to_numpy(dtype=float)
        base = base * (1.0 + np.log(open_rows)) ** weights.merchant_rows_weight
    if weights.merchant_decay:
        order = pd.DataFrame({"key": keys, "s": base, "i": np.arange(len(keys))})
        order = order.sort_values(["key", "s", "i"], ascending=[True, False, True], kind="stable")
        within = np.empty(len(keys))
        within[order["i"].to_numpy()] = order.groupby("key", sort=False).cumcount().to_numpy()
        base = base / (1.0 + within)
    return base


def rank(
    frame: pd.DataFrame,
    labelled_keys: Iterable[str],
    weights: ReviewWeights = DEFAULT_WEIGHTS,
    limit: int | None = None,
) -> pd.DataFrame:
    """The queue: `frame`'s rows (columns confidence, amount, merchant; description optional) with
    `merchant_key`, `new_merchant` and `review_score`, highest score first (ties: the larger amount, then
    the original order), at most `limit` rows. The caller passes only rows that need review."""
    if frame.empty:
        return frame.assign(
            merchant_key=pd.Series(dtype=object),
            new_merchant=pd.Series(dtype=bool),
            review_score=pd.Series(dtype=float),
        )
    keys = merchant_key(frame["merchant"], frame["description"] if "description" in frame else None)
    is_new = new_merchant_mask(keys, labelled_keys)
    s = scores(frame["confidence"], frame["amount"], is_new, keys, weights)
    out = frame.assign(
        merchant_key=keys.to_numpy(),
        new_merchant=is_new,
        review_score=s,
        _abs=np.abs(pd.to_numeric(frame["amount"], errors="coerce").fillna(0.0).to_numpy()),
        _pos=np.arange(len(frame)),
    )
    out = out.sort_values(["review_score", "_abs", "_pos"], ascending=[False, False, True], kind="stable")
    out = out.drop(columns=["_abs", "_pos"])
    return out if limit is None else out.head(int(limit))
