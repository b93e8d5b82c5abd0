"""The transaction category model on generated ledgers (no database): beats its baselines, calibrated
probabilities, serving-shaped predictions for single requests and batches, rare and unseen categories,
small data, pickling."""

from __future__ import annotations

import datetime as dt
import pickle

import numpy as np
import pandas as pd
import pytest
from conftest import warehouse_rows
from matplotlib.figure import Figure
from support import row_chunks

from titans_assets.lib.generator import generate
from titans_assets.lib.ml import category
from titans_assets.lib.ml import features as F
from titans_assets.lib.ml.category import request
from titans_assets.lib.ml.category.calibrate import _origin_folds
from titans_assets.lib.ml.common import TrainingDataError, TrainResult

END = dt.date(2026, 6, 30)
SEED = 7
METRICS = {
    "accuracy",
    "macro_f1",
    "weighted_f1",
    "top3_accuracy",
    "log_loss",
    "ece",
    "n_train",
    "n_test",
    "n_classes",
}
REQUEST = {"amount": -54.99, "description": "ADOBE *CREATIVE CLD", "date": "2026-07-01"}


@pytest.fixture(scope="module")
def ledger(tmp_path_factory) -> pd.DataFrame:
    root = tmp_path_factory.mktemp("category")
    generate(root / "raw", rows=20_000, seed=SEED, end_date=END, labels_dir=root / "labels")
    return warehouse_rows(root / "raw")


@pytest.fixture(scope="module")
def result(ledger) -> TrainResult:
    return category.train(ledger)


def test_contract_constants():
    assert category.NAME == "titans_category"
    assert category.PRIMARY_METRIC == "macro_f1" and category.HIGHER_IS_BETTER is True


def test_the_model_beats_both_baselines_on_the_most_recent_period(result, ledger):
    m = result.metrics
    assert set(m) == METRICS and set(result.baselines) == {"majority", "description_lookup"}
    for name, base in result.baselines.items():
        assert set(base) == METRICS, name
        assert m["macro_f1"] > base["macro_f1"] + 0.03, (name, m, base)
        assert m["accuracy"] > base["accuracy"] + 0.03, (name, m, base)
        assert m["log_loss"] < base["log_loss"], (name, m, base)
    assert result.best_baseline("macro_f1", True)[0] == "description_lookup"
    assert m["top3_accuracy"] >= m["accuracy"] > 0.8
    assert m["n_classes"] >= 20 and m["n_test"] == result.data_window["test_rows"]
    # Time split: the test period is the future of the training period, expense rows only.
    w = result.data_window
    assert w["train_end"] < w["test_start"] and w["test_end"] == END.isoformat()
    expenses = int(ledger["category"].notna().sum())
    assert w["train_rows"] + w["test_rows"] == expenses
    assert 0.15 < w["test_rows"] / expenses < 0.3


def test_probabilities_are_calibrated(result):
    model, holdout = result.model, result.holdout
    proba = model.predict_proba(holdout)
    assert proba.shape == (len(holdout), len(model.classes_))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    assert result.metrics["ece"] < 0.05
    # The regime was chosen on rolling origins of the training period; its temperature is fitted on
    # those held-out predictions.
    assert result.params["calibration_method"] == "rolling_origins" and result.params["temperature"] > 0
    # Among confident predictions, the confidence is about the hit rate.
    out = model.predict(holdout)
    sure = out["confidence"] > 0.9
    hit = (out["prediction"] == holdout["category"])[sure].mean()
    assert abs(hit - out["confidence"][sure].mean()) < 0.05


def test_the_ece_of_known_cases():
    conf = np.array([0.9, 0.9, 0.9, 0.9, 0.3, 0.3])
    assert category.expected_calibration_error(conf, np.array([1, 1, 1, 0, 0, 1], bool)) == pytest.approx(
        4 / 6 * 0.15 + 2 / 6 * 0.2
    )
    assert category.expected_calibration_error(np.full(10, 0.7), np.arange(10) < 7) == pytest.approx(0.0)


