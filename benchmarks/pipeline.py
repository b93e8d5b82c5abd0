"""Pipeline benchmark: generated CSVs -> raw (loader) -> dbt build -> Great Expectations suites.

    .venv/bin/python benchmarks/pipeline.py                 # 10k, 100k, 1M rows
    .venv/bin/python benchmarks/pipeline.py --sizes 10000    # one size

Each size runs in its own subprocess (a fresh embedded PostgreSQL under a temporary TITANS_HOME) so
peak memory is per size. "ingest" is the first load of the generated files into the fresh server,
inside the timed pipeline; after the checks, every size also reloads the same files `--reloads`
times (raw tables emptied first, not timed) with `load_files`, as the ingest asset loads a run's
files, and reports the median, which is less exposed to a busy machine.

On the 100k size it compares the loader with pandas `read_csv` + `DataFrame.to_sql` (the original
system's method) on the same files, same server, same process, interleaved (loader, to_sql, loader,
to_sql...) `--compare-reps` times, and reports medians: wall time, and CPU time of this process and
of the server's processes (read from /proc: the server runs on this machine), because other work on
a shared machine stretches wall time but not CPU time. Prints markdown; results go into
docs/benchmarks.md by hand, with the machine, the date and the load average.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


# The generated ledger puts `rows` rows in two years: at 1M rows a business whose monthly card payment
# (the card's statement balance) reaches $2.7M and owner draw $1.7M, above the checks' default bound of
# $1M (TITANS_MAX_ABS_AMOUNT), which a user of that size raises the same way.
MAX_ABS_AMOUNT = 10_000_000


def run_size(
    rows: int, compare_to_sql: bool, reloads: int, compare_reps: int, incremental: bool = False
) -> dict:
    from titans_assets.defs.transform.project import DBT_EXECUTABLE, titans_dbt_project
    from titans_assets.lib import incremental, quality
    from titans_assets.lib.db import get_database, stop_embedded
    from titans_assets.lib.generator import generate
    from titans_assets.lib.loader import ensure_raw_schema, landing_files, load_files
    from titans_assets.lib.settings import Settings

    home = Path(tempfile.mkdtemp(prefix="titans-bench-"))
    home.chmod(0o755)
    try:
        landing = home / "raw"
        t = time.perf_counter()
        generate(landing, rows=rows, seed=1, end_date=dt.date.today(), labels_dir=home / "labels")
        gen_s = time.perf_counter() - t
        db = get_database(
            Settings(
                home=home,
                landing_dir=landing,
                database_url=None,
                labels_dir=home / "labels",
                mlflow_tracking_uri=None,
                mlflow_artifacts=None,
            )
        )
        ensure_raw_schema(db)
        files = landing_files(landing)

        t = time.perf_counter()
        results = load_files(db, landing, files)
        ingest_s = time.perf_counter() - t
        read = sum(r.rows_read for r in results)

        env = os.environ | db.dbt_env()

        def dbt_build(*extra: str, select: tuple[str, ...] = ()) -> tuple[float, dict[str, float]]:
            """`dbt build` of the pipeline's dbt step: the analysis group is built on demand only, and
            fct_transactions_enriched has its own step after the models' predictions (defs/transform).
            With `select`: those nodes only."""
            scope = (
                ["--select", *select]
                if select
                else ["--exclude", "tag:analysis", "fct_transactions_enriched"]
            )
            t = time.perf_counter()
            # as the dbt step does (defs/transform/dbt.py): the build's id and the tests' scope
            sliced, _ = incremental.dbt_test_scope(["build", *extra], not select, incremental.build_state(db))
            build_id = incremental.start_build(db)
            done = subprocess.run(
                [
                    DBT_EXECUTABLE,
                    "build",
                    *scope,
                    *extra,
                    "--project-dir",
                    str(titans_dbt_project.project_dir),
                    "--profiles-dir",
                    str(titans_dbt_project.profiles_dir),
                    "--target-path",
                    str(home / "target"),
                ],
                env=env | {incremental.TEST_SLICE_ENV: "1" if sliced else "0"},
                capture_output=True,
                text=True,
            )
            took = time.perf_counter() - t
            if done.returncode != 0:
                raise RuntimeError("dbt build failed:\n" + done.stdout[-3000:])
            incremental.finish_build(db, build_id, incremental.build_mode(["build", *extra], not select))
            return took, dbt_node_seconds(home / "target" / "run_results.json")

        dbt_s, dbt_nodes = dbt_build("--full-refresh")

        url = db.sqlalchemy_url()

        def suites() -> list:
            """The Great Expectations suites the pipeline runs on raw and the marts."""
            return [
                quality.raw_transactions_suite(),
                quality.fct_transactions_suite(),
                quality.fct_daily_metrics_suite(),
            ]

        def checks(files: list[str] | None = None) -> tuple[float, bool]:
            """The pipeline's checks: raw per loaded file (`files`; None: every row), fct_transactions
            on the slice when lib/incremental.check_scope allows, the daily metrics whole."""
            params = {"max_abs_amount": MAX_ABS_AMOUNT}
            t = time.perf_counter()
            outcomes = [
                *(
                    [quality.run_suite(quality.raw_transactions_suite(files), url, params=params)]
                    if files != []
                    else []
                ),
                incremental.run_suite_scoped(db, quality.fct_transactions_suite, params, dt.date.today()),
                quality.run_suite(quality.fct_daily_metrics_suite(), url, params=params),
            ]
            for o in outcomes:
                if not o.success:  # which expectation, so a FAIL in the table can be read
                    print(o.summary(), file=sys.stderr)
            print(f"  fct_transactions checked: {outcomes[-2].scope}", file=sys.stderr)
            return time.perf_counter() - t, all(o.success for o in outcomes)

        checks_s, checks_ok = checks()
        expectation_s = {  # where the checks' time goes: each expectation run alone, after the suites
            f"{suite.name}.{e.name}": timed_expectation(suite, e, url)
            for suite in suites()
            for e in suite.expectations
        }

        out = {
            "rows": read,
            "generate_s": gen_s,
            "ingest_s": ingest_s,
            "ingest_rows_per_s": read / ingest_s,
            "dbt_build_s": dbt_s,
            "checks_s": checks_s,
            "checks_passed": checks_ok,
            "total_s": ingest_s + dbt_s + checks_s,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "dbt_peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
            "dbt_nodes": dbt_nodes,
            "expectation_s": expectation_s,
        }
        if incremental:
            out["incremental"] = incremental_scenario(db, landing, dbt_build, checks)
        # What the on-demand feature table costs (the analysis group: the model and its tests).
        out["analysis_s"], out["analysis_nodes"] = dbt_build(select=("tag:analysis",))
        server = ServerCpu(db)
        runs = [
            timed(lambda: load_files(db, landing, files), server, setup=lambda: truncate_raw(db))
            for _ in range(reloads)
        ]
        out["reload_s"] = [r["wall_s"] for r in runs]
        out["reload_rows_per_s"] = read / statistics.median(out["reload_s"])
        out["load_average"] = os.getloadavg()
        if compare_to_sql:
            out |= compare_with_to_sql(db, landing, files, compare_reps, server)
        return out
    finally:
        stop_embedded()
        shutil.rmtree(home, ignore_errors=True)


def timed_expectation(suite, expectation, url: str) -> float:
    """Seconds to run `suite` with only `expectation` (GX's per-run cost included, ~0.02 s)."""
    from titans_assets.lib import quality

    one = dataclasses.replace(suite, expectations=[expectation])
    t = time.perf_counter()
    quality.run_suite(one, url, params={"max_abs_amount": MAX_ABS_AMOUNT})
    return time.perf_counter() - t


def incremental_scenario(db, landing: Path, dbt_build, checks) -> dict:
    """On the built warehouse: drop a new 1,000-row export of an existing account (its last ~10 weeks),
    replace it (a tenth of its rows gone, as a corrected re-export), remove it. Each change: the
    landing sensor's decision (scan + compare with raw.files), the load, the incremental dbt build and
    the checks, timed. Then a full refresh and the checks on the final data: what the same change costs
    without incremental builds (a full rebuild reads everything whatever changed), and the proof that
    both give the same marts (an order-free checksum of every mart)."""
    from titans_assets.lib import landing as landing_lib
    from titans_assets.lib.generator import generate
    from titans_assets.lib.loader import load_files, remove_file, source_file_key

    account = sorted(p.stem for p in landing.glob("*.csv"))[0]
    export = landing / account / "new-export.csv"
    scratch = Path(tempfile.mkdtemp(prefix="titans-bench-export-"))
    generate(
        scratch / "raw",
        rows=1000,
        accounts=(account,),
        years=0.2,
        seed=99,
        end_date=dt.date.today(),
        labels_dir=scratch / "labels",
        messy_rate=0.0,
    )
    new_rows = (scratch / "raw" / f"{account}.csv").read_text()
    cache: dict[str, list] = {}

    def change(name: str, act) -> dict:
        nonlocal cache
        act()
        t0 = time.perf_counter()
        present, settling, cache = landing_lib.scan(landing, cache, settle_seconds=0)
        changes = landing_lib.plan(present, landing_lib.loaded_checksums(db), {}, settling)
        sensor_s = time.perf_counter() - t0
        t = time.perf_counter()
        for c in changes:
            if c.sha256 is None:
                remove_file(db, c.key)
            else:
                load_files(db, landing, [landing / c.key])
        load_s = time.perf_counter() - t
        dbt_s, nodes = dbt_build()
        checks_s, ok = checks([c.key for c in changes if c.sha256 is not None])
        with db.connect() as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM intermediate.int_transaction_changes WHERE side = 'new'")
            replaced = cur.fetchone()[0]
        return {
            "change": name,
            "files": [c.key for c in changes],
            "sensor_s": sensor_s,
            "load_s": load_s,
            "dbt_s": dbt_s,
            "checks_s": checks_s,
            "checks_passed": ok,
            "rows_replaced": replaced,
            "total_s": time.perf_counter() - t0,
            "dbt_nodes": nodes,
        }

    def add() -> None:
        export.parent.mkdir(exist_ok=True)
        export.write_text(new_rows)

    def replace() -> None:
        lines = new_rows.splitlines(keepends=True)
        export.write_text("".join(ln for i, ln in enumerate(lines) if i == 0 or i % 10))

    steps = [
        change("add a 1,000-row export", add),
        change("replace it", replace),
        change("remove it", lambda: export.unlink()),
    ]
    assert source_file_key(landing, export) in steps[0]["files"]
    before = mart_checksums(db)
    full_dbt_s, full_nodes = dbt_build("--full-refresh")
    full_checks_s, ok = checks()
    shutil.rmtree(scratch, ignore_errors=True)
    return {
        "steps": steps,
        "full_dbt_s": full_dbt_s,
        "full_checks_s": full_checks_s,
        "full_checks_passed": ok,
        "full_total_s": full_dbt_s + full_checks_s,
        "full_dbt_nodes": full_nodes,
        "equal_to_full_refresh": before == mart_checksums(db),
    }


def mart_checksums(db) -> dict[str, list]:
    """Row count and an order-free checksum (sum of row hashes) of every table in marts."""
    out = {}
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'marts'"
            " AND table_type = 'BASE TABLE' ORDER BY 1"
        )
        for (table,) in cur.fetchall():
            from psycopg2 import sql

            cur.execute(
                sql.SQL("SELECT count(*), coalesce(sum(hashtext(r::text)::bigint), 0) FROM {} AS r").format(
                    sql.Identifier("marts", table)
                )
            )
            out[table] = list(cur.fetchone())
    return out


