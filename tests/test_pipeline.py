"""The real graph, materialized for real: loader -> dbt -> Great Expectations checks, on the embedded
server and (in CI) on the machine's PostgreSQL over TCP."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import pytest
from conftest import TEST_TODAY, titans_env

from titans_assets import runner
from titans_assets.lib.db import Database
from titans_assets.lib.generator import generate
from titans_assets.lib.settings import Settings

pytestmark = pytest.mark.integration

SCHEMAS = ("raw", "staging", "intermediate", "marts", "seeds")
TODAY = TEST_TODAY


@pytest.fixture(scope="session", autouse=True)
def dbt_manifest() -> Path:
    return runner.ensure_dbt_manifest()


@pytest.fixture(scope="module")
def world(any_db: Database, tmp_path_factory: pytest.TempPathFactory, embedded_home: Path):
    """One scenario per server, in test order: an empty warehouse, generated ledgers in a landing
    folder and an ephemeral Dagster instance; each test below builds on the state the previous left
    (a dbt build costs ~15 s, so runs are shared rather than repeated per test)."""
    with any_db.connect(autocommit=True) as conn, conn.cursor() as cur:
        for schema in SCHEMAS:
            cur.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    root = tmp_path_factory.mktemp("world")
    landing = root / "data" / "raw"
    summary = generate(landing, rows=900, seed=7, messy_rate=0.05, end_date=TODAY, labels_dir=root / "labels")
    with pytest.MonkeyPatch.context() as monkeypatch:
        titans_env(monkeypatch, any_db, embedded_home, landing)
        yield {
            "db": any_db,
            "landing": landing,
            "generated": summary,
            "instance": dg.DagsterInstance.ephemeral(),
        }


DATA = "not group:ml"  # ingest, dbt and checks; the models have their own tests (test_ml_pipeline.py)


def _run(world, selection: str = DATA) -> runner.RunSummary:
    return runner.materialize(selection, instance=world["instance"])


def _scalar(db: Database, sql: str, params=()):
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchone()[0]


FCT_CHECK = "marts/fct_transactions:gx_fct_transactions"


def _fct_check(summary: runner.RunSummary) -> tuple[str, int]:
    """The fct_transactions check's scope (which rows it read, and why) and its row count."""
    md = summary.check_metadata[FCT_CHECK]
    return md["scope"], md["element_count"]


def _slice_rows(db: Database) -> int:
    """The fct_transactions rows an incremental check reads: those the build replaced, and the newest day."""
    return _scalar(
        db,
        "SELECT count(*) FROM marts.fct_transactions WHERE transaction_id IN "
        "(SELECT transaction_id FROM intermediate.int_transaction_changes WHERE side = 'new') "
        "OR txn_date = (SELECT max(txn_date) FROM marts.fct_transactions)",
    )


def _counts(db: Database) -> dict[str, int]:
    tables = [
        "raw.transactions",
        "raw.quarantine",
        "raw.files",
        "marts.fct_transactions",
        "marts.fct_daily_metrics",
        "marts.fct_monthly_category",
        "marts.dim_files",
    ]
    return {t: _scalar(db, f"SELECT count(*) FROM {t}") for t in tables}


def test_end_to_end_materialize_loads_builds_and_checks(world):
    db, gen = world["db"], world["generated"]
    summary = _run(world)

    assert summary.success, summary.error
    assert summary.checks and not summary.checks_failed
    assert "raw/transactions:gx_raw_transactions" in summary.checks
    assert "marts/fct_daily_metrics:gx_fct_daily_metrics" in summary.checks
    assert {"raw/transactions", "marts/fct_transactions", "marts/fct_daily_metrics"} <= set(
        summary.materialized
    )

    # Nothing lost: every generated row is loaded or quarantined, and exactly the invalid ones are quarantined.
    read, loaded, quarantined = (
        _scalar(db, f"SELECT sum({c}) FROM raw.files")
        for c in ("rows_read", "rows_loaded", "rows_quarantined")
    )
    assert read == gen.total_rows == loaded + quarantined
    assert quarantined == gen.total_invalid > 0
    assert _scalar(db, "SELECT count(*) FROM raw.transactions") == loaded

    # Every calendar day between the first and last transaction is present in the daily metrics.
    days = _scalar(db, "SELECT count(*) FROM marts.fct_daily_metrics")
    span = _scalar(db, "SELECT max(txn_date) - min(txn_date) + 1 FROM marts.fct_transactions")
    assert days == span
    assert _scalar(db, "SELECT count(*) FROM marts.fct_transactions") > 0.9 * loaded
    # The first build is a full refresh: its check reads every row.
    scope, rows = _fct_check(summary)
    assert (
        scope.startswith("all rows: the last build was full")
        and rows == _counts(db)["marts.fct_transactions"]
    )


def test_rematerializing_is_idempotent(world):
    db = world["db"]
    first = _counts(db)
    loaded_at = _scalar(db, "SELECT array_agg(loaded_at ORDER BY source_file) FROM raw.files")

    again = _run(world)

    assert again.success
    assert _counts(db) == first
    # An incremental build that changed no file: the check reads the newest day and the few rows the
    # build redoes every time (flagged unpaired transfers), not the table, and passes.
    scope, rows = _fct_check(again)
    assert scope.startswith("the rows build") and rows == _slice_rows(db) < first["marts.fct_transactions"]
    assert again.checks[FCT_CHECK] != "failed"
    assert _scalar(db, "SELECT array_agg(loaded_at ORDER BY source_file) FROM raw.files") == loaded_at


