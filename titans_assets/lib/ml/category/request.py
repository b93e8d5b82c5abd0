"""The one-row path of the category model: a request of up to `features.SMALL` rows is encoded row by
row (each text's TF-IDF row computed directly and cached) and multiplied with only the weight rows
it uses, without building DataFrames or sparse matrices; the same entries and sums as the batch path
(encoder.py, model.py), bit for bit (tests hold them equal). Those modules call this one, so it
takes their objects (an `encoder._TextBlock`, `_Encoder`, `model.CategoryModel`) untyped.

Kept because it is faster: 200 single-row requests through the service's `predict.category`, on the
20k-row generated ledger's model, took 1.6 ms a row here (0.8 ms when the description was seen
before) against 13.7 ms through the batch path: 8-10x faster (17x), in two runs on the shared 2-core
machine, with identical answers."""

from __future__ import annotations

from typing import Any

import numpy as np

from titans_assets.lib.ml import features as F
from titans_assets.lib.ml.common import cache_unit_row

ROW_CACHE = 4096  # distinct texts whose TF-IDF rows a text block keeps (requests repeat their descriptors)


def tfidf_row(block: Any, text: str) -> tuple[list[int], np.ndarray]:
    """(columns, values) of one text in a text block: `block.vectorizer.transform([text])`'s row (same
    n-gram counts, sorted columns, log tf + 1, idf, l2 norm summed in column order) without
    scikit-learn's per-call checks; the block keeps the last `ROW_CACHE` distinct texts."""
    fast = block.__dict__.get("_fast")
    if fast is None:
        block.vectorizer.transform([""])  # sets vocabulary_ from the fixed vocabulary
        fast = block._fast = (
            block.vectorizer.build_analyzer(),
            block.vectorizer.vocabulary_,
            block.vectorizer.idf_,
            {},
        )
    analyze, vocabulary, idf, cache = fast
    hit = cache.get(text)
    if hit is not None:
        return hit
    counts: dict[int, int] = {}
    for term in analyze(text):
        j = vocabulary.get(term)
        if j is not None:
            counts[j] = counts.get(j, 0) + 1
    columns = sorted(counts)
    values = np.array([counts[j] for j in columns], dtype=np.float64)
    np.log(values, out=values)
    values += 1.0
    values *= idf[columns]
    return cache_unit_row(cache, ROW_CACHE, text, columns, values)


def entries(encoder: Any, prepared: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(data, indices, indptr) of `encoder.transform` for a few rows, built row by row in the batch
    matrix's column order: text (char then word n-grams), payment method, amount bin or missing
    amount, the non-zero scaled numeric columns."""
    n = F.n_rows(prepared)
    texts = F.text_values(F.column(prepared, "description"), F.column(prepared, "reference"))
    payment = F.column(prepared, "payment_method")
    values = encoder._numeric(prepared)
    scaled = encoder._scaled(values)
    log_amount = values[:, encoder.numeric_columns.index("log_abs_amount")].tolist()
    pm_index = encoder.__dict__.get("_pm_index")
    if pm_index is None:
        pm_index = encoder._pm_index = {m: i for i, m in enumerate(encoder.payment_methods)}
    n_char, n_text = encoder.char.size, encoder.char.size + encoder.word.size
    at_pm = n_text
    at_bins = at_pm + len(encoder.payment_methods)
    at_missing = at_bins + len(encoder.amount_edges) + 1
    at_numeric = at_missing + 1
    columns: list[int] = []
    data: list[np.ndarray] = []
    indptr = [0]
    for i in range(n):
        c_cols, c_vals = tfidf_row(encoder.char, texts[i])
        w_cols, w_vals = tfidf_row(encoder.word, texts[i])
        columns += c_cols
        columns += [n_char + j for j in w_cols]
        data += [c_vals, w_vals]
        extra = []
        pm = pm_index.get(payment[i])
        if pm is not None:
            extra.append(at_pm + pm)
        a = log_amount[i]
        extra.append(at_missing if a != a else at_bins + int(np.searchsorted(encoder.amount_edges, a)))
        columns += extra
        data.append(np.ones(len(extra)))
        nonzero = np.flatnonzero(scaled[i])
        columns += (at_numeric + nonzero).tolist()
        data.append(scaled[i, nonzero])
        indptr.append(len(columns))
    return np.concatenate(data), np.asarray(columns, dtype=np.int32), np.asarray(indptr, dtype=np.int32)


def logits(model: Any, prepared: Any) -> np.ndarray:
    """The model's logits of a few prepared rows: `entries` times the weight rows they use, summed entry
    by entry in the order of the row's entries, as scipy's sparse product (csr_matvecs: y += a * x per
    entry) sums them: a running sum (cumsum is sequential, unlike np.sum) gives the same float64 values
    without building a sparse matrix."""
    n = F.n_rows(prepared)
    data, indices, indptr = entries(model.encoder, prepared)
    terms = data[:, None] * model.weights[indices].astype(np.float64)
    out = np.zeros((n, model.weights.shape[1]))
    for i in range(n):
        start, stop = indptr[i], indptr[i + 1]
        if stop > start:
            out[i] = np.cumsum(terms[start:stop], axis=0)[-1]
    return out + model.intercept
