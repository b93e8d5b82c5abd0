"""The one row-level feature definition (training and serving) and its ports of the dbt macros."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from titans_assets.lib.ml import features as F


def s(*values) -> pd.Series:
    return pd.Series(list(values), dtype=object)


@pytest.mark.parametrize("raw, expected", [
    ("Meals & Entertainment ", "meals_entertainment"),
    (" Credit-Card", "credit_card"),
    ("credit__car", "credit_car"),
    ("__x__", "x"),
    ("", None),
    (None, None),
])
def test_normalize_label_matches_the_dbt_macro_examples(raw, expected):
    assert F.normalize_label(s(raw)).iloc[0] == expected


@pytest.mark.parametrize("raw, expected", [
    ("STARBUCKS #1234  Seattle*WA", "starbucks seattle wa"),
    ("Shell fuel 0042", "shell fuel"),
    ("AT&T bill 2024", "at&t bill"),
    ("O'Reilly 12ab", "o'reilly 12ab"),
    ("1234", None),
    ("", None),
])
def test_clean_description_drops_punctuation_and_digit_only_tokens(raw, expected):
    assert F.clean_description(s(raw)).iloc[0] == expected


def test_merchant_prefers_the_reference_then_the_description():
    got = F.merchant_of(s("  ACME   Corp ", "", None), s("x", "Coffee Shop #12", "Uber *trip 99"))
    assert got.tolist() == ["acme corp", "coffee shop", "uber trip"]


def test_vocabulary_from_the_seeds_maps_typos_and_keeps_unknown_labels():
    v = F.Vocabulary.from_seeds()
    assert v.payment_method(s("credit_car", " Credit Card ", "zelle", None)).tolist() == [
        "credit_card", "credit_card", "zelle", None]
    assert v.category(s("Meals and Entertainment", "software")).tolist() == ["meals_entertainment", "software"]


def test_prepare_accepts_a_request_shape_and_fills_what_is_missing():
    v = F.Vocabulary.from_seeds()
    p = F.prepare(pd.DataFrame({"date": ["2024-01-15"], "amount": ["-12.50"]}), v)
    row = p.iloc[0]
    assert row["txn_date"] == pd.Timestamp("2024-01-15") and row["amount"] == -12.5
    assert row["description"] == "" and row["reference"] == "" and row["merchant"] is None
    assert row["payment_method"] is None and row["category"] is None


def test_time_features_know_weekends_holidays_and_paydays():
    dates = pd.Series(pd.to_datetime(["2024-01-15", "2024-01-13", "2024-02-29", "2024-07-01"]))
    t = F.time_features(dates)
    assert t["is_holiday"].tolist() == [1, 0, 0, 0]  # MLK day
    assert t["is_weekend"].tolist() == [0, 1, 0, 0]
    assert t["is_business_day"].tolist() == [0, 0, 1, 1]
    assert t["days_since_payday"].tolist() == [0, 12, 14, 0]
    assert t["days_until_payday"].tolist() == [17, 2, 1, 14]
    assert t["is_month_end"].tolist() == [0, 0, 1, 0] and t["is_month_start"].tolist() == [0, 0, 0, 1]
    np.testing.assert_allclose(t["dow_sin"] ** 2 + t["dow_cos"] ** 2, 1.0)


def test_amount_features():
    a = F.amount_features(pd.Series([-120.0, 45.5, 0.0]))
    np.testing.assert_allclose(a["log_abs_amount"], np.log1p([120.0, 45.5, 0.0]))
    assert a["is_expense"].tolist() == [1, 0, 0]
    assert a["is_round_10"].tolist() == [1, 0, 1] and a["has_cents"].tolist() == [0, 1, 0]


def test_row_features_are_the_same_for_one_row_and_for_a_batch():
    v = F.Vocabulary.from_seeds()
    batch = pd.DataFrame({"txn_date": ["2024-03-01", "2024-03-02", "2024-12-25"], "amount": [-5.0, 10.0, -99.99],
                          "description": ["a", "b", "c"]})
    whole = F.row_features(F.prepare(batch, v))
    for i in range(len(batch)):
        one = F.row_features(F.prepare(batch.iloc[[i]], v))
        pd.testing.assert_frame_equal(one, whole.iloc[[i]])
    assert "log_abs_amount" not in F.row_features(F.prepare(batch, v), include_amount=False)


def test_prepare_is_idempotent():
    """Models rescore holdouts that are already prepared: preparing twice must change nothing."""
    v = F.Vocabulary.from_seeds()
    raw = pd.DataFrame({"date": ["2024-01-15", "2024-02-01"], "amount": ["-12.50", "40"],
                        "description": ["STARBUCKS #1234  Seattle*WA", ""], "reference": [None, " ACME  Corp"],
                        "payment_method": ["credit_car", None], "category": ["Meals & Entertainment", None]})
    once = F.prepare(raw, v)
    pd.testing.assert_frame_equal(F.prepare(once, v), once)
