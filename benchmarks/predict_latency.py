"""In-process prediction latency of the row-level models (category, amount, anomaly): no HTTP.

For each model, trained on a generated ledger (seed 7, --rows rows, read with data.frame_from_csvs):
- single-row latency: p50 / p99 over --calls calls, each a DIFFERENT ledger row sent as the service
  sends it (serving.predict: validated row dict -> plain columns, no DataFrame -> the model's
  `predict_columns` -> response dict), after --warmup calls on other rows; wall time, and the CPU
  time of the calling thread (p50), which a loaded machine disturbs less;
- a 1,000-row batch (the service's largest): best of 5;
and `features.prepare` on --prepare-rows raw rows (the parser's output, before any cleaning: messy
text, typos, blanks), best of 3.

    .venv/bin/python benchmarks/predict_latency.py                      # ~1 minute once the ledgers are cached
    .venv/bin/python benchmarks/predict_latency.py --prepare-rows 0     # skip the 1M-row prepare
    .venv/bin/python benchmarks/predict_latency.py --profile category   # cProfile of 500 single rows

Generated ledgers are cached in --cache (default: the system temp folder) between runs.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pickle
import platform
import pstats
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODELS = ("category", "amount", "anomaly")


def _ledger(cache: Path, rows: int) -> tuple:
    """(warehouse-shaped frame, anomaly labels) of a generated ledger, cached as a pickle."""
    from titans_assets.lib.generator import generate
    from titans_assets.lib.ml import data

    path = cache / f"ledger_{rows}_seed7.pkl"
    if path.exists():
        return pickle.loads(path.read_bytes())
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp) / "raw", rows=rows, seed=7, end_date=None, labels_dir=Path(tmp) / "labels")
        frame = data.frame_from_csvs(Path(tmp) / "raw")
        labels = data.anomaly_labels(frame, Path(tmp) / "labels")
    path.write_bytes(pickle.dumps((frame, labels)))
    return frame, labels


def _raw_rows(cache: Path, rows: int):
    """The parser's rows of a generated ledger (what `prepare` cleans in the pipeline), cached."""
    import pandas as pd

    from titans_assets.lib.csv_contract import parse_csv
    from titans_assets.lib.generator import generate
    from titans_assets.lib.loader import landing_files

    path = cache / f"raw_{rows}_seed42.pkl"
    if path.exists():
        return pickle.loads(path.read_bytes())
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp) / "raw", rows=rows, seed=42, labels_dir=Path(tmp) / "labels")
        raw = pd.concat(
            [parse_csv(p.read_bytes()).rows for p in landing_files(Path(tmp) / "raw")], ignore_index=True
        )
    path.write_bytes(pickle.dumps(raw))
    return raw


def _train(frame, labels) -> dict:
    from titans_assets.lib.ml import amount, anomaly, category

    models = {}
    for name, fit in (
        ("category", lambda: category.train(frame)),
        ("amount", lambda: amount.train(frame)),
        ("anomaly", lambda: anomaly.train(frame, labels=labels)),
    ):
        t = time.perf_counter()
        models[name] = fit().model
        print(f"  trained {name} in {time.perf_counter() - t:.1f}s", file=sys.stderr, flush=True)
    return models


def _requests(frame, key: str, n: int, seed: int = 0) -> list[dict]:
    """n serving-shaped rows (validated dicts, as validation.RowSpec.parse returns them) from the ledger."""
    import pandas as pd

    from titans_assets.lib.serving.validation import ROW_SPECS

    rng = np.random.default_rng(seed)
    rows = frame.iloc[rng.choice(len(frame), size=n, replace=False)]
    if key == "amount":
        rows = rows[rows["category"].notna()]
    fields = [f for f in ROW_SPECS[key].fields if f != "time"]
    out = []
    for r in rows.to_dict("records"):
        row = {}
        for f in fields:
            if f == "date":
                row["txn_date"] = pd.Timestamp(r["txn_date"]).strftime("%Y-%m-%d")
            elif f == "amount":
                row["amount"] = float(r["amount"])
            else:
                v = r.get(f)
                row[f] = v if isinstance(v, str) and v != "" else None
        out.append(row)
    return out


def _single(models: dict, frame, calls: int, warmup: int) -> dict[str, tuple[float, float]]:
    from titans_assets.lib.serving import predict

    out = {}
    for key, model in models.items():
        reqs = _requests(frame, key, calls + warmup, seed=1)
        fn = predict.ROW_PREDICTORS[key]
        for r in reqs[:warmup]:
            fn(model, [r])
        times, cpu = [], []
        for r in reqs[warmup:]:
            t, c = time.perf_counter(), time.thread_time()
            fn(model, [r])
            times.append(time.perf_counter() - t)
            cpu.append(time.thread_time() - c)
        ms = np.array(times) * 1000
        out[key] = (
            float(np.percentile(ms, 50)),
            float(np.percentile(ms, 99)),
            len(ms),
            float(np.percentile(np.array(cpu) * 1000, 50)),
        )
    return out


def _batch(models: dict, frame, size: int = 1000) -> dict[str, float]:
    from titans_assets.lib.serving import predict

    out = {}
    for key, model in models.items():
        reqs = _requests(frame, key, size, seed=2)
        fn = predict.ROW_PREDICTORS[key]
        best = float("inf")
        for _ in range(5):
            t = time.perf_counter()
            fn(model, reqs)
            best = min(best, time.perf_counter() - t)
        out[key] = best * 1000
    return out


def _prepare(raw) -> float:
    from titans_assets.lib.ml import features as F

    vocabulary = F.Vocabulary.from_seeds()
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        F.prepare(raw, vocabulary)
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=20_000, help="ledger rows the models are trained on")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--prepare-rows", type=int, default=1_000_000)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "titans_predict_latency")
    parser.add_argument("--profile", choices=MODELS, help="profile 500 single-row calls of one model instead")
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)

    frame, labels = _ledger(args.cache, args.rows)
    models = _train(frame, labels)
    if args.profile:
        from titans_assets.lib.serving import predict

        model, fn = models[args.profile], predict.ROW_PREDICTORS[args.profile]
        reqs = _requests(frame, args.profile, 600, seed=1)
        for r in reqs[:100]:
            fn(model, [r])
        prof = cProfile.Profile()
        prof.enable()
        for r in reqs[100:]:
            fn(model, [r])
        prof.disable()
        pstats.Stats(prof).sort_stats("cumulative").print_stats(45)
        return

    single = _single(models, frame, args.calls, args.warmup)
    batch = _batch(models, frame)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"load {os.getloadavg()[0]:.2f}; models trained on {len(frame):,} ledger rows"
    )
    print("| model | single row p50 ms | single row p99 ms | single row CPU p50 ms | 1,000-row batch ms |")
    print("|---|---:|---:|---:|---:|")
    for key in models:
        p50, p99, n, cpu50 = single[key]
        print(f"| {key} | {p50:.3f} | {p99:.3f} | {cpu50:.3f} | {batch[key]:.1f} |")
    print(f"(single rows: {args.calls} distinct rows after {args.warmup} warm-up calls)")
    if args.prepare_rows:
        raw = _raw_rows(args.cache, args.prepare_rows)
        print(f"features.prepare on {len(raw):,} raw rows: {_prepare(raw):.2f} s (best of 3)")


if __name__ == "__main__":
    main()
