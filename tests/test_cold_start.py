"""Cold start end to end: a ledger of OFX bank statements (no Category column at all) through the real
materialization (runner.materialize, what `titans materialize` runs). The run succeeds; the category
challenger does not train and says why (labels it has, labels still needed); the service's category
endpoint answers E002 with that count; corrections through PUT /transactions/{id}/category are the
labels, the count follows them, and once the gate passes the next materialization trains a champion
that answers."""

from __future__ import annotations

from collections import Counter

import dagster as dg
import httpx
import pytest
from conftest import TEST_TODAY, scratch_database, world_env
from test_dashboard_app import KEY, service_in_thread

from titans_assets import runner
from titans_assets.check_records import untrained_reasons
from titans_assets.lib.generator import generate
from titans_assets.lib.ml import data
from titans_assets.lib.ml.cold_start import (
    DEFAULT_MIN_CATEGORIES,
    DEFAULT_MIN_LABELS,
    LabelGate,
    label_counts,
    warehouse_status,
)

pytestmark = pytest.mark.integration

AUTH = {"Authorization": f"Bearer {KEY}"}
REQUEST = {"amount": -54.99, "description": "ADOBE *CREATIVE CLD", "date": "2026-05-20"}
CHALLENGER = dg.AssetKey(["ml", "category_challenger"])
CATEGORIES = ("Groceries", "Software", "Travel", "Dining")


@pytest.fixture(scope="module")
def cold(embedded_db, tmp_path_factory):
    """A fresh warehouse materialized from three OFX statements (no category anywhere), and the service."""
    root = tmp_path_factory.mktemp("cold")
    root.chmod(0o755)
    landing, labels = root / "data" / "raw", root / "data" / "labels"
    generate(landing, rows=600, seed=5, end_date=TEST_TODAY, format="ofx", labels_dir=labels)
    with scratch_database(embedded_db) as db, pytest.MonkeyPatch.context() as mp:
        env = world_env(mp, root, landing, labels, db)
        mp.delenv("TITANS_CATEGORY_MIN_LABELS", raising=False)
        mp.delenv("TITANS_CATEGORY_MIN_CATEGORIES", raising=False)
        runner.prepare_environment()
        instance = runner.get_instance()
        summary = runner.materialize(instance=instance)
        with service_in_thread(env) as (url, runtime):
            yield {"db": db, "summary": summary, "instance": instance, "url": url, "runtime": runtime}


def challenger_metadata(instance) -> dict:
    event = instance.get_latest_materialization_event(CHALLENGER)
    assert event is not None and event.asset_materialization is not None
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def expense_ids(db) -> list[tuple[str, str]]:
    """(transaction_id, merchant) of every expense that is no transfer, oldest first."""
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT transaction_id, coalesce(merchant, description) FROM marts.fct_transactions"
            " WHERE txn_type = 'Expense' AND NOT is_transfer ORDER BY txn_date, transaction_id"
        )
        return cur.fetchall()


def category_error(url: str) -> httpx.Response:
    return httpx.post(f"{url}/predict/category", json=REQUEST, headers=AUTH, timeout=60)


def correct(url: str, rows: list[tuple[str, str]]) -> None:
    """One consistent category per merchant (what a person would do), through the API."""
    merchants = sorted({m for _, m in rows})
    category_of = {m: CATEGORIES[i % len(CATEGORIES)] for i, m in enumerate(merchants)}
    with httpx.Client(base_url=url, headers=AUTH, timeout=60) as c:
        for txn, merchant in rows:
            r = c.put(f"/transactions/{txn}/category", json={"category": category_of[merchant]})
            assert r.status_code == 200, r.text


def test_a_ledger_without_categories_materializes_and_the_challenger_says_why(cold):
    summary = cold["summary"]
    assert summary.success, summary.error
    meta = challenger_metadata(cold["instance"])
    assert meta["trained"] is False
    assert (meta["labels"], meta["labels_needed"], meta["categories_needed"]) == (
        0,
        DEFAULT_MIN_LABELS,
        DEFAULT_MIN_CATEGORIES,
    )
    assert f"{DEFAULT_MIN_LABELS} more labels" in meta["reason"] and "PUT /transactions" in meta["reason"]
    # what `titans materialize` and `titans status` print for the model instead of "no champion yet"
    assert untrained_reasons(cold["instance"], ["category"]) == {"category": meta["reason"]}