def test_a_single_request_with_only_amount_description_and_date(result):
    model = result.model
    frame = pd.DataFrame([REQUEST], index=[42])
    out = model.predict(frame)
    assert list(out.columns) == ["prediction", "confidence", "alternatives"] and list(out.index) == [42]
    row = out.loc[42]
    assert row["prediction"] == "software"
    assert isinstance(row["prediction"], str) and 0 < row["confidence"] <= 1
    alts = row["alternatives"]
    assert len(alts) == 3 and alts[0] == {"category": row["prediction"], "confidence": row["confidence"]}
    assert [a["confidence"] for a in alts] == sorted((a["confidence"] for a in alts), reverse=True)
    assert all(isinstance(a["category"], str) and isinstance(a["confidence"], float) for a in alts)
    assert len(model.predict(frame, top_k=5).loc[42, "alternatives"]) == 5
    assert len(model.predict(frame, top_k=1000).loc[42, "alternatives"]) == len(model.classes_)
    # Optional fields change the answer where they should: a coffee on the business card vs the personal one.
    coffee = {"amount": -6.4, "description": "STARBUCKS STORE 40847", "date": "2026-07-02"}
    business = model.predict(pd.DataFrame([{**coffee, "payment_method": "credit_card"}])).iloc[0]
    personal = model.predict(pd.DataFrame([{**coffee, "payment_method": "Debit Card"}])).iloc[0]
    assert (business["prediction"], personal["prediction"]) == ("meals_entertainment", "food")
    # Nothing usable at all: still an answer, with low confidence.
    empty = model.predict(pd.DataFrame([{"description": None}])).iloc[0]
    assert empty["prediction"] in set(model.classes_) and empty["confidence"] < 0.5


def test_a_request_with_an_empty_description_is_predicted_from_the_other_fields(result, ledger):
    """A bank line without a description (a transfer memo left blank) still has a reference, an amount,
    a payment method and a date: the model answers from those, as it would with the description."""
    model = result.model
    known = ledger[ledger["category"].eq("software") & ledger["reference"].fillna("").str.len().gt(0)]
    reference = known["reference"].value_counts().index[0]  # the commonest software vendor
    for blank in ("", None):
        row = {
            "amount": -54.99,
            "description": blank,
            "reference": reference,
            "payment_method": "credit_card",
            "date": "2026-07-01",
        }
        out = model.predict(pd.DataFrame([row])).iloc[0]
        assert out["prediction"] == "software", (blank, out)
        assert 1 / len(model.classes_) < out["confidence"] <= 1
        assert sum(
            a["confidence"] for a in model.predict(pd.DataFrame([row]), top_k=1000).iloc[0]["alternatives"]
        ) == pytest.approx(1.0)


def _spelled_ledger(seed: int = 3) -> pd.DataFrame:
    """~240 expenses over eight months whose categories a person typed: mostly `Food & Dining`, sometimes
    `food & dining ` or `FOOD_DINING` (all one label once normalized), the same for two more."""
    rng = np.random.default_rng(seed)
    spellings = {
        "Food & Dining": ("food & dining ", "FOOD_DINING"),
        "Gas & Fuel": ("gas & fuel",),
        "Office Supplies": ("office supplies", "Office  supplies"),
    }
    shops = {
        "Food & Dining": ("CHIPOTLE 1234", "PANERA BREAD #600", "TST* VALLEY BISTRO"),
        "Gas & Fuel": ("SHELL OIL 5741", "SUNOCO 0921", "TURKEY HILL #29"),
        "Office Supplies": ("STAPLES 00123", "OFFICE DEPOT #77", "AMAZON MKTP US*2K4"),
    }
    rows = []
    start = dt.date(2026, 1, 1)
    for i in range(240):
        label = list(spellings)[i % 3]
        spelled = label if rng.random() < 0.7 else str(rng.choice(spellings[label]))
        rows.append(
            {
                "txn_date": (start + dt.timedelta(days=i)).isoformat(),
                "txn_type": "Expense",
                "description": str(rng.choice(shops[label])),
                "amount": -round(float(rng.uniform(5, 80)), 2),
                "category": spelled,
                "payment_method": "credit_card",
                "reference": "",
            }
        )
    return pd.DataFrame(rows)


