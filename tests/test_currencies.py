"""Two currencies in one household: every amount keeps its currency, metrics per currency stay in it,
the household metrics are in TITANS_REPORTING_CURRENCY through the user's rates (seeds/fx_rates.csv),
and a currency without a rate fails a blocking check that names it; no mart sums two currencies."""

from __future__ import annotations

import datetime as dt
import os
import shutil
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest
from conftest import scratch_database
from support import dbt_command
from test_balances import PIPELINE_EXCLUDES
from test_transfers import query

from titans_assets.lib import generator, loader

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]
END = dt.date(2025, 4, 30)


def dbt(project: Path, args: list[str], env: dict[str, str]) -> tuple[int, str]:
    import subprocess

    target = project / "target"
    cmd = dbt_command(args, project, target)
    proc = subprocess.run(cmd, check=False, env=env, cwd=REPO, capture_output=True, text=True, timeout=900)
    return proc.returncode, (proc.stdout + proc.stderr)[-4000:]


def test_two_currencies_are_never_summed_as_they_are(embedded_db, tmp_path):
    # the project copied: this test writes its own rates into the seed
    project = tmp_path / "dbt_project"
    shutil.copytree(
        REPO / "dbt_project", project, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages")
    )
    # the generator's two-currency household: a EUR card (its purchases priced in EUR) beside USD checking
    s = generator.generate(
        tmp_path / "raw",
        years=0.5,
        seed=21,
        end_date=END,
        messy_rate=0,
        format={"business_checking": "camt053", "business_credit_card": "camt053"},
        currencies={"business_credit_card": "EUR"},
    )
    assert s.manifest["files"]["business_credit_card.xml"]["currency"] == "EUR"
    labels = (s.labels_dir / "transfers.csv").read_text()
    assert (
        "business_credit_card" not in labels
    )  # USD checking does not pay the EUR card: no pair crosses currencies
    with scratch_database(embedded_db) as db:
        env = os.environ | db.dbt_env() | {"TITANS_REPORTING_CURRENCY": "USD"}
        loader.ensure_raw_schema(db)
        loader.load_files(db, s.out_dir, loader.landing_files(s.out_dir), workers=1)
        currencies = {
            r["account"]: r["currency"]
            for r in query(
                db, "select account, min(currency) as currency from raw.transactions group by account"
            )
        }
        assert set(currencies.values()) == {"EUR", "USD", None}

        # no rate for EUR: the blocking check fails and names the currency and its first day
        code, out = dbt(project, ["build", *PIPELINE_EXCLUDES], env)
        assert code != 0 and "assert_fx_rates_cover_every_currency" in out
        sql = next(
            (project / "target").rglob("compiled/**/assert_fx_rates_cover_every_currency.sql")
        ).read_text()
        missing = query(db, sql)
        first_eur = query(db, "select min(txn_date) as d from raw.transactions where currency = 'EUR'")[0][
            "d"
        ]
        assert [(m["currency"], m["first_day_without_rate"]) for m in missing] == [("EUR", first_eur)]

        # monthly rates from before the first day: every EUR amount converts
        months = [dt.date(y, m, 1) for y in (2024, 2025) for m in range(1, 13) if dt.date(y, m, 1) <= END]
        rates = {d: Decimal("1.05") + Decimal(i) / 100 for i, d in enumerate(months)}
        (project / "seeds" / "fx_rates.csv").write_text(
            "rate_date,from_currency,to_currency,rate\n"
            + "".join(f"{d.isoformat()},EUR,USD,{r}\n" for d, r in rates.items())
        )
        code, out = dbt(project, ["build", *PIPELINE_EXCLUDES], env)
        assert code == 0, out

        tx = query(
            db,
            "select txn_date, currency, amount, amount_reporting, reporting_currency, is_transfer, txn_type"
            " from marts.fct_transactions",
        )
        for t in tx:
            rate = rates[t["txn_date"].replace(day=1)] if t["currency"] == "EUR" else Decimal(1)
            assert (
                t["amount_reporting"] == (t["amount"] * rate).quantize(Decimal("0.01"), ROUND_HALF_UP)
                and t["reporting_currency"] == "USD"
            )
        kept = [t for t in tx if not t["is_transfer"]]
        eur_total = sum(t["amount"] for t in kept if t["currency"] == "EUR")
        assert eur_total != 0

        # the household metrics: in USD, the converted amounts (not the raw sum of two currencies)
        m = query(
            db,
            """select (select sum(net) from marts.fct_daily_metrics) as net,
                                (select sum(total_amount) from marts.fct_monthly_category where txn_type = 'Expense') as spent""",
        )[0]
        assert m["net"] == sum(t["amount_reporting"] for t in kept) != sum(t["amount"] for t in kept)
        assert m["spent"] == -sum(t["amount_reporting"] for t in kept if t["txn_type"] == "Expense")

        # per currency: each in its own currency
        by_cur = {
            r["currency"]: r["net"]
            for r in query(
                db,
                "select currency, sum(net) as net from marts.fct_daily_metrics_by_currency group by currency",
            )
        }
        assert by_cur == {
            c: sum(t["amount"] for t in kept if t["currency"] == c) for c in ("EUR", "USD", None)
        }

        # balances: per account in its currency; the household total per currency, never across
        hh = query(
            db,
            """select h.balance_date, h.currency, h.balance, h.accounts,
                                 (select sum(b.balance) from marts.fct_daily_balances b
                                  where b.balance_date = h.balance_date and b.currency is not distinct from h.currency) as sum_acc
                          from marts.fct_daily_household_balances h""",
        )
        assert {h["currency"] for h in hh} == {"EUR", "USD", None}
        assert all(h["balance"] == h["sum_acc"] and h["accounts"] == 1 for h in hh)
        accounts = {
            r["account"]: r["currency"] for r in query(db, "select account, currency from marts.dim_accounts")
        }
        assert set(accounts.values()) == {"EUR", "USD", None}
        accounts_by_currency = {c: a for a, c in accounts.items()}
        # no transfer pair joins two currencies
        pairs = query(db, "select currency from intermediate.int_transfer_pairs")
        assert all(p["currency"] in ("USD", None) for p in pairs)

        # and no mart holds an amount whose currency is not said: every numeric column of every mart
        # declares (dbt column meta `currency`) whether it is in the row's `currency`, in the
        # reporting currency, or no money at all; `row` only where the row has a currency column
        assert_every_mart_amount_declares_its_currency(db, project / "target" / "manifest.json")

        # the dashboard's balances: a currency to pick per currency (unstated -> the reporting one, first),
        # and each total in its own currency
        from titans_assets.lib.dashboard import queries as Q

        assert Q.balance_currencies(db) == ["USD", "EUR"]
        last = query(db, "select max(balance_date) as d from marts.fct_daily_balances")[0]["d"]
        eur = Q.account_balances(db, last, "EUR")
        assert list(eur["account"]) == [accounts_by_currency["EUR"]] and list(eur["currency"]) == ["EUR"]
        assert Q.household_balance(db, last, "EUR") == pytest.approx(float(eur["balance"].iloc[0]))
        usd = Q.account_balances(db, last, "USD")
        assert set(usd["account"]) == set(accounts) - {accounts_by_currency["EUR"]}
        assert Q.household_balance(db, last, "USD") == pytest.approx(float(usd["balance"].sum()))


