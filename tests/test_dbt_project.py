"""The dbt project end to end on an embedded PostgreSQL: raw rows in, `dbt build`, marts checked.

The handcrafted ledger below covers what the marts must get right:
- two exports of account `checking` overlapping on 2024-01-08..10 (counted once, the later file's copy kept),
- identical coffees inside one file (kept: genuine repeat purchases), also inside the overlap,
- the same transaction in another account (not a duplicate),
- income rows, payment-method typos, category case/spacing variants, status variants,
- days without transactions (the daily spine must still have them).
"""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from conftest import scratch_database
from support import dbt_command

REPO = Path(__file__).resolve().parents[1]
PROJECT_DIR = REPO / "dbt_project"
RAW_SCHEMA_SQL = REPO / "titans_assets" / "lib" / "sql" / "raw_schema.sql"

pytestmark = pytest.mark.integration

CHECKING_A = "checking/2024-01-a.csv"
CHECKING_B = "checking/2024-01-b.csv"
SAVINGS = "savings.csv"
LOADED_A = datetime(2024, 2, 1, 9, 0, tzinfo=UTC)
LOADED_B = datetime(2024, 2, 15, 9, 0, tzinfo=UTC)

# (line, date, type, description, amount, category, payment_method, status, reference)
# fmt: off
FILES = {
    CHECKING_A: (
        "checking",
        LOADED_A,
        [
            (2, "2024-01-01", "Income", "Salary ACME", "3000.00", "", "bank_tranfer", "received", "ACME Corp"),
            (3, "2024-01-02", "Expense", "Github subscription", "-20.00", "Software", "credit_car", "paid", "GitHub"),
            (4, "2024-01-03", "Expense", "Coffee Shop #12", "-4.50", "Meals & Entertainment", " Credit Card ", "Paid", ""),
            (5, "2024-01-03", "Expense", "Coffee Shop #12", "-4.50", "meals-entertainment", "credit_card", "paid", ""),
            (6, "2024-01-04", "Expense", "Office Depot", "-35.10", "office supplies", "debit", "paid", "Office Depot"),
            # 2024-01-05 and 2024-01-06: no transactions
            (7, "2024-01-07", "Expense", "Shell fuel 0042", "-60.00", "FUEL", "Cash", "paid", ""),
            (8, "2024-01-08", "Expense", "Lunch client", "-42.00", " Meals_Entertainment ", "credit_car", "paid", ""),
            (9, "2024-01-09", "Expense", "Coffee Shop #12", "-4.50", "meals_entertainment", "credit_card", "paid", ""),
            (10, "2024-01-09", "Expense", "Coffee Shop #12", "-4.50", "meals_entertainment", "credit_card", "paid", ""),
            (11, "2024-01-10", "Expense", "Adobe", "-55.00", "software", "credit_card", "paid", "Adobe"),
            # line 12 is quarantined (see QUARANTINE)
        ],
    ),
    # The later export, newest first, overlapping the first one on 2024-01-08..10.
    CHECKING_B: (
        "checking",
        LOADED_B,
        [
            (2, "2024-01-15", "Income", "Client payment", "500.00", "", "Bank Transfer", "Received", "Beta LLC"),
            (3, "2024-01-12", "Expense", "Invoice 17 Gamma", "-100.00", "Bad Debts", "bank_transfer", "Written Off", "Gamma Ltd"),
            (4, "2024-01-10", "Expense", "ADOBE", "-55.00", "Software", "credit_card", "paid", "Adobe"),
            (5, "2024-01-09", "Expense", "Coffee Shop #12", "-4.50", "meals_entertainment", "credit_card", "paid", ""),
            (6, "2024-01-09", "Expense", "Coffee Shop #12", "-4.50", "meals_entertainment", "credit_card", "paid", ""),
            (7, "2024-01-08", "Expense", "Lunch client", "-42.00", "meals_entertainment", "credit_card", "paid", ""),
        ],
    ),
    SAVINGS: (
        "savings",
        LOADED_B,
        [
            (2, "2024-01-08", "Expense", "Lunch client", "-42.00", "meals_entertainment", "credit_card", "paid", ""),
            (3, "2024-01-20", "Income", "Interest", "1.25", "", "bank_transfer", "received", ""),
        ],
    ),
}
QUARANTINE = [(CHECKING_A, 12, "2024-13-01,Expense,Bad date,-1.00,,,,,", "Date: not a date")]
# fmt: on

