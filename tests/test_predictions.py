"""Predictions as assets: the champions' batch scores written to predictions.* (lib/ml/batch.py,
defs/ml/predictions.py), and "mark as expected" used by the anomaly model.

Pure parts on a generated ledger (no database): whole-day chunks, the top-3 JSON, chunked anomaly
scoring equal to one frame, expected rows as negatives in the evaluation, and a merchant marked
expected N times no longer flagged for that reason. Then for real: a generated ledger through the
loader and dbt into a scratch PostgreSQL, the three prediction assets materialized by Dagster before
any champion (empty tables, the reason in the metadata) and after champions were promoted in MLflow
(every row covered, the champion's version), and the batch scores equal to the service's
per-request scores on a sample.
"""

from __future__ import annotations

import datetime as dt
import json

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from conftest import TEST_TODAY, scratch_database, titans_env

from titans_assets import runner
from titans_assets.defs.ml import predictions
from titans_assets.lib.dashboard import anomalies as A
from titans_assets.lib.dashboard import predictions as P
from titans_assets.lib.dashboard.periods import Period
from titans_assets.lib.db import Database
from titans_assets.lib.generator import generate
from titans_assets.lib.ml import anomaly, batch, data
from titans_assets.lib.ml.tracking import Registry
from titans_assets.lib.settings import Settings

END = TEST_TODAY


# ---------------------------------------------------------------------------------------------- pure
@pytest.fixture(scope="module")
def ledger(tmp_path_factory) -> tuple[pd.DataFrame, pd.Series]:
    root = tmp_path_factory.mktemp("predictions_ledger")
    generate(root / "raw", rows=3000, seed=5, end_date=END, labels_dir=root / "labels")
    frame = data.frame_from_csvs(root / "raw")
    return frame, data.anomaly_labels(frame, root / "labels")


@pytest.fixture(scope="module")
def anomaly_model(ledger) -> anomaly.AnomalyModel:
    frame, labels = ledger
    return anomaly.train(frame, labels=labels).model


def test_day_chunks_keep_every_day_whole():
    days = np.array(
        ["2026-01-01"] * 3 + ["2026-01-02"] * 4 + ["2026-01-03"] + ["2026-01-05"] * 2, dtype="datetime64[D]"
    )
    chunks = batch.day_chunks(days, 4)
    assert chunks[0][0] == 0 and chunks[-1][1] == len(days)
    assert all(a == prev_b for (_, prev_b), (a, _) in zip(chunks, chunks[1:]))  # contiguous, no gaps
    for a, _ in chunks:
        assert a == 0 or days[a] != days[a - 1]  # a chunk starts at a new day
    assert chunks == [(0, 7), (7, 10)]
    assert batch.day_chunks(days, 100) == [(0, 10)] and batch.day_chunks(days[:0], 4) == []


def test_top3_json_holds_the_alternatives_as_valid_json():
    alternatives = np.empty(2, dtype=object)
    alternatives[0] = [
        {"category": 'Food "&" Dining', "confidence": 0.5},
        {"category": "fuel", "confidence": 1e-7},
        {"category": "rent", "confidence": 0.25},
    ]
    alternatives[1] = [
        {"category": "fuel", "confidence": 1.0},
        {"category": "rent", "confidence": 0.0},
        {"category": 'Food "&" Dining', "confidence": 0.0},
    ]
    text = batch.top_json(alternatives)
    assert [json.loads(t) for t in text.to_pylist()] == [list(a) for a in alternatives]
    assert batch.top_json(np.empty(0, dtype=object)).equals(pa.array([], pa.string()))


MESSY = [
    "",
    "  ",
    "a",
    "ab",
    "ÉCOLE  café Straße",
    "İstanbul x",
    "日本語 テスト ok",
    "x\ty\nz",
    "a b c d e f",
    "tab\u00a0nbsp",
    "emoji 🙂 ok",
    "AMZN MKTP US*2K4RT1",
    "ümlaut Ünïcode",
]


@pytest.mark.parametrize("ngram", [(2, 5), (1, 3), (3, 3)])
def test_the_numpy_char_ngram_counts_equal_scikit_learns(ledger, ngram):
    from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer

    from titans_assets.lib.ml import ngrams

    frame, _ = ledger
    texts = list(
        pd.unique(frame["description"].astype(str) + " " + frame["reference"].fillna("").astype(str))
    )
    fitted = TfidfVectorizer(analyzer="char_wb", ngram_range=ngram, sublinear_tf=True).fit(
        texts[::2] + MESSY[:8]
    )
    queries = texts + MESSY
    expected = CountVectorizer.transform(fitted, queries).tocsr()
    got = ngrams.char_wb_counts(queries, fitted.vocabulary_, ngram, fitted.build_analyzer())
    assert got.shape == expected.shape and got.dtype == np.float64
    assert np.array_equal(got.indptr, expected.indptr) and np.array_equal(got.indices, expected.indices)
    assert np.array_equal(got.data, expected.data)
    assert ngrams.char_wb_counts(queries, fitted.vocabulary_, (2, 6), fitted.build_analyzer()) is None


