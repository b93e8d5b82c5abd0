"""The same graph on Celery, run for real: dagster-celery's executor, the machine's Redis
(127.0.0.1:6379, a database number only tests use) as broker and result backend, two worker processes
started here, each on a queue of its own run. The run ingests several landed files (one partition each,
a single-run backfill), builds dbt and the checks and trains the four models, with the asset code
untouched (titans_assets.defs.celery only sets the executor); every step must have run in a worker,
and both workers must have taken steps. Skipped when Redis does not answer."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml
from conftest import TEST_TODAY, scratch_database, titans_env
from support import stop_group

from titans_assets import runner
from titans_assets.check_records import plain_metadata
from titans_assets.defs.celery import worker_argv
from titans_assets.lib.generator import generate
from titans_assets.lib.settings import Settings

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
REDIS_URL = "redis://127.0.0.1:6379/13"  # a database number no service of the project uses
WORKERS = 2
READY_SECONDS = 240  # a worker imports the whole code location before it says ready (~25 s at load 12)


@pytest.fixture(scope="session", autouse=True)
def dbt_manifest() -> Path:
    return runner.ensure_dbt_manifest()


@pytest.fixture(scope="module")
def broker():
    """(client, queue): a queue name unique to this module on the test database of the machine's Redis;
    its keys are deleted afterwards."""
    pytest.importorskip("dagster_celery", reason="dagster-celery is in the `celery` dependency group")
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.exceptions.ConnectionError as exc:
        pytest.skip(f"no Redis answers at 127.0.0.1:6379 ({exc}); the Celery test needs it as its broker")
    queue = f"titans-test-{uuid.uuid4().hex[:10]}"
    yield client, queue
    for key in client.scan_iter(f"*{queue}*"):
        client.delete(key)
    client.close()


class Worker:
    """`dagster-celery worker start` in its own process group, logging to a file (it runs the venv's
    `celery`, found on PATH)."""

    def __init__(self, name: str, config_yaml: Path, queue: str, log: Path):
        self.name = f"{name}@{socket.gethostname()}"
        self.log = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                worker_argv(config_yaml, queue, name),
                cwd=ROOT,
                env=dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def tail(self, chars: int = 3000) -> str:
        """The end of the log without Great Expectations' INFO chatter."""
        return "\n".join(ln for ln in self.text().splitlines() if "_get_default_value" not in ln)[-chars:]

    def problems(self, chars: int = 1500) -> str:
        """The log's warnings, errors and tracebacks, without the task results' event dumps."""
        keep = [
            ln
            for ln in self.text().splitlines()
            if any(w in ln for w in ("ERROR", "WARNING", "Traceback", "Error:", "Exception"))
            and "succeeded in" not in ln
        ]
        return "\n".join(ln[:300] for ln in keep)[-chars:]

    def pids(self) -> set[int]:
        import psutil

        try:
            parent = psutil.Process(self.proc.pid)
            return {parent.pid, *(p.pid for p in parent.children(recursive=True))}
        except psutil.NoSuchProcess:
            return set()