# The transactions a person would count: checking A + B-only rows + savings (overlap counted once).
EXPECTED_KEYS = sorted(
    [(CHECKING_A, r[0]) for r in FILES[CHECKING_A][2] if r[1] < "2024-01-08"]
    + [(CHECKING_B, r[0]) for r in FILES[CHECKING_B][2]]
    + [(SAVINGS, r[0]) for r in FILES[SAVINGS][2]]
)
FIRST_DAY, LAST_DAY = date(2024, 1, 1), date(2024, 1, 20)


def _dbt(args: list[str], env: dict[str, str], target: Path) -> tuple[int, dict[str, str], str]:
    """Run the dbt CLI in a subprocess; returns (exit code, {unique_id: status}, output tail)."""
    cmd = dbt_command(args, PROJECT_DIR, target)
    results_file = target / "run_results.json"
    results_file.unlink(missing_ok=True)
    proc = subprocess.run(cmd, check=False, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    statuses = {}
    if results_file.exists():
        statuses = {r["unique_id"]: r["status"] for r in json.loads(results_file.read_text())["results"]}
    return proc.returncode, statuses, (proc.stdout + proc.stderr)[-4000:]


def _query(db, sql: str, params=None) -> list[dict]:
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        cols = [c.name for c in cur.description]
        return [dict(zip(cols, row)) for row in cur.fetchall()]


@pytest.fixture(scope="module")
def scratch_db(embedded_db):
    with scratch_database(embedded_db) as db:
        yield db


@pytest.fixture(scope="module")
def built(tmp_path_factory, scratch_db):
    """Embedded Postgres with the raw schema and the ledger above, after one `dbt build`."""
    tmp = tmp_path_factory.mktemp("dbt_project")
    db = scratch_db
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(RAW_SCHEMA_SQL.read_text())
        for source_file, (account, loaded_at, rows) in FILES.items():
            quarantined = sum(1 for q in QUARANTINE if q[0] == source_file)
            cur.execute(
                "INSERT INTO raw.files (source_file, account, size_bytes, sha256, rows_read, rows_loaded,"
                " rows_quarantined, header, loaded_at) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                (
                    source_file,
                    account,
                    1000,
                    source_file.encode().hex(),
                    len(rows) + quarantined,
                    len(rows),
                    quarantined,
                    ["Date", "Type", "Description", "Amount"],
                    loaded_at,
                ),
            )
            for line, d, typ, desc, amount, cat, pm, status, ref in rows:
                cur.execute(
                    "INSERT INTO raw.transactions (source_file, line_number, account, txn_date, txn_type,"
                    " description, amount, category, payment_method, status, reference, receipt_url,"
                    " loaded_at) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                    (
                        source_file,
                        line,
                        account,
                        d,
                        typ,
                        desc,
                        Decimal(amount),
                        cat,
                        pm,
                        status,
                        ref,
                        "",
                        loaded_at,
                    ),
                )
        cur.executemany(
            "INSERT INTO raw.quarantine VALUES (%s,%s,%s,%s,now())",
            QUARANTINE,
        )

    env = os.environ | db.dbt_env()
    target = tmp / "target"
    code, statuses, output = _dbt(["build"], env, target)
    marts = {
        name: _query(db, f"select * from marts.{name}")
        for name in (
            "fct_transactions",
            "fct_daily_metrics",
            "fct_monthly_category",
            "dim_files",
            "dim_accounts",
        )
    }
    return {
        "db": db,
        "env": env,
        "target": target,
        "code": code,
        "statuses": statuses,
        "output": output,
        "marts": marts,
    }


