"""Incremental dbt builds equal full refreshes (dbt_project/macros/incremental.sql).

Two scratch databases hold the same raw tables at every step (loaded once, copied row for row, so
loaded_at is the same): one is built incrementally throughout, the other with `--full-refresh` at
every step; after each step every table of the intermediate and marts schemas has the same checksum
in both. The steps add, replace and remove files, over generated ledgers with transfers between
accounts (card payments from checking; a credit card in monthly OFX statements) and an account
exported twice over the same days, as an OFX statement with bank ids and a CSV without.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import scratch_database
from support import dbt_command
from test_dbt_project import PROJECT_DIR, REPO, _query

from titans_assets.lib import generator, loader
from titans_assets.lib.incremental import (
    FULL,
    INCREMENTAL,
    PARTIAL,
    RUNNING,
    TEST_SLICE_ENV,
    BuildState,
    CheckState,
    build_mode,
    check_scope,
    dbt_build_args,
    dbt_test_scope,
    fingerprint,
)

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).parent / "fixtures" / "formats"
RAW_TABLES = ("raw.files", "raw.transactions", "raw.quarantine")
# Per-run bookkeeping of the incremental build: what changed in this run, not data.
RUN_TABLES = {"int_changes", "int_dedup_slice", "int_transfer_slice", "int_transaction_changes"}
# Models and seeds, not tests (the equality is about the rows), without the analysis group.
RUN = [
    "build",
    "--exclude-resource-type",
    "test",
    "unit_test",
    "--exclude",
    "tag:analysis",
    "fct_transactions_enriched",
]


def checksums(db) -> dict[str, tuple[int, str]]:
    """(rows, md5 of the sorted rows as text) of every table of the intermediate and marts schemas."""
    tables = _query(
        db,
        "select table_schema || '.' || table_name as t from information_schema.tables"
        " where table_schema in ('intermediate', 'marts') and table_type = 'BASE TABLE'",
    )
    out = {}
    for name in sorted(r["t"] for r in tables):
        if name.split(".")[1] in RUN_TABLES or name.endswith("titans_build_state"):
            continue
        row = _query(
            db,
            f"select count(*) as n, md5(coalesce(string_agg(r::text, '|' order by r::text), ''))"
            f" as h from {name} as r",
        )[0]  # noqa: S608 (names from the catalog)
        out[name] = (row["n"], row["h"])
    return out


def copy_raw(source, target) -> None:
    """target's raw tables := source's, every column (loaded_at included)."""
    with source.connect() as src, target.connect() as dst, src.cursor() as scur, dst.cursor() as dcur:
        dcur.execute(f"TRUNCATE {', '.join(RAW_TABLES)}")
        for table in RAW_TABLES:
            buf = io.StringIO()
            scur.copy_expert(f"COPY {table} TO STDOUT", buf)
            buf.seek(0)
            dcur.copy_expert(f"COPY {table} FROM STDIN", buf)


def build_both(inc, full, tmp: Path, full_refresh: bool = False, inc_args: tuple[str, ...] = ()) -> None:
    """`inc` incrementally (or with --full-refresh) and `full` with --full-refresh, side by side (two
    dbt processes); `full` None: `inc` only. `inc_args`: more arguments of `inc`'s build."""
    procs = []
    builds = [
        (inc, ["--full-refresh"] if full_refresh else [*inc_args], "inc"),
        (full, ["--full-refresh"], "full"),
    ]
    for db, extra, name in [b for b in builds if b[0] is not None]:
        target = tmp / name
        cmd = dbt_command([*RUN, *extra], PROJECT_DIR, target)
        procs.append(
            subprocess.Popen(
                cmd,
                env=os.environ | db.dbt_env(),
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    outs = [p.communicate(timeout=600)[0] for p in procs]
    for p, out in zip(procs, outs):
        assert p.returncode == 0, out[-4000:]


@pytest.fixture(scope="module")
def landing(tmp_path_factory) -> Path:
    """Three generated accounts over four months (the card in monthly OFX statements) and a checking
    account's OFX statement; its overlapping CSV export is added by a step."""
    root = tmp_path_factory.mktemp("incremental")
    generator.generate(
        root / "raw",
        years=0.35,
        seed=11,
        end_date=dt.date(2025, 4, 30),
        messy_rate=0.0,
        format={"business_credit_card": "ofx"},
        monthly=True,
        labels_dir=root / "labels",
    )
    (root / "raw" / "checking").mkdir()
    (root / "raw" / "checking" / "2009-04.ofx").write_bytes(
        (FIXTURES / "ofxparse_bank_medium.ofx").read_bytes()
    )
    return root / "raw"


def _overlapping_csv(folder: Path) -> None:
    (folder / "2009-04.csv").write_text(
        "Date,Description,Amount\n2009-03-31,OPENING FEE,-1.00\n2009-04-01,MCDONALDS 112,-6.60\n"
        "2009-04-02,CHECK 0 JOES BALD HAIR,-316.67\n2009-04-03,CONNIES HAIR,-22.00\n"
        "2009-04-03,CONNIES HAIR,-22.00\n2009-04-03,REFUND,5.00\n"
    )
    (folder / "2009-04.csv.profile.yaml").write_text(
        'account: "12300 000012345678"\ncolumns: {date: Date, description: Description, amount: Amount}\n'
    )


def test_incremental_runs_equal_full_refreshes(embedded_db, landing, tmp_path):
    card = sorted(p for p in landing.rglob("*") if p.suffix.lower() == ".ofx" and "checking" not in p.parts)
    assert len(card) >= 4, card
    held_back = card[-2]  # a month of card statements: added by the first step
    kept = held_back.read_bytes()
    held_back.unlink()
    checking_csv = next(p for p in landing.glob("*.csv") if "checking" in p.name)
    with scratch_database(embedded_db) as inc, scratch_database(embedded_db) as full:
        for db in (inc, full):
            loader.ensure_raw_schema(db)

        def step(name: str, changed: list[Path], removed: list[str] = (), inc_args=()) -> dict:
            loader.load_files(inc, landing, changed, workers=1)
            for key in removed:
                loader.remove_file(inc, key)
            copy_raw(inc, full)
            build_both(inc, full, tmp_path, inc_args=inc_args)
            got, want = checksums(inc), checksums(full)
            assert got.keys() == want.keys()
            assert [t for t in want if got[t] != want[t]] == [], name
            return got

        first = step("first build", loader.landing_files(landing))
        assert first["marts.fct_transactions"][0] > 300
        # every table the build wrote whole has statistics at once (macros/analyze.sql), not when
        # autovacuum gets to it: analyzed by the build, not by autovacuum
        unanalyzed = _query(
            inc,
            "select schemaname || '.' || relname as t from pg_stat_user_tables"
            " where schemaname in ('intermediate', 'marts') and last_analyze is null"
            " and relname not like 'titans\\_%' and relname <> 'int_transfer_overrides_built'",
        )
        assert unanalyzed == [], unanalyzed

        # add: a month of card statements (transfer inflows of checking's card payments) and the
        # checking CSV that overlaps the OFX statement of the same account
        held_back.write_bytes(kept)
        _overlapping_csv(landing / "checking")
        added = step("add", [held_back, landing / "checking" / "2009-04.csv"])
        normalized = tmp_path / "inc" / "compiled" / "titans" / "models" / "intermediate"
        normalized /= "int_transactions_normalized.sql"
        assert "where source_file = any(array(select distinct source_file" in normalized.read_text()
        assert added["marts.fct_transactions"][0] > first["marts.fct_transactions"][0]
        pairs = _query(inc, "select count(*) as n from intermediate.int_transfer_pairs")[0]["n"]
        assert pairs > 0

        # the user's overrides, added then deleted: break a rule pair, force two rows of different
        # amounts together, mark a row never a transfer (int_transfer_slice: only their amounts)
        pair = _query(
            inc,
            "select out_transaction_id as a, in_transaction_id as b from intermediate.int_transfer_pairs"
            " order by transfer_pair_id limit 1",
        )[0]
        x, y = (
            r["transaction_id"]
            for r in _query(
                inc,
                "select transaction_id from marts.fct_transactions where not is_transfer and amount < 0"
                " order by transaction_id limit 2",
            )
        )
        assert (
            _query(
                inc,
                "select count(distinct amount) as n from marts.fct_transactions"
                " where transaction_id in (%s, %s)",
                (x, y),
            )[0]["n"]
            == 2
        )

        def overrides(sql: str, params: tuple = ()) -> None:
            for db in (inc, full):
                with db.connect() as conn, conn.cursor() as cur:
                    cur.execute(sql, params)

        overrides(
            "insert into app.transfer_overrides (transaction_id, other_transaction_id, action)"
            " values (%s, %s, 'break'), (%s, %s, 'pair'), (%s, '', 'break')",
            (pair["a"], pair["b"], x, y, pair["b"]),
        )
        step("overrides added", [])
        forced = _query(
            inc,
            "select matched_by from intermediate.int_transfer_pairs where out_transaction_id"
            " in (%s, %s) or in_transaction_id in (%s, %s)",
            (x, y, x, y),
        )
        assert forced == [{"matched_by": "override"}]
        assert not _query(
            inc,
            "select 1 from marts.fct_transactions where transaction_id in (%s, %s) and is_transfer",
            (pair["a"], pair["b"]),
        )
        overrides("delete from app.transfer_overrides")
        step("overrides deleted", [])
        assert (
            _query(
                inc,
                "select count(*) as n from marts.fct_transactions where transaction_id in (%s, %s)"
                " and is_transfer",
                (pair["a"], pair["b"]),
            )[0]["n"]
            == 2
        )

        # replace: the checking export again without its card payments of one month (their pairs
        # go) and with one amount changed
        lines = checking_csv.read_text().splitlines(keepends=True)
        payments = [i for i, ln in enumerate(lines) if "PAYMENT" in ln.upper()]
        assert payments
        drop = set(payments[: max(1, len(payments) // 3)])
        edited = [ln for i, ln in enumerate(lines) if i not in drop]
        edited[1] = edited[1].replace(".", "1.", 1) if "." in edited[1] else edited[1]
        checking_csv.write_text("".join(edited))
        step("replace", [checking_csv])
        assert _query(inc, "select count(*) as n from intermediate.int_transfer_pairs")[0]["n"] < pairs

        # remove: a card statement and the checking OFX (the CSV of the same days keeps its rows)
        gone = [card[0], landing / "checking" / "2009-04.ofx"]
        keys = [loader.source_file_key(landing, p) for p in gone]
        for p in gone:
            p.unlink()
        # (read through the semi-join in_few takes past a few changed files: here past none)
        removed = step("remove", [], keys, inc_args=("--vars", "{titans_few_values: 0}"))
        assert "where source_file in (select distinct source_file" in normalized.read_text()
        assert not _query(inc, "select 1 from marts.fct_transactions where source_file = any(%s)", (keys,))
        assert removed["marts.fct_transactions"][0] < added["marts.fct_transactions"][0]

        # nothing changed: an incremental run changes nothing, and replaces only the rows whose
        # unpaired-transfer flag it recomputes every time
        step("no change", [])
        assert _query(inc, "select count(*) as n from intermediate.int_changes")[0]["n"] == 0
        redone = _query(inc, "select count(*) as n from intermediate.int_transaction_changes")[0]["n"]
        flagged = _query(inc, "select count(*) as n from marts.fct_transactions where transfer_unpaired")[0][
            "n"
        ]
        assert redone == 2 * flagged  # old and new side of each

        # add after a gap: an export whose first day is weeks after the last day built (the days
        # between join the daily spine and the running balance carries over them)
        later = landing / "later"
        later.mkdir()
        (later / "2025-06.csv").write_text(
            "Date,Description,Amount\n2025-06-10,LATE COFFEE,-4.50\n2025-06-12,LATE REFUND,12.00\n"
        )
        (later / "2025-06.csv.profile.yaml").write_text(
            "account: later\ncolumns: {date: Date, description: Description, amount: Amount}\n"
        )
        step("add after a gap", [later / "2025-06.csv"])
        days = _query(
            inc,
            "select count(*) as n, max(metric_date) as last, max(metric_date) - min(metric_date) + 1 as span"
            " from marts.fct_daily_metrics",
        )[0]
        assert days["last"] == dt.date(2025, 6, 12) and days["n"] == days["span"]


def test_a_project_change_or_a_request_means_a_full_refresh(tmp_path):
    project = tmp_path / "p"
    for d in ("models", "macros", "seeds"):
        (project / d).mkdir(parents=True)
    (project / "dbt_project.yml").write_text("name: p\n")
    (project / "models" / "m.sql").write_text("select 1")
    (project / "seeds" / "s.csv").write_text("a\n1\n")
    env = {"TITANS_REPORTING_CURRENCY": "USD"}
    base = fingerprint(project, env)
    assert fingerprint(project, env) == base
    assert dbt_build_args(False, base, base) == (["build"], "incremental: only what the changed files touch")
    assert dbt_build_args(False, None, base)[0] == ["build", "--full-refresh"]
    assert dbt_build_args(True, base, base)[0] == ["build", "--full-refresh"]
    assert fingerprint(project, {"TITANS_REPORTING_CURRENCY": "EUR"}) != base
    (project / "seeds" / "s.csv").write_text("a\n2\n")
    seeds_changed = fingerprint(project, env)
    assert seeds_changed != base
    assert dbt_build_args(False, base, seeds_changed)[0] == ["build", "--full-refresh"]
    (project / "models" / "m.sql").write_text("select 2")
    assert fingerprint(project, env) != seeds_changed
    (project / "target").mkdir()
    (project / "target" / "manifest.json").write_text("{}")  # build output is not the project
    assert fingerprint(project, env) == fingerprint(project, env)


def test_the_check_reads_only_the_slice_after_an_incremental_build_that_follows_a_pass():
    day = dt.date(2025, 5, 1)
    passed = CheckState(build_id=6, passed=True, definition="d", tomorrow=day)
    build = BuildState(build_id=7, mode=INCREMENTAL)
    sliced, why = check_scope(build, passed, "d", day)
    assert sliced and why.startswith("the rows build 7 replaced")
    assert check_scope(build, passed, "d", day + dt.timedelta(days=3))[
        0
    ]  # a later today only widens the range
    every_row = {
        "a full build": (BuildState(7, FULL), passed, "d", day),
        "a partial build": (BuildState(7, PARTIAL), passed, "d", day),
        "a build that did not end": (BuildState(7, RUNNING), passed, "d", day),
        "no state": (None, passed, "d", day),
        "no earlier check": (build, None, "d", day),
        "an earlier failure": (build, CheckState(6, False, "d", day), "d", day),
        "a build in between": (build, CheckState(5, True, "d", day), "d", day),
        "the same build again": (build, CheckState(7, True, "d", day), "d", day),
        "a new definition": (build, passed, "e", day),
        "today moved back": (build, passed, "d", day - dt.timedelta(days=1)),
    }
    for case, args in every_row.items():
        sliced, why = check_scope(*args)
        assert not sliced and why.startswith("all rows: "), case


def test_the_decision_to_test_only_the_replaced_rows():
    assert (
        build_mode(["build"], True) == INCREMENTAL and build_mode(["build", "--full-refresh"], True) == FULL
    )
    assert build_mode(["build"], False) == build_mode(["build", "--full-refresh"], False) == PARTIAL
    done = BuildState(build_id=4, mode=INCREMENTAL)
    assert dbt_test_scope(["build"], True, done)[0]
    assert dbt_test_scope(["build"], True, BuildState(4, FULL))[0]
    for args, complete, previous in (
        (["build", "--full-refresh"], True, done),
        (["build"], False, done),  # a selection: not every incremental model is built
        (["build"], True, None),
        (["build"], True, BuildState(4, RUNNING)),  # it failed (a test), or it still runs
        (["build"], True, BuildState(4, PARTIAL)),
    ):
        sliced, why = dbt_test_scope(args, complete, previous)
        assert not sliced and why.startswith("dbt tests on whole tables"), (args, complete, previous)


def _failures(db, target: Path, slice_tests: bool) -> dict[str, int]:
    """`dbt test` of fct_transactions and the deduplicated rows, TITANS_DBT_TEST_SLICE on or off:
    failing rows per failing test."""
    models = ["fct_transactions", "int_transactions_deduped", "int_transfer_hints"]
    cmd = dbt_command(["test", "--select", *models], PROJECT_DIR, target)
    env = os.environ | db.dbt_env() | {TEST_SLICE_ENV: "1" if slice_tests else "0"}
    subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
    results = json.loads((target / "run_results.json").read_text())["results"]
    return {r["unique_id"].split(".")[2]: r["failures"] for r in results if r["failures"]}


def test_after_an_incremental_build_the_row_local_dbt_tests_read_the_replaced_rows(embedded_db, tmp_path):
    raw = tmp_path / "raw"
    generator.generate(raw, years=0.3, seed=5, end_date=dt.date(2025, 4, 30), labels_dir=tmp_path / "labels")
    files = loader.landing_files(raw)
    held_back = next(f for f in files if "card" in f.name)  # an account of its own, added later
    with scratch_database(embedded_db) as db:
        loader.ensure_raw_schema(db)
        loader.load_files(db, raw, [f for f in files if f != held_back], workers=1)
        build_both(db, None, tmp_path, full_refresh=True)
        loader.load_files(db, raw, [held_back], workers=1)
        build_both(db, None, tmp_path)
        replaced = [
            r["transaction_id"]
            for r in _query(
                db,
                "select transaction_id from intermediate.int_transaction_changes where side = 'new' order by 1",
            )
        ]
        kept = [
            r["transaction_id"]
            for r in _query(
                db,
                "select transaction_id from marts.fct_transactions where transaction_id <> all(%s) order by 1",
                (replaced,),
            )
        ]
        assert len(replaced) > 5 and len(kept) > 50
        assert _failures(db, tmp_path / "t0", slice_tests=True) == {}
        with db.connect() as conn, conn.cursor() as cur:
            # a bad payment method in one replaced row and another in one row the build left alone
            # (accepted_values counts the distinct bad values)
            for method, tid in (("carrier_pigeon", replaced[0]), ("smoke_signal", kept[0])):
                cur.execute(
                    "update marts.fct_transactions set payment_method = %s where transaction_id = %s",
                    (method, tid),
                )
            # the build inserted a row whose id an older row already has
            cur.execute(
                "update marts.fct_transactions set transaction_id = %s where transaction_id = %s",
                (kept[1], replaced[1]),
            )
            cur.execute(
                "update intermediate.int_transaction_changes set transaction_id = %s where transaction_id = %s",
                (kept[1], replaced[1]),
            )
            # a row without an id, wherever it is
            cur.execute(
                "update marts.fct_transactions set transaction_id = null where transaction_id = %s",
                (kept[2],),
            )
            # deduplicated rows: a row of the dedup slice loses its id (found), and so does a row
            # outside it (a null the build before would have failed on: not read). A duplicate id
            # cannot be written there at all (unique indexes, test_dbt_project).
            cur.execute(
                "select d.transaction_id from intermediate.int_transactions_deduped as d"
                " join intermediate.int_dedup_slice as s on s.account = d.account and s.txn_date = d.txn_date"
                " where d.amount <> 0 order by 1 limit 1"
            )
            (in_slice,) = cur.fetchone()
            for table in ("int_transactions_deduped", "int_transfer_hints"):
                for old_id in (in_slice, kept[4]):
                    cur.execute(
                        f"update intermediate.{table} set transaction_id = null where transaction_id = %s",
                        (old_id,),
                    )
                    assert cur.rowcount == 1, (table, old_id)
        whole = _failures(db, tmp_path / "t1", slice_tests=False)
        sliced = _failures(db, tmp_path / "t2", slice_tests=True)
    method = next(k for k in whole if k.startswith("accepted_values_fct_transactions_payment_method"))
    assert whole[method] == 2 and sliced[method] == 1  # the row the build left alone passed before
    assert (
        whole["unique_fct_transactions_transaction_id"]
        == sliced["unique_fct_transactions_transaction_id"]
        == 1
    )
    assert (
        whole["not_null_fct_transactions_transaction_id"]
        == sliced["not_null_fct_transactions_transaction_id"]
        == 1
    )
    for table in ("int_transactions_deduped", "int_transfer_hints"):
        test = f"not_null_{table}_transaction_id"
        assert whole[test] == 2 and sliced[test] == 1, (test, whole, sliced)


def test_the_build_state_records_each_build_and_upgrades_an_older_warehouse(embedded_db):
    from titans_assets.lib import incremental as inc

    with scratch_database(embedded_db) as db:
        assert inc.build_state(db) is None and inc.recorded_fingerprint(db) is None
        with db.connect() as conn, conn.cursor() as cur:  # the table as the first version made it
            cur.execute("CREATE SCHEMA intermediate")
            cur.execute(
                "CREATE TABLE intermediate.titans_build_state (fingerprint text NOT NULL, "
                "built_at timestamptz NOT NULL DEFAULT now())"
            )
            cur.execute("INSERT INTO intermediate.titans_build_state (fingerprint) VALUES ('old')")
        assert inc.recorded_fingerprint(db) == "old" and inc.build_state(db) is None
        first = inc.start_build(db)
        assert inc.build_state(db) == BuildState(first, RUNNING) and inc.recorded_fingerprint(db) == "old"
        inc.finish_build(db, first, INCREMENTAL, "new")
        second = inc.start_build(db)
        inc.finish_build(db, second, PARTIAL)  # a selection: the project's fingerprint stays
        assert second == first + 1 and inc.build_state(db) == BuildState(second, PARTIAL)
        assert inc.recorded_fingerprint(db) == "new"
        assert inc.check_state(db, "s") is None
        inc.record_check(db, "s", CheckState(second, True, "d", dt.date(2025, 1, 2)))
        inc.record_check(db, "s", CheckState(second, False, "d", dt.date(2025, 1, 3)))
        assert inc.check_state(db, "s") == CheckState(second, False, "d", dt.date(2025, 1, 3))