def dbt_node_seconds(run_results: Path) -> dict[str, float]:
    """Seconds per dbt node of a build (models, seeds, tests), from its run_results.json."""
    results = json.loads(run_results.read_text())["results"]
    return {r["unique_id"]: float(r.get("execution_time") or 0.0) for r in results}


class ServerCpu:
    """CPU seconds used so far by the PostgreSQL server serving `db`: the postmaster, its live
    children, and the children it has reaped (each connection's backend exits when it closes).
    Read from /proc, so the server must run on this machine (the embedded one does)."""

    def __init__(self, db):
        with db.connect() as conn:  # read while the backend lives: it exits when the connection closes
            self.postmaster = _proc_stat(conn.get_backend_pid())["ppid"]

    def seconds(self) -> float:
        ticks = os.sysconf("SC_CLK_TCK")
        stat = _proc_stat(self.postmaster)
        total = stat["utime"] + stat["stime"] + stat["cutime"] + stat["cstime"]
        for child in Path(f"/proc/{self.postmaster}/task/{self.postmaster}/children").read_text().split():
            try:
                child_stat = _proc_stat(int(child))
            except (FileNotFoundError, ProcessLookupError):
                continue  # exited meanwhile: now counted in the postmaster's cutime
            total += child_stat["utime"] + child_stat["stime"]
        return total / ticks