def test_build_succeeds_and_every_test_passes(built):
    assert built["code"] == 0, built["output"]
    statuses = built["statuses"]
    tests = {k: v for k, v in statuses.items() if k.startswith("test.")}
    assert len(tests) > 40
    assert {v for v in tests.values()} == {"pass"}, {k: v for k, v in tests.items() if v != "pass"}
    for name in (
        "assert_daily_metrics_reconcile",
        "assert_daily_spine_has_no_gaps",
        "assert_transaction_sign_matches_type",
    ):
        assert statuses[f"test.titans.{name}"] == "pass"
    models = {k for k, v in statuses.items() if k.startswith(("model.", "seed.")) and v == "success"}
    assert {
        "model.titans.fct_transactions",
        "model.titans.fct_daily_metrics",
        "model.titans.fct_monthly_category",
        "model.titans.dim_files",
        "model.titans.dim_accounts",
        "seed.titans.payment_method_aliases",
    } <= models


def test_models_land_in_their_own_schemas(built):
    rows = _query(
        built["db"],
        "select table_schema, table_name from information_schema.tables"
        " where table_schema in ('staging', 'intermediate', 'marts', 'seeds')",
    )
    found = {(r["table_schema"], r["table_name"]) for r in rows}
    assert {
        ("staging", "stg_transactions"),
        ("intermediate", "int_transactions_deduped"),
        ("marts", "fct_transactions"),
        ("seeds", "category_aliases"),
    } <= found


def test_the_columns_said_never_null_are_not_null_in_raw(built):
    """The yml says which columns passed through from raw.transactions are never null instead of
    testing them (a scan of every row per build): raw.transactions declares them NOT NULL, a
    constraint PostgreSQL checks on every write."""
    said = {}
    for layer, models in (
        ("staging", {"stg_transactions"}),
        ("intermediate", {"int_transactions_normalized", "int_transactions_deduped"}),
    ):
        doc = yaml.safe_load((PROJECT_DIR / "models" / layer / f"_{layer}.yml").read_text())
        for m in doc["models"]:
            if m["name"] in models:
                said[m["name"]] = {
                    c["name"] for c in m["columns"] if "never null" in c.get("description", "")
                }
    assert said["stg_transactions"] == {
        "source_file",
        "line_number",
        "account",
        "txn_date",
        "txn_type",
        "description",
        "amount",
    }
    assert (
        said["int_transactions_normalized"]
        == said["int_transactions_deduped"]
        == {"source_file", "line_number"}
    )
    rows = _query(
        built["db"],
        "select column_name from information_schema.columns"
        " where table_schema = 'raw' and table_name = 'transactions' and is_nullable = 'NO'",
    )
    assert set().union(*said.values()) <= {r["column_name"] for r in rows}


def test_transaction_ids_without_a_unique_test_are_unique_by_index(built):
    """int_transactions_deduped and int_transfer_hints test no uniqueness of transaction_id (a scan of
    every row per build, and in dbt build a wait for every model downstream): a unique index holds
    it, which PostgreSQL checks on every write, so a duplicate is never written."""
    import psycopg2.errors

    for table in ("int_transactions_deduped", "int_transfer_hints"):
        defs = [
            r["indexdef"]
            for r in _query(
                built["db"],
                "select indexdef from pg_indexes where schemaname = 'intermediate' and tablename = %s",
                (table,),
            )
        ]
        assert any(d.startswith("CREATE UNIQUE INDEX") and d.endswith("(transaction_id)") for d in defs), defs
        with built["db"].connect() as conn, conn.cursor() as cur:
            with pytest.raises(psycopg2.errors.UniqueViolation):
                cur.execute(f"insert into intermediate.{table} select * from intermediate.{table} limit 1")
            conn.rollback()
    models = [
        m
        for name in ("_intermediate.yml", "_transfers.yml")
        for m in yaml.safe_load((PROJECT_DIR / "models" / "intermediate" / name).read_text())["models"]
    ]
    for m in models:
        if m["name"] in ("int_transactions_deduped", "int_transfer_hints"):
            (column,) = [c for c in m["columns"] if c["name"] == "transaction_id"]
            assert "unique" not in column["data_tests"] and "unique index" in column["description"]