def test_labels_come_back_in_the_users_own_spelling():
    data = _spelled_ledger()
    r = category.train(data)
    model = r.model
    # Internally one normalized label per category: classes, holdout and metrics.
    assert set(model.classes_) == {"food_dining", "gas_fuel", "office_supplies"}
    assert set(r.holdout["category"]) <= set(model.classes_)
    assert category.score(model, r.holdout) == pytest.approx(r.metrics, nan_ok=True)
    # Outward: the spelling the user wrote most often, for the prediction and every alternative.
    out = model.predict(
        pd.DataFrame(
            [
                {"amount": -12.5, "description": "CHIPOTLE 1234", "date": "2026-09-01"},
                {"amount": -40.0, "description": "SHELL OIL 5741", "date": "2026-09-01"},
            ]
        )
    )
    assert out["prediction"].tolist() == ["Food & Dining", "Gas & Fuel"]
    for alts in out["alternatives"]:
        assert {a["category"] for a in alts} == {"Food & Dining", "Gas & Fuel", "Office Supplies"}
    cols = model.predict_columns(
        {
            "amount": np.array([-12.5]),
            "description": np.array(["CHIPOTLE 1234"], dtype=object),
            "txn_date": np.array(["2026-09-01"], dtype=object),
        }
    )
    assert cols["prediction"].tolist() == ["Food & Dining"]
    # A baseline served in the model's place answers in the same spelling.
    request = pd.DataFrame([{"amount": -12.5, "description": "CHIPOTLE 1234", "date": "2026-09-01"}])
    for name, b in r.baseline_models.items():
        assert b.predict(request).iloc[0]["prediction"] in {
            "Food & Dining",
            "Gas & Fuel",
            "Office Supplies",
        }, name
    # The spelling travels inside the model (a pickle round trip, as MLflow stores it).
    assert pickle.loads(pickle.dumps(model)).predict(request).iloc[0]["prediction"] == "Food & Dining"


def test_the_warehouse_label_before_normalization_decides_the_spelling():
    """Rows that carry `category_raw` (the label as typed, beside the normalized `category`) are shown
    in that spelling; a tie goes to the spelling seen first."""
    raw = pd.DataFrame(
        {
            "category": ["Food", "food", "food", "Fuel", "fuel"],
            "category_raw": ["Food", " Food ", "FOOD", "fuel", "Fuel"],
        },
        index=[10, 11, 12, 13, 14],
    )
    prepared = pd.DataFrame({"category": ["food", "food", "food", "fuel", "fuel"]}, index=raw.index)
    assert category.display_spellings(raw, prepared) == {"food": "Food", "fuel": "fuel"}
    no_raw = raw.drop(columns="category_raw")
    assert category.display_spellings(no_raw, prepared) == {"food": "food", "fuel": "Fuel"}
    assert category.display_spellings(raw, prepared.iloc[:0]) == {}


def test_a_batch_of_a_thousand_rows_is_aligned_with_its_frame(result, ledger):
    batch = ledger.tail(1000).sample(frac=1.0, random_state=0)  # shuffled index
    out = result.model.predict(batch)
    assert out.index.equals(batch.index)
    proba = result.model.predict_proba(batch)
    np.testing.assert_allclose(out["confidence"].to_numpy(), proba.max(axis=1))
    assert (out["prediction"].to_numpy() == result.model.classes_[proba.argmax(axis=1)]).all()
    assert result.model.predict(batch.iloc[:0]).empty


def test_pickle_round_trip_predicts_identically(result, ledger):
    clone = pickle.loads(pickle.dumps(result.model))
    batch = ledger.tail(300)
    pd.testing.assert_frame_equal(clone.predict(batch), result.model.predict(batch))
    assert list(clone.classes_) == list(result.model.classes_)


