"""The enriched mart for real (PostgreSQL, dbt, a Dagster materialization): every transaction gets a
category and its source (correction > export > rule > model), a correction appears in the marts after
the next materialization and changes the next model's training labels, conflicting rules fail the
run with one E003 line naming both, and corrections since the last training ask for a retrain."""

from __future__ import annotations

import textwrap
from pathlib import Path

import dagster as dg
import pytest
from conftest import TEST_TODAY, scratch_database, titans_env

from titans_assets import runner
from titans_assets.lib.categories import corrections, rules
from titans_assets.lib.generator import generate
from titans_assets.lib.ml import data

pytestmark = pytest.mark.integration

DATA = "not group:ml and not group:predictions and not group:monitoring"
CATEGORIES = "key:rules/category_rules or key:marts/fct_transactions_enriched"
# The prediction table as defs/ml/predictions.py writes it (the contract of issue 19); filled by hand
# here, so this test needs no trained model.
PREDICTIONS_DDL = """CREATE SCHEMA IF NOT EXISTS predictions;
CREATE TABLE IF NOT EXISTS predictions.transaction_categories (transaction_id text PRIMARY KEY, category text,
    confidence double precision, top3 jsonb, model_version text, scored_at timestamptz NOT NULL DEFAULT now())"""


def rows(db, sql: str, params=()) -> list[tuple]:
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


@pytest.fixture(scope="module")
def world(embedded_db, tmp_path_factory, embedded_home: Path):
    runner.ensure_dbt_manifest()
    root = tmp_path_factory.mktemp("enriched")
    landing = root / "data" / "raw"
    generate(
        landing,
        rows=240,
        seed=11,
        messy_rate=0.0,
        anomaly_rate=0.0,
        end_date=TEST_TODAY,
        labels_dir=root / "labels",
    )
    with scratch_database(embedded_db) as db, pytest.MonkeyPatch.context() as mp:
        titans_env(mp, db, embedded_home, landing)
        mp.setenv("TITANS_DATABASE_URL", db.url)  # the scratch database, not the embedded server's default
        with db.connect() as conn, conn.cursor() as cur:
            cur.execute(PREDICTIONS_DDL)
        instance = dg.DagsterInstance.ephemeral()
        first = runner.materialize(DATA, instance=instance)
        assert first.success, first.failure().line()
        yield {"db": db, "landing": landing, "instance": instance, "mp": mp}


def enriched(db) -> dict[str, tuple]:
    return {
        r[0]: r[1:]
        for r in rows(
            db,
            "SELECT transaction_id, category, category_display, category_source,"
            " category_confidence, category_rule_id, model_version"
            " FROM marts.fct_transactions_enriched",
        )
    }


def test_a_correction_reaches_the_marts_and_the_training_labels(world):
    db, landing = world["db"], world["landing"]
    mart = enriched(db)
    ids = [r[0] for r in rows(db, "SELECT transaction_id FROM marts.fct_transactions")]
    assert sorted(mart) == sorted(ids)  # every row, once
    assert {v[2] for v in mart.values()} <= {"export", "none"}
    expense = rows(
        db,
        "SELECT transaction_id, category FROM marts.fct_transactions WHERE category IS NOT NULL"
        " AND NOT is_transfer ORDER BY transaction_id LIMIT 1",
    )[0]
    unlabelled = rows(
        db,
        "SELECT transaction_id, description FROM marts.fct_transactions WHERE category IS NULL"
        " AND NOT is_transfer ORDER BY transaction_id LIMIT 2",
    )
    assert mart[expense[0]][2] == "export" and mart[unlabelled[0][0]][2] == "none"
    labels_before = data.load_transactions(db).set_index("transaction_id")["category"]
    assert labels_before[expense[0]] == expense[1]

    # the user corrects one, writes a rule for one unlabelled row, and the model predicted two
    corrections.record_correction(db, expense[0], "Team Offsite", "test")
    by_rule, by_model = unlabelled
    (landing / "rules.yaml").write_text(
        textwrap.dedent(f"""
        rules:
          - name: exact
            description: {by_rule[1]!r}
            category: Client Work
    """)
    )
    with db.connect() as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO predictions.transaction_categories (transaction_id, category, confidence,"
            " model_version) VALUES (%s, %s, 0.6, '7')",
            [(by_rule[0], "Software"), (by_model[0], "Software"), (expense[0], "Software")],
        )
    summary = runner.materialize(CATEGORIES, instance=world["instance"])
    assert summary.success, summary.failure().line()

    mart = enriched(db)
    assert mart[expense[0]][:4] == ("team_offsite", "Team Offsite", "correction", 1.0)
    assert mart[by_rule[0]][:5] == ("client_work", "Client Work", "rule", 1.0, "user:exact")
    assert mart[by_model[0]] == ("software", "Software", "model", 0.6, None, "7")
    hits = rows(db, "SELECT rule_id, count(*) FROM rules.category_rule_matches GROUP BY rule_id")
    assert hits and hits[0][0] == "user:exact" and hits[0][1] >= 1
    assert rules.stored_hits(db)["user:exact"] == hits[0][1]
    meta = (
        world["instance"]
        .get_latest_materialization_event(dg.AssetKey(["rules", "category_rules"]))
        .asset_materialization.metadata
    )
    assert meta["hits"].value == {"user:exact": hits[0][1]}

    # the next model trains on the correction, never on the rule's or the model's category
    labels = data.load_transactions(db).set_index("transaction_id")
    assert labels.loc[expense[0], "category"] == "team_offsite"
    assert labels.loc[expense[0], "category_raw"] == "Team Offsite"
    assert labels["category"].drop(expense[0]).equals(labels_before.drop(expense[0]))


def test_corrections_since_the_last_training_ask_for_a_retrain(world):
    world["mp"].setenv("TITANS_RETRAIN_MIN_CORRECTIONS", "1")
    summary = runner.materialize("key:ml/retrain_signal", instance=world["instance"])
    assert summary.success, summary.failure().line()
    meta = (
        world["instance"]
        .get_latest_materialization_event(dg.AssetKey(["ml", "retrain_signal"]))
        .asset_materialization.metadata
    )
    assert meta["retrain"].value is True
    assert meta["corrections_since_training"].value == 1
    assert any("1 category corrections since the last training" in r for r in meta["reasons_list"].value)


def test_conflicting_rules_fail_the_run_with_one_line_naming_both(world):
    db, landing = world["db"], world["landing"]
    before = enriched(db)
    (landing / "rules.yaml").write_text(
        "rules:\n  - {name: a, amount_max: 5, category: x}\n  - {name: b, amount_max: 50, category: y}\n"
    )
    summary = runner.materialize(CATEGORIES, instance=world["instance"])
    assert not summary.success
    line = summary.failure().line()
    assert line.startswith("E003") and "'user:a' (x) and 'user:b' (y) conflict" in line and "\n" not in line
    assert enriched(db) == before  # the mart keeps its last good state
