"""Time `titans_assets.lib.generator.generate` at 10k / 100k / 1M rows; print a markdown table.

    .venv/bin/python benchmarks/generate.py [--sizes 10000,100000,1000000] [--repeat 3]

Each run is a fresh subprocess (so peak memory is that run's own), writing into a temporary folder
that is deleted afterwards: nothing is written into the repository. Peak memory is the process's
maximum resident set size (getrusage), which includes the interpreter, numpy and pandas
(the "baseline" column is the same figure measured just before generating).
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


def child(rows: int, out: Path) -> None:
    sys.path.insert(0, str(ROOT))
    from titans_assets.lib.generator import generate

    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    summary = generate(out / "raw", rows=rows, end_date=dt.date(2025, 6, 30), seed=42)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    size = sum(p.stat().st_size for p in (out / "raw").glob("*.csv"))
    print(
        json.dumps(
            {
                "rows": summary.total_rows,
                "seconds": seconds,
                "peak_mb": peak / 1024,
                "baseline_mb": baseline / 1024,
                "output_mb": size / 2**20,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--repeat", type=int, default=1, help="runs per size; the fastest is reported")
    parser.add_argument("--child", nargs=2, metavar=("ROWS", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(int(args.child[0]), Path(args.child[1]))
        return
    results = []
    for rows in (int(s) for s in args.sizes.split(",")):
        best = None
        for _ in range(args.repeat):
            tmp = Path(tempfile.mkdtemp(prefix="titans-bench-"))
            try:
                out = subprocess.run(
                    [sys.executable, __file__, "--child", str(rows), str(tmp)],
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            r = json.loads(out.strip().splitlines()[-1])
            best = r if best is None or r["seconds"] < best["seconds"] else best
        results.append(best)
    exe = Path(sys.executable)
    exe_name = os.path.relpath(exe, ROOT) if exe.is_relative_to(ROOT) else exe.name
    print(
        f"Machine: {platform.platform()}, Python {platform.python_version()}, {os.cpu_count()} cores; "
        f"{dt.date.today().isoformat()}; `{exe_name} benchmarks/generate.py "
        f"--sizes {args.sizes} --repeat {args.repeat}`"
    )
    print()
    print("| rows | seconds | rows/s | peak RSS (MB) | baseline RSS (MB) | CSV size (MB) |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r['rows']:,} | {r['seconds']:.2f} | {r['rows'] / r['seconds']:,.0f} | {r['peak_mb']:.0f} "
            f"| {r['baseline_mb']:.0f} | {r['output_mb']:.1f} |"
        )


if __name__ == "__main__":
    main()
