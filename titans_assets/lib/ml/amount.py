"""Expense amount model: how much will an expense in this category, on this date, probably cost?

What it predicts
    The magnitude |amount| of an EXPENSE (warehouse amounts are signed, expenses negative) for a
    request of `category` + `txn_date` (or `date`), optionally `payment_method`, `description` and
    `reference`, with a conformal interval at `level` (default 90%). Income is not modelled (a later
    extension: the same recipe on income rows). `predict` answers for any row it is given; training
    and scoring use expense rows only (`txn_type == 'Expense'`, or a negative amount when there is no
    `txn_type` column) with a non-zero amount.

Features (one definition shared with serving: `features.prepare` + `features.row_features`)
    - category (HGB categorical) and its fitted statistics on log1p|amount|: shrunk median, mean,
      std, log count (rare categories shrink toward the global median, `category_shrinkage` rows);
    - payment method (HGB categorical; missing is allowed);
    - calendar: `row_features(prepared, include_amount=False)` plus per-category seasonal factors
      (shrunk mean residual of log amount by month and by weekday);
    - text: a "merchant summary" = median log amount of the counterparty in the training history,
      looked up in order (reference x category, reference, cleaned description x category, cleaned
      description), shrunk toward the category median and falling back to it when nothing matches;
      plus a ridge "text score" on hashed words of the description (the description alone, so a request
      without a reference gets the same signal).
    Target encodings of the training matrix are out-of-fold (5 folds), so the booster does not learn
    to trust a merchant median that contains the row's own amount. A share of the training rows is
    duplicated without reference (description only) and without any text or payment method, so the
    booster has learned the bare request (category + date) from representative rows rather than from
    the odd rows that happen to have unknown merchants.

Point prediction
    HistGradientBoostingRegressor on log1p|amount| (squared error in log space); the prediction is
    expm1 of it (about the conditional median, which is what MAE rewards). If the plain lookup (the
    shrunk merchant, else category, median) has the lower MAE on the calibration rows, which can
    happen on a hundred rows, the model predicts the lookup instead (`params["point_predictor"]`).

Interval (split conformal, log space)
    The latest `calibration_fraction` of the training period is held back from fitting. Its signed
    residuals (actual - predicted, log space) give the lower and upper offsets at (1-level)/2 and
    (1+level)/2 with the finite-sample correction, per (category, input tier) when that group has
    `min_group_calibration` calibration rows (Mondrian), else per input tier. Input tiers: "reference"
    (a reference is given, as on warehouse rows), "description" (description only) and "bare"
    (category + date, maybe payment method); the calibration rows are scored in all three forms, so
    each request gets the width its information deserves. Intervals are asymmetric (right-skewed
    amounts). With fewer than 19 calibration rows the interval is symmetric on the absolute residual
    (needs 9+ rows at 90%), below that the largest residual doubled (noted). The sorted residuals are
    kept in the model, so `predict(frame, level=0.8)` works for any level.

Unknown or missing category
    No exception: the point is the global median of training amounts, the interval their global
    empirical quantiles at the level (marginal coverage about the level, and wide), and
    `factors["unknown_category"]` is True with a `basis` note.

Factors (one dict per row, plain Python values)
    category_average / category_median (training-period mean / median |amount| of the category),
    n_history (its training row count), seasonal_adjustment (exp of the category's month + weekday
    factors: 1.1 = about 10% above its usual amount), merchant_median + merchant_n + merchant_match
    when a known counterparty matched, unknown_category.

Metrics (test = most recent ~20% of days, `common.time_split`; currency scale)
    mae (primary, lower is better), median_ae, rmse, r2, smape = mean 2|p-a|/(|p|+|a|) (0..2),
    median_ape = median |p-a|/|a|, interval_coverage, mean_interval_width, median_relative_width =
    median (upper-lower)/predicted, n_train, n_test; description_only_mae / _interval_coverage and
    bare_mae / _interval_coverage: the same test rows asked without reference, and with category +
    date only (on an even sample of at most 50,000 rows). Baselines "global_median" and
    "category_median" (training-period medians, with the empirical quantile intervals at the level)
    report the same core metrics.

Scale
    `max_train_rows` (default 300,000) keeps the latest training rows (noted and logged). The
    booster and BLAS run on `threads` threads (default 1): on this 2-core machine OpenMP spin-waits
    badly when other jobs share the cores (a 15k-row fit took 6 s on 2 threads vs 0.9 s on one under
    load). 1M generated rows train in about 45 s of CPU.
"""

from __future__ import annotations

import logging
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.linear_model import Ridge
from threadpoolctl import threadpool_limits

from titans_assets.lib.ml import features as F
from titans_assets.lib.ml.common import TrainingDataError, TrainResult, time_split, window_of

log = logging.getLogger(__name__)

NAME = "titans_amount"
PRIMARY_METRIC = "mae"
HIGHER_IS_BETTER = False

MIN_TRAIN_ROWS = 40  # expense rows in the training period (fit + calibration)
MAX_CATEGORY_CODES = 250  # HGB categorical cardinality limit is 255 bins
MAX_VARIANT_ROWS = 50_000  # test rows re-scored as description-only and bare requests

