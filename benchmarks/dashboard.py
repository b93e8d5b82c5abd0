"""Dashboard benchmark: how long each page takes over a warehouse of N transactions (default 1M).

    .venv/bin/python benchmarks/dashboard.py                       # build 1M rows in a scratch database, measure
    .venv/bin/python benchmarks/dashboard.py --url postgresql://postgres@127.0.0.1:5432/titans_dashbench
                                                                   # reuse a warehouse built earlier
    .venv/bin/python benchmarks/dashboard.py --rows 100000 --no-service

Build (unless --url): `titans generate --rows N` into a temporary folder, then `titans materialize
--select 'not group:ml'` into a fresh database on TITANS_BENCH_URL's server (default: the machine's
PostgreSQL at 127.0.0.1:5432), both timed. Unless --no-service, four champions are trained on the
latest 30,000 transactions (the models' own cost is not what is measured here) and the service's
Starlette app runs under uvicorn in a thread, so the Anomalies and Cash flow pages do their real
requests (the Anomalies page scores up to 10,000 transactions in 10 batch requests).

Measured, per page, in this process:
- queries: the page's lib/dashboard query functions, called directly (no cache), median of --repeat;
- page cold: Streamlit's AppTest running the page with every cache cleared (queries + service calls +
  building the elements and Plotly figures; not the browser's drawing), median of --repeat, after one
  warm-up run that pays the imports (the first Data health run imports Dagster and MLflow: reported);
- page warm: the same page rerun with the caches kept (what every widget interaction costs).
Baseline, in the same process: the naive way, `SELECT * FROM marts.fct_transactions` into pandas and
the Overview's numbers computed there. Prints a markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
APP = str(ROOT / "titans_assets" / "dashboard" / "app.py")
PAGES = ("overview", "transactions", "predictions", "anomalies", "cashflow", "health")
KEY = "bench-key-" + uuid.uuid4().hex


def build(rows: int, server_url: str, work: Path) -> tuple[str, dict]:
    from titans_assets.lib.db import Database

    name = f"titans_dashbench_{uuid.uuid4().hex[:8]}"
    server = Database(server_url)
    with server.connect(autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    url = server.sibling(name).url
    env = os.environ | {
        "TITANS_HOME": str(work / "home"),
        "TITANS_LANDING_DIR": str(work / "raw"),
        "TITANS_DATABASE_URL": url,
    }
    timings = {}
    for label, args in (
        ("generate", ["generate", "--out", str(work / "raw"), "--rows", str(rows), "--seed", "3"]),
        ("materialize", ["materialize", "--select", "not group:ml"]),
    ):
        t = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "titans_assets.cli", *args],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        timings[label] = time.perf_counter() - t
        if done.returncode != 0:
            raise SystemExit(f"{label} failed: {(done.stdout + done.stderr)[-2000:]}")
    return url, timings


def train_small_champions(db, settings) -> float:
    from titans_assets.lib.ml import amount, anomaly, cashflow, catalog, category, data
    from titans_assets.lib.ml.tracking import Registry

    t = time.perf_counter()
    frame = data.load_transactions(db).tail(30_000).reset_index(drop=True)
    trained = {
        "category": category.train(frame),
        "amount": amount.train(frame, max_iter=80, oof_folds=2, text_hash_features=2**14),
        "anomaly": anomaly.train(frame, labels=data.anomaly_labels(frame, settings.labels_dir)),
        "cashflow": cashflow.train(
            data.load_daily_series(db),
            n_origins=3,
            make_figures=False,
            candidates=("seasonal_naive_7", "mean_28", "ets"),
        ),
    }
    registry = Registry.from_settings(settings, db)
    for spec in catalog.SPECS:
        _, version = registry.log_training(spec.name, trained[spec.key], spec.example_frame())
        registry.promote(spec.name, version, "dashboard benchmark")
    return time.perf_counter() - t


def start_service(env: dict[str, str]) -> tuple[str, object]:
    import urllib.request

    import uvicorn

    from titans_assets.lib.serving.app import create_app
    from titans_assets.lib.serving.runtime import Runtime

    rt = Runtime.from_env(
        {
            **env,
            "TITANS_API_KEYS": KEY,
            "TITANS_RATE_LIMIT_IP": "100000/minute",
            "TITANS_RATE_LIMIT_KEY": "100000/minute",
        }
    )
    rt.start(poll=0)
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(rt), host="127.0.0.1", port=port, log_level="warning", lifespan="off", access_log=False
        )
    )
    threading.Thread(target=server.run, daemon=True).start()
    url = f"http://127.0.0.1:{port}"
    for _ in range(60):
        try:
            urllib.request.urlopen(url + "/health", timeout=2).read()
            return url, server
        except OSError:
            time.sleep(0.5)
    raise SystemExit("the service did not start")


def page_queries(db) -> dict[str, callable]:
    """What each page asks the database (as the page calls it, defaults included)."""
    from titans_assets.lib.dashboard import anomalies as A
    from titans_assets.lib.dashboard import queries as Q
    from titans_assets.lib.dashboard.periods import Period, preset_period, previous_period

    b = Q.data_bounds(db)
    p30 = preset_period("Last 30 days", b.last, b.first)
    p90 = preset_period("Last 90 days", b.last, b.first)
    year = Q.TransactionFilter(start=max(b.first, b.last - dt.timedelta(days=364)), end=b.last)

    def overview():
        Q.data_bounds(db)
        Q.period_totals(db, p30)
        Q.period_totals(db, previous_period(p30))
        Q.spending_by_category(db, p30)
        Q.balance_series(db)
        Q.recent_transactions(db, p30, 10)

    def transactions():
        Q.data_bounds(db)
        Q.filter_options(db)
        Q.filtered_view(db, year)
        Q.transactions_table(db, year, "date", True)

    def predictions():
        Q.data_bounds(db)
        Q.payment_method_options(db)

    def anomalies():
        Q.data_bounds(db)
        Q.period_count(db, p90)
        Q.transactions_to_score(db, p90, A.MAX_SCORED)

    def cashflow():
        Q.data_bounds(db)
        Q.daily_flow(db, Period(b.last - dt.timedelta(days=89), b.last))

    def health():
        Q.quarantine(db)

    return {
        "overview": overview,
        "transactions": transactions,
        "predictions": predictions,
        "anomalies": anomalies,
        "cashflow": cashflow,
        "health": health,
    }


def timed(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def run_page(page: str, clear: bool, service: bool = True):
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    if clear:
        st.cache_data.clear()
    at = AppTest.from_file(APP, default_timeout=600)
    at.run()  # the Overview, the default page (its own time is the overview's)
    if page != "overview":
        at.switch_page(f"pages/{page}.py")
    if clear:
        st.cache_data.clear()
    t = time.perf_counter()
    at.run()
    took = time.perf_counter() - t
    problems = [e.value for e in at.exception] + [
        e.value for e in at.error if service or "prediction service is down" not in e.value
    ]
    if problems:
        raise SystemExit(f"{page}: {problems[0][:300]}")
    return took


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--url", help="a database whose marts are already built (skips the build)")
    ap.add_argument(
        "--server",
        default=os.environ.get("TITANS_BENCH_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-service", action="store_true", help="no champions, no service: those pages say so")
    ap.add_argument(
        "--keep", action="store_true", help="keep the database a build created (default: drop it)"
    )
    args = ap.parse_args()

    from titans_assets.lib.dashboard import queries as Q
    from titans_assets.lib.db import Database
    from titans_assets.lib.settings import Settings

    work = Path(tempfile.mkdtemp(prefix="titans-dashbench-"))
    build_times = {}
    url = args.url
    if url is None:
        url, build_times = build(args.rows, args.server, work)
    db = Database(url)
    n = Q.data_bounds(db).transactions
    env = {
        "TITANS_HOME": str(work / "home"),
        "TITANS_DATABASE_URL": url,
        "TITANS_LANDING_DIR": str(work / "raw"),
    }
    os.environ.update(env)
    settings = Settings.from_env()
    train_s = None
    if args.no_service:
        os.environ["TITANS_SERVICE_URL"] = "http://127.0.0.1:9"  # nothing there: those pages say so
    else:
        train_s = train_small_champions(db, settings)
        os.environ["TITANS_SERVICE_URL"], _ = start_service(env)
    os.environ["TITANS_API_KEY"] = KEY

    # Baseline: the naive page, every row into pandas, the Overview's numbers computed there.
    def naive():
        frame = Q._frame(db, "SELECT * FROM marts.fct_transactions")
        frame["amount"] = frame["amount"].astype(float)
        last = frame["txn_date"].max()
        recent = frame[frame["txn_date"] > last - dt.timedelta(days=30)]
        recent.groupby("txn_type")["amount"].sum()
        recent[recent["txn_type"] == "Expense"].groupby("category")["amount"].sum()
        frame.sort_values("txn_date").tail(10)
        return frame

    baseline = timed(naive, 1)

    queries = page_queries(db)
    results = []
    first_runs = {}
    for page in PAGES:
        service = not args.no_service
        first_runs[page] = run_page(page, True, service)  # warm-up: imports, connections
        q = timed(queries[page], args.repeat)
        cold = statistics.median(run_page(page, True, service) for _ in range(args.repeat))
        warm = statistics.median(run_page(page, False, service) for _ in range(args.repeat))
        results.append((page, q, cold, warm))

    load = os.getloadavg()
    print(
        f"\n{n:,} transactions; {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; {dt.date.today()}"
    )
    if build_times:
        print("build: " + ", ".join(f"{k} {v:.1f}s" for k, v in build_times.items()))
    if train_s is not None:
        print(f"champions trained on the latest 30,000 rows in {train_s:.1f}s")
    print(f"baseline (SELECT * into pandas + the Overview's numbers): {baseline:.2f}s\n")
    print(
        "| page | queries (ms) | page, cold caches (s) | page, warm (s) | first run in process (s) | baseline / cold |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for page, q, cold, warm in results:
        print(
            f"| {page} | {q * 1000:.0f} | {cold:.2f} | {warm:.2f} | {first_runs[page]:.2f} | {baseline / cold:.1f}x |"
        )
    if build_times and not args.keep:
        print(f"dropping {db.dbname} (--keep keeps it)")
        with db.sibling("postgres").connect(autocommit=True) as conn, conn.cursor() as cur:
            for name in (db.dbname, db.dbname + "_mlflow"):
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
