"""The review queue's ranking (lib/categories/review.py): pure functions, no database."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from titans_assets.lib.categories import review as R


def _rows(**cols) -> pd.DataFrame:
    n = len(next(iter(cols.values())))
    base = {
        "confidence": [0.5] * n,
        "amount": [-50.0] * n,
        "merchant": [f"m{i}" for i in range(n)],
        "description": [f"d{i}" for i in range(n)],
    }
    return pd.DataFrame({**base, **cols})


def test_uncertainty_and_amount_weight_take_missing_values():
    assert R.uncertainty([0.9, None, float("nan"), 1.5, -0.2, "x"]) == pytest.approx(
        [0.1, 1.0, 1.0, 0.0, 1.0, 1.0]
    )
    assert R.amount_weight([-99.0, 99.0, None, 0]) == pytest.approx([np.log(100), np.log(100), 0.0, 0.0])


def test_lower_confidence_and_larger_amounts_rank_first():
    weights = R.ReviewWeights(new_merchant_boost=1.0, merchant_rows_weight=0.0)
    ranked = R.rank(_rows(confidence=[0.9, 0.2, 0.5], amount=[-50.0, -50.0, -50.0]), [], weights)
    assert ranked.index.tolist() == [1, 2, 0]
    ranked = R.rank(_rows(confidence=[0.4, 0.4, 0.4], amount=[-20.0, 2000.0, -200.0]), [], weights)
    assert ranked.index.tolist() == [1, 2, 0]  # the sign does not matter, the size does
    # the product: a certain large row loses to a doubtful medium one
    ranked = R.rank(_rows(confidence=[0.99, 0.3], amount=[-5000.0, -80.0]), [], weights)
    assert ranked.index.tolist() == [1, 0]
    assert ranked["review_score"].tolist() == pytest.approx([0.7 * np.log(81), 0.01 * np.log(5001)])


def test_a_merchant_never_labelled_is_boosted():
    rows = _rows(confidence=[0.5, 0.5], merchant=["ACME", "Shell"])
    ranked = R.rank(
        rows,
        labelled_keys=["shell"],
        weights=R.ReviewWeights(new_merchant_boost=3.0, merchant_rows_weight=0.0),
    )
    assert ranked["merchant"].tolist() == ["ACME", "Shell"] and ranked["new_merchant"].tolist() == [
        True,
        False,
    ]
    assert ranked["review_score"].iloc[0] == pytest.approx(3 * ranked["review_score"].iloc[1])
    # the boost outweighs some certainty, not all of it
    rows = _rows(confidence=[0.9, 0.5], merchant=["ACME", "Shell"])
    assert R.rank(rows, ["shell"], R.ReviewWeights(3.0, 0.0))["merchant"].tolist() == ["Shell", "ACME"]


def test_a_merchant_key_falls_back_to_the_description():
    keys = R.merchant_key(pd.Series([" Shell ", None, None]), pd.Series(["x", " Corner Shop ", None]))
    assert keys.tolist() == ["shell", "corner shop", ""]
    assert R.new_merchant_mask(keys, ["shell", ""]).tolist() == [False, True, False]  # no key is never "new"


def test_one_page_spreads_over_merchants_and_frequent_merchants_come_first():
    rows = _rows(
        confidence=[0.1, 0.1, 0.1, 0.1, 0.2],
        merchant=["a", "a", "a", "a", "b"],
        amount=[-40.0, -50.0, -60.0, -70.0, -40.0],
    )
    flat = R.ReviewWeights(new_merchant_boost=1.0, merchant_rows_weight=0.0, merchant_decay=False)
    assert R.rank(rows, [], flat, limit=2)["merchant"].tolist() == ["a", "a"]
    spread = R.ReviewWeights(new_merchant_boost=1.0, merchant_rows_weight=0.0, merchant_decay=True)
    ranked = R.rank(rows, [], spread)
    assert ranked["merchant"].tolist()[:2] == ["a", "b"] and ranked.index[0] == 3  # a's largest row first
    # the merchant's open rows: 'a' (4 rows) outranks 'c' (1 row) at the same doubt and amount
    rows = _rows(confidence=[0.5] * 5, merchant=["a", "a", "a", "a", "c"])
    ranked = R.rank(rows, [], R.ReviewWeights(new_merchant_boost=1.0, merchant_rows_weight=1.0))
    assert ranked["merchant"].iloc[0] == "a"
    assert ranked["review_score"].iloc[0] == pytest.approx(0.5 * np.log(51) * (1 + np.log(4)))


@pytest.mark.parametrize("seed", range(5))
def test_rank_is_a_permutation_ordered_by_score_with_a_limit(seed):
    rng = np.random.default_rng(seed)
    n = 200
    rows = _rows(
        confidence=rng.uniform(0, 1, n),
        amount=rng.normal(0, 300, n),
        merchant=rng.choice(["a", "b", "c", None], n),
        description=rng.choice(["x", "y"], n),
    )
    ranked = R.rank(rows, ["a"])
    assert sorted(ranked.index) == list(range(n))
    assert (np.diff(ranked["review_score"].to_numpy()) <= 0).all()
    assert ranked.head(20).equals(R.rank(rows, ["a"], limit=20))
    assert (ranked["review_score"] >= 0).all()


def test_only_rows_a_model_or_nothing_categorised_need_review_and_empty_frames_work():
    sources = pd.Series(["export", "correction", "rule", "model", "none", None])
    assert R.needs_review(sources).tolist() == [False, False, False, True, True, True]
    empty = R.rank(_rows(confidence=[]).iloc[:0], [])
    assert empty.empty and {"review_score", "new_merchant", "merchant_key"} <= set(empty.columns)


def test_weights_are_checked():
    with pytest.raises(ValueError, match="new_merchant_boost"):
        R.ReviewWeights(new_merchant_boost=0.5)
    with pytest.raises(ValueError, match="merchant_rows_weight"):
        R.ReviewWeights(merchant_rows_weight=-1)
