"""The category model's features: prepared rows -> one sparse matrix (TF-IDF of the text, payment
method, amount bins, scaled numeric row features), for training and for batches. A request of a few
rows is encoded by request.py, entry for entry the same."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer, TfidfVectorizer

from titans_assets.lib.ml import features as F
from titans_assets.lib.ml.category import request


def _distinct(text: pd.Series | np.ndarray) -> tuple[np.ndarray, pd.Index]:
    codes, uniques = pd.factorize(text, sort=False)
    return codes, pd.Index(uniques, dtype=object)


class _TextBlock:
    """TF-IDF of one analyzer, fitted on distinct texts; keeps terms that appear in `min_df` training rows.
    Its caches are left out of pickles: `_fast` (request.py's one-row state) and `_keys` (the bulk
    n-gram counter's vocabulary keys)."""

    def __init__(self, analyzer: str, ngram: tuple[int, int]):
        self.analyzer, self.ngram = analyzer, ngram

    def fit_transform(self, uniques: pd.Index, weight: np.ndarray, min_df: int) -> sp.csr_matrix:
        counter = CountVectorizer(analyzer=self.analyzer, ngram_range=self.ngram, dtype=np.float64)
        try:
            counts = counter.fit_transform(uniques).tocsc()
            terms = np.empty(len(counter.vocabulary_), dtype=object)
            terms[list(counter.vocabulary_.values())] = list(counter.vocabulary_)
        except ValueError:  # not a single term (e.g. only empty or one-letter texts)
            counts, terms = sp.csc_matrix((len(uniques), 0)), np.empty(0, dtype=object)
        present = counts.copy()
        present.data[:] = 1.0
        row_df = present.T @ weight  # rows (not distinct texts) holding each term
        keep = np.flatnonzero(row_df >= min_df)
        if len(keep) == 0:  # tiny data: keep everything rather than nothing
            keep = np.arange(len(terms))
        if len(keep) == 0:  # a term no text holds: an all-zero block
            terms, keep, counts = (
                np.array(["\x00"], dtype=object),
                np.array([0]),
                sp.csc_matrix((len(uniques), 1)),
            )
        counts = counts[:, keep].tocsr()
        tfidf = TfidfTransformer(sublinear_tf=True).fit(counts)
        self.__dict__.pop("_fast", None)
        self.__dict__.pop("_keys", None)
        self.vectorizer = TfidfVectorizer(
            analyzer=self.analyzer,
            ngram_range=self.ngram,
            sublinear_tf=True,
            vocabulary=terms[keep].tolist(),
            dtype=np.float64,
        )
        self.vectorizer.idf_ = tfidf.idf_
        return tfidf.transform(counts)

    def transform(self, uniques: pd.Index) -> sp.csr_matrix:
        v = self.vectorizer
        if (
            len(uniques) > F.SMALL
            and self.analyzer in ("char_wb", "word")
            and v.preprocessor is None
            and v.tokenizer is None
            and v.strip_accents is None
            and v.stop_words is None
        ):
            # many texts: n-grams counted in bulk (lib/ml/ngrams.py), the same counts as scikit-learn's
            from titans_assets.lib.ml import ngrams

            keys = self.__dict__.get("_keys")
            if keys is None:
                v.transform([""])  # sets vocabulary_ from the fixed vocabulary
                keys = self._keys = (
                    ngrams.vocabulary_keys(v.vocabulary_)
                    if self.analyzer == "char_wb"
                    else ngrams.vocabulary_index(v.vocabulary_)
                )
            counts = (
                ngrams.char_wb_counts(
                    list(uniques), v.vocabulary_, v.ngram_range, v.build_analyzer(), v.lowercase, keys
                )
                if self.analyzer == "char_wb"
                else ngrams.word_counts(
                    list(uniques), v.vocabulary_, v.ngram_range, v.token_pattern, v.lowercase, keys
                )
            )
            if counts is not None:  # then scikit-learn's own TF-IDF step
                return v._tfidf.transform(counts, copy=False)
        return v.transform(uniques)

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("_fast", "_keys")}

    @property
    def size(self) -> int:
        return len(self.vectorizer.vocabulary_)


