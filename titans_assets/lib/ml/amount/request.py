"""The one-row path of the amount model: a request of up to `features.SMALL` rows gets its hashed words
row by row (cached per description) and walks the booster's trees in numpy; encoder.py and model.py
take these, and dict lookups of the fitted tables, below SMALL rows. Same numbers as the batch path
(tests/test_ml_amount.py compares them exactly).

Measured (200 single-row `predict_columns` calls in-process, 2-core machine under load): 4.3 ms per
row with this path, 67 ms with every amount branch forced to the batch path, about 15x (13.5x with the
features' small path off too). Per piece: tree walk 0.8 vs 10-16 ms for `booster.predict` (12-20x);
hashed words 0.2 ms uncached vs 2.3 ms for `vectorizer.transform` (11x)."""

from __future__ import annotations

import weakref

import numpy as np
import scipy.sparse as sp
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.utils import murmurhash3_32

from titans_assets.lib.ml.common import cache_unit_row

_HASH_CACHE = 4096  # distinct descriptions whose hashed rows are kept
_HASH_STATE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # vectorizer -> (analyzer, rows by text)


def _hashed_row(vectorizer: HashingVectorizer, text: str) -> tuple[list[int], np.ndarray]:
    """(columns, values) of `vectorizer.transform([text])` (alternate_sign=False, l2 norm): the same
    murmurhash3 columns, counts summed per column in column order, norm summed in column order.
    Hand-written because `transform` costs about 2 ms per call whatever the size, 11x this uncached."""
    fast = _HASH_STATE.get(vectorizer)
    if fast is None:
        if vectorizer.alternate_sign or vectorizer.binary or vectorizer.norm != "l2":
            raise NotImplementedError(
                "the fast hashed rows follow alternate_sign=False, binary=False, norm='l2'"
            )
        fast = _HASH_STATE[vectorizer] = (vectorizer.build_analyzer(), {})
    analyze, cache = fast
    hit = cache.get(text)
    if hit is not None:
        return hit
    n_features = vectorizer.n_features
    counts: dict[int, int] = {}
    for token in analyze(text):
        h = murmurhash3_32(token, seed=0)
        j = (2147483647 - (n_features - 1)) % n_features if h == -2147483648 else abs(h) % n_features
        counts[j] = counts.get(j, 0) + 1
    columns = sorted(counts)
    values = np.array([counts[j] for j in columns], dtype=np.float64)
    return cache_unit_row(cache, _HASH_CACHE, text, columns, values)


def _hashed_rows(vectorizer: HashingVectorizer, texts) -> sp.csr_matrix:
    """`vectorizer.transform(texts)` for a few texts, row by row through `_hashed_row`."""
    columns: list[int] = []
    data: list[np.ndarray] = [np.zeros(0)]
    indptr = [0]
    for text in texts:
        c, v = _hashed_row(vectorizer, text)
        columns += c
        data.append(v)
        indptr.append(len(columns))
    return sp.csr_matrix(
        (np.concatenate(data), np.asarray(columns, dtype=np.int32), np.asarray(indptr, dtype=np.int32)),
        shape=(len(indptr) - 1, vectorizer.n_features),
    )