def test_score_rescores_any_model_on_the_same_holdout(result):
    assert category.score(result.model, result.holdout) == pytest.approx(result.metrics)
    lookup = category.LookupBaseline(
        result.model.vocabulary, category.labelled_rows(result.holdout, result.model.vocabulary)
    )
    in_sample = category.score(lookup, result.holdout)  # a lookup fitted on the test rows themselves
    assert in_sample["n_test"] == result.metrics["n_test"]
    assert in_sample["accuracy"] > result.baselines["description_lookup"]["accuracy"]


def test_figures_and_logged_params(result):
    assert set(result.figures) == {"confusion_matrix.png", "calibration.png"}
    assert all(isinstance(f, Figure) for f in result.figures.values())
    labels = {t.get_text() for t in result.figures["confusion_matrix.png"].axes[0].get_xticklabels()}
    assert {"software", "food", "meals_entertainment"} <= labels
    p = result.params
    assert p["max_train_rows"] == category.DEFAULT_PARAMS["max_train_rows"] and p["n_features"] > 1000


def test_training_is_capped_to_the_most_recent_rows(ledger):
    capped = category.train(ledger, max_train_rows=3000)
    w = capped.data_window
    assert w["train_rows"] == 3000 and w["train_rows_before_cap"] > 3000
    assert any("max_train_rows" in n for n in capped.notes)


def test_rare_and_unseen_categories(ledger):
    data = ledger[ledger["txn_date"] >= pd.Timestamp(END) - pd.Timedelta(days=120)].copy()
    dates = data["txn_date"]
    train_rows = data.index[(dates < dates.quantile(0.5)) & data["category"].notna()]
    test_rows = data.index[(dates == dates.max()) & data["category"].notna()]
    data.loc[train_rows[5], "category"] = "Crypto Losses"  # one example, normalised to crypto_losses
    data.loc[test_rows[0], "category"] = "brand_new"  # only in the test period
    r = category.train(data)
    model = r.model
    assert "crypto_losses" in set(model.classes_)
    assert any("crypto_losses (1)" in n for n in r.notes)
    assert any("seen only in the test period" in n and "brand_new" in n for n in r.notes)
    assert np.isfinite(r.metrics["log_loss"]) and r.metrics["accuracy"] < 1
    # The one-example class learned from its row: its probability there is well above where it was not
    # seen (the row's text is a common merchant's, relabelled, so it cannot also be the top answer).
    k = list(model.classes_).index("crypto_losses")
    own = model.predict_proba(data.loc[[train_rows[5]]])[0, k]
    assert own > 5 * np.median(model.predict_proba(r.holdout)[:, k]) and own > 0.01


def test_a_small_ledger_trains_with_a_note_on_calibration(tmp_path):
    """About a hundred expense rows over four months, like the original ledger."""
    generate(
        tmp_path / "raw",
        rows=130,
        years=4 / 12,
        seed=5,
        accounts=("business_credit_card",),
        end_date=END,
        labels_dir=tmp_path / "labels",
    )
    data = warehouse_rows(tmp_path / "raw")
    assert 90 <= int(data["category"].notna().sum()) <= 130
    r = category.train(data)
    assert r.params["regime"] in category.DEFAULT_PARAMS["regimes"]
    assert any(n.startswith("regime ") for n in r.notes)
    assert r.params["calibration_method"] in ("rolling_origins", "out_of_fold")
    assert all(np.isfinite(v) for v in r.metrics.values())
    assert r.metrics["macro_f1"] > r.baselines["majority"]["macro_f1"]
    out = r.model.predict(pd.DataFrame([REQUEST]))
    assert len(out) == 1 and len(out.iloc[0]["alternatives"]) == 3


def test_two_categories_and_data_that_cannot_train(ledger):
    two = ledger[ledger["category"].isin(["fuel", "software"])].sort_values("txn_date").tail(400)
    r = category.train(two)
    assert sorted(r.model.classes_) == ["fuel", "software"]
    proba = r.model.predict_proba(two.tail(20))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert r.metrics["accuracy"] > 0.9
    with pytest.raises(TrainingDataError, match="at least 30"):
        category.train(ledger.head(20))
    with pytest.raises(TrainingDataError, match="single category"):
        category.train(ledger[ledger["category"] == "fuel"].sort_values("txn_date").tail(200))
    with pytest.raises(TrainingDataError):
        category.train(ledger[ledger["category"].isna()])  # income only
    with pytest.raises(ValueError, match="unknown parameters"):
        category.train(ledger, learning_rate=0.1)