@pytest.mark.parametrize("ngram", [(1, 2), (1, 1), (2, 3)])
def test_the_bulk_word_ngram_counts_equal_scikit_learns(ledger, ngram):
    from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer

    from titans_assets.lib.ml import ngrams

    frame, _ = ledger
    texts = list(
        pd.unique(frame["description"].astype(str) + " " + frame["reference"].fillna("").astype(str))
    )
    fitted = TfidfVectorizer(analyzer="word", ngram_range=ngram, sublinear_tf=True).fit(
        texts[::2] + MESSY[:8]
    )
    queries = texts + MESSY + ["the the the", "A a a b"]
    expected = CountVectorizer.transform(fitted, queries).tocsr()
    got = ngrams.word_counts(queries, fitted.vocabulary_, ngram, fitted.token_pattern)
    assert got.shape == expected.shape and got.dtype == np.float64
    assert np.array_equal(got.indptr, expected.indptr) and np.array_equal(got.indices, expected.indices)
    assert np.array_equal(got.data, expected.data)
    assert ngrams.word_counts(queries, fitted.vocabulary_, ngram, r"(\w+)") is None


def test_anomalies_scored_in_chunks_of_days_equal_one_frame(ledger, anomaly_model):
    frame, _ = ledger
    whole = batch.score_anomalies(anomaly_model, frame, max_rows=len(frame) + 1)
    chunked = batch.score_anomalies(anomaly_model, frame, max_rows=97)  # ~30 chunks, each with its context
    assert len(whole["transaction_id"]) == len(frame) == len(set(whole["transaction_id"]))
    assert list(chunked["transaction_id"]) == list(whole["transaction_id"])
    assert np.array_equal(chunked["score"], whole["score"]) and np.array_equal(
        chunked["is_anomaly"], whole["is_anomaly"]
    )
    assert chunked["reasons"].equals(whole["reasons"])
    assert whole["is_anomaly"].any()  # the generated ledger holds injected anomalies


def test_flagged_rows_marked_expected_are_negatives_in_the_evaluation(ledger):
    frame, labels = ledger
    plain = anomaly.train(frame, labels=labels)
    test_frame, test_y = plain.holdout
    marked = test_frame.index[test_y][:3]  # three true anomalies of the test period, marked expected
    assert len(marked) == 3
    result = anomaly.train(frame, labels=labels, expected=frame.index.isin(marked))
    frame_x, y_x = result.holdout
    assert frame_x.index.equals(test_frame.index)
    assert not y_x[frame_x.index.isin(marked)].any()
    assert y_x.sum() == test_y.sum() - 3
    assert result.params["expected_rows"] == 3


def _spike(frame: pd.DataFrame, merchant: str, day: pd.Timestamp, factor: float, tid: str) -> pd.DataFrame:
    row = frame[frame["merchant"].eq(merchant)].iloc[[-1]].copy()
    row["amount"] = row["amount"] * factor
    row["txn_date"] = day
    row["transaction_id"] = tid
    row["line_number"] = 10_000_000 + int(tid.rsplit("-", 1)[-1])
    return row


def _amount_flagged(model: anomaly.AnomalyModel, rows: pd.DataFrame) -> list[bool]:
    """Per row, scored alone (the one-row path of a request): flagged with an amount reason."""
    out = []
    for i in range(len(rows)):
        one = model.predict(rows.iloc[[i]])
        out.append(
            bool(one["is_anomaly"].iloc[0]) and any(r.startswith("amount") for r in one["reasons"].iloc[0])
        )
    return out


