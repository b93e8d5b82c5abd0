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
from test_transfers import query

from titans_assets.lib import generator, loader

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]
END = dt.date(2025, 4, 30)


def dbt(project: Path, args: list[str], env: dict[str, str]) -> tuple[int, str]:
    import subprocess
    import sys

    target = project / "target"
    cmd = [sys.executable, "-c", "import sys; from dbt.cli.main import cli; sys.exit(cli())", *args,
           "--project-dir", str(project), "--profiles-dir", str(project), "--target-path", str(target),
           "--log-path", str(target / "logs")]
    proc = subprocess.run(cmd, check=False, env=env, cwd=REPO, capture_output=True, text=True, timeout=900)
    return proc.returncode, (proc.stdout + proc.stderr)[-4000:]


def test_two_currencies_are_never_summed_as_they_are(embedded_db, tmp_path):
    # the project copied: this test writes its own rates into the seed
    project = tmp_path / "dbt_project"
    shutil.copytree(REPO / "dbt_project", project, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages"))
    s = generator.generate(tmp_path / "raw", years=0.5, seed=21, end_date=END, messy_rate=0,
                           format={"business_checking": "camt053", "business_credit_card": "camt053"})
    card = s.out_dir / "business_credit_card.xml"
    card.write_bytes(card.read_bytes().replace(b'Ccy="USD"', b'Ccy="EUR"').replace(b"<Ccy>USD</Ccy>", b"<Ccy>EUR</Ccy>"))
    with scratch_database(embedded_db) as db:
        env = os.environ | db.dbt_env() | {"TITANS_REPORTING_CURRENCY": "USD"}
        loader.ensure_raw_schema(db)
        loader.load_files(db, s.out_dir, loader.landing_files(s.out_dir), workers=1)
        currencies = {r["account"]: r["currency"] for r in query(
            db, "select account, min(currency) as currency from raw.transactions group by account")}
        assert set(currencies.values()) == {"EUR", "USD", None}

        # no rate for EUR: the blocking check fails and names the currency and its first day
        code, out = dbt(project, ["build"], env)
        assert code != 0 and "assert_fx_rates_cover_every_currency" in out
        sql = next((project / "target").rglob("compiled/**/assert_fx_rates_cover_every_currency.sql")).read_text()
        missing = query(db, sql)
        first_eur = query(db, "select min(txn_date) as d from raw.transactions where currency = 'EUR'")[0]["d"]
        assert [(m["currency"], m["first_day_without_rate"]) for m in missing] == [("EUR", first_eur)]

        # monthly rates from before the first day: every EUR amount converts
        months = [dt.date(y, m, 1) for y in (2024, 2025) for m in range(1, 13) if dt.date(y, m, 1) <= END]
        rates = {d: Decimal("1.05") + Decimal(i) / 100 for i, d in enumerate(months)}
        (project / "seeds" / "fx_rates.csv").write_text(
            "rate_date,from_currency,to_currency,rate\n"
            + "".join(f"{d.isoformat()},EUR,USD,{r}\n" for d, r in rates.items()))
        code, out = dbt(project, ["build"], env)
        assert code == 0, out

        tx = query(db, "select txn_date, currency, amount, amount_reporting, reporting_currency, is_transfer, txn_type"
                       " from marts.fct_transactions")
        for t in tx:
            rate = rates[t["txn_date"].replace(day=1)] if t["currency"] == "EUR" else Decimal(1)
            assert t["amount_reporting"] == (t["amount"] * rate).quantize(Decimal("0.01"), ROUND_HALF_UP) and t["reporting_currency"] == "USD"
        kept = [t for t in tx if not t["is_transfer"]]
        eur_total = sum(t["amount"] for t in kept if t["currency"] == "EUR")
        assert eur_total != 0

        # the household metrics: in USD, the converted amounts (not the raw sum of two currencies)
        m = query(db, """select (select sum(net) from marts.fct_daily_metrics) as net,
                                (select sum(total_amount) from marts.fct_monthly_category where txn_type = 'Expense') as spent""")[0]
        assert m["net"] == sum(t["amount_reporting"] for t in kept) != sum(t["amount"] for t in kept)
        assert m["spent"] == -sum(t["amount_reporting"] for t in kept if t["txn_type"] == "Expense")

        # per currency: each in its own currency
        by_cur = {r["currency"]: r["net"] for r in query(
            db, "select currency, sum(net) as net from marts.fct_daily_metrics_by_currency group by currency")}
        assert by_cur == {c: sum(t["amount"] for t in kept if t["currency"] == c) for c in ("EUR", "USD", None)}

        # balances: per account in its currency; the household total per currency, never across
        hh = query(db, """select h.balance_date, h.currency, h.balance, h.accounts,
                                 (select sum(b.balance) from marts.fct_daily_balances b
                                  where b.balance_date = h.balance_date and b.currency is not distinct from h.currency) as sum_acc
                          from marts.fct_daily_household_balances h""")
        assert {h["currency"] for h in hh} == {"EUR", "USD", None}
        assert all(h["balance"] == h["sum_acc"] and h["accounts"] == 1 for h in hh)
        accounts = {r["account"]: r["currency"] for r in query(db, "select account, currency from marts.dim_accounts")}
        assert set(accounts.values()) == {"EUR", "USD", None}
        # the USD card payment from checking and the EUR card's inflow are not one transfer
        pairs = query(db, "select currency from intermediate.int_transfer_pairs")
        assert all(p["currency"] in ("USD", None) for p in pairs)