MONEY_KINDS = {"row", "reporting", "none"}


def assert_every_mart_amount_declares_its_currency(db, manifest_path: Path) -> None:
    import json

    nodes = json.loads(manifest_path.read_text())["nodes"]
    declared = {}
    for node in nodes.values():
        if node["resource_type"] == "model" and node["schema"] == "marts":
            for name, col in node["columns"].items():
                kind = (col.get("meta") or {}).get("currency") or (
                    (col.get("config") or {}).get("meta") or {}
                ).get("currency")
                declared[(node["alias"], name)] = kind
    columns = query(
        db,
        "select table_name, column_name, data_type from information_schema.columns"
        " where table_schema = 'marts' order by table_name, ordinal_position",
    )
    has_currency = {c["table_name"] for c in columns if c["column_name"] == "currency"}
    numeric = [(c["table_name"], c["column_name"]) for c in columns if c["data_type"] == "numeric"]
    assert numeric
    undeclared = [f"{t}.{c}" for t, c in numeric if declared.get((t, c)) not in MONEY_KINDS]
    assert not undeclared, f"mart columns without meta.currency (row | reporting | none): {undeclared}"
    misplaced = [f"{t}.{c}" for t, c in numeric if declared[(t, c)] == "row" and t not in has_currency]
    assert not misplaced, f"meta.currency 'row' in a mart without a currency column: {misplaced}"
