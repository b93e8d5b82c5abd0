"""The anomaly model's issue-16 changes, on small hand-built ledgers: the amount z shrunk towards the
parent level, the new-merchant evidence weighed by how rare new merchants are, weak evidence that no
reason names left out of the score, and the threshold chosen on pooled injection draws.

Pure Python, no database; every date is explicit."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from titans_assets.lib.ml import anomaly
from titans_assets.lib.ml.anomaly.canon import _canon
from titans_assets.lib.ml.anomaly.estimate import _fit, _new_merchant_rate
from titans_assets.lib.ml.features import Vocabulary

START = dt.date(2024, 1, 1)


def ledger(
    groups: dict[tuple[str, str], list[float]], start: dt.date = START, every: int = 1
) -> pd.DataFrame:
    """Expense rows (amounts given positive, stored negative), one every `every` days, interleaved
    across the (merchant, category) groups so each spans the whole period."""
    rows = []
    queues = {k: list(v) for k, v in groups.items()}
    day = 0
    while any(queues.values()):
        for (merchant, category), q in queues.items():
            if q:
                rows.append(
                    {
                        "txn_date": start + dt.timedelta(days=day),
                        "amount": -q.pop(0),
                        "description": merchant.upper(),
                        "reference": merchant,
                        "category": category,
                        "txn_type": "Expense",
                        "account": "card",
                    }
                )
                day += every
    return pd.DataFrame(rows)


def fitted(frame: pd.DataFrame) -> anomaly.AnomalyModel:
    vocabulary = Vocabulary.from_seeds()
    return _fit(_canon(frame, vocabulary), vocabulary)


def z_of(model: anomaly.AnomalyModel, rows: pd.DataFrame) -> np.ndarray:
    return model.components(rows)["z"].to_numpy()


def probe(merchant: str, category: str, amount: float, day: dt.date = dt.date(2025, 3, 3)) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "txn_date": [day],
            "amount": [-amount],
            "description": [merchant.upper()],
            "reference": [merchant],
            "category": [category],
            "txn_type": ["Expense"],
            "account": ["card"],
        }
    )


def test_a_merchant_seen_twice_moves_the_centre_but_leans_on_its_category():
    rng = np.random.default_rng(0)
    wide = list(np.round(np.exp(rng.normal(np.log(40.0), 1.0, 60)), 2))  # a wide category: 40.00, x2.7 spread
    base = {("hardware store", "supplies"): wide}
    two = fitted(ledger({**base, ("tool shop", "supplies"): [10.0, 10.0]}))
    many = fitted(ledger({**base, ("tool shop", "supplies"): [10.0] * 40}))
    row = probe("tool shop", "supplies", 60.0)  # 6x the tool shop's price
    z_two, z_many = z_of(two, row)[0], z_of(many, row)[0]
    z_category = (np.log(60.0) - two.categories.loc["supplies", "med"]) / two.categories.loc[
        "supplies", "scale"
    ]
    # two rows: the centre moves towards 10.00 (so 60.00 is further out than against the category alone),
    # the spread stays near the category's; forty rows at one price: the merchant's own floor spread rules
    assert z_category < z_two < z_many
    assert z_two < 3.0 < z_many
    # a merchant never seen falls back to the category's statistics exactly
    z_new = z_of(two, probe("brand new vendor", "supplies", 60.0))[0]
    assert z_new == pytest.approx(z_category)


def test_new_merchant_rate_is_the_share_of_first_appearances_in_the_latest_quarter():
    # 80 rows over 4 merchants, then 20 rows: 5 of them from merchants never seen before
    old = {(f"shop {i}", "supplies"): [20.0] * 20 for i in range(4)}
    frame = ledger(old)
    tail = [
        {
            "txn_date": START + dt.timedelta(days=200 + i),
            "amount": -20.0,
            "description": (f"NEW {i}" if i % 4 == 0 else "SHOP 1"),
            "reference": (f"new {i}" if i % 4 == 0 else "shop 1"),
            "category": "supplies",
            "txn_type": "Expense",
            "account": "card",
        }
        for i in range(20)
    ]
    frame = pd.concat([frame, pd.DataFrame(tail)], ignore_index=True)
    c = _canon(frame, Vocabulary.from_seeds())
    assert _new_merchant_rate(c) == pytest.approx(5 / 25)  # the latest quarter: 25 rows, 5 first
    assert _new_merchant_rate(c.head(10)) is None  # too few rows to say


def test_a_never_seen_merchant_counts_only_where_new_merchants_are_rare():
    frame = ledger({("hardware store", "supplies"): [40.0, 45.0, 38.0, 50.0] * 15})
    model = fitted(frame)
    row = probe("brand new vendor", "supplies", 400.0)  # 8x the category's usual, a merchant never seen
    model.new_rate = 0.005  # a stable set of merchants
    rare = model.components(row)["p_new_merchant"].iloc[0]
    model.new_rate = 0.03
    some = model.components(row)["p_new_merchant"].iloc[0]
    model.new_rate = 0.4  # raw bank strings: nearly every other row is "new"
    common = model.components(row)["p_new_merchant"].iloc[0]
    assert rare > 0.9 and 0 < some < rare and common == 0.0
    # the amount still judges the row against its category, whatever the rate
    assert model.components(row)["p_amount"].iloc[0] > 0.5
    model.new_rate = None  # a model pickled before the rate existed: full weight
    assert model.components(row)["p_new_merchant"].iloc[0] == pytest.approx(rare, rel=1e-6)


def test_weak_evidence_no_reason_names_does_not_count_but_a_small_amount_signal_does():
    model = fitted(ledger({("hardware store", "supplies"): [40.0, 45.0, 38.0, 50.0] * 15}))
    n = 3
    zero = {f"p_{k}": np.zeros(n) for k in anomaly.COMPONENTS}
    weak = {**zero, "p_frequency": np.array([0.0, 0.5, 0.7])}  # weight 0.5: 0.25 (unnamed), 0.35 (named)
    s = model._combine(weak)
    assert s[0] == 0.0 and s[1] == 0.0 and s[2] == pytest.approx(0.35)
    amount = {**zero, "p_amount": np.array([0.0, 0.01, 0.2])}  # the amount counts at any level: it ranks rows
    s = model._combine(amount)
    assert 0 == s[0] < s[1] < s[2]
    # the one-row request path combines the same way (a request's score equals the batch path's)
    rows = pd.concat(
        [
            probe("hardware store", "supplies", a, dt.date(2025, 3, 3) + dt.timedelta(days=7 * i))
            for i, a in enumerate((42.0, 120.0, 900.0))
        ],
        ignore_index=True,
    )  # apart: no in-frame context
    batch = model.predict(rows)["anomaly_score"].to_numpy()
    one = [model.predict(rows.iloc[[i]])["anomaly_score"].iloc[0] for i in range(len(rows))]
    assert batch.tolist() == one
    assert batch[0] < 0.01 < batch[1] < batch[2]


def test_without_labels_the_threshold_pools_injection_draws_on_a_small_ledger():
    rng = np.random.default_rng(1)
    groups = {
        (f"vendor {i}", f"cat {i % 5}"): list(np.round(np.exp(rng.normal(np.log(15 + 10 * i), 0.3, 12)), 2))
        for i in range(25)
    }
    frame = ledger(groups)  # 300 rows, 25 merchants, 5 categories, one row a day
    result = anomaly.train(frame, seed=0)
    p = result.params
    assert p["evaluation"] == "injected"
    # one draw of ~48 validation rows holds ~7 anomalies: the draws are pooled until 200 (at most 10)
    assert 1 < p["validation_draws"] <= 10
    assert p["validation_anomalies"] >= 7 * p["validation_draws"] * 0.9
    one_draw = anomaly.train(frame, seed=0, max_validation_draws=1)
    assert one_draw.params["validation_draws"] == 1
    assert one_draw.params["validation_anomalies"] < p["validation_anomalies"]
    assert 0 < result.metrics["threshold"] < 1


def test_inject_anomalies_skips_merchants_whose_rows_are_all_uncategorised():
    frame = ledger({("hardware store", "supplies"): [40.0] * 12, ("cafe", "meals"): [4.0] * 12})
    cash = ledger({("atm withdrawal", "x"): [60.0] * 12}, start=START + dt.timedelta(days=1), every=2)
    cash["category"] = None  # a merchant with only uncategorised rows: once a KeyError
    frame = pd.concat([frame, cash], ignore_index=True).sort_values("txn_date", kind="stable")
    out, labels, kinds = anomaly.inject_anomalies(frame, rate=0.2, seed=3, kinds=("atypical_merchant",))
    assert labels.any() and set(kinds[labels]) == {"atypical_merchant"}
    moved = out.loc[labels, "reference"].str.lower()
    assert not moved.eq("atm withdrawal").any()