def test_a_merchant_marked_expected_n_times_stops_being_flagged_for_that_reason(ledger):
    frame, labels = ledger
    expenses = frame[frame["txn_type"].eq("Expense") & frame["merchant"].notna()]
    busiest = expenses["merchant"].value_counts()
    merchant, other = busiest.index[0], busiest.index[1]
    days = pd.to_datetime(frame["txn_date"])
    early = days.min() + pd.Timedelta(days=40)
    # three 25x charges of the busiest merchant in the training period, each marked expected
    spikes = pd.concat(
        [_spike(frame, merchant, early + pd.Timedelta(days=7 * i), 25.0, f"spike-{i}") for i in range(3)],
        ignore_index=True,
    )
    data_x = pd.concat([frame.assign(_y=labels.to_numpy()), spikes.assign(_y=False)], ignore_index=True)
    data_x = data_x.sort_values("txn_date", kind="stable").reset_index(drop=True)
    labels_x = data_x.pop("_y").to_numpy(dtype=bool)
    expected = data_x["transaction_id"].str.startswith("spike-").to_numpy()
    probes = pd.concat(
        [
            _spike(frame, merchant, days.max(), 25.0, "probe-1"),
            _spike(frame, other, days.max(), 25.0, "probe-2"),
        ],
        ignore_index=True,
    )

    before = anomaly.train(data_x, labels=labels_x).model
    assert _amount_flagged(before, probes) == [True, True]  # both spikes flagged for their amount

    model = anomaly.train(data_x, labels=labels_x, expected=expected).model
    mkey = "e:" + merchant
    assert "amount" in model.suppressed.get(mkey, ())
    assert set(model.suppressed) == {mkey}
    assert _amount_flagged(model, probes) == [False, True]  # the other merchant's spike still is
    # the batch path agrees with the one-row path
    scored = model.predict(pd.concat([probes, frame.tail(80)], ignore_index=True))
    assert not any(r.startswith("amount") for r in scored["reasons"].iloc[0])
    assert scored["reasons"].iloc[1] and scored["is_anomaly"].iloc[1]

    stricter = anomaly.train(data_x, labels=labels_x, expected=expected, expected_after=4).model
    assert stricter.suppressed == {}
    assert _amount_flagged(stricter, probes) == [True, True]


def test_the_expected_marks_setting():
    assert Settings.from_env({}).anomaly_expected_after == 3
    assert Settings.from_env({"TITANS_ANOMALY_EXPECTED_AFTER": " 5 "}).anomaly_expected_after == 5
    for bad in ("0", "three", "-1"):
        with pytest.raises(ValueError, match="E003 invalid input: TITANS_ANOMALY_EXPECTED_AFTER"):
            Settings.from_env({"TITANS_ANOMALY_EXPECTED_AFTER": bad})


# ---------------------------------------------------------------------------------------------- for real


def _sql(db: Database, query: str, params=()):
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(query, params)
        return cur.fetchall()


def _metadata(instance: dg.DagsterInstance, key: dg.AssetKey) -> dict:
    event = instance.get_latest_materialization_event(key)
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def _blank_categories(path, every: int) -> None:
    """Clear the Category of every `every`-th expense row of a generated CSV export."""
    import csv
    import io

    rows = list(csv.reader(io.StringIO(path.read_text())))
    header = [h.strip().lower() for h in rows[0]]  # generated headers are messy (" date, TYPE ,...")
    at, kind = header.index("category"), header.index("type")
    expenses = [r for r in rows[1:] if len(r) > at and r[kind].strip().lower() == "expense"]
    for r in expenses[::every]:
        r[at] = ""
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    path.write_text(out.getvalue())


@pytest.fixture(scope="module")
def world(embedded_db: Database, tmp_path_factory):
    """A generated ledger's marts in a scratch database; the prediction assets materialized once before
    any champion (cold start) and once after champions were trained and promoted."""
    from test_dashboard_app import _train_and_promote  # the same quick champions the dashboard tests use

    root = tmp_path_factory.mktemp("predictions")
    landing = root / "data" / "raw"
    generate(landing, rows=2500, seed=21, end_date=END, labels_dir=root / "data" / "labels")
    _blank_categories(landing / "personal_card.csv", every=4)  # an export that labels only some expenses
    with scratch_database(embedded_db) as db, pytest.MonkeyPatch.context() as mp:
        titans_env(mp, db, root / "home", landing)
        mp.setenv("TITANS_DATABASE_URL", db.url)
        mp.setenv("TITANS_LABELS_DIR", str(root / "data" / "labels"))
        settings = Settings.from_env()
        instance = dg.DagsterInstance.ephemeral()
        # everything but the training: the data, and the predictions while no model has a champion
        cold = runner.materialize("not group:ml", instance=instance)
        cold_meta = {k: _metadata(instance, key) for k, key in predictions.KEYS.items()}
        cold_rows = {
            k: _sql(db, f"SELECT count(*) FROM predictions.{t}")[0][0]
            for k, t in (
                ("category", batch.CATEGORIES),
                ("anomaly", batch.ANOMALIES),
                ("cashflow", batch.CASHFLOW),
            )
        }
        everything = Period(*_sql(db, "SELECT min(txn_date), max(txn_date) FROM marts.fct_transactions")[0])
        cold_readers = [P.anomalies(db, everything), P.categorised(db, everything), P.forecast(db)]
        _train_and_promote(db, settings)
        warm = runner.materialize("group:predictions", instance=instance)
        yield {
            "db": db,
            "settings": settings,
            "instance": instance,
            "cold": cold,
            "cold_meta": cold_meta,
            "cold_rows": cold_rows,
            "cold_readers": cold_readers,
            "warm": warm,
            "period": everything,
            "registry": Registry.from_settings(settings, db),
        }