DEFAULT_PARAMS: dict[str, Any] = {
    "level": 0.9,
    "test_fraction": 0.2,
    "calibration_fraction": 0.2,
    "max_train_rows": 300_000,
    "loss": "squared_error",
    "max_bins": 255,
    "max_iter": 300,
    "learning_rate": 0.08,
    "max_leaf_nodes": 31,
    "min_samples_leaf": 20,
    "l2_regularization": 1.0,
    "category_shrinkage": 10.0,
    "merchant_shrinkage": 3.0,
    "seasonal_shrinkage": 20.0,
    "text_hash_features": 2 ** 18,
    "text_alpha": 3.0,
    "augment_fraction": 0.3,
    "oof_folds": 5,
    "min_group_calibration": 100,
    "seed": 0,
    "threads": 1,
}

_CAT_COLS = ["cat_code", "pm_code"]
_SEP = "\x1f"
_TIER_REF, _TIER_DESC, _TIER_BARE = "reference", "description", "bare"


# --------------------------------------------------------------------------- data
def expense_rows(data: pd.DataFrame) -> pd.DataFrame:
    """The rows this model learns from: expenses with a date and a non-zero amount."""
    if "amount" not in data:
        raise TrainingDataError("no amount column")
    if "txn_type" in data:
        is_expense = data["txn_type"].astype(str).str.strip().str.lower().eq("expense")
    else:
        is_expense = pd.to_numeric(data["amount"], errors="coerce") < 0
    amount = pd.to_numeric(data["amount"], errors="coerce")
    date_col = "txn_date" if "txn_date" in data else "date"
    dates = pd.to_datetime(data[date_col], errors="coerce") if date_col in data else pd.Series(pd.NaT, data.index)
    keep = is_expense.to_numpy() & amount.notna().to_numpy() & (amount != 0).to_numpy() & dates.notna().to_numpy()
    out = data[keep]
    if date_col != "txn_date":
        out = out.rename(columns={date_col: "txn_date"})
    return out


def _on_uniques(fn, s: pd.Series) -> pd.Series:
    """`fn` (a features.py text cleaner) applied once per distinct value: same result, far fewer regex calls."""
    codes, uniques = pd.factorize(s.to_numpy(dtype=object))
    cleaned = fn(pd.Series(uniques, dtype=object)).to_numpy(dtype=object)
    out = np.full(len(s), None, dtype=object)
    out[codes >= 0] = cleaned[codes[codes >= 0]]
    return pd.Series(out, index=s.index, dtype=object)


def _enrich(prepared: pd.DataFrame) -> pd.DataFrame:
    """Prepared rows plus the counterparty lookup keys (cleaned reference and cleaned description,
    None when absent) and whether a description was given, computed once per frame."""
    out = prepared.copy()
    out["_ref"] = _on_uniques(F.clean_name, prepared["reference"])
    out["_desc"] = _on_uniques(F.clean_description, prepared["description"])
    out["_has_desc"] = prepared["description"].str.strip().str.len().to_numpy() > 0
    out["_has_ref"] = prepared["reference"].str.strip().str.len().to_numpy() > 0
    out["_row"] = np.arange(len(out))
    return out


def _strip(rows: pd.DataFrame, reference: bool, description: bool, payment: bool) -> pd.DataFrame:
    """A copy of enriched rows as if the request had left out some fields."""
    out = rows.copy()
    if reference:
        out["reference"], out["_ref"], out["_has_ref"] = "", None, False
    if description:
        out["description"], out["_desc"], out["_has_desc"] = "", None, False
    if payment:
        out["payment_method"] = None
    if reference:  # what features.merchant_of gives without a reference: the cleaned description
        out["merchant"] = out["_desc"]
    return out


# --------------------------------------------------------------------------- fitted state
def _group_stats(keys: pd.Series, y: np.ndarray) -> pd.DataFrame:
    """Per key: median, mean, std (0 when one row) and count of log amounts; rows with a None key ignored."""
    s = pd.Series(y, index=keys.index)
    ok = keys.notna().to_numpy()
    g = s[ok].groupby(keys[ok].to_numpy(), sort=False)
    stats = pd.DataFrame({"med": g.median(), "mean": g.mean(), "std": g.std(ddof=0), "n": g.size()})
    return stats


