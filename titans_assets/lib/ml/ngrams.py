"""Character n-gram counts of many texts at once, in numpy: scikit-learn's `char_wb` analyzer and its
fixed-vocabulary count (`CountVectorizer._count_vocab`), without a Python step per n-gram.

`char_wb_counts` gives the same counts as scikit-learn (tests/test_predictions.py compares them);
texts with a character beyond U+0FFF take scikit-learn's own analyzer.

Design notes (why, the packing, the analyzer copied): docs/model-design.md#titans_assetslibmlngramspy
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

BITS = 12  # per character
MAX_N = 5  # 5 x 12 bits + the length in the top 3 bits < 2^63
_LIMIT = 1 << BITS


def _pack(codes: np.ndarray, starts: np.ndarray, n: int) -> np.ndarray:
    key = np.full(len(starts), n << (BITS * MAX_N), dtype=np.int64)
    for k in range(n):
        key |= codes[starts + k].astype(np.int64) << (BITS * (n - 1 - k))
    return key


def pack_term(term: str) -> int | None:
    """A vocabulary term's key, or None when no packed window can equal it."""
    if not 1 <= len(term) <= MAX_N or any(ord(ch) >= _LIMIT for ch in term):
        return None
    key = len(term) << (BITS * MAX_N)
    for k, ch in enumerate(term):
        key |= ord(ch) << (BITS * (len(term) - 1 - k))
    return key


