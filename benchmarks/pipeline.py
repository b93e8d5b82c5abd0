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


def run_size(rows: int, compare_to_sql: bool, reloads: int, compare_reps: int) -> dict:
    from titans_assets.defs.transform.project import DBT_EXECUTABLE, titans_dbt_project
    from titans_assets.lib import quality
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
        db = get_database(Settings(home=home, landing_dir=landing, database_url=None, labels_dir=home / "labels",
                                   mlflow_tracking_uri=None, mlflow_artifacts=None))
        ensure_raw_schema(db)
        files = landing_files(landing)

        t = time.perf_counter()
        results = load_files(db, landing, files)
        ingest_s = time.perf_counter() - t
        read = sum(r.rows_read for r in results)

        t = time.perf_counter()
        env = os.environ | db.dbt_env()
        done = subprocess.run(
            [DBT_EXECUTABLE, "build", "--project-dir", str(titans_dbt_project.project_dir), "--profiles-dir",
             str(titans_dbt_project.profiles_dir), "--target-path", str(home / "target")],
            env=env, capture_output=True, text=True,
        )
        dbt_s = time.perf_counter() - t
        if done.returncode != 0:
            raise RuntimeError("dbt build failed:\n" + done.stdout[-3000:])

        t = time.perf_counter()
        url = db.sqlalchemy_url()
        suites = [quality.raw_transactions_suite(), quality.fct_transactions_suite(), quality.fct_daily_metrics_suite()]
        outcomes = [quality.run_suite(s, url) for s in suites]
        checks_s = time.perf_counter() - t

        out = {
            "rows": read, "generate_s": gen_s, "ingest_s": ingest_s, "ingest_rows_per_s": read / ingest_s,
            "dbt_build_s": dbt_s, "checks_s": checks_s, "checks_passed": all(o.success for o in outcomes),
            "total_s": ingest_s + dbt_s + checks_s,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "dbt_peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        }
        server = ServerCpu(db)
        runs = [timed(lambda: load_files(db, landing, files), server, setup=lambda: truncate_raw(db))
                for _ in range(reloads)]
        out["reload_s"] = [r["wall_s"] for r in runs]
        out["reload_rows_per_s"] = read / statistics.median(out["reload_s"])
        out["load_average"] = os.getloadavg()
        if compare_to_sql:
            out |= compare_with_to_sql(db, landing, files, compare_reps, server)
        return out
    finally:
        stop_embedded()
        shutil.rmtree(home, ignore_errors=True)


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
    return {"ppid": int(fields[1]), "utime": int(fields[11]), "stime": int(fields[12]),
            "cutime": int(fields[13]), "cstime": int(fields[14])}


def timed(fn, server: ServerCpu, setup=None) -> dict:
    """Wall time, this process's CPU time (all threads) and the server's CPU time of one call
    (after `setup`, which is not timed)."""
    if setup is not None:
        setup()
    wall, cpu, srv = time.perf_counter(), time.process_time(), server.seconds()
    fn()
    return {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu,
            "server_cpu_s": server.seconds() - srv}


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
        "loader_s": med(ours, "wall_s"), "to_sql_s": med(theirs, "wall_s"),
        "speedup_vs_to_sql": med(theirs, "wall_s") / med(ours, "wall_s"),
        "speedup_per_pair": sorted(t["wall_s"] / o["wall_s"] for o, t in zip(ours, theirs)),
        "loader_cpu_s": med(ours, "cpu_s"), "loader_server_cpu_s": med(ours, "server_cpu_s"),
        "to_sql_cpu_s": med(theirs, "cpu_s"), "to_sql_server_cpu_s": med(theirs, "server_cpu_s"),
        "cpu_speedup_vs_to_sql": (med(theirs, "cpu_s") + med(theirs, "server_cpu_s"))
        / (med(ours, "cpu_s") + med(ours, "server_cpu_s")),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--reloads", type=int, default=3, help="reloads of the raw tables after the pipeline")
    parser.add_argument("--compare-reps", type=int, default=7, help="interleaved loader / to_sql pairs on 100k")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_size(args.child, args.child == 100_000, args.reloads, args.compare_reps)))
        return
    results = []
    load_before = os.getloadavg()
    for size in [int(s) for s in args.sizes.split(",")]:
        done = subprocess.run([sys.executable, __file__, "--child", str(size), "--reloads", str(args.reloads),
                               "--compare-reps", str(args.compare_reps)], capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"size {size} failed:\n{done.stderr[-3000:]}")
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"{size}: done", file=sys.stderr)
    print(f"machine: {platform.node()} {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"date {dt.date.today()}; command: python benchmarks/pipeline.py --sizes {args.sizes} "
          f"--reloads {args.reloads} --compare-reps {args.compare_reps}; load average before "
          f"{' '.join(f'{x:.1f}' for x in load_before)}, after "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}\n")
    print("| rows | ingest s | ingest rows/s | reload rows/s (median) | dbt build s | GX checks s | total s | checks"
          " | peak RSS MB (python / dbt) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---|---:|")
    for r in results:
        print(f"| {r['rows']:,} | {r['ingest_s']:.2f} | {r['ingest_rows_per_s']:,.0f} | {r['reload_rows_per_s']:,.0f} | "
              f"{r['dbt_build_s']:.1f} | {r['checks_s']:.1f} | {r['total_s']:.1f} | "
              f"{'pass' if r['checks_passed'] else 'FAIL'} | {r['peak_rss_mb']:.0f} / {r['dbt_peak_rss_mb']:.0f} |")
    for r in results:
        print(f"\n{r['rows']:,} rows: reloads {', '.join(f'{x:.2f}' for x in r['reload_s'])} s "
              f"(load average {r['load_average'][0]:.1f} at the end)")
        if "to_sql_s" in r:
            print(f"loader vs pandas to_sql on the same {r['rows']:,} rows, {r['compare_reps']} interleaved pairs, medians: "
                  f"{r['loader_s']:.2f} s vs {r['to_sql_s']:.2f} s -> {r['speedup_vs_to_sql']:.1f}x faster "
                  f"(per pair: {', '.join(f'{x:.1f}' for x in r['speedup_per_pair'])}); CPU s (this process + server): "
                  f"loader {r['loader_cpu_s']:.2f} + {r['loader_server_cpu_s']:.2f}, to_sql {r['to_sql_cpu_s']:.2f} + "
                  f"{r['to_sql_server_cpu_s']:.2f} -> {r['cpu_speedup_vs_to_sql']:.1f}x less CPU")
    base = results[0]
    for r in results[1:]:
        print(f"scaling {base['rows']:,} -> {r['rows']:,} rows ({r['rows'] / base['rows']:.0f}x): "
              f"total time {r['total_s'] / base['total_s']:.1f}x")


if __name__ == "__main__":
    main()