def test_overlapping_exports_are_counted_once_and_the_later_copy_wins(built):
    fct = built["marts"]["fct_transactions"]
    assert sorted((r["source_file"], r["line_number"]) for r in fct) == EXPECTED_KEYS
    adobe = [r for r in fct if r["txn_date"] == date(2024, 1, 10)]
    assert len(adobe) == 1 and adobe[0]["source_file"] == CHECKING_B and adobe[0]["description"] == "ADOBE"
    files = {r["source_file"]: r for r in built["marts"]["dim_files"]}
    assert files[CHECKING_A]["transactions_kept"] == 6 and files[CHECKING_A]["rows_loaded"] == 10
    assert files[CHECKING_A]["rows_quarantined"] == 1
    assert files[CHECKING_B]["transactions_kept"] == 6
    assert len({r["transaction_id"] for r in fct}) == len(fct)


def test_identical_transactions_within_a_file_are_kept(built):
    fct = built["marts"]["fct_transactions"]
    coffees = {
        d: [r for r in fct if r["txn_date"] == d and r["description"] == "Coffee Shop #12"]
        for d in (date(2024, 1, 3), date(2024, 1, 9))
    }
    assert len(coffees[date(2024, 1, 3)]) == 2  # two coffees in one file
    assert len(coffees[date(2024, 1, 9)]) == 2  # two coffees, present in both overlapping files
    # the same lunch in another account is a different transaction
    lunches = [r for r in fct if r["description"] == "Lunch client"]
    assert sorted(r["account"] for r in lunches) == ["checking", "savings"]


def test_labels_are_normalized(built):
    fct = {(r["source_file"], r["line_number"]): r for r in built["marts"]["fct_transactions"]}
    assert fct[(CHECKING_A, 3)]["payment_method"] == "credit_card"  # credit_car
    assert fct[(CHECKING_A, 4)]["payment_method"] == "credit_card"  # ' Credit Card '
    assert fct[(CHECKING_A, 2)]["payment_method"] == "bank_transfer"  # bank_tranfer
    assert fct[(CHECKING_A, 6)]["payment_method"] == "debit_card"  # debit
    assert fct[(CHECKING_A, 7)]["payment_method"] == "cash"
    assert fct[(CHECKING_A, 3)]["category"] == "software"
    assert fct[(CHECKING_A, 4)]["category"] == fct[(CHECKING_A, 5)]["category"] == "meals_entertainment"
    assert fct[(CHECKING_A, 6)]["category"] == "office_supplies"
    assert fct[(CHECKING_B, 3)]["category"] == "bad_debts"
    assert fct[(CHECKING_B, 3)]["status"] == "written_off"
    assert fct[(CHECKING_A, 4)]["status"] == "paid"
    assert fct[(CHECKING_A, 2)]["category"] is None  # income has no category
    assert fct[(CHECKING_A, 2)]["merchant"] == "acme corp"
    assert fct[(CHECKING_A, 7)]["merchant"] == "shell fuel"  # cleaned description
    assert fct[(CHECKING_A, 2)]["month"] == date(2024, 1, 1)
    assert fct[(CHECKING_A, 3)]["abs_amount"] == Decimal("20.00")


def test_daily_metrics_cover_every_day_and_reconcile(built):
    fct = built["marts"]["fct_transactions"]
    daily = sorted(built["marts"]["fct_daily_metrics"], key=lambda r: r["metric_date"])
    days = [FIRST_DAY + timedelta(n) for n in range((LAST_DAY - FIRST_DAY).days + 1)]
    assert [r["metric_date"] for r in daily] == days
    by_day = {r["metric_date"]: r for r in daily}
    empty = by_day[date(2024, 1, 5)]
    assert (empty["transaction_count"], empty["net"], empty["avg_transaction_amount"]) == (0, 0, None)
    balance = Decimal(0)
    for day in days:
        amounts = [r["amount"] for r in fct if r["txn_date"] == day]
        row = by_day[day]
        assert row["net"] == sum(amounts, Decimal(0))
        assert row["total_income"] == sum((a for a in amounts if a > 0), Decimal(0))
        assert row["total_expenses"] == -sum((a for a in amounts if a < 0), Decimal(0))
        assert row["transaction_count"] == len(amounts)
        balance += row["net"]
        assert row["running_balance"] == balance
    assert by_day[date(2024, 1, 3)]["unique_categories"] == 1
    assert by_day[date(2024, 1, 8)]["transaction_count"] == 2  # checking + savings lunch
    expected_total = (
        Decimal(3000) - 20 - 9 - Decimal("35.10") - 60 - 42 - 9 - 55 + 500 - 100 - 42 + Decimal("1.25")
    )
    assert balance == expected_total