# --------------------------------------------------------------------------- the request (small-frame) path
def _requests(ledger: pd.DataFrame, n: int = 1500) -> pd.DataFrame:
    """Ledger rows as the service sends them: ISO date strings, some without a reference or a payment
    method, a few with messy or missing fields."""
    rows = ledger.sample(n, random_state=3)
    frame = pd.DataFrame(
        {
            "date": pd.to_datetime(rows["txn_date"]).dt.strftime("%Y-%m-%d").to_numpy(),
            "amount": rows["amount"].to_numpy(dtype=float),
            "description": rows["description"].to_numpy(dtype=object),
            "payment_method": rows["payment_method"].to_numpy(dtype=object),
            "reference": rows["reference"].to_numpy(dtype=object),
        },
        index=rows.index,
    )
    frame.iloc[::3, frame.columns.get_loc("reference")] = None
    frame.iloc[::5, frame.columns.get_loc("payment_method")] = None
    frame.iloc[::17, frame.columns.get_loc("description")] = "  Café ☕ #12  naïve*CA "
    frame.iloc[::23, frame.columns.get_loc("amount")] = np.nan
    frame.iloc[::29, frame.columns.get_loc("date")] = "2024-02-29"
    return frame


def _parts(frame: pd.DataFrame, sizes=(1, 1, 3, 16, F.SMALL)):
    return row_chunks(frame, sizes)


def test_requests_score_exactly_as_the_batch_path(result, ledger, monkeypatch):
    """A request (up to features.SMALL rows) is encoded row by row, with its own TF-IDF rows and only the
    weight rows it uses; the probabilities are the batch path's, bit for bit."""
    model = result.model
    requests = _requests(ledger)
    parts = list(_parts(requests))
    fast = np.concatenate([model.predict_proba(p) for p in parts])
    fast_pred = pd.concat([model.predict(p) for p in parts[:200]])
    monkeypatch.setattr(F, "SMALL", -1)  # from here on every frame takes the batch path
    np.testing.assert_array_equal(fast, model.predict_proba(requests))
    np.testing.assert_array_equal(
        fast[:40], np.concatenate([model.predict_proba(requests.iloc[[i]]) for i in range(40)])
    )
    pd.testing.assert_frame_equal(
        fast_pred, pd.concat([model.predict(p) for p in parts[:200]]), check_exact=True
    )
    assert (
        fast_pred["alternatives"].tolist()
        == model.predict(requests.loc[fast_pred.index])["alternatives"].tolist()
    )


def test_the_request_encoding_is_the_batch_matrix_entry_for_entry(result, ledger, monkeypatch):
    model = result.model
    prepared = F.prepare(_requests(ledger, 400), model.vocabulary)
    parts = [F.prepare_columns(p, model.vocabulary) for p in _parts(_requests(ledger, 400))]
    small = [model.encoder.transform(p) for p in parts]
    monkeypatch.setattr(F, "SMALL", -1)
    batch = model.encoder.transform(prepared)
    row = 0
    for X in small:
        for i in range(X.shape[0]):
            want = batch[row]
            got = X[i]
            np.testing.assert_array_equal(got.indices, want.indices)
            np.testing.assert_array_equal(got.data, want.data)
            row += 1
    assert row == len(prepared)


def test_tfidf_rows_equal_scikit_learn(result, ledger):
    encoder = result.model.encoder
    prepared = F.prepare(ledger.sample(3000, random_state=1), result.model.vocabulary)
    texts = list(dict.fromkeys(F.text_of(prepared).tolist()))
    texts += ["", " | ", "café ☕ naïve | 日本", "a", "x" * 500 + " | y", "12 34 | 56"]
    for block in (encoder.char, encoder.word):
        reference = block.vectorizer.transform(texts)
        for i, text in enumerate(texts):
            columns, values = request.tfidf_row(block, text)
            np.testing.assert_array_equal(columns, reference[i].indices)
            np.testing.assert_array_equal(values, reference[i].data)