def _proc_stat(pid: int) -> dict[str, int]:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return {
        "ppid": int(fields[1]),
        "utime": int(fields[11]),
        "stime": int(fields[12]),
        "cutime": int(fields[13]),
        "cstime": int(fields[14]),
    }


def timed(fn, server: ServerCpu, setup=None) -> dict:
    """Wall time, this process's CPU time (all threads) and the server's CPU time of one call
    (after `setup`, which is not timed)."""
    if setup is not None:
        setup()
    wall, cpu, srv = time.perf_counter(), time.process_time(), server.seconds()
    fn()
    return {
        "wall_s": time.perf_counter() - wall,
        "cpu_s": time.process_time() - cpu,
        "server_cpu_s": server.seconds() - srv,
    }


def truncate_raw(db) -> None:
    """A fresh raw schema: every file is new to the loader, as in the timed first load."""
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute("TRUNCATE raw.files, raw.transactions, raw.quarantine")


def compare_with_to_sql(db, landing: Path, files: list[Path], reps: int, server: ServerCpu) -> dict:
    """Same files, same server, same process, interleaved: our loader (into fresh raw tables) vs pandas
    read_csv + to_sql (one new table per file: the messy files' headers differ). Emptying the tables
    beforehand is not timed on either side. Medians."""
    import pandas as pd
    import sqlalchemy as sa

    from titans_assets.lib.loader import load_files

    engine = sa.create_engine(db.sqlalchemy_url())

    def drop_baseline() -> None:
        with engine.begin() as conn:
            for i in range(len(files)):
                conn.execute(sa.text(f"DROP TABLE IF EXISTS public.to_sql_baseline_{i}"))

    def to_sql() -> None:
        for i, f in enumerate(files):
            pd.read_csv(f).to_sql(f"to_sql_baseline_{i}", engine, schema="public", index=False)

    ours, theirs = [], []
    for _ in range(reps):
        ours.append(timed(lambda: load_files(db, landing, files), server, setup=lambda: truncate_raw(db)))
        theirs.append(timed(to_sql, server, setup=drop_baseline))
    engine.dispose()

    def med(runs: list[dict], key: str) -> float:
        return statistics.median(r[key] for r in runs)

    return {
        "compare_reps": reps,
        "loader_s": med(ours, "wall_s"),
        "to_sql_s": med(theirs, "wall_s"),
        "speedup_vs_to_sql": med(theirs, "wall_s") / med(ours, "wall_s"),
        "speedup_per_pair": sorted(t["wall_s"] / o["wall_s"] for o, t in zip(ours, theirs)),
        "loader_cpu_s": med(ours, "cpu_s"),
        "loader_server_cpu_s": med(ours, "server_cpu_s"),
        "to_sql_cpu_s": med(theirs, "cpu_s"),
        "to_sql_server_cpu_s": med(theirs, "server_cpu_s"),
        "cpu_speedup_vs_to_sql": (med(theirs, "cpu_s") + med(theirs, "server_cpu_s"))
        / (med(ours, "cpu_s") + med(ours, "server_cpu_s")),
    }


