"""Training time of the four models at 100k and 1M generated rows; prints a markdown table.

    .venv/bin/python benchmarks/training.py [--sizes 100000,1000000] [--metrics]

--metrics also prints, per size and model, every metric of the model beside every baseline
(the tables of docs/models.md).

Each size is a fresh generated ledger (seed 42, 3 accounts) in a temporary folder, read into the
warehouse shape with lib/ml/data.frame_from_csvs (the same parser and label normalization as the
pipeline, no database), then each model's train() is timed: fit, baselines, holdout metrics and
figures, i.e. what a training asset does before it logs to MLflow. The model's primary metric and
its best baseline are printed beside the time, so a speed-up that costs quality shows.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def run(rows: int) -> list[dict]:
    from titans_assets.lib.generator import DEMO_END_DATE, generate
    from titans_assets.lib.ml import catalog, data

    out = []
    with tempfile.TemporaryDirectory() as tmp:
        landing = Path(tmp) / "raw"
        generate(landing, rows=rows, seed=42, end_date=DEMO_END_DATE)
        frame = data.frame_from_csvs(landing)
        labels = data.anomaly_labels(frame, Path(tmp) / "labels")
        for spec in catalog.SPECS:
            module = spec.module
            started = time.perf_counter()
            if spec.source == "daily":
                result = module.train(data.daily_series(frame))
            elif spec.key == "anomaly":
                result = module.train(frame, labels=labels)
            else:
                result = module.train(frame)
            seconds = time.perf_counter() - started
            base_name, base_value = result.best_baseline(module.PRIMARY_METRIC, module.HIGHER_IS_BETTER)
            out.append(
                {
                    "rows": len(frame),
                    "model": spec.key,
                    "seconds": seconds,
                    "result": result,
                    "metric": module.PRIMARY_METRIC,
                    "value": result.metrics[module.PRIMARY_METRIC],
                    "baseline": f"{base_name} {base_value:.4f}",
                    "train_rows": result.data_window.get("train_rows", ""),
                }
            )
            print(f"  {rows:>9,} {spec.key:<9} {seconds:7.1f}s", file=sys.stderr, flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--metrics", action="store_true")
    args = parser.parse_args()
    results = [r for n in args.sizes.split(",") for r in run(int(n))]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print("| rows | model | train s | primary metric | value | best baseline | train rows |")
    print("|---:|---|---:|---|---:|---|---:|")
    for r in results:
        print(
            f"| {r['rows']:,} | {r['model']} | {r['seconds']:.1f} | {r['metric']} | {r['value']:.4f} | "
            f"{r['baseline']} | {r['train_rows']} |"
        )
    by_size: dict[int, float] = {}
    for r in results:
        by_size[r["rows"]] = by_size.get(r["rows"], 0.0) + r["seconds"]
    for n, s in by_size.items():
        print(f"all four at {n:,} rows: {s:.1f} s")
    if args.metrics:
        for r in results:
            print_metrics(r)


def print_metrics(r: dict) -> None:
    result = r["result"]
    columns = {"model": result.metrics, **result.baselines}
    names = [k for k, v in result.metrics.items() if isinstance(v, int | float) and not k.startswith("cand_")]
    print(f"\n{r['model']} at {r['rows']:,} rows; window {result.data_window}")
    print("| metric | " + " | ".join(columns) + " |")
    print("|---|" + "---:|" * len(columns))
    for name in names:
        cells = [columns[c].get(name) for c in columns]
        print(f"| {name} | " + " | ".join("" if v is None else f"{v:.4g}" for v in cells) + " |")
    for note in result.notes:
        print(f"- {note}")


if __name__ == "__main__":
    main()