def test_changed_file_replaces_its_rows_and_removed_file_disappears(world):
    db, landing = world["db"], world["landing"]
    files = sorted(landing.glob("*.csv"))
    changed, removed, untouched = files[0], files[1], files[2]
    before_untouched = _scalar(
        db, "SELECT count(*) FROM raw.transactions WHERE source_file = %s", (untouched.name,)
    )

    lines = changed.read_bytes().splitlines(keepends=True)
    changed.write_bytes(b"".join(lines[:-40]))  # the export now ends 40 rows earlier
    removed.unlink()
    summary = _run(world)

    assert summary.success, summary.error
    files_row = {
        f: (r, lo, q)
        for f, r, lo, q in _rows(
            db, "SELECT source_file, rows_read, rows_loaded, rows_quarantined FROM raw.files"
        )
    }
    assert removed.name not in files_row
    assert _scalar(db, "SELECT count(*) FROM raw.transactions WHERE source_file = %s", (removed.name,)) == 0
    read, loaded, quarantined = files_row[changed.name]
    assert read == len(lines) - 1 - 40 == loaded + quarantined
    assert (
        _scalar(db, "SELECT count(*) FROM raw.transactions WHERE source_file = %s", (changed.name,)) == loaded
    )
    assert (
        _scalar(db, "SELECT count(*) FROM raw.transactions WHERE source_file = %s", (untouched.name,))
        == before_untouched
    )
    assert _scalar(db, "SELECT count(DISTINCT source_file) FROM marts.fct_transactions") == 2
    # The check read the rows this build replaced (and the newest day), not the whole table.
    scope, rows = _fct_check(summary)
    replaced = _scalar(db, "SELECT count(*) FROM intermediate.int_transaction_changes WHERE side = 'new'")
    assert scope.startswith("the rows build") and 0 < replaced <= rows == _slice_rows(db)
    assert rows < _counts(db)["marts.fct_transactions"]
    # The removed file's partition goes once its rows are gone; the others stay.
    partitions = runner.register_landing_files(world["instance"], Settings.from_env(), db)
    assert partitions == sorted(p.name for p in landing.glob("*.csv"))


def test_selection_runs_only_the_selected_assets(world):
    summary = _run(world, "key:marts/fct_daily_metrics")
    assert summary.success, summary.error
    assert summary.materialized == ["marts/fct_daily_metrics"]


def test_bad_file_fails_its_check_and_blocks_downstream(world):
    db, landing = world["db"], world["landing"]
    marts_before = _scalar(db, "SELECT count(*) FROM marts.fct_transactions")
    # Parseable, but every expense is positive: the sign rule (validity) must stop it before the marts.
    (landing / "suspicious_export.csv").write_text(
        "Date,Type,Description,Amount,Category,Payment Method,Status,Reference,Receipt URL\n"
        + "".join(
            f"{TODAY - dt.timedelta(days=i)},Expense,POS PURCHASE {i},{10 + i}.00,supplies,debit_card,paid,Shop,\n"
            for i in range(5)
        )
    )

    summary = _run(world)

    assert not summary.success
    assert summary.checks["raw/transactions:gx_raw_transactions"] == "failed"
    assert {"marts/fct_transactions", "marts/fct_daily_metrics"} <= set(summary.not_materialized)
    assert not any(k.startswith("marts/") for k in summary.materialized)
    assert _scalar(db, "SELECT count(*) FROM marts.fct_transactions") == marts_before
    # The rows are loaded (nothing lost) and visible for inspection, just not consumed downstream.
    assert (
        _scalar(db, "SELECT count(*) FROM raw.transactions WHERE source_file = 'suspicious_export.csv'") == 5
    )


def _rows(db: Database, sql: str, params=()):
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def test_unknown_selection_is_a_clear_error(world):
    with pytest.raises(ValueError, match="E003"):
        _run(world, "key:nope/nothing")


def test_the_amount_bound_is_a_setting_the_blocking_checks_follow(world, monkeypatch):
    """A business whose payments pass $1M raises TITANS_MAX_ABS_AMOUNT; raw and mart checks follow it."""
    db, landing = world["db"], world["landing"]
    (landing / "suspicious_export.csv").unlink(missing_ok=True)
    header = "Date,Type,Description,Amount,Category,Payment Method,Status,Reference,Receipt URL\n"
    wire = f"{TODAY},Income,WIRE FROM CUSTOMER,2500000.00,,bank_transfer,received,INV-{{}},\n"
    (landing / "large_payment.csv").write_text(header + wire.format(1))

    summary = _run(world)
    assert not summary.success and summary.checks["raw/transactions:gx_raw_transactions"] == "failed"

    monkeypatch.setenv("TITANS_MAX_ABS_AMOUNT", "5000000")
    (landing / "large_payment.csv").write_text(header + wire.format(1) + wire.format(2))  # checked again
    summary = _run(world)
    assert summary.success, summary
    assert summary.checks["raw/transactions:gx_raw_transactions"] == "passed"
    assert summary.checks[FCT_CHECK] in ("passed", "warning")  # not blocked
    # A new bound is a new definition: every row is checked against it, not only the new ones.
    assert _fct_check(summary)[0] == "all rows: the expectations or their parameters changed"
    assert _scalar(db, "SELECT count(*) FROM marts.fct_transactions WHERE amount = 2500000") == 2