def vocabulary_keys(vocabulary: Mapping[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """(sorted keys, their columns) of the packable terms (`pack_term` of each, in arrays)."""
    terms = [t for t in vocabulary if 1 <= len(t) <= MAX_N]
    if not terms:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    length = np.fromiter(map(len, terms), dtype=np.int64, count=len(terms))
    starts = np.concatenate([[0], np.cumsum(length)[:-1]])
    codes = np.frombuffer("".join(terms).encode("utf-32-le"), dtype=np.uint32)
    packable = np.maximum.reduceat(codes, starts) < _LIMIT
    keys = np.zeros(len(terms), dtype=np.int64)
    for n in range(1, MAX_N + 1):
        these = np.flatnonzero(packable & (length == n))
        keys[these] = _pack(codes, starts[these], n)
    cols = np.fromiter((vocabulary[t] for t in terms), dtype=np.int64, count=len(terms))[packable]
    keys = keys[packable]
    order = np.argsort(keys, kind="stable")
    return keys[order], cols[order]


def char_wb_counts(
    texts: Sequence[str],
    vocabulary: Mapping[str, int],
    ngram: tuple[int, int],
    analyzer: Callable[[str], list[str]],
    lowercase: bool = True,
    keys: tuple[np.ndarray, np.ndarray] | None = None,
) -> sp.csr_matrix | None:
    """The count matrix (texts x vocabulary, float64, sorted indices) of scikit-learn's `char_wb`
    analyzer with a fixed vocabulary; None when the n-gram range is beyond what packs (then use
    scikit-learn). `analyzer`: the vectorizer's own, for the texts that do not pack; `keys`:
    `vocabulary_keys(vocabulary)` when the caller keeps them."""
    min_n, max_n = ngram
    if not 1 <= min_n <= max_n <= MAX_N:
        return None
    n_docs = len(texts)
    lowered = [t.lower() if lowercase else t for t in texts]
    sizes = np.fromiter(map(len, lowered), dtype=np.int64, count=n_docs)
    joined = np.frombuffer("".join(lowered).encode("utf-32-le"), dtype=np.uint32)
    nonempty = np.flatnonzero(sizes > 0)
    high = np.zeros(n_docs, dtype=bool)
    if len(nonempty):
        high[nonempty] = np.maximum.reduceat(joined, (np.cumsum(sizes) - sizes)[nonempty]) >= _LIMIT
    odd = np.flatnonzero(high).tolist()  # characters beyond 12 bits: scikit-learn's analyzer, below
    words_per_doc = [[] if h else t.split() for t, h in zip(lowered, high.tolist())]
    word_doc = np.repeat(np.arange(n_docs, dtype=np.int64), [len(w) for w in words_per_doc])
    words = [w for ws in words_per_doc for w in ws]
    vocab_keys, vocab_cols = keys if keys is not None else vocabulary_keys(vocabulary)
    docs, cols = [], []
    if words:
        length = np.fromiter(map(len, words), dtype=np.int64, count=len(words)) + 2
        starts = np.concatenate([[0], np.cumsum(length)[:-1]])
        padded = " " + "  ".join(words) + " "
        codes = np.frombuffer(padded.encode("utf-32-le"), dtype=np.uint32)
        alive = np.ones(len(words), dtype=bool)
        for n in range(min_n, max_n + 1):
            full = np.flatnonzero(alive & (length >= n))
            count = length[full] - n + 1
            total = int(count.sum())
            first = np.repeat(np.cumsum(count) - count, count)
            win = np.repeat(starts[full], count) + (np.arange(total, dtype=np.int64) - first)
            key = [_pack(codes, win, n)]
            doc = [np.repeat(word_doc[full], count)]
            short = np.flatnonzero(alive & (length < n))  # shorter than n: the padded word once
            for size in np.unique(length[short]).tolist():
                these = short[length[short] == size]
                key.append(_pack(codes, starts[these], size))
                doc.append(word_doc[these])
            key_all, doc_all = np.concatenate(key), np.concatenate(doc)
            pos = np.searchsorted(vocab_keys, key_all)
            pos[pos == len(vocab_keys)] = 0
            hit = (vocab_keys[pos] == key_all) if len(vocab_keys) else np.zeros(len(key_all), dtype=bool)
            docs.append(doc_all[hit])
            cols.append(vocab_cols[pos[hit]])
            alive &= length > n
            if not alive.any():
                break
    for i in odd:  # characters beyond 12 bits: scikit-learn's analyzer on the original text
        found = [vocabulary[g] for g in analyzer(texts[i]) if g in vocabulary]
        docs.append(np.full(len(found), i, dtype=np.int64))
        cols.append(np.asarray(found, dtype=np.int64))
    doc = np.concatenate(docs) if docs else np.zeros(0, dtype=np.int64)
    col = np.concatenate(cols) if cols else np.zeros(0, dtype=np.int64)
    out = sp.csr_matrix((np.ones(len(doc), dtype=np.float64), (doc, col)), shape=(n_docs, len(vocabulary)))
    out.sum_duplicates()
    out.sort_indices()
    return out


def word_counts(
    texts: Sequence[str],
    vocabulary: Mapping[str, int],
    ngram: tuple[int, int],
    token_pattern: str,
    lowercase: bool = True,
    index: tuple[Any, np.ndarray] | None = None,
) -> sp.csr_matrix | None:
    """The count matrix of scikit-learn's `word` analyzer (lowercase, `token_pattern`, n-grams joined by
    a space, no stop words) with a fixed vocabulary: tokens found per text with the same regular
    expression, every n-gram of every text matched against the vocabulary at once (a pandas hash
    lookup) instead of one dict lookup at a time. None when the pattern has a capturing group (then
    use scikit-learn). `index`: `vocabulary_index(vocabulary)` when the caller keeps it."""
    pattern = re.compile(token_pattern)
    min_n, max_n = ngram
    if pattern.groups or not 1 <= min_n <= max_n:
        return None
    tokens = [pattern.findall(t.lower() if lowercase else t) for t in texts]
    grams: list[str] = []
    per_doc = np.zeros(len(texts), dtype=np.int64)
    for i, toks in enumerate(tokens):
        before = len(grams)
        for n in range(min_n, max_n + 1):
            if n == 1:
                grams.extend(toks)
            else:
                grams.extend(" ".join(toks[j : j + n]) for j in range(len(toks) - n + 1))
        per_doc[i] = len(grams) - before
    terms, cols = index if index is not None else vocabulary_index(vocabulary)
    pos = terms.get_indexer(grams) if grams else np.zeros(0, dtype=np.int64)
    hit = pos >= 0
    doc = np.repeat(np.arange(len(texts), dtype=np.int64), per_doc)[hit]
    out = sp.csr_matrix(
        (np.ones(int(hit.sum()), dtype=np.float64), (doc, cols[pos[hit]])),
        shape=(len(texts), len(vocabulary)),
    )
    out.sum_duplicates()
    out.sort_indices()
    return out


def vocabulary_index(vocabulary: Mapping[str, int]) -> tuple[Any, np.ndarray]:
    """(a pandas Index of the terms, their columns): the hash table `word_counts` looks n-grams up in."""
    import pandas as pd

    terms = list(vocabulary)
    return pd.Index(terms, dtype=object), np.fromiter(
        (vocabulary[t] for t in terms), dtype=np.int64, count=len(terms)
    )