@pytest.mark.integration
def test_without_champions_the_tables_are_empty_and_the_metadata_says_why(world):
    assert world["cold"].success, world["cold"].error
    assert {k.to_user_string() for k in predictions.KEYS.values()} <= set(world["cold"].materialized)
    assert world["cold_rows"] == {"category": 0, "anomaly": 0, "cashflow": 0}
    assert world["cold_readers"] == [None, None, None]  # the dashboard then asks the service instead
    for key, meta in world["cold_meta"].items():
        assert meta["model_version"] == "none" and meta["dagster/row_count"] == 0
        assert meta["reason"].startswith(f"no champion for titans_{key} yet")


@pytest.mark.integration
def test_the_tables_cover_every_row_with_the_champions_version(world):
    db, registry = world["db"], world["registry"]
    assert world["warm"].success, world["warm"].error
    versions = {
        k: str(registry.champion_version(f"titans_{k}").version) for k in ("category", "anomaly", "cashflow")
    }
    # The rows the models read: the mart's transactions that are not transfers (lib/ml/data.py).
    rows = "FROM marts.fct_transactions WHERE NOT is_transfer"
    expenses = {r[0] for r in _sql(db, f"SELECT transaction_id {rows} AND txn_type = 'Expense'")}
    every = {r[0] for r in _sql(db, f"SELECT transaction_id {rows}")}
    unlabelled = _sql(db, f"SELECT count(*) {rows} AND txn_type = 'Expense' AND category IS NULL")[0][0]
    assert unlabelled > 0  # a quarter of one export's expenses have no category: those the model fills

    cats = _sql(
        db,
        "SELECT transaction_id, category, confidence, top3, model_version FROM "
        "predictions.transaction_categories",
    )
    assert {r[0] for r in cats} == expenses and len(cats) == len(expenses)
    assert {r[4] for r in cats} == {versions["category"]}
    for _, category, confidence, top3, _ in cats[:200]:
        assert len(top3) == 3 and top3[0] == {"category": category, "confidence": confidence}
        assert 0 < confidence <= 1 and [a["confidence"] for a in top3] == sorted(
            (a["confidence"] for a in top3), reverse=True
        )

    anomalies = _sql(
        db,
        "SELECT transaction_id, score, is_anomaly, risk_level, reasons, model_version "
        "FROM predictions.transaction_anomalies",
    )
    assert {r[0] for r in anomalies} == every and len(anomalies) == len(every)
    assert {r[5] for r in anomalies} == {versions["anomaly"]}
    flagged = [r for r in anomalies if r[2]]
    assert flagged and all(r[3] == "high" and r[4] for r in flagged)  # every flag carries its reasons

    forecast = _sql(
        db,
        "SELECT forecast_date, horizon_day, predicted_net, lower, upper, model_version "
        "FROM predictions.cashflow_forecast ORDER BY forecast_date",
    )
    champion = registry.champion("titans_cashflow")
    first = champion.model.as_of.date() + dt.timedelta(days=1)
    assert [r[0] for r in forecast] == [first + dt.timedelta(days=i) for i in range(batch.DEFAULT_HORIZON)]
    assert [r[1] for r in forecast] == list(range(1, batch.DEFAULT_HORIZON + 1))
    assert all(lo <= hi for _, _, _, lo, hi, _ in forecast) and {r[5] for r in forecast} == {
        versions["cashflow"]
    }
    meta = _metadata(world["instance"], predictions.KEYS["category"])
    assert meta["model_version"] == versions["category"] and meta["unlabelled_rows"] == unlabelled


def _request(row: dict, fields: tuple[str, ...]) -> dict:
    """A warehouse row as the service's request body (absent values left out)."""
    out = {"amount": round(float(row["amount"]), 2), "date": pd.Timestamp(row["txn_date"]).date().isoformat()}
    for name in fields:
        value = row.get(name)
        if value is not None and value == value and str(value).strip():
            out[name] = str(value)
    return out


