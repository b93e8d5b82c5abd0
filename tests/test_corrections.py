"""Category corrections (lib/categories/corrections.py) on a real PostgreSQL: the latest wins, the
log keeps every one, bad input is E003, and the count since a time drives the retrain signal."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from conftest import scratch_database

from titans_assets.lib import errors
from titans_assets.lib.categories import corrections
from titans_assets.lib.categories.corrections import CorrectionError
from titans_assets.lib.settings import Settings, SettingsError

pytestmark = pytest.mark.integration


def make_marts(db, rows: list[tuple[str, str, str | None]]) -> None:
    """A minimal marts.fct_transactions (transaction_id, merchant, category_raw) for the corrections."""
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute("CREATE SCHEMA IF NOT EXISTS marts")
        cur.execute("DROP TABLE IF EXISTS marts.fct_transactions")
        cur.execute(
            "CREATE TABLE marts.fct_transactions (transaction_id text PRIMARY KEY, merchant text,"
            " description text, amount numeric(14,2), category_raw text, is_transfer boolean NOT NULL DEFAULT false)"
        )
        cur.executemany(
            "INSERT INTO marts.fct_transactions (transaction_id, merchant, description, amount,"
            " category_raw) VALUES (%s, %s, %s, -10, %s)",
            [(t, m, m, c) for t, m, c in rows],
        )


@pytest.fixture
def db(embedded_db):
    with scratch_database(embedded_db) as scratch:
        make_marts(scratch, [("t1", "starbucks", "Food"), ("t2", "shell", None)])
        yield scratch


def test_the_latest_correction_wins_and_the_log_keeps_both(db):
    first = corrections.record_correction(db, "t1", "  Meals &  Entertainment ", "dashboard")
    assert (first.old, first.new, first.actor) == ("Food", "Meals & Entertainment", "dashboard")
    second = corrections.record_correction(db, "t1", "travel", "key-1")
    assert (second.old, second.new) == ("Meals & Entertainment", "travel")
    assert second.at >= first.at
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT category, previous_category, corrected_by FROM app.category_corrections")
        assert cur.fetchall() == [("travel", "Meals & Entertainment", "key-1")]
        cur.execute(
            "SELECT old_category, new_category, corrected_by FROM app.category_correction_log ORDER BY id"
        )
        assert cur.fetchall() == [
            ("Food", "Meals & Entertainment", "dashboard"),
            ("Meals & Entertainment", "travel", "key-1"),
        ]
    assert corrections.latest_corrections(db) == [("t1", "travel")]
    # a transaction without an export label starts from None
    assert corrections.record_correction(db, "t2", "fuel", "cli").old is None


@pytest.mark.parametrize(
    ("txn", "category", "actor", "field"),
    [
        ("nope", "fuel", "cli", "transaction_id 'nope' is not a known transaction"),
        ("", "fuel", "cli", "transaction_id is empty"),
        ("t1", "   ", "cli", "category is empty"),
        ("t1", "x" * 65, "cli", "category is longer than 64"),
        ("t1", 7, "cli", "category must be text"),
        ("t1", "fuel", " ", "corrected_by"),
    ],
)
def test_bad_corrections_are_one_coded_line_and_store_nothing(db, txn, category, actor, field):
    with pytest.raises(CorrectionError, match=field) as info:
        corrections.record_correction(db, txn, category, actor)
    failure = errors.from_exception(info.value)
    assert failure.code == "E003" and "\n" not in failure.line()
    assert corrections.corrections_since(db, None) == 0


def test_corrections_before_any_load_are_e003(embedded_db):
    with (
        scratch_database(embedded_db) as empty,
        pytest.raises(CorrectionError, match="no transactions are loaded"),
    ):
        corrections.record_correction(empty, "t1", "fuel", "cli")


def test_corrections_since_counts_the_log_after_a_time(db):
    corrections.record_correction(db, "t1", "fuel", "cli")
    time.sleep(0.01)
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT now()")
        mark = cur.fetchone()[0]
    corrections.record_correction(db, "t1", "travel", "cli")
    corrections.record_correction(db, "t2", "fuel", "cli")
    assert corrections.corrections_since(db, None) == 3
    assert corrections.corrections_since(db, mark) == 2
    assert corrections.corrections_since(db, mark + dt.timedelta(hours=1)) == 0


def test_the_retrain_threshold_is_a_setting():
    assert Settings.from_env({}).retrain_min_corrections == 20
    assert Settings.from_env({"TITANS_RETRAIN_MIN_CORRECTIONS": "5"}).retrain_min_corrections == 5
    with pytest.raises(SettingsError, match="E003.*TITANS_RETRAIN_MIN_CORRECTIONS"):
        Settings.from_env({"TITANS_RETRAIN_MIN_CORRECTIONS": "many"})
    assert corrections.retrain_reason(19, 20) is None
    assert "20 category corrections" in corrections.retrain_reason(20, 20)
    assert corrections.retrain_reason(100, 0) is None  # 0 turns the trigger off


def test_the_rules_file_is_beside_the_exports_unless_set(tmp_path):
    assert Settings.from_env({"TITANS_LANDING_DIR": str(tmp_path)}).rules_file == tmp_path / "rules.yaml"
    other = tmp_path / "elsewhere.yaml"
    assert Settings.from_env({"TITANS_RULES_FILE": str(other)}).rules_file == other
