"""Statement formats benchmark: parse + load rate per format beside the seed CSV path.

    .venv/bin/python benchmarks/formats.py                       # 100k rows, 3 interleaved rounds
    .venv/bin/python benchmarks/formats.py --rows 20000 --reps 1

The generator writes the same N transactions (three accounts, seed 1, ending 2025-12-31) once as the
seed CSV (default settings: 1% messy rows, some invalid and quarantined) and once per statement
format (`generate --format ofx|camt053|mt940|qif`: one statement file per account). One embedded
PostgreSQL serves every load, in this one process: each round loads every format in turn with the
real loader (`load_files`, as the ingest asset calls it: read + parse + type + binary COPY into
raw.transactions), into raw tables emptied beforehand (not timed), and the medians over the rounds
are compared with the CSV path's. rows/s = records read (loaded + quarantined) / wall seconds.
"parse" is `formats.read` + `typed()` alone on the same bytes (no database), the share of the load
a reader costs. CPU seconds of this process and of the server's processes are reported too (from
/proc), since wall time on a shared machine stretches with other work. Prints markdown; results go
into docs/benchmarks.md by hand.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

FORMATS = ("csv", "ofx", "camt053", "mt940", "qif")
END = dt.date(2025, 12, 31)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--reps", type=int, default=3, help="interleaved rounds (median reported)")
    parser.add_argument("--formats", default=",".join(FORMATS))
    args = parser.parse_args()
    fmts = [f for f in args.formats.split(",") if f]
    if "csv" not in fmts:
        fmts.insert(0, "csv")

    from pipeline import ServerCpu, timed, truncate_raw

    from titans_assets.lib import formats
    from titans_assets.lib.db import get_database, stop_embedded
    from titans_assets.lib.generator import generate
    from titans_assets.lib.loader import ensure_raw_schema, landing_files, load_files
    from titans_assets.lib.settings import Settings

    home = Path(tempfile.mkdtemp(prefix="titans-formats-bench-"))
    home.chmod(0o755)
    load_before = os.getloadavg()
    started = dt.datetime.now(dt.UTC)
    try:
        landings, sizes = {}, {}
        for fmt in fmts:
            landing = home / fmt / "raw"
            generate(
                landing, rows=args.rows, seed=1, end_date=END, labels_dir=home / fmt / "labels", format=fmt
            )
            landings[fmt] = landing
            sizes[fmt] = sum(p.stat().st_size for p in landing_files(landing))
        db = get_database(
            Settings(
                home=home,
                landing_dir=landings["csv"],
                database_url=None,
                labels_dir=home / "labels",
                mlflow_tracking_uri=None,
                mlflow_artifacts=None,
            )
        )
        ensure_raw_schema(db)
        server = ServerCpu(db)

        def parse_only(fmt: str) -> int:
            n = 0
            for path in landing_files(landings[fmt]):
                split = formats.read(path.name, path.read_bytes())
                rows, bad = split.typed()
                n += rows.num_rows + len(bad) + len(split.quarantine)
            return n

        runs: dict[str, list[dict]] = {f: [] for f in fmts}
        parses: dict[str, list[float]] = {f: [] for f in fmts}
        counts: dict[str, tuple[int, int, int]] = {}
        for fmt in fmts:  # warm-up: imports of each parser, first-call costs (not reported)
            truncate_raw(db)
            load_files(db, landings[fmt], landing_files(landings[fmt]))
        for _ in range(args.reps):
            for fmt in fmts:
                files = landing_files(landings[fmt])
                results: list = []
                run = timed(
                    lambda files=files, fmt=fmt, results=results: results.extend(
                        load_files(db, landings[fmt], files)
                    ),
                    server,
                    setup=lambda: truncate_raw(db),
                )
                read = sum(r.rows_read for r in results)
                loaded = sum(r.rows_loaded for r in results)
                quarantined = sum(r.rows_quarantined for r in results)
                assert read == loaded + quarantined, (fmt, read, loaded, quarantined)
                counts[fmt] = (read, loaded, quarantined)
                runs[fmt].append(run)
                t = time.perf_counter()
                assert parse_only(fmt) == read
                parses[fmt].append(time.perf_counter() - t)
    finally:
        stop_embedded()
        shutil.rmtree(home, ignore_errors=True)

    def med(fmt: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[fmt])

    csv_rate = counts["csv"][0] / med("csv", "wall_s")
    csv_cpu = counts["csv"][0] / (med("csv", "cpu_s") + med("csv", "server_cpu_s"))
    print(
        f"machine: {platform.node()} {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"{started:%Y-%m-%d %H:%M} UTC; load average before {' '.join(f'{x:.1f}' for x in load_before)}, "
        f"after {' '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )
    print(f"command: .venv/bin/python benchmarks/formats.py --rows {args.rows} --reps {args.reps}\n")
    print(
        "| format | files MB | records read | loaded | quarantined | load s (median) | rows/s | vs CSV "
        "| CPU rows/s | vs CSV (CPU) | parse s | parse share | goal >= 50% |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for fmt in fmts:
        read, loaded, quarantined = counts[fmt]
        wall = med(fmt, "wall_s")
        rate = read / wall
        cpu_rate = read / (med(fmt, "cpu_s") + med(fmt, "server_cpu_s"))
        parse = statistics.median(parses[fmt])
        ok = "baseline" if fmt == "csv" else ("met" if rate >= 0.5 * csv_rate else "**not met**")
        print(
            f"| {fmt} | {sizes[fmt] / 1e6:.1f} | {read:,} | {loaded:,} | {quarantined:,} | {wall:.2f} "
            f"| {rate:,.0f} | {rate / csv_rate:.0%} | {cpu_rate:,.0f} | {cpu_rate / csv_cpu:.0%} "
            f"| {parse:.2f} | {parse / wall:.0%} | {ok} |"
        )
    print(
        "\nper round (wall s): "
        + "; ".join(f"{fmt} " + ", ".join(f"{r['wall_s']:.2f}" for r in runs[fmt]) for fmt in fmts)
    )


if __name__ == "__main__":
    main()
