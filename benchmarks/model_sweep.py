"""The wide model sweep: the demo's data (two years, default accounts) for many end dates x seeds, each
trained as the assets train (lib/ml/sweep.run_case), and how often each model beats its strongest
baseline; prints markdown for docs/models.md.

    .venv/bin/python benchmarks/model_sweep.py [--end-dates 60] [--seeds 1,2,3] [--workers 2]

End dates are every 6th day from 2025-01-04 (60 of them span a year: every weekday, month end and
season), so neither the calendar nor the draw is one lucky case.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    from titans_assets.lib.ml.catalog import BY_KEY
    from titans_assets.lib.ml.sweep import run_case

    ap = argparse.ArgumentParser()
    ap.add_argument("--end-dates", type=int, default=60)
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    ends = [dt.date(2025, 1, 4) + dt.timedelta(days=6 * i) for i in range(args.end_dates)]
    cases = [(e, s) for e in ends for s in seeds]
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        outcomes = [o for part in pool.map(run_case, *zip(*cases)) for o in part]
    seconds = time.perf_counter() - started

    print(
        f"{len(cases)} cases ({len(ends)} end dates {ends[0]}..{ends[-1]} x seeds {args.seeds}), "
        f"{seconds:.0f} s on {args.workers} workers; {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores; {dt.date.today()}; `python benchmarks/model_sweep.py --end-dates "
        f"{args.end_dates} --seeds {args.seeds}`\n"
    )
    print("| model | metric | beats best baseline | median model | median best baseline | worst margin |")
    print("|---|---|---|---|---|---|")
    for model in dict.fromkeys(o.model for o in outcomes):
        mine = [o for o in outcomes if o.model == model]
        sign = 1 if BY_KEY[model].higher_is_better else -1
        margins = [sign * (o.value - o.best_baseline_value) for o in mine]
        worst = min(range(len(mine)), key=margins.__getitem__)
        print(
            f"| {model} | {mine[0].metric} | {sum(o.beats_baseline for o in mine)}/{len(mine)} | "
            f"{statistics.median(o.value for o in mine):.4f} | "
            f"{statistics.median(o.best_baseline_value for o in mine):.4f} | "
            f"{margins[worst]:+.4f} ({mine[worst].end_date}, seed {mine[worst].seed}, "
            f"vs {mine[worst].best_baseline}) |"
        )
    losses = [o for o in outcomes if not o.beats_baseline]
    if losses:
        print("\nLosses (the baseline serves):")
        for o in losses:
            print(
                f"- {o.model} {o.end_date} seed {o.seed}: {o.metric} {o.value:.4f} vs {o.best_baseline} "
                f"{o.best_baseline_value:.4f}"
            )


if __name__ == "__main__":
    main()
