"""The isolation forest's scores for a few rows in numpy (what requests use), equal to scikit-learn's.

It exists because scikit-learn scores one tree per joblib call: one row took 31-39 ms through
`IsolationForest.score_samples` against 0.2-0.8 ms here (2026-12-07, 2-core machine under load).
Batches above `features.SMALL` rows go through scikit-learn."""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import IsolationForest


class _Forest:
    """`IsolationForest.score_samples` (negated: higher = more anomalous) for a few rows in numpy,
    without scikit-learn's per-tree joblib calls (milliseconds for one row): the float32 inputs, the
    tree walk of `Tree.apply` (missing values as each split says), and per tree the leaf's depth plus
    the average path length of its samples minus one, added tree by tree in order, as scikit-learn sums."""

    def __init__(self, forest: IsolationForest):
        from sklearn.ensemble._iforest import _average_path_length

        trees = [e.tree_ for e in forest.estimators_]
        if forest._max_features != forest.n_features_in_:
            raise NotImplementedError("feature subsampling")
        sizes = np.array([t.node_count for t in trees])
        self.roots = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp)
        offset = np.repeat(self.roots, sizes)
        left = np.concatenate([t.children_left for t in trees]).astype(np.intp)
        right = np.concatenate([t.children_right for t in trees]).astype(np.intp)
        leaf = left == -1
        index = np.arange(len(left))
        self.left = np.where(leaf, index, left + offset)  # a leaf is its own child: every walk stops there
        self.right = np.where(leaf, index, right + offset)
        self.feature = np.where(leaf, 0, np.concatenate([t.feature for t in trees])).astype(np.intp)
        self.threshold = np.concatenate([t.threshold for t in trees]).astype(np.float64)
        self.missing_left = np.concatenate([t.missing_go_to_left for t in trees]).astype(bool)
        self.term = np.concatenate(
            [
                dpl + apl - 1.0
                for dpl, apl in zip(forest._decision_path_lengths, forest._average_path_length_per_tree)
            ]
        )
        self.depth = max(t.max_depth for t in trees)
        self.denominator = len(forest.estimators_) * _average_path_length([forest._max_samples])

    def scores(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)  # as score_samples validates it
        n = len(X)
        v = X[:, self.feature]
        go_left = np.where(np.isnan(v), self.missing_left, v <= self.threshold)
        node = np.broadcast_to(self.roots, (n, len(self.roots)))
        rows = np.arange(n)[:, None]
        for _ in range(self.depth):
            node = np.where(go_left[rows, node], self.left[node], self.right[node])
        depths = np.cumsum(np.concatenate([np.zeros((n, 1)), self.term[node]], axis=1), axis=1)[:, -1]
        denominator = self.denominator
        return 2 ** (-np.divide(depths, denominator, out=np.ones_like(depths), where=denominator != 0))
