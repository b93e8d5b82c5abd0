"""The same graph in one process and on Celery workers (issue 20).

    .venv/bin/python benchmarks/celery_graph.py --rows 100000 --workers 2

Generates one landing folder, then runs every asset but the analysis group twice, each from an empty
warehouse of its own (two databases on one embedded PostgreSQL, each with its Dagster storage and
MLflow store): once with `titans materialize`'s in-process executor, once on `--workers`
dagster-celery workers (titans_assets.defs.celery, Redis as broker). Prints the wall time of each run
and the seconds of its steps by kind (ingest, dbt, checks, models), from Dagster's step stats: what
the workers run side by side, and what each step costs as a Celery task. Needs Redis at `--broker`
and the `celery` dependency group (`make install` has it).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import socket
import sys
import tempfile
import time
import uuid
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent
END_DATE = dt.date(2026, 6, 30)  # the data's last day: fixed, so runs on other days compare
READY_SECONDS = 300


def step_kind(step_key: str) -> str:
    """ingest, dbt, checks, models or other, from a step key of the asset job."""
    if step_key == "raw_landing":  # the load and its raw check, one step over every file
        return "ingest"
    if step_key in ("titans_dbt_models", "titans_enriched_models"):
        return "dbt"
    if "_gx_" in step_key:
        return "checks"
    if step_key.startswith(("ml__", "predictions__")):
        return "models"
    return "other"


def step_seconds(instance, run_id: str) -> dict[str, float]:
    """Seconds of the run's steps, summed by kind."""
    out: dict[str, float] = {}
    for s in instance.get_run_step_stats(run_id):
        if s.start_time and s.end_time:
            kind = step_kind(s.step_key)
            out[kind] = out.get(kind, 0.0) + (s.end_time - s.start_time)
    return out


def use_database(home: Path, landing: Path, db) -> tuple:
    """Point this process at `db` (home, landing, Dagster storage) the way a user's environment
    would; returns (settings, instance)."""
    import dagster as dg

    from titans_assets import runner
    from titans_assets.lib.settings import Settings

    os.environ |= {
        "TITANS_HOME": str(home),
        "TITANS_LANDING_DIR": str(landing),
        "TITANS_LABELS_DIR": str(landing.parent / "labels"),
        "TITANS_DATABASE_URL": db.url,
    }
    settings, _ = runner.prepare_environment(Settings.from_env())
    return settings, dg.DagsterInstance.get()


def in_process(settings, instance) -> dict:
    from titans_assets import runner

    summary = runner.materialize(None, instance=instance, settings=settings)
    if not summary.success:
        raise RuntimeError(f"in-process run failed: {summary.error}")
    return {"wall_s": summary.seconds, "steps_s": step_seconds(instance, summary.run_id)}


def on_celery(settings, instance, db, workers: int, broker: str, logs: Path) -> dict:
    import dagster as dg

    from titans_assets import runner
    from titans_assets.defs.celery import celery_asset_job, celery_defs, execution_config, worker_argv
    from titans_assets.lib.incremental import ANALYSIS_GROUP
    from titans_assets.lib.supervisor import Service, Supervisor

    queue = f"titans-bench-{uuid.uuid4().hex[:8]}"
    config = execution_config(broker, queue=queue, result_expires=900)
    config_yaml = logs / "celery.yaml"
    config_yaml.write_text(yaml.safe_dump({"execution": {"config": config}}))
    supervisor = Supervisor(logs, cwd=ROOT)
    env = {"PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    names = [f"{queue}-w{i}" for i in range(1, workers + 1)]
    for name in names:
        supervisor.start(
            Service(name=name, argv=worker_argv(config_yaml, queue, name), url="", ready_url="", env=env)
        )
    try:
        deadline = time.monotonic() + READY_SECONDS
        host = socket.gethostname()
        while not all(f"{n}@{host} ready." in (logs / f"{n}.log").read_text(errors="replace") for n in names):
            _, exited = supervisor.poll()
            if exited or time.monotonic() > deadline:
                raise RuntimeError(f"Celery workers not ready; see {logs}")
            time.sleep(1)
        files = runner.register_landing_files(instance, settings, db)
        graph = celery_defs.resolve_asset_graph()
        keys = (dg.AssetSelection.all() - dg.AssetSelection.groups(ANALYSIS_GROUP)).resolve(graph)
        started = time.perf_counter()
        result = dg.execute_job(
            dg.reconstructable(celery_asset_job),
            instance,
            run_config={
                "execution": {"config": config},
                "loggers": {"console": {"config": {"log_level": "WARNING"}}},
            },
            tags={
                "dagster/asset_partition_range_start": files[0],
                "dagster/asset_partition_range_end": files[-1],
                "titans/ingest": "landing",
            },
            asset_selection=sorted(keys, key=lambda k: k.to_user_string()),
        )
        wall = time.perf_counter() - started
        if not result.success:
            raise RuntimeError(f"Celery run failed; worker logs in {logs}")
        return {"wall_s": wall, "steps_s": step_seconds(instance, result.run_id)}
    finally:
        supervisor.stop(grace=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/13")
    args = parser.parse_args()

    from titans_assets.lib.db import get_database, stop_embedded
    from titans_assets.lib.generator import generate
    from titans_assets.lib.settings import Settings

    base = Path(tempfile.mkdtemp(prefix="titans-bench-celery-"))
    base.chmod(0o755)
    landing = base / "data" / "raw"
    try:
        generate(landing, rows=args.rows, seed=1, end_date=END_DATE, labels_dir=base / "data" / "labels")
        server = get_database(
            Settings(
                home=base / "server",
                landing_dir=landing,
                database_url=None,
                labels_dir=base / "data" / "labels",
                mlflow_tracking_uri=None,
                mlflow_artifacts=None,
            )
        )
        os.environ["TITANS_AS_OF"] = END_DATE.isoformat()  # the platform's today: the data's last day
        results = {}
        for mode in ("in-process", "celery"):
            db = server.sibling(f"bench_{mode.replace('-', '_')}")
            db.ensure_exists()
            home = base / mode
            settings, instance = use_database(home, landing, db)
            logs = home / "logs"
            logs.mkdir(parents=True, exist_ok=True)
            if mode == "in-process":
                results[mode] = in_process(settings, instance)
            else:
                results[mode] = on_celery(settings, instance, db, args.workers, args.broker, logs)
            instance.dispose()
            print(f"{mode}: {results[mode]['wall_s']:.1f} s", file=sys.stderr)
        kinds = ["ingest", "dbt", "checks", "models", "other"]
        print(
            f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}; date {dt.date.today()}; "
            f"command: python benchmarks/celery_graph.py --rows {args.rows} --workers {args.workers}; "
            f"load average after {' '.join(f'{x:.1f}' for x in os.getloadavg())}"
        )
        print()
        print("| run | wall s | " + " | ".join(f"{k} steps s" for k in kinds) + " |")
        print("|---|---:|" + "---:|" * len(kinds))
        for mode, r in results.items():
            cells = " | ".join(f"{r['steps_s'].get(k, 0.0):.1f}" for k in kinds)
            name = f"{mode} ({args.workers} workers)" if mode == "celery" else mode
            print(f"| {name} | {r['wall_s']:.1f} | {cells} |")
        ratio = results["celery"]["wall_s"] / results["in-process"]["wall_s"]
        print(f"\nCelery / in-process wall time: {ratio:.2f}x")
    finally:
        stop_embedded()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