def test_the_service_path_equals_the_batch_path(result, ledger, monkeypatch):
    """What the service does with validated request rows: a single request and a few rows go to the
    model as plain columns (no DataFrames), a batch above SMALL as a DataFrame; the response bodies are
    the same as with every frame through the batch path, and carry the model's own numbers."""
    from titans_assets.lib.serving import predict as serving

    model = result.model
    frame = _requests(ledger, 700)
    rows = [
        {
            "amount": None if pd.isna(r["amount"]) else float(r["amount"]),
            "description": r["description"],
            "txn_date": r["date"],
            "payment_method": r["payment_method"],
            "reference": r["reference"],
        }
        for r in frame.to_dict("records")
    ]
    single = [serving.category(model, [r])[0] for r in rows]
    small = serving.category(model, rows[: F.SMALL])
    batch = serving.category(model, rows)
    monkeypatch.setattr(F, "SMALL", -1)  # from here on: DataFrames and the batch path
    want = serving.category(model, rows)
    assert single == want and small == want[: len(small)] and batch == want
    direct = model.predict(frame)
    assert [b["prediction"] for b in want] == direct["prediction"].tolist()
    assert [b["confidence"] for b in want] == direct["confidence"].tolist()
    assert [b["alternatives"] for b in want] == direct["alternatives"].tolist()


def test_the_regime_is_chosen_on_the_training_period_alone(ledger):
    """Small data: each candidate regime is scored on rolling origins inside the training period (never on
    the holdout); the winner is the most accurate there. Without candidates (or above select_max_rows)
    the large-data SGD model is trained with its time-slice temperature."""
    data = ledger[ledger["txn_date"] >= pd.Timestamp(END) - pd.Timedelta(days=150)]
    r = category.train(data)
    scores = r.params["regime_accuracy"]
    assert set(scores) == set(category.DEFAULT_PARAMS["regimes"])
    assert r.params["regime"] == max(scores, key=scores.get) or scores[r.params["regime"]] == max(
        scores.values()
    )
    assert r.data_window["train_end"] < r.data_window["test_start"]
    for key, value in category.REGIMES[r.params["regime"]].items():
        assert r.params[key] == value
    fixed = category.train(data, regimes=())
    assert fixed.params["regime"] == "given" and fixed.params["classifier"] == "sgd"
    assert fixed.params["estimator"].startswith("SGDClassifier")
    assert fixed.params["calibration_method"] in ("time_slice", "out_of_fold")
    svm = category.train(data, regimes=("svm_text",))
    assert svm.params["regime"] == "svm_text" and svm.params["classifier"] == "svm"
    with pytest.raises(ValueError, match="unknown regime"):
        category.train(data, regimes=("bogus",))


def test_rolling_origins_stop_once_the_latest_ones_score_enough_rows():
    """Origins at 70/80/90% of the rows (one row a day here): each scores the rows up to the next one.
    With `min_scored` only the latest origins needed to reach it are kept (a larger ledger pays for
    fewer fits); with 0, or when even all of them score fewer rows, every origin is kept."""
    days = pd.date_range("2026-01-01", periods=1000, freq="D")
    rows = pd.DataFrame({"txn_date": days, "category": np.where(np.arange(1000) % 3 == 0, "a", "b")})
    sizes = [int(scored.sum()) for _, scored in _origin_folds(rows, (0.7, 0.8, 0.9))]
    assert sizes == [100, 100, 100]
    latest = _origin_folds(rows, (0.7, 0.8, 0.9), min_scored=150)
    assert [int(s.sum()) for _, s in latest] == [100, 100]
    assert [int(f.sum()) for f, _ in latest] == [800, 900]  # fit on every earlier day
    assert len(_origin_folds(rows, (0.7, 0.8, 0.9), min_scored=100)) == 1
    assert len(_origin_folds(rows, (0.7, 0.8, 0.9), min_scored=301)) == 3
    assert len(_origin_folds(rows, (0.7, 0.8, 0.9), min_scored=0)) == 3