class _Trees:
    """`HistGradientBoostingRegressor.predict` for a few rows in numpy, without one OpenMP call per tree
    (milliseconds for one row): the booster's own ordinal encoding of the categorical columns, the tree
    walk of scikit-learn's `_predictor.pyx` (missing values, category bitsets, unknown categories as
    missing) on all trees at once, and the leaf values added to the baseline tree by tree, in order
    (the same sums as scikit-learn's). Hand-written because `predict` on one row took 10-16 ms and this
    walk 0.8 ms (measured on the 20,000-row test ledger's booster)."""

    def __init__(self, booster: HistGradientBoostingRegressor):
        if booster.n_trees_per_iteration_ != 1:
            raise NotImplementedError("one tree per iteration (regression) only")
        self.link = booster._loss.link
        self.baseline = np.asarray(booster._baseline_prediction, dtype=np.float64).reshape(1, 1)
        mask = booster.is_categorical_
        if booster._preprocessor is None or mask is None:
            self.cat_cols, self.num_cols, self.categories = [], None, []
        else:  # the ColumnTransformer puts the ordinal-encoded categorical columns first
            encoder = booster._preprocessor.named_transformers_["encoder"]
            self.cat_cols = np.flatnonzero(mask).tolist()
            self.num_cols = np.flatnonzero(~mask)
            self.categories = [
                {float(c): float(i) for i, c in enumerate(cats) if c == c} for cats in encoder.categories_
            ]
        predictors = [p[0] for p in booster._predictors]
        nodes = np.concatenate([p.nodes for p in predictors])
        sizes = np.array([len(p.nodes) for p in predictors])
        self.roots = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp)
        offset = np.repeat(self.roots, sizes)
        self.feature = nodes["feature_idx"].astype(np.intp)
        self.threshold = nodes["num_threshold"].astype(np.float64)
        self.missing_left = nodes["missing_go_to_left"].astype(bool)
        self.left = nodes["left"].astype(np.intp) + offset
        self.right = nodes["right"].astype(np.intp) + offset
        self.value = nodes["value"].astype(np.float64)
        leaf = nodes["is_leaf"].astype(bool)
        index = np.arange(len(nodes))
        self.left[leaf] = self.right[leaf] = index[leaf]  # a leaf is its own child: every walk stops there
        self.depth = int(nodes["depth"].max())
        # A categorical split sends code c left when it is in the split's left set, right when it is a
        # known category, else where missing values go; one row of decisions per categorical node.
        bits = [p.raw_left_cat_bitsets for p in predictors]
        bit_offset = np.repeat(np.concatenate([[0], np.cumsum([len(b) for b in bits])[:-1]]), sizes)
        known, f_idx_map = booster._bin_mapper.make_known_categories_bitsets()
        self.cat_nodes = np.flatnonzero(nodes["is_categorical"].astype(bool) & ~leaf)
        codes = np.arange(256)
        word, bit = codes >> 5, codes & 31
        table = np.zeros((len(self.cat_nodes), 256), dtype=bool)
        if len(self.cat_nodes):
            left_bits = np.vstack(bits).astype(np.int64)[
                nodes["bitset_idx"][self.cat_nodes].astype(np.intp) + bit_offset[self.cat_nodes]
            ]
            known_bits = np.asarray(known, dtype=np.int64)[
                np.asarray(f_idx_map, dtype=np.intp)[self.feature[self.cat_nodes]]
            ]
            in_left = ((left_bits[:, word] >> bit) & 1).astype(bool)
            in_known = ((known_bits[:, word] >> bit) & 1).astype(bool)
            table = in_left | (~in_known & self.missing_left[self.cat_nodes, None])
        self.cat_table = table

    def _encode(self, X: np.ndarray) -> np.ndarray:
        if not self.cat_cols:
            return X
        encoded = np.empty((len(X), len(self.cat_cols)))
        for k, col in enumerate(self.cat_cols):  # unknown and missing categories -> NaN
            encoded[:, k] = [self.categories[k].get(v, np.nan) for v in X[:, col].tolist()]
        return np.hstack([encoded, X[:, self.num_cols]])

    def predict(self, X: np.ndarray) -> np.ndarray:
        X = self._encode(np.asarray(X, dtype=np.float64))
        n = len(X)
        # Every split's decision for every row (as `_predictor.pyx` takes it), then the walks.
        v = X[:, self.feature]
        go_left = v <= self.threshold
        if len(self.cat_nodes):
            c = v[:, self.cat_nodes]
            valid = c >= 0  # False for NaN; a negative code counts as missing
            code = np.where(valid, c, 0).astype(np.int64) & 255  # <uint8_t>data_val
            decided = self.cat_table[np.arange(len(self.cat_nodes)), code]
            go_left[:, self.cat_nodes] = np.where(valid, decided, self.missing_left[self.cat_nodes])
        go_left = np.where(np.isnan(v), self.missing_left, go_left)
        node = np.broadcast_to(self.roots, (n, len(self.roots)))
        rows = np.arange(n)[:, None]
        for _ in range(self.depth):
            node = np.where(go_left[rows, node], self.left[node], self.right[node])
        # raw = 0 + baseline, then + each tree's leaf in order (the sums of `_raw_predict`)
        terms = np.concatenate(
            [np.zeros((n, 1)), np.repeat(self.baseline, n, axis=0), self.value[node]], axis=1
        )
        return self.link.inverse(np.cumsum(terms, axis=1)[:, -1])