def _stage(node: str) -> str:
    """A dbt node's stage: its resource type, and for models their layer (schema folder)."""
    kind, _, name = node.split(".", 2)
    if kind == "model":
        layer = name.split("_", 1)[0]
        return {
            "stg": "staging",
            "int": "intermediate",
            "fct": "marts",
            "dim": "marts",
            "ml": "features",
        }.get(layer, "model")
    return kind


def print_stages(r: dict, nodes_key: str = "dbt_nodes") -> None:
    """Where dbt's time went (sum of node seconds per stage; nodes run on 4 threads, so the sum can
    exceed the wall time) and the slowest models."""
    stages: dict[str, float] = {}
    for node, secs in r[nodes_key].items():
        stages[_stage(node)] = stages.get(_stage(node), 0.0) + secs
    print(
        f"\n{r['rows']:,} rows, dbt node seconds by stage: "
        + ", ".join(f"{k} {v:.1f}" for k, v in sorted(stages.items(), key=lambda kv: -kv[1]))
    )
    top = sorted(((v, k) for k, v in r[nodes_key].items() if k.startswith("model.")), reverse=True)[:8]
    print("slowest models: " + ", ".join(f"{k.split('.')[-1]} {v:.1f}" for v, k in top))
    if "expectation_s" in r:
        slow = sorted(((v, k) for k, v in r["expectation_s"].items()), reverse=True)[:8]
        print(
            f"GX seconds per expectation, each alone (sum {sum(r['expectation_s'].values()):.1f}): "
            + ", ".join(f"{k} {v:.2f}" for v, k in slow)
        )


