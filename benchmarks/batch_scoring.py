"""Batch scoring for the prediction assets (lib/ml/batch.py): rows per second of each model on a
large generated ledger, beside the per-request path in the same process as the baseline.

For the category and anomaly models, trained on a generated ledger of --train-rows (seed 7), then:
- batch: `batch.score_categories` / `batch.score_anomalies` on --rows generated transactions (a
  different ledger, seed 8), what the prediction assets run, JSON of top-3 / reasons included;
- per request: --requests rows of the same ledger, each sent as the service sends one request
  (serving.predict: validated row -> plain columns -> the model's `predict_columns` -> response);
- optionally (--database-url, a server where a scratch database may be created) the binary COPY of
  the scored rows into predictions.* (`batch.write_categories` / `write_anomalies`).
Throughput is rows / wall seconds and rows / CPU seconds of this process (what a loaded machine
disturbs less: on a shared 2-core machine the wall figure falls with every other process); the ratio
batch / per-request (CPU) is the figure that carries over to another machine. The goal (issue 19):
>= 50,000 rows/s for the category model in batch.

    .venv/bin/python benchmarks/batch_scoring.py                                   # 1M rows
    .venv/bin/python benchmarks/batch_scoring.py --rows 200000 --requests 500
    .venv/bin/python benchmarks/batch_scoring.py --database-url postgresql://postgres@127.0.0.1:5432/postgres

Generated ledgers and trained models are cached in --cache (default: the system temp folder).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import pickle
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _ledger(cache: Path, rows: int, seed: int):
    """(warehouse-shaped frame, anomaly labels) of a generated ledger, cached as a pickle."""
    from titans_assets.lib.generator import generate
    from titans_assets.lib.ml import data

    path = cache / f"ledger_{rows}_seed{seed}.pkl"
    if path.exists():
        return pickle.loads(path.read_bytes())
    with tempfile.TemporaryDirectory() as tmp:
        generate(
            Path(tmp) / "raw",
            rows=rows,
            seed=seed,
            end_date=dt.date(2026, 6, 30),
            labels_dir=Path(tmp) / "labels",
        )
        frame = data.frame_from_csvs(Path(tmp) / "raw")
        labels = data.anomaly_labels(frame, Path(tmp) / "labels")
    path.write_bytes(pickle.dumps((frame, labels)))
    return frame, labels


def _models(cache: Path, rows: int):
    from titans_assets.lib.ml import anomaly, category

    path = cache / f"batch_models_{rows}_seed7.pkl"
    if path.exists():
        return pickle.loads(path.read_bytes())
    frame, labels = _ledger(cache, rows, 7)
    models = {"category": category.train(frame).model, "anomaly": anomaly.train(frame, labels=labels).model}
    path.write_bytes(pickle.dumps(models))
    return models


def _request(row: dict, fields: tuple[str, ...]) -> dict:
    out = {"amount": round(float(row["amount"]), 2), "date": row["txn_date"].date().isoformat()}
    for name in fields:
        value = row.get(name)
        if value is not None and value == value and str(value).strip():
            out[name] = str(value)[:200]
    return out


def per_request(model, key: str, rows: list[dict]) -> tuple[float, float]:
    """(wall, CPU) rows per second, one validated request per row through serving.predict (no HTTP)."""
    from titans_assets.lib.serving import predict
    from titans_assets.lib.serving.validation import ROW_SPECS, parse_row

    spec = ROW_SPECS[key]
    fields = ("description", "payment_method", "reference") + (("category",) if key == "anomaly" else ())
    bodies = [_request(r, fields) for r in rows]
    fn = predict.ROW_PREDICTORS[key]
    for body in bodies[:20]:  # warm-up (caches, the forest's arrays)
        fn(model, [parse_row(spec, body)])
    start, cpu = time.perf_counter(), time.process_time()
    for body in bodies:
        fn(model, [parse_row(spec, body)])
    return len(bodies) / (time.perf_counter() - start), len(bodies) / (time.process_time() - cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--train-rows", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--models", default="category,anomaly")
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "titans-bench")
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)

    from titans_assets.lib.ml import batch

    models = _models(args.cache, args.train_rows)
    frame, _ = _ledger(args.cache, args.rows, 8)
    expenses = batch.expense_rows(frame)
    rng = np.random.default_rng(0)
    db = None
    if args.database_url:
        from titans_assets.lib.db import Database

        db = Database(args.database_url).sibling("titans_bench_batch_scoring")
        db.ensure_exists()
        batch.ensure_tables(db)

    print(
        f"# batch scoring, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {platform.processor() or platform.machine()}"
        f", {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"models trained on {args.train_rows:,} generated rows (seed 7); scored: {len(frame):,} rows (seed 8), "
        f"{len(expenses):,} of them expenses\n"
    )
    print(
        "| model | rows scored | batch wall s | batch rows/s (wall) | batch rows/s (CPU) "
        "| per-request rows/s (wall / CPU) | batch / per-request (CPU) | COPY rows/s (wall) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for key in args.models.split(","):
        model = models[key]
        rows = expenses if key == "category" else frame
        start, cpu = time.perf_counter(), time.process_time()
        scored = (
            batch.score_categories(model, rows) if key == "category" else batch.score_anomalies(model, rows)
        )
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        n = len(scored["transaction_id"])
        sample = rows.iloc[rng.choice(len(rows), min(args.requests, len(rows)), replace=False)].to_dict(
            "records"
        )
        single, single_cpu = per_request(model, key, sample)
        copy = ""
        if db is not None:
            write = batch.write_categories if key == "category" else batch.write_anomalies
            start = time.perf_counter()
            write(db, scored, "bench")
            copy = f"{n / (time.perf_counter() - start):,.0f}"
        print(
            f"| {key} | {n:,} | {seconds:.1f} | {n / seconds:,.0f} | {n / cpu:,.0f} | {single:,.0f} / "
            f"{single_cpu:,.0f} | {n / cpu / single_cpu:.1f}x | {copy} |",
            flush=True,
        )
    if db is not None:
        with Database(args.database_url).connect(autocommit=True) as conn, conn.cursor() as cur:
            cur.execute('DROP DATABASE IF EXISTS "titans_bench_batch_scoring" WITH (FORCE)')


if __name__ == "__main__":
    main()
