"""Daily balances per account (fct_daily_balances) and per currency (fct_daily_household_balances):
opened from the statements' balances or `titans account set-balance`, and reconciled with every
balance a bank reported by a blocking dbt test that names the first day it diverges."""

from __future__ import annotations

import datetime as dt
import os
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import scratch_database
from test_transfers import dbt, query

from titans_assets.lib import balances, generator, loader

pytestmark = pytest.mark.integration

END = dt.date(2025, 9, 30)
IBAN = generator.account_id("business_checking", "camt053")
OPENING = Decimal("25000.00")  # the generator's opening balance of checking
# what the pipeline's dbt assets leave out (defs/transform/dbt.py): the enriched mart has its own
# definition, downstream of the predictions and the user's category tables
PIPELINE_EXCLUDES = ("--exclude", "fct_transactions_enriched")


def build(db, landing: Path, target: Path) -> tuple[int, str]:
    loader.ensure_raw_schema(db)
    present = {p.resolve() for p in loader.landing_files(landing)}
    with db.connect() as conn, conn.cursor() as cur:  # a file taken out of the landing folder leaves
        cur.execute("SELECT source_file FROM raw.files")
        gone = [f for (f,) in cur.fetchall() if (landing / f).resolve() not in present]
    for f in gone:
        loader.remove_file(db, f)
    loader.load_files(db, landing, loader.landing_files(landing), workers=1)
    return dbt(["build", *PIPELINE_EXCLUDES], os.environ | db.dbt_env(), target)


def divergence(db, target: Path) -> list[dict]:
    """The blocking test's own rows (its compiled SQL run as it is)."""
    sql = next(target.rglob("compiled/**/assert_balances_match_statements.sql")).read_text()
    return query(db, sql)


@pytest.fixture(scope="module")
def ledger(tmp_path_factory):
    """A year whose checking account the generator writes as one CAMT.053 statement per month
    (landing/business_checking/YYYY-MM.xml, each opening at the last one's closing balance):
    month -> (its last day, its closing balance) from the manifest."""
    root = tmp_path_factory.mktemp("balances")
    s = generator.generate(
        root / "raw",
        years=1,
        seed=11,
        end_date=END,
        messy_rate=0,
        format={"business_checking": "camt053"},
        monthly=True,
    )
    months = {
        name[len("business_checking/") : -len(".xml")]: (f["last_date"], Decimal(f["closing_balance"]))
        for name, f in s.manifest["files"].items()
        if name.startswith("business_checking/")
    }
    assert len(months) >= 12 and all(
        (root / "raw" / "business_checking" / f"{m}.xml").is_file() for m in months
    )
    return root, months


def test_balances_reconcile_with_generated_monthly_statements_and_a_missing_month_names_the_day(
    embedded_db, ledger
):
    root, months = ledger
    landing, target = root / "raw", root / "target"
    with scratch_database(embedded_db) as db:
        code, out = build(db, landing, target)
        assert code == 0, out
        assert divergence(db, target) == []
        rows = query(
            db,
            "select balance_date, balance, balance_source, opening_balance from marts.fct_daily_balances"
            " where account = %s order by balance_date",
            (IBAN,),
        )
        by_day = {r["balance_date"]: r["balance"] for r in rows}
        assert {r["balance_source"] for r in rows} == {"statement"}
        assert rows[0]["opening_balance"] == OPENING
        for month, (last_day, closing) in months.items():  # every statement's closing balance, to the cent
            assert by_day[dt.date.fromisoformat(last_day)] == closing, month
        # the cards' files carry no balance: their balances run from 0, flagged as unknown
        cards = query(
            db,
            "select distinct balance_source, balance_known from marts.fct_daily_balances"
            " where account = 'business_credit_card'",
        )
        assert cards == [{"balance_source": "none", "balance_known": False}]
        # the household per currency: the checking statements say USD; the CSVs say nothing
        hh = query(
            db,
            "select currency, count(distinct balance_date) as days, max(accounts) as accounts"
            " from marts.fct_daily_household_balances group by currency order by currency",
        )
        assert [(h["currency"], h["accounts"]) for h in hh] == [("USD", 1), (None, 2)]

        # one month's statement goes missing: the check fails on the first day reported after it
        missing = sorted(months)[4]
        (landing / "business_checking" / f"{missing}.xml").unlink()
        code, out = build(db, landing, target)
        assert code != 0 and "assert_balances_match_statements" in out
        rows = divergence(db, target)
        nxt = sorted(months)[5]
        first_reported = query(
            db,
            "select min(balance_date) as d from intermediate.int_reported_balances"
            " where account = %s and balance_date >= %s",
            (IBAN, dt.date.fromisoformat(nxt + "-01")),
        )
        assert len(rows) == 1 and rows[0]["account"] == IBAN
        assert rows[0]["first_divergent_day"] == first_reported[0]["d"]
        assert rows[0]["first_divergent_day"].isoformat()[:7] == nxt
        assert rows[0]["days_diverging"] > 20  # every reported day from then on
        # the computed balance misses exactly the missing month's net flow
        prev_close = months[sorted(months)[3]][1]
        missing_net = months[missing][1] - prev_close
        assert rows[0]["reported_balance"] - rows[0]["computed_balance"] == missing_net