def print_incremental(r: dict) -> None:
    inc = r["incremental"]
    print(
        f"\nincremental scenario on {r['rows']:,} rows (seconds; sensor = landing scan + compare with raw.files):\n"
    )
    print(
        "| change | fct_transactions rows rebuilt | sensor | load | dbt build | GX checks | total | checks |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for st in inc["steps"]:
        print(
            f"| {st['change']} | {st['rows_replaced']:,} | {st['sensor_s']:.2f} | {st['load_s']:.2f} | {st['dbt_s']:.1f} "
            f"| {st['checks_s']:.1f} | {st['total_s']:.1f} | {'pass' if st['checks_passed'] else 'FAIL'} |"
        )
    print(
        f"| full rebuild of the same data (dbt --full-refresh + checks) | all | | | {inc['full_dbt_s']:.1f} "
        f"| {inc['full_checks_s']:.1f} | {inc['full_total_s']:.1f} | {'pass' if inc['full_checks_passed'] else 'FAIL'} |"
    )
    print(f"\nmarts after the incremental runs equal the full rebuild's: {inc['equal_to_full_refresh']}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--reloads", type=int, default=3, help="reloads of the raw tables after the pipeline")
    parser.add_argument(
        "--compare-reps", type=int, default=7, help="interleaved loader / to_sql pairs on 100k"
    )
    parser.add_argument("--json", type=Path, help="also write every measurement (dbt node seconds too) here")
    parser.add_argument(
        "--incremental",
        action="store_true",
        help="after each size's full path: add, replace and remove a 1,000-row export, "
        "incrementally, then the full rebuild of the same data",
    )
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(
            json.dumps(
                run_size(args.child, args.child == 100_000, args.reloads, args.compare_reps, args.incremental)
            )
        )
        return
    results = []
    load_before = os.getloadavg()
    for size in [int(s) for s in args.sizes.split(",")]:
        done = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                str(size),
                "--reloads",
                str(args.reloads),
                "--compare-reps",
                str(args.compare_reps),
            ]
            + (["--incremental"] if args.incremental else []),
            stdout=subprocess.PIPE,  # stderr passes through: a failing check's expectations, a traceback
            text=True,
        )
        if done.returncode != 0:
            sys.exit(f"size {size} failed (exit {done.returncode}): see above")
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"{size}: done", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    print(
        f"machine: {platform.node()} {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"date {dt.date.today()}; command: python benchmarks/pipeline.py --sizes {args.sizes} "
        f"--reloads {args.reloads} --compare-reps {args.compare_reps}{' --incremental' if args.incremental else ''};"
        f" load average before "
        f"{' '.join(f'{x:.1f}' for x in load_before)}, after "
        f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}; checks with max_abs_amount {MAX_ABS_AMOUNT:,}\n"
    )
    print(
        "| rows | ingest s | ingest rows/s | reload rows/s (median) | dbt build s | GX checks s | total s | checks"
        " | peak RSS MB (python / dbt) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---|---:|")
    for r in results:
        print(
            f"| {r['rows']:,} | {r['ingest_s']:.2f} | {r['ingest_rows_per_s']:,.0f} | {r['reload_rows_per_s']:,.0f} | "
            f"{r['dbt_build_s']:.1f} | {r['checks_s']:.1f} | {r['total_s']:.1f} | "
            f"{'pass' if r['checks_passed'] else 'FAIL'} | {r['peak_rss_mb']:.0f} / {r['dbt_peak_rss_mb']:.0f} |"
        )
    for r in results:
        print(
            f"\n{r['rows']:,} rows: reloads {', '.join(f'{x:.2f}' for x in r['reload_s'])} s "
            f"(load average {r['load_average'][0]:.1f} at the end)"
        )
        if "to_sql_s" in r:
            print(
                f"loader vs pandas to_sql on the same {r['rows']:,} rows, {r['compare_reps']} interleaved pairs, medians: "
                f"{r['loader_s']:.2f} s vs {r['to_sql_s']:.2f} s -> {r['speedup_vs_to_sql']:.1f}x faster "
                f"(per pair: {', '.join(f'{x:.1f}' for x in r['speedup_per_pair'])}); CPU s (this process + server): "
                f"loader {r['loader_cpu_s']:.2f} + {r['loader_server_cpu_s']:.2f}, to_sql {r['to_sql_cpu_s']:.2f} + "
                f"{r['to_sql_server_cpu_s']:.2f} -> {r['cpu_speedup_vs_to_sql']:.1f}x less CPU"
            )
    for r in results:
        print_stages(r)
        print(
            f"on demand: the analysis group (features.ml_transaction_features and its tests) took "
            f"{r['analysis_s']:.1f} s: "
            + ", ".join(
                f"{k.split('.')[-1]} {v:.1f}"
                for k, v in sorted(r["analysis_nodes"].items(), key=lambda kv: -kv[1])[:4]
            )
        )
        if "incremental" in r:
            print_incremental(r)
    base = results[0]
    for r in results[1:]:
        print(
            f"scaling {base['rows']:,} -> {r['rows']:,} rows ({r['rows'] / base['rows']:.0f}x): "
            f"total time {r['total_s'] / base['total_s']:.1f}x"
        )


if __name__ == "__main__":
    main()
