"""The amount model's features: target encodings fitted on expense rows (`_State`: category, seasonal
and merchant medians, a ridge on hashed description words) and the feature columns built from them
(`_Encoder`), for a training frame or a request's columns alike."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.linear_model import Ridge

from titans_assets.lib.ml import features as F
from titans_assets.lib.ml.amount.request import _hashed_rows
from titans_assets.lib.ml.amount.rows import _SEP


def _group_stats(keys: pd.Series, y: np.ndarray) -> pd.DataFrame:
    """Per key: median, mean, std (0 when one row) and count of log amounts; rows with a None key ignored."""
    s = pd.Series(y, index=keys.index)
    ok = keys.notna().to_numpy()
    g = s[ok].groupby(keys[ok].to_numpy(), sort=False)
    stats = pd.DataFrame({"med": g.median(), "mean": g.mean(), "std": g.std(ddof=0), "n": g.size()})
    return stats


def _positions(
    index: pd.Index, keys: np.ndarray, memo: dict[Any, dict] | None = None, name: Any = None
) -> np.ndarray:
    """Position of each key in `index` (-1 when absent or None): `Index.get_indexer`, or for a few keys
    a dict of the index kept in `memo[name]` (the same positions without building an Index per call)."""
    if memo is not None and len(keys) <= F.SMALL:
        table = memo.get(name)
        if table is None:
            table = memo[name] = {k: i for i, k in enumerate(index)}
        return np.array([table.get(k, -1) if k is not None else -1 for k in keys], dtype=np.intp)
    return index.get_indexer(keys)


def _values(
    table: pd.DataFrame, col: str, memo: dict[Any, Any] | None = None, name: Any = None
) -> np.ndarray:
    """table[col] as an array (kept in `memo` under (name, col): a fitted table does not change)."""
    if memo is None:
        return table[col].to_numpy()
    values = memo.get((name, col))
    if values is None:
        values = memo[(name, col)] = table[col].to_numpy()
    return values


def _lookup(
    stats: pd.DataFrame, keys: np.ndarray, memo: dict[Any, dict] | None = None, name: Any = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(median, std, n) for each key, NaN / 0 where the key is unknown or None."""
    idx = _positions(stats.index, keys, memo, name)
    hit = idx >= 0
    med = np.full(len(keys), np.nan)
    std = np.full(len(keys), np.nan)
    n = np.zeros(len(keys))
    med[hit] = _values(stats, "med", memo, name)[idx[hit]]
    std[hit] = _values(stats, "std", memo, name)[idx[hit]]
    n[hit] = _values(stats, "n", memo, name)[idx[hit]]
    return med, std, n


def _pair(a: pd.Series | np.ndarray, b: pd.Series | np.ndarray) -> pd.Series | np.ndarray:
    """A combined key (a, b joined by a unit separator), None when either part is None (a Series for
    Series, an object array for arrays)."""
    va, vb = np.asarray(a, dtype=object), np.asarray(b, dtype=object)
    both = pd.notna(va) & pd.notna(vb)
    out = np.full(len(va), None, dtype=object)
    out[both] = va[both] + _SEP + vb[both]
    return pd.Series(out, index=a.index, dtype=object) if isinstance(a, pd.Series) else out


def _first_word(desc: pd.Series | np.ndarray) -> pd.Series | np.ndarray:
    """The first word of each cleaned description (None where there is none): a looser merchant key
    ('amazon mktplace pmts' and 'amazon com' share 'amazon')."""
    values = np.asarray(desc, dtype=object)
    out = np.array(
        [d.split(" ", 1)[0] if isinstance(d, str) else None for d in values.tolist()], dtype=object
    )
    return pd.Series(out, index=desc.index, dtype=object) if isinstance(desc, pd.Series) else out