def _lookup(stats: pd.DataFrame, keys: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(median, std, n) for each key, NaN / 0 where the key is unknown or None."""
    idx = stats.index.get_indexer(keys.to_numpy(dtype=object))
    hit = idx >= 0
    med = np.full(len(keys), np.nan)
    std = np.full(len(keys), np.nan)
    n = np.zeros(len(keys))
    med[hit] = stats["med"].to_numpy()[idx[hit]]
    std[hit] = stats["std"].to_numpy()[idx[hit]]
    n[hit] = stats["n"].to_numpy()[idx[hit]]
    return med, std, n


def _pair(a: pd.Series, b: pd.Series) -> pd.Series:
    """A combined key (a, b joined by a unit separator), None when either part is None."""
    both = (a.notna() & b.notna()).to_numpy()
    out = np.full(len(a), None, dtype=object)
    out[both] = a.to_numpy(dtype=object)[both] + _SEP + b.to_numpy(dtype=object)[both]
    return pd.Series(out, index=a.index, dtype=object)


@dataclass
class _State:
    """Target encodings fitted on a set of rows (the whole fit set, or one out-of-fold complement)."""

    global_median: float
    category: pd.DataFrame  # index category: med, mean, std, n, shrunk
    month: pd.DataFrame  # index (category, month): factor
    dow: pd.DataFrame  # index (category, dow): factor
    lookups: dict[str, pd.DataFrame]  # ref_cat, ref, desc_cat, desc -> med/mean/std/n
    text: Any  # fitted Ridge on hashed description words (or None)


class _Encoder:
    """Fits `_State` from enriched rows + log targets and turns enriched rows into the feature matrix.

    `text` is the hashed description matrix of the frame the rows come from; a row's `_row` column is
    its line in it (so folds and augmented copies share one transform)."""

    def __init__(self, params: dict[str, Any], vectorizer: HashingVectorizer):
        self.p = params
        self.vectorizer = vectorizer

    def text_matrix(self, rows: pd.DataFrame):
        """Hashed words of each row's description (hashed once per distinct description)."""
        codes, uniques = pd.factorize(rows["description"].to_numpy(dtype=object))
        if len(uniques) == 0:
            return self.vectorizer.transform([""] * len(rows))
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
        lookups = {"ref_cat": _group_stats(_pair(ref, cats), y), "ref": _group_stats(ref, y),
                   "desc_cat": _group_stats(_pair(desc, cats), y), "desc": _group_stats(desc, y)}
        model = None
        has_desc = rows["_has_desc"].to_numpy()
        if has_desc.sum() >= 20:
            model = Ridge(alpha=p["text_alpha"], solver="lsqr", tol=1e-3)
            model.fit(text[rows["_row"].to_numpy()[has_desc]], resid.to_numpy()[has_desc])
        return _State(gmed, cat, seasonal["month"], seasonal["dow"], lookups, model)

    def merchant(self, state: _State, rows: pd.DataFrame, prior: np.ndarray):
        """Merchant summary per row: (shrunk median, raw median, count, std, match source 0..4)."""
        ref, desc, cats = rows["_ref"], rows["_desc"], rows["category"]
        n_rows = len(rows)
        raw = np.full(n_rows, np.nan)
        std = np.full(n_rows, np.nan)
        cnt = np.zeros(n_rows)
        source = np.zeros(n_rows)
        order = (("ref_cat", lambda: _pair(ref, cats), 4), ("ref", lambda: ref, 3),
                 ("desc_cat", lambda: _pair(desc, cats), 2), ("desc", lambda: desc, 1))
        for name, keys, rank in order:
            todo = source == 0
            if not todo.any():
                break
            med_k, std_k, n_k = _lookup(state.lookups[name], keys())
            take = todo & (n_k > 0)
            raw[take], std[take], cnt[take], source[take] = med_k[take], std_k[take], n_k[take], rank
        km = self.p["merchant_shrinkage"]
        shrunk = np.where(cnt > 0, (cnt * np.nan_to_num(raw) + km * prior) / (cnt + km), prior)
        return shrunk, raw, cnt, std, source

    def matrix(self, state: _State, rows: pd.DataFrame, codes: dict[str, dict[str, int]], text) -> pd.DataFrame:
        cats = rows["category"]
        cat_idx = state.category.index.get_indexer(cats.to_numpy(dtype=object))
        known = cat_idx >= 0
        ci = np.maximum(cat_idx, 0)

        def cat_col(col: str, fill: float) -> np.ndarray:
            return np.where(known, state.category[col].to_numpy()[ci], fill)

        prior = cat_col("shrunk", state.global_median)
        cols: dict[str, np.ndarray] = {
            "cat_code": cats.map(codes["category"]).to_numpy(dtype=float, na_value=np.nan),
            "pm_code": rows["payment_method"].map(codes["payment_method"]).to_numpy(dtype=float, na_value=np.nan),
            "cat_median": prior,
            "cat_mean": cat_col("mean", state.global_median),
            "cat_std": cat_col("std", np.nan),
            "cat_log_n": np.log1p(cat_col("n", 0.0)),
            "cat_month": _factor(state.month, cats, rows["txn_date"].dt.month.to_numpy()),
            "cat_dow": _factor(state.dow, cats, rows["txn_date"].dt.day_of_week.to_numpy()),
        }
        shrunk, raw, cnt, std, source = self.merchant(state, rows, prior)
        cols.update({"merchant_median": shrunk, "merchant_delta": shrunk - prior, "merchant_log_n": np.log1p(cnt),
                     "merchant_std": std, "merchant_source": source})
        has_desc = rows["_has_desc"].to_numpy()
        score = np.full(len(rows), np.nan)
        if state.text is not None and has_desc.any():
            score[has_desc] = state.text.predict(text[rows["_row"].to_numpy()[has_desc]])
        cols["text_score"] = score
        cols["has_text"] = (rows["_has_desc"].to_numpy() | rows["_has_ref"].to_numpy()).astype(float)
        cal = F.row_features(rows, include_amount=False)
        for c in cal.columns:
            cols[c] = cal[c].to_numpy(dtype=float)
        return pd.DataFrame(cols, index=rows.index)


def _category_prior(cat: pd.DataFrame, categories: pd.Series, gmed: float) -> np.ndarray:
    idx = cat.index.get_indexer(categories.to_numpy(dtype=object))
    return np.where(idx >= 0, cat["shrunk"].to_numpy()[np.maximum(idx, 0)], gmed)


def _factor(table: pd.DataFrame, categories: pd.Series, part: np.ndarray) -> np.ndarray:
    if table.empty:
        return np.zeros(len(categories))
    idx = table.index.get_indexer(pd.MultiIndex.from_arrays([categories.to_numpy(dtype=object), part]))
    return np.where(idx >= 0, table["factor"].to_numpy()[np.maximum(idx, 0)], 0.0)


# --------------------------------------------------------------------------- conformal
def _conformal_bounds(scores: np.ndarray, level: float) -> tuple[float, float, str]:
    """(lower offset, upper offset, method) from signed log residuals actual - predicted."""
    s = np.sort(scores[np.isfinite(scores)])
    n = len(s)
    alpha = 1.0 - level
    lo_rank = math.floor((n + 1) * alpha / 2)  # 1-based rank of the lower quantile
    hi_rank = math.ceil((n + 1) * (1 - alpha / 2))
    if n and lo_rank >= 1 and hi_rank <= n:
        return float(s[lo_rank - 1]), float(s[hi_rank - 1]), "signed"
    a = np.sort(np.abs(s))
    rank = math.ceil((n + 1) * level)
    if n and rank <= n:
        return -float(a[rank - 1]), float(a[rank - 1]), "absolute"
    q = 2.0 * float(a[-1]) if n else 3.0
    return -q, q, "max_doubled"


# --------------------------------------------------------------------------- the model
_GLOBAL_PROBS = np.linspace(0.0, 1.0, 201)
_MATCH_NAMES = {4: "reference+category", 3: "reference", 2: "description+category", 1: "description"}


def _tiers(rows: pd.DataFrame) -> np.ndarray:
    """Input tier of each request: reference given, description only, or bare (category + date)."""
    has_desc = rows["_has_desc"].to_numpy()
    return np.where(rows["_has_ref"].to_numpy(), _TIER_REF, np.where(has_desc, _TIER_DESC, _TIER_BARE))


def _threads(n: int | None):
    return threadpool_limits(limits=n) if n else nullcontext()


@dataclass
class AmountModel:
    """The fitted expense-amount model (picklable).

    `predict(frame, level=None, explain=True)` -> predicted_amount, lower, upper, level, factors."""

    vocabulary: F.Vocabulary
    params: dict[str, Any]
    state: _State
    vectorizer: HashingVectorizer
    booster: HistGradientBoostingRegressor
    codes: dict[str, dict[str, int]]
    feature_names: list[str]
    calibration: dict[tuple[str, str], np.ndarray]  # (category or '*', tier) -> sorted signed log residuals
    global_quantiles: np.ndarray  # log1p|amount| of the training period at `_GLOBAL_PROBS`
    category_report: pd.DataFrame  # per category: mean_amount, median_amount, n
    global_mean: float  # training-period mean and median |amount| (all categories)
    global_median: float
    level: float = 0.9
    n_train: int = 0
    point: str = "booster"  # or "lookup": the shrunk merchant / category median (chosen on calibration MAE)
    notes: list[str] = field(default_factory=list)

    def _encoder(self) -> _Encoder:
        return _Encoder(self.params, self.vectorizer)

    def _bounds(self, categories: np.ndarray, tiers: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
        """Conformal offsets (log space) per row: its (category, tier) scores when calibrated, else the tier's."""
        keys = pd.Series([f"{c}{_SEP}{t}" for c, t in zip(categories, tiers)])
        codes, uniques = pd.factorize(keys)
        lo_u, hi_u = np.empty(len(uniques)), np.empty(len(uniques))
        for j, key in enumerate(uniques):
            c, t = key.split(_SEP)
            scores = self.calibration.get((c, t), self.calibration[("*", t)])
            lo_u[j], hi_u[j], _ = _conformal_bounds(scores.astype(float), level)
        return lo_u[codes], hi_u[codes]

    def _predict_rows(self, rows: pd.DataFrame, text, level: float) -> dict[str, Any]:
        if not 0 < level < 1:
            raise ValueError(f"level must be in (0, 1), got {level}")
        X = self._encoder().matrix(self.state, rows, self.codes, text)
        if self.point == "booster":
            with _threads(self.params.get("threads")):
                pred_log = self.booster.predict(X[self.feature_names].to_numpy(dtype=float))
        else:
            pred_log = X["merchant_median"].to_numpy()
        cats = rows["category"].to_numpy(dtype=object)
        known = self.state.category.index.get_indexer(cats) >= 0
        lo, hi = self._bounds(cats, _tiers(rows), level)
        lower_log, upper_log = pred_log + lo, pred_log + hi
        if (~known).any():  # unknown or missing category: global median and empirical quantiles
            g_lo, g_mid, g_hi = np.interp([(1 - level) / 2, 0.5, (1 + level) / 2], _GLOBAL_PROBS,
                                          self.global_quantiles)
            pred_log = np.where(known, pred_log, g_mid)
            lower_log = np.where(known, lower_log, g_lo)
            upper_log = np.where(known, upper_log, g_hi)
        predicted = np.round(np.maximum(np.expm1(pred_log), 0.01), 2)
        lower = np.minimum(np.floor(np.maximum(np.expm1(lower_log), 0.0) * 100) / 100, predicted)
        upper = np.maximum(np.ceil(np.expm1(upper_log) * 100) / 100, predicted)
        return {"X": X, "known": known, "level": level, "predicted": predicted, "lower": lower, "upper": upper}

    def predict(self, frame: pd.DataFrame, level: float | None = None, explain: bool = True) -> pd.DataFrame:
        """One row per input row (same index): predicted_amount, lower, upper (currency units, >= 0),
        level, factors (a dict per row; None when explain=False). Needs category and txn_date (or
        date); payment_method, description and reference are optional."""
        level = self.level if level is None else float(level)
        columns = ["predicted_amount", "lower", "upper", "level", "factors"]
        if len(frame) == 0:
            return pd.DataFrame({c: [] for c in columns}, index=frame.index)
        rows = _enrich(F.prepare(frame, self.vocabulary))
        r = self._predict_rows(rows, self._encoder().text_matrix(rows), level)
        factors = self._factors(rows, r) if explain else [None] * len(rows)
        return pd.DataFrame({"predicted_amount": r["predicted"], "lower": r["lower"], "upper": r["upper"],
                             "level": level, "factors": factors}, index=frame.index)

    def _factors(self, rows: pd.DataFrame, r: dict[str, Any]) -> list[dict[str, Any]]:
        X = r["X"]
        rep = self.category_report.reindex(rows["category"].to_numpy(dtype=object))
        mean_a, med_a, n_a = (rep[c].to_numpy(dtype=float) for c in ("mean_amount", "median_amount", "n"))
        seasonal = np.exp(X["cat_month"].to_numpy() + X["cat_dow"].to_numpy())
        _, m_raw, m_n, _, m_src = self._encoder().merchant(self.state, rows, X["cat_median"].to_numpy())
        g_mean, g_med = self.global_mean, self.global_median
        out = []
        for i, known in enumerate(r["known"].tolist()):
            if known:
                f: dict[str, Any] = {"category_average": round(float(mean_a[i]), 2),
                                     "category_median": round(float(med_a[i]), 2),
                                     "seasonal_adjustment": round(float(seasonal[i]), 4), "n_history": int(n_a[i]),
                                     "unknown_category": False}
                if m_n[i] > 0:
                    f.update(merchant_median=round(float(np.expm1(m_raw[i])), 2), merchant_n=int(m_n[i]),
                             merchant_match=_MATCH_NAMES[int(m_src[i])])
            else:
                f = {"category_average": round(float(g_mean), 2), "category_median": round(float(g_med), 2),
                     "seasonal_adjustment": 1.0, "n_history": 0, "unknown_category": True,
                     "basis": "global statistics: the category is missing or unknown to the model"}
            out.append(f)
        return out


# --------------------------------------------------------------------------- metrics
def _metrics(actual: np.ndarray, predicted: np.ndarray, lower: np.ndarray | None = None,
             upper: np.ndarray | None = None) -> dict[str, float]:
    a = np.asarray(actual, dtype=float)
    p = np.asarray(predicted, dtype=float)
    err = p - a
    ss_tot = float(np.sum((a - a.mean()) ** 2))
    out = {
        "mae": float(np.mean(np.abs(err))),
        "median_ae": float(np.median(np.abs(err))),
        "rmse": float(np.sqrt(np.mean(err ** 2))),
        "r2": float(1 - np.sum(err ** 2) / ss_tot) if ss_tot > 0 else float("nan"),
        "smape": float(np.mean(2 * np.abs(err) / np.maximum(np.abs(p) + np.abs(a), 1e-9))),
        "median_ape": float(np.median(np.abs(err) / np.maximum(np.abs(a), 1e-9))),
    }
    if lower is not None and upper is not None:
        lo, hi = np.asarray(lower, dtype=float), np.asarray(upper, dtype=float)
        out["interval_coverage"] = float(np.mean((a >= lo) & (a <= hi)))
        out["mean_interval_width"] = float(np.mean(hi - lo))
        out["median_relative_width"] = float(np.median((hi - lo) / np.maximum(p, 0.01)))
    out["n_test"] = float(len(a))
    return out


def score(model: AmountModel, holdout: pd.DataFrame) -> dict[str, float]:
    """Metrics of `model` on the expense rows of `holdout` (the names of TrainResult.metrics): the rows as
    given, plus MAE and coverage when the same rows are asked with a description only
    (`description_only_*`) and with category + date only (`bare_*`)."""
    return _score_detail(model, holdout)[0]


_VARIANTS = {"as_given": (False, False), "description_only": (True, False), "bare": (True, True)}


def _score_detail(model, holdout: pd.DataFrame, prepared: pd.DataFrame | None = None
                  ) -> tuple[dict[str, float], np.ndarray, tuple[np.ndarray, ...]]:
    """Metrics plus (actual, (predicted, lower, upper)) of the rows as given. The description-only and
    bare variants are scored on an even sample of at most MAX_VARIANT_ROWS rows."""
    rows = expense_rows(holdout)
    if rows.empty:
        raise TrainingDataError("the holdout has no expense rows to score")
    actual = np.abs(pd.to_numeric(rows["amount"]).to_numpy(dtype=float))
    sample = np.unique(np.linspace(0, len(rows) - 1, min(len(rows), MAX_VARIANT_ROWS)).round().astype(int))
    preds: dict[str, tuple[np.ndarray, ...]] = {}
    if isinstance(model, AmountModel):  # prepare once, then blank fields on the prepared rows
        if prepared is None or not prepared.index.equals(rows.index):
            prepared = F.prepare(rows, model.vocabulary)
        enriched = _enrich(prepared)
        text = model._encoder().text_matrix(enriched)
        for name, (ref, desc) in _VARIANTS.items():
            part = enriched if name == "as_given" else _strip(enriched.iloc[sample], ref, desc, desc)
            r = model._predict_rows(part, text, model.level)
            preds[name] = (r["predicted"], r["lower"], r["upper"])
    else:  # any object with predict(frame) -> predicted_amount, lower, upper
        for name, (ref, desc) in _VARIANTS.items():
            blank: dict[str, Any] = {"reference": ""} if ref else {}
            if desc:
                blank |= {"description": "", "payment_method": None}
            out = model.predict(rows.assign(**blank) if name == "as_given" else rows.iloc[sample].assign(**blank))
            preds[name] = tuple(out[c].to_numpy(dtype=float) for c in ("predicted_amount", "lower", "upper"))
    metrics = _metrics(actual, *preds["as_given"])
    for name in ("description_only", "bare"):
        m = _metrics(actual[sample], *preds[name])
        metrics[f"{name}_mae"] = m["mae"]
        metrics[f"{name}_interval_coverage"] = m["interval_coverage"]
    metrics["n_train"] = float(getattr(model, "n_train", float("nan")))
    return metrics, actual, preds["as_given"]


def _baselines(train_p: pd.DataFrame, test_p: pd.DataFrame, level: float) -> dict[str, dict[str, float]]:
    """Training-period medians (global, per category) with their empirical (1-level)/2..(1+level)/2 intervals."""
    a_train = np.abs(train_p["amount"].to_numpy())
    a_test = np.abs(test_p["amount"].to_numpy())
    qs = [(1 - level) / 2, 0.5, (1 + level) / 2]
    g_lo, g_mid, g_hi = np.quantile(a_train, qs)
    n = len(a_test)
    out = {"global_median": _metrics(a_test, np.full(n, g_mid), np.full(n, g_lo), np.full(n, g_hi))}
    by_cat = pd.Series(a_train).groupby(train_p["category"].to_numpy(dtype=object)).quantile(qs).unstack()
    cat_q = by_cat.reindex(test_p["category"].to_numpy(dtype=object))
    lo, mid, hi = (cat_q[q].fillna(g).to_numpy() for q, g in zip(qs, (g_lo, g_mid, g_hi)))
    out["category_median"] = _metrics(a_test, mid, lo, hi)
    for m in out.values():
        m["n_train"] = float(len(a_train))
    return out


# --------------------------------------------------------------------------- training
def _codes(values: pd.Series) -> dict[str, int]:
    top = values.dropna().value_counts().index[:MAX_CATEGORY_CODES]
    return {v: i for i, v in enumerate(sorted(top))}


def _augment(rows: pd.DataFrame, fraction: float, rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray]:
    """Copies of a random share of rows as partial requests: half description-only, half bare
    (no description nor reference; the payment method dropped on half of those). Returns the copies
    and the positions of their originals."""
    n_aug = int(round(len(rows) * fraction))
    if n_aug < 2:
        return rows.iloc[:0], np.zeros(0, dtype=int)
    pick = rng.choice(len(rows), size=n_aug, replace=False)
    half = n_aug // 2
    bare = pick[half:]
    drop_pm = rng.random(len(bare)) < 0.5
    parts = [_strip(rows.iloc[pick[:half]], reference=True, description=False, payment=False),
             _strip(rows.iloc[bare[drop_pm]], reference=True, description=True, payment=True),
             _strip(rows.iloc[bare[~drop_pm]], reference=True, description=True, payment=False)]
    return pd.concat(parts), np.concatenate([pick[:half], bare[drop_pm], bare[~drop_pm]])


def _fit_booster(X: pd.DataFrame, y: np.ndarray, params: dict[str, Any], small: bool):
    n = len(X)
    booster = HistGradientBoostingRegressor(
        loss=params["loss"],
        max_bins=params["max_bins"],
        learning_rate=params["learning_rate"],
        max_iter=params["max_iter"] if not small else min(params["max_iter"], 150),
        max_leaf_nodes=params["max_leaf_nodes"] if not small else 8,
        min_samples_leaf=params["min_samples_leaf"] if not small else max(5, n // 20),
        l2_regularization=params["l2_regularization"],
        categorical_features=[c in _CAT_COLS for c in X.columns],
        early_stopping=n >= 5000,
        validation_fraction=0.1,
        n_iter_no_change=20,
        random_state=params["seed"],
    )
    booster.fit(X.to_numpy(dtype=float), y)
    return booster


def _vectorizer(n_features: int) -> HashingVectorizer:
    return HashingVectorizer(n_features=n_features, alternate_sign=False, lowercase=True, norm="l2",
                             token_pattern=r"(?u)\b[a-z][a-z0-9&']+\b")


def train(data: pd.DataFrame, **params: Any) -> TrainResult:
    """Fit the expense-amount model on warehouse rows (see the module docstring for every choice)."""
    unknown = set(params) - set(DEFAULT_PARAMS)
    if unknown:
        raise ValueError(f"unknown parameters: {sorted(unknown)}")
    p = {**DEFAULT_PARAMS, **params}
    level = float(p["level"])
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    with _threads(p["threads"]):  # also keeps BLAS sums (ridge) reproducible whatever the environment says
        return _train(data, p, level)


def _train(data: pd.DataFrame, p: dict[str, Any], level: float) -> TrainResult:
    t0 = time.perf_counter()
    notes: list[str] = []
    rng = np.random.default_rng(p["seed"])
    vocabulary = F.Vocabulary.from_seeds()

    rows = expense_rows(data)
    if len(rows) < MIN_TRAIN_ROWS + 20:
        raise TrainingDataError(f"{len(rows)} expense rows; the amount model needs at least {MIN_TRAIN_ROWS + 20}")
    train_rows, test_rows = time_split(rows, "txn_date", test_fraction=p["test_fraction"])
    n_before_cap = len(train_rows)
    if n_before_cap > p["max_train_rows"]:
        train_rows = train_rows.iloc[-int(p["max_train_rows"]):]
        notes.append(f"training capped to the latest {len(train_rows):,} of {n_before_cap:,} expense rows "
                     "before the test period (max_train_rows)")
    if len(train_rows) < MIN_TRAIN_ROWS:
        raise TrainingDataError(f"{len(train_rows)} expense rows before the test period; need {MIN_TRAIN_ROWS}")
    fit_rows, cal_rows = time_split(train_rows, "txn_date", test_fraction=p["calibration_fraction"],
                                    min_test_rows=min(20, len(train_rows) // 3))

    train_p = F.prepare(train_rows, vocabulary)
    test_p = F.prepare(test_rows, vocabulary)
    missing_cat = int(train_p["category"].isna().sum())
    if missing_cat:
        notes.append(f"{missing_cat} training expense rows have no category: not used for fitting "
                     "(a request without a category gets the global interval)")
    fit_e = _enrich(train_p.loc[fit_rows.index][lambda d: d["category"].notna()])
    cal_e = _enrich(train_p.loc[cal_rows.index][lambda d: d["category"].notna()])
    if len(fit_e) < MIN_TRAIN_ROWS // 2 or len(cal_e) < 5:
        raise TrainingDataError(f"{len(fit_e)} categorised expense rows to fit on and {len(cal_e)} to calibrate "
                                f"on; need {MIN_TRAIN_ROWS // 2} and 5")
    small = len(fit_e) < 2000
    if small:
        notes.append(f"small data: {len(fit_e)} fitting and {len(cal_e)} calibration rows; a shallow booster and "
                     "one global conformal interval per input tier (not per category), wide on purpose")
    y_fit = np.log1p(np.abs(fit_e["amount"].to_numpy()))

    vectorizer = _vectorizer(int(p["text_hash_features"]))
    enc = _Encoder(p, vectorizer)
    codes = {"category": _codes(fit_e["category"]), "payment_method": _codes(fit_e["payment_method"])}
    t_enc = time.perf_counter()
    text_fit = enc.text_matrix(fit_e)
    # Out-of-fold encodings for the booster's training matrix (originals and augmented copies).
    aug_e, aug_src = _augment(fit_e, p["augment_fraction"], rng)
    y_aug = y_fit[aug_src]
    k = int(p["oof_folds"]) if len(fit_e) >= 20 * int(p["oof_folds"]) else 2
    fold = rng.integers(0, k, size=len(fit_e))
    fold_aug = fold[aug_src]
    parts, targets = [], []
    for f in range(k):
        state_f = enc.fit(fit_e[fold != f], y_fit[fold != f], text_fit)
        parts += [enc.matrix(state_f, fit_e[fold == f], codes, text_fit),
                  enc.matrix(state_f, aug_e[fold_aug == f], codes, text_fit)]
        targets += [y_fit[fold == f], y_aug[fold_aug == f]]
    X_fit = pd.concat(parts, ignore_index=True)
    y_all = np.concatenate(targets)
    state = enc.fit(fit_e, y_fit, text_fit)
    t_enc = time.perf_counter() - t_enc
    feature_names = list(X_fit.columns)
    t_gbm = time.perf_counter()
    booster = _fit_booster(X_fit, y_all, p, small)
    t_gbm = time.perf_counter() - t_gbm

    # Reporting state: the whole training period (fit + calibration rows).
    a_train = np.abs(train_p["amount"].to_numpy())
    report = (pd.DataFrame({"a": a_train, "c": train_p["category"].to_numpy(dtype=object)}).dropna()
              .groupby("c")["a"].agg(mean_amount="mean", median_amount="median", n="size"))
    model = AmountModel(vocabulary=vocabulary, params=p, state=state, vectorizer=vectorizer, booster=booster,
                        codes=codes, feature_names=feature_names, calibration={},
                        global_quantiles=np.quantile(np.log1p(a_train), _GLOBAL_PROBS),
                        category_report=report, global_mean=float(a_train.mean()),
                        global_median=float(np.median(a_train)), level=level, n_train=len(train_p), notes=notes)

    # Split-conformal calibration on the latest training days, per input tier (the calibration rows
    # as they are, with the description only, and bare) and, with enough rows, per category.
    t_cal = time.perf_counter()
    text_cal = enc.text_matrix(cal_e)
    variants = {_TIER_REF: cal_e, _TIER_DESC: _strip(cal_e, True, False, False),
                _TIER_BARE: _strip(cal_e, True, True, True)}
    scored: dict[str, tuple[pd.DataFrame, np.ndarray, dict[str, np.ndarray]]] = {}
    for tier, frame in variants.items():
        frame = frame[_tiers(frame) == tier]  # rows without a reference are already in the description tier
        if frame.empty:
            continue
        X_cal = enc.matrix(state, frame, codes, text_cal)
        options = {"booster": booster.predict(X_cal[feature_names].to_numpy(dtype=float)),
                   "lookup": X_cal["merchant_median"].to_numpy()}
        scored[tier] = (frame, np.log1p(np.abs(frame["amount"].to_numpy())), options)
    # The point predictor: the booster, unless the plain lookup (merchant, else category median) has
    # the lower MAE on the calibration rows (it can, on a hundred rows).
    cal_mae = {name: float(np.mean(np.concatenate([np.abs(np.expm1(opt[name]) - np.expm1(y))
                                                   for _, y, opt in scored.values()])))
               for name in ("booster", "lookup")}
    model.point = "booster" if cal_mae["booster"] <= cal_mae["lookup"] else "lookup"
    if model.point == "lookup":
        notes.append(f"the booster did not beat the merchant/category median lookup on the calibration rows "
                     f"(MAE {cal_mae['booster']:.2f} vs {cal_mae['lookup']:.2f}): the model predicts the lookup")
    calibration: dict[tuple[str, str], np.ndarray] = {}
    for tier, (frame, y, options) in scored.items():
        resid = y - options[model.point]
        calibration[("*", tier)] = np.sort(resid).astype(np.float32)
        if not small:
            groups = pd.Series(np.arange(len(frame))).groupby(frame["category"].to_numpy(dtype=object)).indices
            for c, idx in groups.items():
                if len(idx) >= p["min_group_calibration"]:
                    calibration[(c, tier)] = np.sort(resid[idx]).astype(np.float32)
    for tier in (_TIER_REF, _TIER_DESC):  # a tier absent from the calibration rows borrows the next one
        calibration.setdefault(("*", tier), calibration.get(("*", _TIER_DESC), calibration[("*", _TIER_BARE)]))
    model.calibration = calibration
    method = _conformal_bounds(calibration[("*", _TIER_REF)].astype(float), level)[2]
    if method != "signed":
        notes.append(f"only {len(cal_e)} calibration rows: the {level:.0%} interval uses the "
                     f"{'absolute residual' if method == 'absolute' else 'largest residual doubled'}")
    t_cal = time.perf_counter() - t_cal
    train_seconds = time.perf_counter() - t0

    # Test metrics, baselines, figures.
    metrics, actual, (pred, lower, upper) = _score_detail(model, test_rows, test_p)
    baselines = _baselines(train_p[train_p["category"].notna()], test_p, level)
    figures = _figures(actual, pred, lower, upper, level, rng)
    log.info("amount model: %d train rows, mae %.2f (category median %.2f), coverage %.3f, trained in %.1fs",
             len(train_p), metrics["mae"], baselines["category_median"]["mae"], metrics["interval_coverage"],
             train_seconds)
    per_cat = sorted({c for c, t in calibration if c != "*" and t == _TIER_REF})
    logged = {**p, "target": "log1p(abs(expense amount))", "booster": "HistGradientBoostingRegressor",
              "interval": "split conformal, signed log residuals, Mondrian by category and input tier",
              "n_features": len(feature_names), "n_fit_rows": len(fit_e), "n_calibration_rows": len(cal_e),
              "n_augmented_rows": len(aug_e), "n_boost_iter": int(booster.n_iter_),
              "train_rows_before_cap": n_before_cap, "mondrian_categories": len(per_cat),
              "calibration_method": method, "point_predictor": model.point,
              "calibration_mae_booster": round(cal_mae["booster"], 4),
              "calibration_mae_lookup": round(cal_mae["lookup"], 4),
              "encode_seconds": round(t_enc, 2), "boost_seconds": round(t_gbm, 2),
              "calibrate_seconds": round(t_cal, 2), "train_seconds": round(train_seconds, 2)}
    return TrainResult(model=model, metrics=metrics, baselines=baselines, params=logged,
                       data_window={**window_of(train_rows, test_rows, "txn_date"),
                                    "fit_rows": len(fit_rows), "calibration_rows": len(cal_rows)},
                       holdout=test_rows, figures=figures, notes=notes)


# --------------------------------------------------------------------------- figures
def _figures(actual: np.ndarray, predicted: np.ndarray, lower: np.ndarray, upper: np.ndarray, level: float,
             rng: np.random.Generator) -> dict[str, Figure]:
    n = len(actual)
    sample = rng.choice(n, size=min(n, 5000), replace=False)
    a, p = actual[sample], predicted[sample]
    fig = Figure(figsize=(11, 4.5))
    ax1, ax2 = fig.subplots(1, 2)
    ax1.scatter(p, a, s=4, alpha=0.3)
    lim = [max(0.1, min(a.min(), p.min())), max(a.max(), p.max())]
    ax1.plot(lim, lim, color="black", lw=1)
    ax1.set(xscale="log", yscale="log", xlabel="predicted |amount|", ylabel="actual |amount|",
            title="Predicted vs actual (test)")
    ax2.scatter(p, np.log(a / p), s=4, alpha=0.3)
    ax2.axhline(0, color="black", lw=1)
    ax2.set(xscale="log", xlabel="predicted |amount|", ylabel="log(actual / predicted)", title="Residuals")
    fig.tight_layout()
    cover = float(np.mean((actual >= lower) & (actual <= upper)))
    pick = np.sort(rng.choice(n, size=min(n, 60), replace=False))
    pick = pick[np.argsort(predicted[pick])]
    inside = (actual[pick] >= lower[pick]) & (actual[pick] <= upper[pick])
    fig2 = Figure(figsize=(11, 4.5))
    ax = fig2.subplots()
    x = np.arange(len(pick))
    ax.vlines(x, lower[pick], upper[pick], color="tab:blue", alpha=0.5, lw=3, label=f"{level:.0%} interval")
    ax.scatter(x, predicted[pick], marker="_", color="tab:blue", s=80, label="predicted")
    ax.scatter(x[inside], actual[pick][inside], color="tab:green", s=14, label="actual (inside)")
    ax.scatter(x[~inside], actual[pick][~inside], color="tab:red", s=14, label="actual (outside)")
    ax.set(yscale="log", xlabel="test rows (sorted by prediction)", ylabel="|amount|",
           title=f"{level:.0%} intervals on a sample of test rows: coverage {cover:.1%} on all {n} test rows")
    ax.legend(loc="upper left", fontsize=8)
    fig2.tight_layout()
    return {"residuals.png": fig, "intervals.png": fig2}