def _wait_ready(workers: list[Worker], timeout: float = READY_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    waiting = list(workers)
    while waiting and time.monotonic() < deadline:
        for w in list(waiting):
            assert w.proc.poll() is None, f"worker {w.name} exited ({w.proc.returncode}):\n{w.tail()}"
            if f"{w.name} ready." in w.text():
                waiting.remove(w)
        time.sleep(1)
    assert not waiting, "workers never ready:\n" + "\n".join(f"{w.name}:\n{w.tail()}" for w in waiting)


@pytest.fixture(scope="module")
def world(broker, embedded_db, tmp_path_factory):
    """Generated ledgers, a scratch database on the suite's embedded PostgreSQL (reached by its socket
    URL, as a worker on another machine would reach a managed server), a Dagster instance stored in it,
    and two workers started with the same environment."""
    from titans_assets.defs.celery import execution_config

    _, queue = broker
    root = tmp_path_factory.mktemp("celery")
    landing = root / "data" / "raw"
    generated = generate(landing, rows=2400, seed=5, end_date=TEST_TODAY, labels_dir=root / "data" / "labels")
    instances = []

    def close_instances():
        for instance in instances:
            instance.dispose()

    with scratch_database(embedded_db, on_exit=close_instances) as db, pytest.MonkeyPatch.context() as mp:
        titans_env(mp, db, root / "home", landing)
        mp.setenv("TITANS_DATABASE_URL", db.url)
        settings = Settings.from_env()
        # What runner.prepare_environment sets in os.environ, registered here so that it is undone.
        mp.setenv("DAGSTER_HOME", str(settings.dagster_home))
        mp.setenv("TITANS_DAGSTER_PG_URL", db.sqlalchemy_url())
        runner.prepare_environment(settings)
        import dagster as dg

        instance = dg.DagsterInstance.get()
        instances.append(instance)
        config = execution_config(REDIS_URL, queue=queue, result_expires=900)
        config_yaml = root / "celery.yaml"
        config_yaml.write_text(yaml.safe_dump({"execution": {"config": config}}))
        workers = [
            Worker(f"{queue}-w{i}", config_yaml, queue, root / f"worker{i}.log")
            for i in range(1, WORKERS + 1)
        ]
        try:
            _wait_ready(workers)
            yield {
                "db": db,
                "settings": settings,
                "landing": landing,
                "generated": generated,
                "instance": instance,
                "config": config,
                "workers": workers,
            }
        finally:
            left = [p for w in workers for p in stop_group(w.proc, grace=60)]
            assert not left, f"worker processes left behind: {[p.pid for p in left]}"


def _scalar(db, sql: str):
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchone()[0]


@pytest.mark.timeout(900)
def test_the_whole_graph_runs_on_two_celery_workers(world):
    import dagster as dg

    from titans_assets.defs.celery import celery_asset_job, celery_defs
    from titans_assets.defs.ingest.assets import RAW_TRANSACTIONS

    instance, db, workers = world["instance"], world["db"], world["workers"]
    files = runner.register_landing_files(instance, world["settings"], db)
    assert len(files) >= 3, files  # several files, one partition each
    graph = celery_defs.resolve_asset_graph()
    keys = sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string())
    started = time.perf_counter()
    result = dg.execute_job(
        dg.reconstructable(celery_asset_job),
        instance,
        run_config={
            "execution": {"config": world["config"]},
            "loggers": {"console": {"config": {"log_level": "WARNING"}}},
        },
        tags={
            "dagster/asset_partition_range_start": files[0],
            "dagster/asset_partition_range_end": files[-1],
            "titans/ingest": "landing",
        },
        asset_selection=keys,
    )
    seconds = time.perf_counter() - started
    logs = "\n".join(f"{w.name}:\n{w.problems()}" for w in workers)
    failures = [
        f"{e.event_type_value} {e.step_key}: {e.message} {getattr(e.event_specific_data, 'error', None)}"
        for e in result.all_events
        if e.is_failure or getattr(e.event_specific_data, "error", None)
    ]
    failures += [
        f"check {e.event_specific_data.asset_key.to_user_string()}:{e.event_specific_data.check_name} "
        f"{plain_metadata(e.event_specific_data.metadata)}"
        for e in result.all_events
        if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION and not e.event_specific_data.passed
    ]
    # The worker logs first and short, the failures last: a CI summary keeps the end of the message.
    assert result.success, f"{logs}\nrun failed after {seconds:.0f}s: " + "\n".join(failures)

    # The data went all the way: every file loaded, the marts built from every file.
    gen = world["generated"]
    loaded = _scalar(db, "SELECT count(*) FROM raw.transactions")
    assert loaded + _scalar(db, "SELECT count(*) FROM raw.quarantine") == gen.total_rows
    assert _scalar(db, "SELECT count(*) FROM raw.files") == len(files)
    assert _scalar(db, "SELECT count(DISTINCT source_file) FROM marts.fct_transactions") == len(files)
    assert _scalar(db, "SELECT count(*) FROM marts.fct_transactions") > 0.9 * loaded
    assert _scalar(db, "SELECT count(*) FROM marts.fct_daily_metrics") > 0
    run_id = result.run_id
    materialized = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
    ).records
    partitions = {
        r.event_log_entry.dagster_event.partition
        for r in materialized
        if r.event_log_entry.dagster_event.asset_key == RAW_TRANSACTIONS
    }
    assert partitions == set(files)  # the partitioned ingest: one materialization per landed file
    done = {r.event_log_entry.dagster_event.asset_key.to_user_string() for r in materialized}
    assert {"marts/fct_transactions", "marts/fct_daily_metrics"} <= done
    assert {f"ml/{m}_champion" for m in ("category", "amount", "anomaly", "cashflow")} <= done, sorted(done)
    checks = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records
    assert checks and all(
        r.event_log_entry.dagster_event.event_specific_data.passed
        for r in checks
        if r.event_log_entry.dagster_event.event_specific_data.severity == dg.AssetCheckSeverity.ERROR
    )

    # Every step ran in a worker process, and both workers took steps.
    engine = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT).records
    ran_on = {}
    for r in engine:
        ev = r.event_log_entry.dagster_event
        meta = ev.event_specific_data.metadata if ev.event_specific_data else {}
        if "Celery worker" in meta:
            ran_on[ev.step_key] = meta["Celery worker"].value
    succeeded = {
        r.event_log_entry.dagster_event.step_key
        for r in instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_SUCCESS).records
    }
    assert len(succeeded) >= 10 and succeeded <= set(ran_on), sorted(succeeded - set(ran_on))
    names = {w.name for w in workers}
    assert set(ran_on.values()) == names, ran_on
    step_pids = {
        r.event_log_entry.dagster_event.step_key: r.event_log_entry.dagster_event.pid
        for r in instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_START).records
    }
    worker_pids = {w.name: w.pids() for w in workers}
    for step, pid in step_pids.items():
        assert pid != os.getpid() and pid in worker_pids[ran_on[step]], (step, pid, worker_pids)
    print(
        f"celery run: {seconds:.1f}s, {len(succeeded)} steps, per worker: "
        + ", ".join(f"{n}={sum(v == n for v in ran_on.values())}" for n in sorted(names))
    )
