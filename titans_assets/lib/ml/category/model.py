"""The fitted category model (`CategoryModel`) and the serving output shared with its baselines
(`_TopK`: prediction, confidence, top-k alternatives in the user's spelling)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from titans_assets.lib.ml import features as F
from titans_assets.lib.ml.category import request
from titans_assets.lib.ml.category.encoder import _Encoder


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z


class _TopK:
    """The serving output of any category predictor with `predict_proba` and `classes_`: the most
    likely category, its probability and the top-k alternatives (the model and its baselines alike)."""

    classes_: np.ndarray
    top_k: int = 3
    display: dict[str, str] | None = None  # normalized label -> the user's spelling (see `display_spellings`)
    display_classes_: np.ndarray | None = None  # `classes_` in the user's spelling

    def predict_proba(self, frame: F.Rows) -> np.ndarray:
        raise NotImplementedError

    def set_display(self, spellings: dict[str, str]) -> None:
        """Answer in the user's spelling: `spellings` maps each normalized label (a class) to it; a class
        without one is shown normalized. The classes, probabilities and metrics stay normalized."""
        self.display = {c: spellings[c] for c in self.classes_.tolist() if c in spellings}
        shown = np.empty(len(self.classes_), dtype=object)
        shown[:] = [self.display.get(c, c) for c in self.classes_.tolist()]
        self.display_classes_ = shown

    def top(self, rows: F.Rows, top_k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The k most likely categories per row (in the user's spelling) and their probabilities, as
        (rows x k) arrays: what `predict_columns` answers, before it becomes one list per row."""
        k = max(1, min(int(top_k or self.top_k), len(self.classes_)))
        proba = self.predict_proba(rows)
        order = np.argsort(-proba, axis=1, kind="stable")[:, :k]
        top_p = np.take_along_axis(proba, order, axis=1)
        names = (self.classes_ if self.display_classes_ is None else self.display_classes_)[order]
        return names, top_p

    def predict_columns(self, rows: F.Rows, top_k: int | None = None) -> dict[str, np.ndarray]:
        """`predict`'s columns as arrays, of a DataFrame or a request's columns (`features.Rows`)."""
        n = F.input_rows(rows)
        names, top_p = self.top(rows, top_k)
        alternatives = np.empty(n, dtype=object)
        for i, (cs, ps) in enumerate(zip(names.tolist(), top_p.tolist())):
            alternatives[i] = [{"category": str(c), "confidence": float(p)} for c, p in zip(cs, ps)]
        return {
            "prediction": names[:, 0] if n else np.zeros(0, dtype=object),
            "confidence": top_p[:, 0] if n else np.zeros(0),
            "alternatives": alternatives,
        }

    def predict(self, frame: pd.DataFrame, top_k: int | None = None) -> pd.DataFrame:
        return pd.DataFrame(self.predict_columns(frame, top_k), index=frame.index)


class CategoryModel(_TopK):
    """Fitted category classifier (picklable).

    `predict(frame, top_k=None)` -> DataFrame (index of `frame`): prediction, confidence, alternatives;
    `predict_proba(frame)` -> ndarray (rows x `classes_`), calibrated, rows sum to 1."""

    def __init__(
        self,
        vocabulary: F.Vocabulary,
        encoder: _Encoder,
        classes: np.ndarray,
        weights: np.ndarray,
        intercept: np.ndarray,
        temperature: float,
        top_k: int,
        n_train: int,
    ):
        self.vocabulary = vocabulary
        self.encoder = encoder
        self.classes_ = classes
        self.weights = weights
        self.intercept = intercept
        self.temperature = temperature
        self.top_k = top_k
        self.n_train_ = n_train

    def _logits(self, prepared: pd.DataFrame | dict[str, np.ndarray]) -> np.ndarray:
        n = F.n_rows(prepared)
        if n <= F.SMALL:  # a request: row by row
            return request.logits(self, prepared)
        return np.asarray(self.encoder.transform(prepared) @ self.weights, dtype=np.float64) + self.intercept

    def proba_of_prepared(self, prepared: pd.DataFrame | dict[str, np.ndarray]) -> np.ndarray:
        return _softmax(self._logits(prepared) / self.temperature)

    def predict_proba(self, frame: F.Rows) -> np.ndarray:
        if F.input_rows(frame) == 0:
            return np.zeros((0, len(self.classes_)))
        return self.proba_of_prepared(F.prepare_columns(frame, self.vocabulary))

    def __repr__(self) -> str:
        return (
            f"CategoryModel({len(self.classes_)} classes, {self.encoder.n_features} features, "
            f"T={self.temperature:.3f}, n_train={self.n_train_})"
        )
