"""Transfers between the user's own accounts, paired in dbt (int_transfer_pairs) on generated ledgers
with known pairs (labels/transfers.csv), measured; the marts and the training data leave them out;
a user's override forces or breaks a pair and survives a rebuild."""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import scratch_database
from support import dbt_command

from titans_assets.lib import generator, loader, transfers

REPO = Path(__file__).resolve().parents[1]
PROJECT_DIR = REPO / "dbt_project"
ACCOUNTS = (*generator.DEFAULT_ACCOUNTS, "business_savings")
# (end date, seed, formats): the demo's mix (a QIF register) and all-CSV, on different calendars
CASES = (
    (dt.date(2025, 12, 31), 42, {"business_checking": "qif"}),
    (dt.date(2024, 7, 15), 7, "csv"),
    (dt.date(2026, 3, 3), 123, {"business_credit_card": "ofx", "business_savings": "camt053"}),
)

pytestmark = pytest.mark.integration


def dbt(args: list[str], env: dict[str, str], target: Path) -> tuple[int, str]:
    cmd = dbt_command(args, PROJECT_DIR, target)
    proc = subprocess.run(cmd, check=False, env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
    return proc.returncode, (proc.stdout + proc.stderr)[-4000:]


def query(db, sql: str, params=None) -> list[dict]:
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        cols = [c.name for c in cur.description]
        return [dict(zip(cols, row)) for row in cur.fetchall()]


def load_and_build(db, landing: Path, target: Path, select: str | None = None) -> None:
    """Load the landing folder, then `dbt build` (every model and test, or `select`)."""
    loader.ensure_raw_schema(db)
    loader.load_files(db, landing, loader.landing_files(landing), workers=1)
    args = ["build", "--select", *select.split()] if select else ["build"]
    code, out = dbt(args, os.environ | db.dbt_env(), target)
    assert code == 0, out


def measure(db, labels: Path) -> dict:
    """Pairs found vs the generator's ground truth, keyed by (file, line) of both sides."""
    truth = {
        ((r["out_file"], int(r["out_line"])), (r["in_file"], int(r["in_line"])))
        for r in csv.DictReader((labels / "transfers.csv").open())
    }
    rows = query(
        db,
        """
        select o.source_file as out_file, o.line_number as out_line, i.source_file as in_file, i.line_number as in_line
        from intermediate.int_transfer_pairs as p
        join marts.fct_transactions as o on o.transaction_id = p.out_transaction_id
        join marts.fct_transactions as i on i.transaction_id = p.in_transaction_id""",
    )
    found = {((r["out_file"], r["out_line"]), (r["in_file"], r["in_line"])) for r in rows}
    hit = len(found & truth)
    return {
        "truth": len(truth),
        "found": len(found),
        "correct": hit,
        "precision": hit / len(found) if found else 1.0,
        "recall": hit / len(truth) if truth else 1.0,
    }


@pytest.fixture(scope="module")
def server(embedded_db):
    return embedded_db


@pytest.mark.parametrize("end, seed, fmt", CASES, ids=[f"{c[0]}-s{c[1]}" for c in CASES])
def test_pairing_precision_and_recall_on_generated_ledgers(server, tmp_path, end, seed, fmt):
    s = generator.generate(tmp_path / "raw", end_date=end, seed=seed, accounts=ACCOUNTS, format=fmt)
    with scratch_database(server) as db:
        load_and_build(db, s.out_dir, tmp_path / "target")
        m = measure(db, s.labels_dir)
        print(f"\ntransfer pairing {end} seed {seed} {fmt}: {json.dumps(m)}")
        assert m["truth"] > 60
        assert m["precision"] >= 0.99 and m["recall"] >= 0.95, m
        # every paired row is flagged, no row is in two pairs, and no paired row is also "unpaired"
        flags = query(
            db,
            """select count(*) filter (where is_transfer) as transfers,
                                    count(*) filter (where is_transfer and transfer_unpaired) as both,
                                    count(distinct transfer_pair_id) as pairs
                             from marts.fct_transactions""",
        )[0]
        assert flags["transfers"] == 2 * m["found"] == 2 * flags["pairs"] and flags["both"] == 0
        # marts and training data leave transfers out: household net flow = what left or entered it
        totals = query(
            db,
            """
            select (select sum(net) from marts.fct_daily_metrics) as net,
                   (select sum(amount) from marts.fct_transactions where not is_transfer) as outside,
                   (select sum(total_amount) filter (where txn_type = 'Income') from marts.fct_monthly_category) as income,
                   (select sum(amount) from marts.fct_transactions where not is_transfer and txn_type = 'Income') as income_tx,
                   (select count(*) from features.ml_transaction_features f join marts.fct_transactions t
                        using (transaction_id) where t.is_transfer) as transfers_in_features""",
        )[0]
        assert totals["net"] == totals["outside"] and totals["income"] == totals["income_tx"]
        assert totals["transfers_in_features"] == 0
        # the hints' prefilter changes nothing: int_transfer_hints equals the plain regexes on every row
        strong, weak = transfers.postgres_patterns()
        diff = query(
            db,
            """
            select count(*) filter (where h.strong_hint) as strong,
                   count(*) filter (where h.strong_hint is distinct from (
                       coalesce(d.description, '') ~* %(strong)s
                       or coalesce(d.extra ->> 'bank code', '') like 'transfer [%%')) as strong_diff,
                   count(*) filter (where h.weak_hint is distinct from (h.text ~* %(weak)s)) as weak_diff
            from intermediate.int_transfer_hints as h
            join intermediate.int_transactions_deduped as d using (transaction_id)""",
            {"strong": strong, "weak": weak},
        )[0]
        assert diff["strong"] > 0 and diff["strong_diff"] == diff["weak_diff"] == 0, diff


def test_a_missing_side_is_flagged_unpaired_and_overrides_survive_a_rebuild(server, tmp_path):
    s = generator.generate(tmp_path / "raw", end_date=dt.date(2025, 5, 31), seed=5, years=0.5)
    (s.out_dir / "personal_card.csv").unlink()  # the owner draws' other side is not loaded
    draws = [r for r in csv.DictReader((s.labels_dir / "transfers.csv").open()) if r["kind"] == "owner_draw"]
    assert draws
    with scratch_database(server) as db:
        target = tmp_path / "target"
        load_and_build(db, s.out_dir, target, "+fct_transactions +dim_files --indirect-selection cautious")
        rows = query(
            db,
            """select source_file, line_number, transaction_id, amount, is_transfer, transfer_unpaired
                            from marts.fct_transactions order by txn_date, source_file, line_number""",
        )
        by_line = {(r["source_file"], r["line_number"]): r for r in rows}
        for d in draws:
            r = by_line[(d["out_file"], int(d["out_line"]))]
            assert not r["is_transfer"] and r["transfer_unpaired"], r  # flagged, not guessed
        payments = [
            r for r in csv.DictReader((s.labels_dir / "transfers.csv").open()) if r["kind"] == "card_payment"
        ]
        assert all(by_line[(p["out_file"], int(p["out_line"]))]["is_transfer"] for p in payments)

        # break one card payment, force an unrelated pair (a rent payment and a card charge), then rebuild
        p = payments[0]
        a = by_line[(p["out_file"], int(p["out_line"]))]["transaction_id"]
        b = by_line[(p["in_file"], int(p["in_line"]))]["transaction_id"]
        x = next(
            r
            for r in rows
            if r["source_file"] == "business_checking.csv"
            and r["amount"] < 0
            and not r["is_transfer"]
            and not r["transfer_unpaired"]
        )
        y = next(r for r in rows if r["source_file"] == "business_credit_card.csv" and r["amount"] < 0)
        with db.connect() as conn, conn.cursor() as cur:
            cur.execute(
                "insert into app.transfer_overrides (transaction_id, other_transaction_id, action) "
                "values (%s, %s, 'break'), (%s, %s, 'pair')",
                (b, a, x["transaction_id"], y["transaction_id"]),
            )
        for _ in range(2):  # the override is the user's: a second rebuild keeps it
            code, out = dbt(
                ["build", "--select", "+fct_transactions", "+dim_files", "--indirect-selection", "cautious"],
                os.environ | db.dbt_env(),
                target,
            )
            assert code == 0, out
            after = {
                r["transaction_id"]: r
                for r in query(
                    db, "select transaction_id, is_transfer, transfer_pair_id from marts.fct_transactions"
                )
            }
            assert not after[a]["is_transfer"] and not after[b]["is_transfer"]
            assert after[x["transaction_id"]]["is_transfer"] and after[y["transaction_id"]]["is_transfer"]
            assert (
                after[x["transaction_id"]]["transfer_pair_id"]
                == after[y["transaction_id"]]["transfer_pair_id"]
            )
            pair = query(
                db,
                "select matched_by from intermediate.int_transfer_pairs where out_transaction_id = %s",
                (x["transaction_id"],),
            )
            assert pair == [{"matched_by": "override"}]


@pytest.mark.parametrize(
    "end, seed", [(dt.date(2025, 6, 30), 1), (dt.date(2024, 3, 1), 9), (dt.date(2026, 11, 20), 77)]
)
def test_the_python_rule_pairs_like_dbt_and_the_model_data_leaves_transfers_out(tmp_path, end, seed):
    """lib/transfers.py (the sweep's path without a database) on the same generated ledgers."""
    from titans_assets.lib.ml import data

    s = generator.generate(tmp_path / "raw", end_date=end, seed=seed, accounts=ACCOUNTS)
    truth = {
        ((r["out_file"], int(r["out_line"])), (r["in_file"], int(r["in_line"])))
        for r in csv.DictReader((s.labels_dir / "transfers.csv").open())
    }
    from titans_assets.lib.csv_contract import parse_csv

    rows = []
    for path in sorted(s.out_dir.glob("*.csv")):
        parsed = parse_csv(path.read_bytes()).rows
        rows.append(parsed.assign(source_file=path.name, account=path.stem))
    import pandas as pd

    frame = pd.concat(rows, ignore_index=True)
    p = transfers.pairs(frame)
    key = list(zip(frame["source_file"], frame["line_number"].astype(int)))
    found = {(key[o], key[i]) for o, i in zip(p["out_index"], p["in_index"])}
    hit = len(found & truth)
    print(f"\npython transfer rule {end} seed {seed}: truth {len(truth)} found {len(found)} correct {hit}")
    assert hit / len(found) >= 0.99 and hit / len(truth) >= 0.95
    model_rows = data.frame_from_csvs(s.out_dir)
    sides = {k for pair in truth for k in pair}
    kept = set(zip(model_rows["source_file"], model_rows["line_number"]))
    assert len(kept & sides) <= len(truth) - hit  # only a missed pair could stay
    assert len(model_rows) == len(frame) - 2 * len(found)


def test_the_python_rule_needs_a_hint_and_one_to_one():
    import pandas as pd

    f = pd.DataFrame(
        [
            ("checking", "2024-03-01", -500.00, "ONLINE TRANSFER TO SAV ...1234"),
            ("savings1234", "2024-03-02", 500.00, "TRANSFER FROM CHECKING"),
            ("savings1234", "2024-03-03", 500.00, "TRANSFER FROM CHECKING"),  # a second inflow: one side only
            ("checking", "2024-03-05", -42.10, "GROCERY OUTLET"),  # same amount, no hint: never
            ("card", "2024-03-05", 42.10, "REFUND GROCERY OUTLET"),
            ("checking", "2024-03-10", -900.00, "PAYMENT TO CARD"),  # 5 days apart: outside the window
            ("card", "2024-03-15", 900.00, "PAYMENT THANK YOU"),
        ],
        columns=["account", "txn_date", "amount", "description"],
    )
    p = transfers.pairs(f)
    assert list(zip(p["out_index"], p["in_index"])) == [(0, 1)]
    assert transfers.transfer_mask(f).tolist() == [True, True, False, False, False, False, False]


def test_a_card_number_on_a_purchase_is_no_transfer_hint():
    """Real Dutch debit-card lines print the masked card number (`BEA NR:XXX1234`): not a transfer."""
    import pandas as pd

    f = pd.DataFrame(
        [
            (
                "checking",
                "2011-05-21",
                -25.00,
                "BEA NR:XXX1234 21.05.11/12.54 DIRCKIII FIL2500 KATWIJK,PAS999",
            ),
            ("savings", "2011-05-21", 25.00, "RENTE"),
        ],
        columns=["account", "txn_date", "amount", "description"],
    )
    assert transfers.pairs(f).empty