def test_the_endpoint_answers_e002_with_the_labels_still_needed_and_corrections_count(cold):
    r = category_error(cold["url"])
    assert r.status_code == 503, r.text
    error = r.json()["error"]
    assert error["code"] == "E002" and "\n" not in error["message"]
    assert "0 category labels across 0 categories" in error["message"]
    assert (
        f"{DEFAULT_MIN_LABELS} more labels and labels in {DEFAULT_MIN_CATEGORIES} more categories needed"
        in (error["message"])
    )
    rows = expense_ids(cold["db"])
    assert len(rows) > 2 * DEFAULT_MIN_LABELS
    by_count = Counter(m for _, m in rows).most_common(2)  # 2 merchants -> 2 of the 4 categories
    assert by_count[1][1] >= 10, by_count
    some = [r for r in rows if r[1] == by_count[0][0]][:10] + [r for r in rows if r[1] == by_count[1][0]][:10]
    correct(cold["url"], some)
    error = category_error(cold["url"]).json()["error"]
    n = len(some)
    assert f"{n} category labels across 2 categories" in error["message"], error
    assert f"{DEFAULT_MIN_LABELS - n} more labels and labels in 1 more category needed" in error["message"], (
        error
    )
    # the service's SQL count is the training's own count (load_transactions + the model's labelled rows)
    status = warehouse_status(cold["db"], LabelGate())
    counts = label_counts(data.load_transactions(cold["db"]))
    assert (status.labels, status.categories) == (sum(counts.values()), len(counts)) == (n, 2)


def test_enough_corrections_train_a_champion_that_answers(cold):
    rows = expense_ids(cold["db"])
    step = max(len(rows) // (DEFAULT_MIN_LABELS + 10), 1)
    correct(cold["url"], rows[::step])  # spread over the whole period: the training splits on dates
    error = category_error(cold["url"]).json()["error"]
    assert "enough to train" in error["message"] and "next materialization" in error["message"], error
    summary = runner.materialize(
        "key:ml/category_challenger or key:ml/category_evaluation or key:ml/category_champion",
        instance=cold["instance"],
    )
    assert summary.success, summary.error
    meta = challenger_metadata(cold["instance"])
    assert meta["trained"] is True and meta["train_rows"] + meta["test_rows"] >= DEFAULT_MIN_LABELS, meta
    r = httpx.post(f"{cold['url']}/models/category/reload", headers=AUTH, timeout=120)
    assert r.status_code == 200, r.text
    r = category_error(cold["url"])
    assert r.status_code == 200, r.text
    assert r.json()["prediction"] in CATEGORIES


def test_the_gate_is_a_setting():
    gate = LabelGate.from_env({"TITANS_CATEGORY_MIN_LABELS": "10", "TITANS_CATEGORY_MIN_CATEGORIES": "2"})
    assert gate.status({"a": 9, "b": 1}).ready and not gate.status({"a": 10}).ready
    assert gate.status({"a": 4, "b": 1}).labels_needed == 5
    assert LabelGate.from_env({}) == LabelGate(DEFAULT_MIN_LABELS, DEFAULT_MIN_CATEGORIES)
    with pytest.raises(ValueError, match="TITANS_CATEGORY_MIN_LABELS"):
        LabelGate.from_env({"TITANS_CATEGORY_MIN_LABELS": "many"})


def test_too_little_data_is_not_trained_and_says_why():
    from titans_assets.lib.ml.catalog import BY_KEY
    from titans_assets.lib.ml.cold_start import NotTrained, train_gated
    from titans_assets.lib.ml.common import TrainingDataError

    def thin(spec, db, settings):
        raise TrainingDataError("40 days of history; the cash-flow model needs at least 45 days")

    with pytest.raises(NotTrained, match="too little data: 40 days of history"):
        train_gated(BY_KEY["cashflow"], None, None, LabelGate(), thin)
    assert train_gated(BY_KEY["amount"], None, None, LabelGate(), lambda *a: "trained") == "trained"