class _Encoder:
    """Prepared rows -> one sparse matrix: text blocks, payment method, amount bins, numeric row features.
    Its caches are left out of pickles: `_pm_index` (request.py's) and `_order`."""

    def __init__(self, params: dict[str, Any]):
        self.char = _TextBlock(str(params["char_analyzer"]), tuple(params["char_ngram"]))
        self.word = _TextBlock("word", tuple(params["word_ngram"]))
        self.min_df = int(params["min_df"])
        self.n_bins = int(params["amount_bins"])
        self.numeric_weight = float(params["numeric_weight"])

    def fit_transform(self, prepared: pd.DataFrame) -> sp.csr_matrix:
        for cached in ("_pm_index", "_order"):
            self.__dict__.pop(cached, None)
        codes, uniques = _distinct(F.text_of(prepared))
        weight = np.bincount(codes, minlength=len(uniques)).astype(np.float64)
        text = sp.hstack(
            [
                self.char.fit_transform(uniques, weight, self.min_df),
                self.word.fit_transform(uniques, weight, self.min_df),
            ],
            format="csr",
        )
        self.payment_methods = sorted(prepared["payment_method"].dropna().unique().tolist())
        numeric = F.row_features(prepared)
        self.numeric_columns = list(numeric.columns)
        self.numeric_mean = numeric.mean().fillna(0.0).to_numpy()
        scale = numeric.std(ddof=0).fillna(0.0).to_numpy()
        self.numeric_scale = np.where(scale > 1e-12, scale, 1.0)
        log_amount = numeric["log_abs_amount"].dropna().to_numpy()
        qs = np.linspace(0, 1, self.n_bins + 1)[1:-1]
        self.amount_edges = np.unique(np.quantile(log_amount, qs)) if len(log_amount) else np.zeros(0)
        return self._assemble(prepared, text[codes], numeric[self.numeric_columns].to_numpy(dtype=float))

    def transform(self, prepared: pd.DataFrame | dict[str, np.ndarray]) -> sp.csr_matrix:
        """Prepared rows (a DataFrame from `features.prepare` or the columns of `prepare_columns`) ->
        the feature matrix. Up to `features.SMALL` rows (a request) are encoded row by row
        (`request.entries`): the same matrix, entry for entry, as the batch path."""
        n = F.n_rows(prepared)
        if n <= F.SMALL:
            return sp.csr_matrix(request.entries(self, prepared), shape=(n, self.n_features))
        texts = F.text_values(F.column(prepared, "description"), F.column(prepared, "reference"))
        codes, uniques = _distinct(texts)
        text = sp.hstack([self.char.transform(uniques), self.word.transform(uniques)], format="csr")[codes]
        return self._assemble(prepared, text, self._numeric(prepared))

    @property
    def n_features(self) -> int:
        return (
            self.char.size
            + self.word.size
            + len(self.payment_methods)
            + len(self.amount_edges)
            + 2
            + len(self.numeric_columns)
        )

    def _numeric(self, prepared) -> np.ndarray:
        """Row features of prepared rows in `numeric_columns` order, rows x columns."""
        order = self.__dict__.get("_order")
        if order is None:
            order = self._order = [F.ROW_COLUMNS.index(c) for c in self.numeric_columns]
        return F.row_values(prepared)[order].T

    def _scaled(self, values: np.ndarray) -> np.ndarray:
        return np.nan_to_num((values - self.numeric_mean) / self.numeric_scale, nan=0.0) * self.numeric_weight

    def _assemble(self, prepared, text: sp.csr_matrix, values: np.ndarray) -> sp.csr_matrix:
        n = F.n_rows(prepared)
        # Payment method one-hot (unknown or missing: no column set).
        pm = (
            pd.Series(F.column(prepared, "payment_method"), dtype=object)
            .map({m: i for i, m in enumerate(self.payment_methods)})
            .to_numpy(dtype=float)
        )
        has_pm = ~np.isnan(pm)
        pm_block = sp.csr_matrix(
            (np.ones(has_pm.sum()), (np.flatnonzero(has_pm), pm[has_pm].astype(int))),
            shape=(n, len(self.payment_methods)),
        )
        log_amount = values[:, self.numeric_columns.index("log_abs_amount")]
        has_amount = ~np.isnan(log_amount)
        bins = np.searchsorted(self.amount_edges, log_amount[has_amount])
        bin_block = sp.csr_matrix(
            (np.ones(has_amount.sum()), (np.flatnonzero(has_amount), bins)),
            shape=(n, len(self.amount_edges) + 1),
        )
        missing_amount = sp.csr_matrix((~has_amount).astype(float).reshape(-1, 1))
        scaled = self._scaled(values)
        return sp.hstack([text, pm_block, bin_block, missing_amount, sp.csr_matrix(scaled)], format="csr")

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("_pm_index", "_order")}