@pytest.mark.integration
def test_batch_scores_equal_the_services_per_request_scores(world):
    """The table's answer for a row is the service's answer to a request for that row (the same
    `predict_columns`, the same feature definition): categories for a sample of expenses, anomaly
    scores for a sample of rows whose in-frame context is empty (alone with their merchant that day
    and the days beside it), where a one-row request sees all the batch saw."""
    from titans_assets.lib.serving import predict
    from titans_assets.lib.serving.validation import ANOMALY, CATEGORY, parse_row

    db, registry = world["db"], world["registry"]
    frame = data.load_transactions(db)
    rng = np.random.default_rng(0)

    category = registry.champion("titans_category").model
    expenses = batch.expense_rows(frame)
    sample = expenses.iloc[np.sort(rng.choice(len(expenses), 40, replace=False))]
    table = {
        r[0]: r[1:]
        for r in _sql(
            db,
            "SELECT transaction_id, category, confidence, top3 FROM "
            "predictions.transaction_categories WHERE transaction_id = ANY(%s)",
            (list(sample["transaction_id"]),),
        )
    }
    for row in sample.to_dict("records"):
        (answer,) = predict.category(
            category, [parse_row(CATEGORY, _request(row, ("description", "payment_method", "reference")))]
        )
        got_category, got_confidence, got_top3 = table[row["transaction_id"]]
        assert got_category == answer["prediction"]
        assert got_confidence == pytest.approx(answer["confidence"], rel=1e-9, abs=1e-12)
        assert [a["category"] for a in got_top3] == [a["category"] for a in answer["alternatives"]]

    model = registry.champion("titans_anomaly").model
    comp = model.components(frame)
    kind = frame["txn_type"].str.lower()
    alone = (
        (comp["twins_same_day"] == 0)
        & (comp["twins_prev_day"] == 0)
        & (comp["small_count"] <= 1)
        & (comp["day_count"] <= 1)
        & (kind.eq("expense") == ((frame["amount"] < 0) | frame["category"].notna()))
    )
    candidates = frame[alone.to_numpy()]
    sample = candidates.iloc[np.sort(rng.choice(len(candidates), 60, replace=False))]
    table = {
        r[0]: r[1:]
        for r in _sql(
            db,
            "SELECT transaction_id, score, is_anomaly, reasons FROM "
            "predictions.transaction_anomalies WHERE transaction_id = ANY(%s)",
            (list(sample["transaction_id"]),),
        )
    }
    for row in sample.to_dict("records"):
        (answer,) = predict.anomaly(
            model,
            [parse_row(ANOMALY, _request(row, ("category", "description", "payment_method", "reference")))],
        )
        score, is_anomaly, reasons = table[row["transaction_id"]]
        assert score == pytest.approx(answer["anomaly_score"], rel=1e-9, abs=1e-12)
        assert is_anomaly == answer["is_anomaly"] and reasons == answer["reasons"]


@pytest.mark.integration
def test_the_dashboard_reads_the_stored_predictions(world):
    db, period = world["db"], world["period"]
    version = str(world["registry"].champion_version("titans_anomaly").version)
    rows, stored, versions = P.anomalies(db, period)
    assert versions == [version] and len(rows) == len(stored)
    assert len(rows) == _sql(db, "SELECT count(*) FROM marts.fct_transactions WHERE NOT is_transfer")[0][0]
    ranked = A.scored(rows, stored, {})
    assert (
        int(ranked["is_anomaly"].sum())
        == _sql(db, "SELECT count(*) FROM predictions.transaction_anomalies WHERE is_anomaly")[0][0]
    )
    top = ranked.iloc[0]
    assert top["anomaly_score"] == pytest.approx(
        _sql(db, "SELECT max(score) FROM predictions.transaction_anomalies")[0][0]
    )
    assert top["reasons"]  # the page shows them joined, as it showed the service's

    filled = P.categorised(db, period)
    unlabelled = _sql(
        db,
        "SELECT count(*) FROM marts.fct_transactions t JOIN predictions.transaction_categories p "
        "USING (transaction_id) WHERE t.category IS NULL",
    )[0][0]
    assert len(filled) == unlabelled > 0 and filled["export_category"].isna().all()
    assert filled["predicted_category"].notna().all() and filled["confidence"].between(0, 1).all()

    forecast = P.forecast(db)
    assert list(forecast.columns[:4]) == ["date", "predicted_amount", "lower", "upper"]
    assert len(forecast) == batch.DEFAULT_HORIZON and forecast["date"].is_monotonic_increasing