def _month_dow(dates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Month (1-12) and weekday (Monday 0) of datetime64 values, as `.dt.month` / `.dt.day_of_week`
    give them: integers, or floats with NaN when a date is missing."""
    days = dates.astype("datetime64[D]")
    month = days.astype("datetime64[M]").astype(np.int64) % 12 + 1
    dow = (days.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday
    nat = np.isnat(days)
    if nat.any():
        month, dow = month.astype(float), dow.astype(float)
        month[nat] = dow[nat] = np.nan
    return month, dow


@dataclass
class _State:
    """Target encodings fitted on a set of rows (the whole fit set, or one out-of-fold complement)."""

    global_median: float
    category: pd.DataFrame  # index category: med, mean, std, n, shrunk
    month: pd.DataFrame  # index (category, month): factor
    dow: pd.DataFrame  # index (category, dow): factor
    lookups: dict[str, pd.DataFrame]  # ref_cat, ref, desc_cat, desc -> med/mean/std/n
    text: Any  # fitted Ridge on hashed description words (or None)

    @property
    def memo(self) -> dict[Any, dict]:
        """Dicts of the tables' indexes for small requests (built on first use, not pickled)."""
        memo = self.__dict__.get("_memo")
        if memo is None:
            memo = self._memo = {}
        return memo

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_memo"}


class _Encoder:
    """Fits `_State` from enriched rows + log targets and turns enriched rows into the feature matrix.

    `text` is the hashed description matrix of the frame the rows come from; a row's `_row` column is
    its line in it (so folds and augmented copies share one transform)."""

    def __init__(self, params: dict[str, Any], vectorizer: HashingVectorizer):
        self.p = params
        self.vectorizer = vectorizer

    def text_matrix(self, rows: pd.DataFrame | dict[str, np.ndarray]):
        """Hashed words of each row's description (hashed once per distinct description; for a few rows,
        through `_hashed_rows`)."""
        descriptions = F.column(rows, "description")
        if len(descriptions) <= F.SMALL:
            return _hashed_rows(self.vectorizer, descriptions)
        codes, uniques = pd.factorize(np.asarray(descriptions, dtype=object))
        if len(uniques) == 0:
            return self.vectorizer.transform([""] * len(descriptions))
        return self.vectorizer.transform(list(uniques))[codes]

    def fit(self, rows: pd.DataFrame, y: np.ndarray, text) -> _State:
        p = self.p
        gmed = float(np.median(y))
        cats = rows["category"]
        cat = _group_stats(cats, y)
        k = p["category_shrinkage"]
        cat["shrunk"] = (cat["n"] * cat["med"] + k * gmed) / (cat["n"] + k)
        cat_prior = _category_prior(cat, cats, gmed)
        resid = pd.Series(y - cat_prior, index=rows.index)
        ks = p["seasonal_shrinkage"]
        seasonal = {}
        for name, part in (("month", rows["txn_date"].dt.month), ("dow", rows["txn_date"].dt.day_of_week)):
            g = resid.groupby([cats, part])
            seasonal[name] = pd.DataFrame({"factor": g.sum() / (g.size() + ks)})
        ref, desc = rows["_ref"], rows["_desc"]
        lookups = {
            "ref_cat": _group_stats(_pair(ref, cats), y),
            "ref": _group_stats(ref, y),
            "desc_cat": _group_stats(_pair(desc, cats), y),
            "desc": _group_stats(desc, y),
            "word_cat": _group_stats(_pair(_first_word(desc), cats), y),
        }
        model = None
        has_desc = rows["_has_desc"].to_numpy()
        if has_desc.sum() >= 20:
            model = Ridge(alpha=p["text_alpha"], solver="lsqr", tol=1e-3)
            model.fit(text[rows["_row"].to_numpy()[has_desc]], resid.to_numpy()[has_desc])
        return _State(gmed, cat, seasonal["month"], seasonal["dow"], lookups, model)

    def merchant(self, state: _State, rows, prior: np.ndarray):
        """Merchant summary per row: (shrunk median, raw median, count, std, match source 0..4)."""
        ref, desc = F.column(rows, "_ref"), F.column(rows, "_desc")
        cats = F.column(rows, "category")
        n_rows = len(ref)
        raw = np.full(n_rows, np.nan)
        std = np.full(n_rows, np.nan)
        cnt = np.zeros(n_rows)
        source = np.zeros(n_rows)
        order = (
            ("ref_cat", lambda: _pair(ref, cats), 4),
            ("ref", lambda: ref, 3),
            ("desc_cat", lambda: _pair(desc, cats), 2),
            ("desc", lambda: desc, 1),
            ("word_cat", lambda: _pair(_first_word(desc), cats), 0.5),
        )
        for name, keys, rank in order:
            todo = source == 0
            if not todo.any():
                break
            med_k, std_k, n_k = _lookup(
                state.lookups[name], np.asarray(keys(), dtype=object), state.memo, name
            )
            take = todo & (n_k > 0)
            raw[take], std[take], cnt[take], source[take] = med_k[take], std_k[take], n_k[take], rank
        km = self.p["merchant_shrinkage"]
        shrunk = np.where(cnt > 0, (cnt * np.nan_to_num(raw) + km * prior) / (cnt + km), prior)
        return shrunk, raw, cnt, std, source

    def columns(
        self, state: _State, rows, codes: dict[str, dict[str, int]], text
    ) -> tuple[dict[str, np.ndarray], tuple[np.ndarray, ...]]:
        """The feature columns of enriched rows (a DataFrame or a request's dict of columns), and the
        merchant summary they were built from."""
        cats = np.asarray(F.column(rows, "category"), dtype=object)
        n = len(cats)
        cat_idx = _positions(state.category.index, cats, state.memo, "category")
        known = cat_idx >= 0
        ci = np.maximum(cat_idx, 0)

        def cat_col(col: str, fill: float) -> np.ndarray:
            return np.where(known, _values(state.category, col, state.memo, "category")[ci], fill)

        def code(values: np.ndarray, mapping: dict[str, int]) -> np.ndarray:
            if n <= F.SMALL:
                return np.array(
                    [mapping.get(v, np.nan) if v is not None else np.nan for v in values], dtype=float
                )
            return pd.Series(values, dtype=object).map(mapping).to_numpy(dtype=float, na_value=np.nan)

        month, dow = _month_dow(F.column(rows, "txn_date"))
        prior = cat_col("shrunk", state.global_median)
        cols: dict[str, np.ndarray] = {
            "cat_code": code(cats, codes["category"]),
            "pm_code": code(
                np.asarray(F.column(rows, "payment_method"), dtype=object), codes["payment_method"]
            ),
            "cat_median": prior,
            "cat_mean": cat_col("mean", state.global_median),
            "cat_std": cat_col("std", np.nan),
            "cat_log_n": np.log1p(cat_col("n", 0.0)),
            "cat_month": _factor(state.month, cats, month, state.memo, "month"),
            "cat_dow": _factor(state.dow, cats, dow, state.memo, "dow"),
        }
        merchant = self.merchant(state, rows, prior)
        shrunk, raw, cnt, std, source = merchant
        cols.update(
            {
                "merchant_median": shrunk,
                "merchant_delta": shrunk - prior,
                "merchant_log_n": np.log1p(cnt),
                "merchant_std": std,
                "merchant_source": source,
            }
        )
        has_desc = F.column(rows, "_has_desc")
        score = np.full(n, np.nan)
        if state.text is not None and has_desc.any():
            score[has_desc] = _ridge(state.text, text[F.column(rows, "_row")[has_desc]])
        cols["text_score"] = score
        cols["has_text"] = (has_desc | F.column(rows, "_has_ref")).astype(float)
        cal = F.row_values(rows, include_amount=False)
        for j, c in enumerate(F.TIME_COLUMNS):
            cols[c] = cal[j]
        return cols, merchant

    def matrix(
        self, state: _State, rows: pd.DataFrame, codes: dict[str, dict[str, int]], text
    ) -> pd.DataFrame:
        return pd.DataFrame(self.columns(state, rows, codes, text)[0], index=rows.index)


def _ridge(model, X) -> np.ndarray:
    """`Ridge.predict` (X @ coef_ + intercept_, as scikit-learn computes it) without its input checks."""
    return X @ model.coef_ + model.intercept_


def _category_prior(cat: pd.DataFrame, categories: pd.Series, gmed: float) -> np.ndarray:
    idx = cat.index.get_indexer(categories.to_numpy(dtype=object))
    return np.where(idx >= 0, cat["shrunk"].to_numpy()[np.maximum(idx, 0)], gmed)


def _factor(
    table: pd.DataFrame,
    categories: np.ndarray,
    part: np.ndarray,
    memo: dict[Any, dict] | None = None,
    name: Any = None,
) -> np.ndarray:
    if table.empty:
        return np.zeros(len(categories))
    if memo is not None and len(categories) <= F.SMALL:
        idx = _positions(table.index, list(zip(categories.tolist(), part.tolist())), memo, name)
    else:
        idx = table.index.get_indexer(pd.MultiIndex.from_arrays([categories, part]))
    return np.where(idx >= 0, _values(table, "factor", memo, name)[np.maximum(idx, 0)], 0.0)