def test_monthly_category_shares(built):
    rows = built["marts"]["fct_monthly_category"]
    expenses = {r["category"]: r for r in rows if r["txn_type"] == "Expense"}
    assert expenses["meals_entertainment"]["transaction_count"] == 6
    assert expenses["meals_entertainment"]["total_amount"] == Decimal("102.00")
    assert abs(sum(r["share_of_month_expenses"] for r in expenses.values()) - 1) < Decimal("0.0001")
    income = [r for r in rows if r["txn_type"] == "Income"]
    assert [(r["category"], r["total_amount"], r["share_of_month_expenses"]) for r in income] == [
        ("income", Decimal("3501.25"), None)
    ]


def test_sign_violation_fails_the_sign_test(built):
    """An expense written as a positive number must fail assert_transaction_sign_matches_type."""
    db = built["db"]
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO raw.transactions (source_file, line_number, account, txn_date, txn_type, description,"
            " amount, loaded_at) VALUES (%s, 99, 'checking', '2024-01-11', 'Expense', 'Refund?', 12.00, now())",
            (CHECKING_B,),
        )
    try:
        # --full-refresh: the row is written behind the loader's back (raw.files does not change), so an
        # incremental build, which follows changed files, would not see it
        code, statuses, output = _dbt(
            [
                "build",
                "--full-refresh",
                "--select",
                "+fct_transactions",
                "assert_transaction_sign_matches_type",
            ],
            built["env"],
            built["target"],
        )
        assert code != 0, output
        assert statuses["test.titans.assert_transaction_sign_matches_type"] == "fail", output
        assert statuses["model.titans.fct_transactions"] == "success"
    finally:
        with db.connect() as conn, conn.cursor() as cur:
            cur.execute(
                "DELETE FROM raw.transactions WHERE source_file = %s AND line_number = 99", (CHECKING_B,)
            )


# -- dim_accounts ---------------------------------------------------------------------------------------


def test_dim_accounts_on_the_csv_ledger(built):
    accounts = {r["account"]: r for r in built["marts"]["dim_accounts"]}
    assert set(accounts) == {"checking", "savings"}
    checking, savings = accounts["checking"], accounts["savings"]
    assert checking["transactions"] == sum(1 for f, _ in EXPECTED_KEYS if f.startswith("checking/")) == 12
    assert checking["rows_loaded"] == 16 and checking["files"] == 2 and checking["rows_quarantined"] == 1
    assert (checking["first_txn_date"], checking["last_txn_date"]) == (date(2024, 1, 1), date(2024, 1, 15))
    assert (
        savings["transactions"],
        savings["rows_loaded"],
        savings["files"],
        savings["rows_quarantined"],
    ) == (2, 2, 1, 0)
    assert (savings["first_txn_date"], savings["last_txn_date"]) == (date(2024, 1, 8), date(2024, 1, 20))
    for row in accounts.values():  # the seed CSV states no currency, no balance, no bank
        assert row["currency"] is None and row["latest_balance"] is None and row["institution"] is None