def test_set_balance_anchors_an_account_without_statement_balances(embedded_db, tmp_path, monkeypatch):
    from titans_assets.cli import main

    generator.generate(
        tmp_path / "raw",
        years=0.3,
        seed=4,
        end_date=END,
        messy_rate=0,
        accounts=("business_checking", "business_credit_card"),
    )
    with scratch_database(embedded_db) as db:
        monkeypatch.setenv("TITANS_DATABASE_URL", db.url)
        runner = CliRunner()
        result = runner.invoke(
            main, ["account", "set-balance", "business_checking", "2025-08-15", "$10,000.50"]
        )
        assert result.exit_code == 0, result.output
        assert "10,000.50" in result.output
        result = runner.invoke(main, ["account", "set-balance", "business_checking", "15/08/2025", "1"])
        assert result.exit_code == 2 and "E003" in result.output
        result = runner.invoke(main, ["account", "set-balance", "business_checking", "2025-08-15", "12.345"])
        assert result.exit_code == 2 and "E003" in result.output
        assert balances.balances(db) == [("business_checking", dt.date(2025, 8, 15), Decimal("10000.50"))]
        code, out = build(db, tmp_path / "raw", tmp_path / "target")
        assert code == 0, out
        rows = {
            r["balance_date"]: r
            for r in query(
                db,
                "select balance_date, balance, balance_source from marts.fct_daily_balances where account = 'business_checking'",
            )
        }
        assert rows[dt.date(2025, 8, 15)]["balance"] == Decimal("10000.50")
        assert {r["balance_source"] for r in rows.values()} == {"user"}
        # the day after moves by that day's net flow; the entry survives a rebuild
        net = query(
            db,
            "select coalesce(sum(amount), 0) as s from marts.fct_transactions"
            " where account = 'business_checking' and txn_date = '2025-08-16'",
        )[0]["s"]
        assert rows[dt.date(2025, 8, 16)]["balance"] == Decimal("10000.50") + net
        code, out = dbt(
            ["build", "--select", "fct_daily_balances"], os.environ | db.dbt_env(), tmp_path / "target"
        )
        assert code == 0, out
        assert query(
            db,
            "select balance from marts.fct_daily_balances where account = 'business_checking'"
            " and balance_date = '2025-08-15'",
        )[0]["balance"] == Decimal("10000.50")


def test_parse_amount():
    assert balances.parse_amount(" -1,234.5 ") == Decimal("-1234.50")
    assert balances.parse_amount("€12") == Decimal("12.00")
    for bad in ("abc", "1.234", "nan", "inf", ""):
        with pytest.raises(ValueError):
            balances.parse_amount(bad)
