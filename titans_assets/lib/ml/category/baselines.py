"""The category model's baselines, served like the model when no trained model beats them: the
commonest category, and a lookup of the description (else the merchant) seen in training."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from titans_assets.lib.ml import features as F
from titans_assets.lib.ml.category.model import _TopK


class _Distribution(_TopK):
    """Shared shape of the baselines: per-row class probabilities over `classes_`, served like the model
    (prediction, confidence, top-k alternatives) when no trained model beats them."""

    vocabulary: F.Vocabulary
    n_train_: int

    def proba_of_prepared(self, prepared: pd.DataFrame) -> np.ndarray:
        raise NotImplementedError

    def predict_proba(self, frame: F.Rows) -> np.ndarray:
        if F.input_rows(frame) == 0:
            return np.zeros((0, len(self.classes_)))
        rows = frame if isinstance(frame, pd.DataFrame) else pd.DataFrame(dict(frame))
        return self.proba_of_prepared(F.prepare(rows, self.vocabulary))


class MajorityBaseline(_Distribution):
    """Always the commonest training category; probabilities = training shares."""

    def __init__(self, vocabulary: F.Vocabulary, labels: pd.Series):
        shares = labels.value_counts(normalize=True)
        self.vocabulary, self.classes_, self.n_train_ = (
            vocabulary,
            shares.index.to_numpy(dtype=object),
            len(labels),
        )
        self.prior = shares.to_numpy(dtype=float)

    def proba_of_prepared(self, prepared: pd.DataFrame) -> np.ndarray:
        return np.tile(self.prior, (len(prepared), 1))


class LookupBaseline(_Distribution):
    """Exact cleaned description, else merchant, seen in training -> its category shares (smoothed with
    one pseudo-row of the training shares, so the argmax is its most frequent category); unseen -> majority."""

    def __init__(self, vocabulary: F.Vocabulary, prepared: pd.DataFrame):
        majority = MajorityBaseline(vocabulary, prepared["category"])
        self.vocabulary, self.classes_, self.prior = vocabulary, majority.classes_, majority.prior
        self.n_train_ = len(prepared)
        y = prepared["category"].map({c: i for i, c in enumerate(self.classes_)}).to_numpy()
        self.tables = []
        for key in self._keys(prepared):
            k_codes, k_uniques = pd.factorize(key)
            ok = k_codes >= 0
            counts = sp.csr_matrix(
                (np.ones(ok.sum()), (k_codes[ok], y[ok])), shape=(len(k_uniques), len(self.classes_))
            ).toarray()
            counts += self.prior
            counts /= counts.sum(axis=1, keepdims=True)
            self.tables.append((pd.Index(k_uniques), counts))

    @staticmethod
    def _keys(prepared: pd.DataFrame) -> list[pd.Series]:
        codes, uniques = pd.factorize(prepared["description"])  # clean each distinct description once
        cleaned = F.clean_description(pd.Series(uniques, dtype=object)).to_numpy(dtype=object)
        description = pd.Series(
            np.where(codes >= 0, cleaned[codes], None), index=prepared.index, dtype=object
        )
        return [description, prepared["merchant"]]

    def proba_of_prepared(self, prepared: pd.DataFrame) -> np.ndarray:
        out = np.tile(self.prior, (len(prepared), 1))
        done = np.zeros(len(prepared), dtype=bool)
        for key, (index, table) in zip(self._keys(prepared), self.tables):
            pos = index.get_indexer(key.astype(object))
            hit = (pos >= 0) & ~done & key.notna().to_numpy()
            out[hit] = table[pos[hit]]
            done |= hit
        return out
