"""Fitting an `AnomalyModel` on canonical training rows: the statistics per merchant, category and
direction, P(category | merchant), the share of new merchants and the isolation forest."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.ensemble import IsolationForest

from titans_assets.lib.ml.anomaly.constants import DEFAULT_WEIGHTS
from titans_assets.lib.ml.anomaly.model import AnomalyModel
from titans_assets.lib.ml.anomaly.stats import _robust_table, _twins
from titans_assets.lib.ml.common import TrainingDataError
from titans_assets.lib.ml.features import Vocabulary


def _fit(
    c: pd.DataFrame,
    vocabulary: Vocabulary,
    *,
    min_group: int = 8,
    small_amount: float = 5.0,
    weights: dict[str, float] | None = None,
    n_estimators: int = 100,
    if_sample: int = 20_000,
    seed: int = 0,
) -> AnomalyModel:
    """Fit the statistics and the isolation forest on canonical training rows."""
    if len(c) == 0:
        raise TrainingDataError("no training rows for the anomaly model")
    mc = _robust_table(c, "mckey")
    merchants = _robust_table(c, "mkey")
    categories = _robust_table(c, "ckey")
    directions = _robust_table(c, "dir")
    _merchant_habits(c, merchants, small_amount)

    # quantiles of size per category and direction
    q95_c = c.groupby("ckey", sort=False)["abs"].quantile(0.95)
    categories["q95"] = q95_c.reindex(categories.index)
    directions["q95"] = c.groupby("dir", sort=False)["abs"].quantile(0.95).reindex(directions.index)

    model = AnomalyModel(
        vocabulary=vocabulary,
        merchant_category=mc,
        merchants=merchants,
        categories=categories,
        directions=directions,
        cat_prob=np.zeros((0, 0)),
        cat_merchants=pd.Index([], dtype=object),
        cat_labels=pd.Index([], dtype=object),
        forest=None,
        forest_ref=np.zeros(0),
        weights=dict(weights or DEFAULT_WEIGHTS),
        small_amount=small_amount,
        min_group=min_group,
    )

    model.new_rate = _new_merchant_rate(c)
    _category_affinity(model, c)
    if len(c) >= 20:
        _isolation_forest(model, c, n_estimators=n_estimators, if_sample=if_sample, seed=seed)
    return model


def _merchant_habits(c: pd.DataFrame, merchants: pd.DataFrame, small_amount: float) -> None:
    """Add each merchant's habits to its table (in place): the share of business-day postings, the most
    rows on one day, its active days, the share of small charges per day and how often it repeats an
    amount (NaN columns when no row has a merchant)."""
    has_m = c["has_merchant"].to_numpy()
    if has_m.any():
        cm = c[has_m]
        mcode, muniq = pd.factorize(cm["mkey"].to_numpy(dtype=object))
        muniq = pd.Index(muniq, dtype=object)

        def per_merchant(values: pd.Series) -> pd.Series:
            return pd.Series(values.to_numpy(dtype=float), index=muniq[values.index]).reindex(merchants.index)

        merchants["bday_share"] = per_merchant(
            pd.Series(cm["bday"].to_numpy(dtype=float)).groupby(mcode).mean()
        )
        per_day = pd.DataFrame(
            {
                "g": cm["g_am"].to_numpy(),
                "d": cm["day"].to_numpy(),
                "m": mcode,
                "small": (cm["expense"].to_numpy() & (cm["abs"].to_numpy() < small_amount)),
            }
        )
        days = per_day.groupby(["g", "d"], sort=False).agg(
            m=("m", "first"), rows=("small", "size"), small=("small", "sum")
        )
        by_m = days.groupby("m", sort=True)
        merchants["day_max"] = per_merchant(by_m["rows"].max())
        merchants["active_days"] = per_merchant(by_m.size())
        merchants["small_rate"] = per_merchant(by_m["small"].mean())
        same, prev = _twins(c)
        twin = pd.Series(((same + prev) > 0)[has_m].astype(float)).groupby(mcode)
        # shrunk towards the overall rate with the weight of 100 rows: one coincidence is not a habit
        overall = float(((same + prev) > 0)[has_m].mean())
        merchants["twin_rate"] = per_merchant((twin.sum() + 100.0 * overall) / (twin.size() + 100.0))
    for col in ("bday_share", "day_max", "active_days", "small_rate", "twin_rate"):
        if col not in merchants:
            merchants[col] = np.nan


def _category_affinity(model: AnomalyModel, c: pd.DataFrame) -> None:
    """P(category | merchant) with a learned category-affinity prior (expense merchants), on the model."""
    has_m = c["has_merchant"].to_numpy()
    ce = c[has_m & c["expense"].to_numpy() & c["category"].notna().to_numpy()]
    if len(ce):
        counts = ce.groupby(["mkey", "ckey"], sort=False).size().unstack(fill_value=0)
        N = counts.to_numpy(dtype=float)
        n_m = N.sum(axis=1, keepdims=True)
        P = N / n_m
        # category affinity T[c', c]: among rows under c', how often their merchant is also used for c.
        # Generalist merchants (Amazon, Costco: many categories) say little about which labels are
        # near-synonyms, so a merchant counts with weight 1 / (effective number of its categories)^2.
        with np.errstate(divide="ignore", invalid="ignore"):
            entropy = -np.nansum(np.where(P > 0, P * np.log(P), 0.0), axis=1)
        w = np.exp(-2.0 * entropy)[:, None]
        T = (w * N).T @ P / np.maximum((w * N).sum(axis=0)[:, None], 1e-12)
        T = (T + T.T) / 2.0  # near-synonyms are symmetric
        prior = P @ T
        model.cat_prob = (0.5 * N / (n_m + 1.0) + 0.5 * prior).astype(np.float32)
        model.cat_merchants = pd.Index(counts.index, dtype=object)
        model.cat_labels = pd.Index(counts.columns, dtype=object)


def _isolation_forest(model: AnomalyModel, c: pd.DataFrame, *, n_estimators: int, if_sample: int, seed: int):
    """scikit-learn's isolation forest on a subsample of the training rows, with their evidence in
    context, and the training rows' sorted scores its ranks are read against (on the model)."""
    comp = model._components(c, isolation=False)
    rng = np.random.default_rng(seed)
    take = np.sort(rng.choice(len(c), size=min(if_sample, len(c)), replace=False))
    x = model._isolation_frame(c.iloc[take], {k: v[take] for k, v in comp.items()})
    forest = IsolationForest(n_estimators=n_estimators, max_samples=min(256, len(take)), random_state=seed)
    forest.fit(x)
    model.forest = forest
    model.forest_ref = np.sort(-forest.score_samples(x))


def _new_merchant_rate(c: pd.DataFrame, latest: float = 0.25) -> float | None:
    """Share of the latest `latest` of the rows (by date) whose merchant never appeared before them
    (rows without a merchant count as not new); None when there are too few rows to say."""
    n = len(c)
    if n < 20:
        return None
    order = np.argsort(c["day"].to_numpy(), kind="stable")
    keys = c["mkey"].to_numpy(dtype=object)[order]
    has = c["has_merchant"].to_numpy()[order]
    first = ~pd.Series(keys).duplicated().to_numpy() & has
    return float(first[int(n * (1.0 - latest)) :].mean())
