"""Pipeline benchmark: generated CSVs -> raw (loader) -> dbt build -> Great Expectations suites.

    .venv/bin/python benchmarks/pipeline.py                 # 10k, 100k, 1M rows
    .venv/bin/python benchmarks/pipeline.py --sizes 10000    # one size

Each size runs in its own subprocess (a fresh embedded PostgreSQL under a temporary TITANS_HOME) so
peak memory is per size. On the 100k file it also loads the same data with pandas `DataFrame.to_sql`
(the original system's method) in the same process, and reports the ratio. Prints a markdown table;
results go into docs/benchmarks.md by hand, with the machine and the date.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def run_size(rows: int, compare_to_sql: bool) -> dict:
    from titans_assets.defs.transform.project import DBT_EXECUTABLE, titans_dbt_project
    from titans_assets.lib import quality
    from titans_assets.lib.db import get_database, stop_embedded
    from titans_assets.lib.generator import generate
    from titans_assets.lib.loader import ensure_raw_schema, landing_files, load_file
    from titans_assets.lib.settings import Settings

    home = Path(tempfile.mkdtemp(prefix="titans-bench-"))
    home.chmod(0o755)
    try:
        landing = home / "raw"
        t = time.perf_counter()
        generate(landing, rows=rows, seed=1, end_date=dt.date.today(), labels_dir=home / "labels")
        gen_s = time.perf_counter() - t
        db = get_database(Settings(home=home, landing_dir=landing, database_url=None))
        ensure_raw_schema(db)
        files = landing_files(landing)

        t = time.perf_counter()
        results = [load_file(db, landing, f) for f in files]
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
        if compare_to_sql:
            out |= compare_with_to_sql(db, landing, files)
        return out
    finally:
        stop_embedded()
        shutil.rmtree(home, ignore_errors=True)


def compare_with_to_sql(db, landing: Path, files: list[Path]) -> dict:
    """Same files, same server, same process: our loader again (fresh table) vs read_csv + to_sql."""
    import pandas as pd
    import sqlalchemy as sa

    from titans_assets.lib.loader import load_file

    with db.connect() as conn, conn.cursor() as cur:
        cur.execute("TRUNCATE raw.files, raw.transactions, raw.quarantine")
    t = time.perf_counter()
    for f in files:
        load_file(db, landing, f)
    ours = time.perf_counter() - t

    engine = sa.create_engine(db.sqlalchemy_url())
    t = time.perf_counter()
    for i, f in enumerate(files):  # one table per file: the messy files' headers differ
        df = pd.read_csv(f)
        df.to_sql(f"to_sql_baseline_{i}", engine, schema="public", if_exists="replace", index=False)
    baseline = time.perf_counter() - t
    engine.dispose()
    return {"loader_again_s": ours, "to_sql_s": baseline, "speedup_vs_to_sql": baseline / ours}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_size(args.child, compare_to_sql=args.child == 100_000)))
        return
    results = []
    for size in [int(s) for s in args.sizes.split(",")]:
        done = subprocess.run([sys.executable, __file__, "--child", str(size)], capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"size {size} failed:\n{done.stderr[-3000:]}")
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"{size}: done", file=sys.stderr)
    print(f"machine: {platform.node()} {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"date {dt.date.today()}; command: python benchmarks/pipeline.py --sizes {args.sizes}\n")
    print("| rows | ingest s | ingest rows/s | dbt build s | GX checks s | total s | checks | peak RSS MB (python / dbt) |")
    print("|---:|---:|---:|---:|---:|---:|---|---:|")
    for r in results:
        print(f"| {r['rows']:,} | {r['ingest_s']:.2f} | {r['ingest_rows_per_s']:,.0f} | {r['dbt_build_s']:.1f} | "
              f"{r['checks_s']:.1f} | {r['total_s']:.1f} | {'pass' if r['checks_passed'] else 'FAIL'} | "
              f"{r['peak_rss_mb']:.0f} / {r['dbt_peak_rss_mb']:.0f} |")
    for r in results:
        if "to_sql_s" in r:
            print(f"\nloader vs pandas to_sql on the same {r['rows']:,} rows: {r['loader_again_s']:.2f} s vs "
                  f"{r['to_sql_s']:.2f} s -> {r['speedup_vs_to_sql']:.1f}x faster")
    base = results[0]
    for r in results[1:]:
        print(f"scaling {base['rows']:,} -> {r['rows']:,} rows ({r['rows'] / base['rows']:.0f}x): "
              f"total time {r['total_s'] / base['total_s']:.1f}x")


if __name__ == "__main__":
    main()