@pytest.fixture(scope="module")
def statements_built(tmp_path_factory, embedded_db):
    """Statements written by the generator's writers, loaded by the real loader, then `dbt build +dim_accounts`."""
    from titans_assets.lib import loader
    from titans_assets.lib.formats import writers

    tmp = tmp_path_factory.mktemp("dim_accounts")
    landing = tmp / "landing"
    (landing / "cash").mkdir(parents=True)
    iban = "GB33TITN40000012345678"
    t = [
        writers.Txn("2024-01-05", -12_50, "COFFEE ONE", "B0001"),
        writers.Txn("2024-01-20", 300_000, "SALARY", "B0002"),
        writers.Txn("2024-01-31", -80_00, "GROCER", "B0003"),
        writers.Txn("2024-02-03", -20_00, "BOOKS", "B0004"),
        writers.Txn("2024-02-10", -5_00, "FEE", "B0005"),
    ]
    files = {
        # January, then an overlapping export (January 31 again, two new February entries)
        "checking-jan.xml": (
            "camt053",
            writers.Statement(iban, t[:3], opening_cents=1_000_00, statement_id="S1"),
        ),
        "checking-feb.xml": (
            "camt053",
            writers.Statement(iban, t[2:], opening_cents=1_000_00 - 12_50 + 300_000, statement_id="S2"),
        ),
        # the same account in another currency once (a foreign-currency statement): USD stays the most frequent
        "checking-gbp.xml": (
            "camt053",
            writers.Statement(
                iban, [writers.Txn("2023-12-20", -1_00, "FX", "G0001")], currency="GBP", statement_id="S3"
            ),
        ),
        "card.ofx": (
            "ofx",
            writers.Statement(
                "4000111122",
                [
                    writers.Txn("2024-01-07", -9_99, "STREAMING", "F1"),
                    writers.Txn("2024-01-09", -45_00, "HOTEL", "F2"),
                ],
                currency="EUR",
                kind="credit_card",
            ),
        ),
    }
    for name, (fmt, statement) in files.items():
        (landing / name).write_bytes(writers.write(fmt, statement)[0])
    (landing / "cash" / "2024.csv").write_text(
        "Date,Type,Description,Amount\n2024-01-02,Expense,TAXI,-15.00\n2024-01-03,Expense,bad,abc\n"
    )
    with scratch_database(embedded_db) as db:
        loader.ensure_raw_schema(db)
        results = loader.load_files(db, landing, loader.landing_files(landing), workers=1)
        # No FX rates here (the seed is the user's, empty): the rates check (tests/test_currencies.py)
        # would stop the GBP and EUR rows' marts; this test is about accounts.
        args = [
            "build",
            "--select",
            "+dim_accounts",
            "--indirect-selection",
            "cautious",
            "--exclude",
            "assert_fx_rates_cover_every_currency",
        ]
        code, _, output = _dbt(args, os.environ | db.dbt_env(), tmp / "target")
        rows = _query(db, "select * from marts.dim_accounts") if code == 0 else []
        yield {
            "code": code,
            "output": output,
            "results": results,
            "accounts": {r["account"]: r for r in rows},
            "iban": iban,
        }


def test_dim_accounts_from_statements(statements_built):
    built = statements_built
    assert built["code"] == 0, built["output"]
    accounts = built["accounts"]
    assert set(accounts) == {built["iban"], "4000111122", "cash"}
    checking = accounts[built["iban"]]
    assert checking["currency"] == "USD"  # 5 USD entries, 1 GBP
    assert (
        checking["transactions"] == 6 and checking["rows_loaded"] == 7
    )  # January 31 loaded twice, kept once
    assert checking["files"] == 3 and checking["rows_quarantined"] == 0
    assert (checking["first_txn_date"], checking["last_txn_date"]) == (date(2023, 12, 20), date(2024, 2, 10))
    # the February statement's running balance after its last entry: 1000.00 - 12.50 + 3000 - 80 - 20 - 5
    assert checking["latest_balance"] == Decimal("3882.50") and checking["latest_balance_date"] == date(
        2024, 2, 10
    )
    card = accounts["4000111122"]
    assert card["currency"] == "EUR" and card["transactions"] == 2 and card["latest_balance"] is None
    cash = accounts["cash"]
    assert cash["currency"] is None and cash["transactions"] == 1 and cash["rows_quarantined"] == 1
    # the bank the statements name (CAMT Acct/Svcr/FinInstnId/Nm, OFX FI/ORG); none for the CSV
    assert (checking["institution"], card["institution"], cash["institution"]) == (
        "Titans Demo Bank",
    ) * 2 + (None,)
