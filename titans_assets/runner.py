"""Running the graph from the CLI (and tests): instance set-up, manifest preparation, one run per call.

Dagster-aware but thin: the CLI formats, this module decides what to run.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from titans_assets.check_records import check_state, error_with_causes, plain_metadata
from titans_assets.lib.db import Database, embedded_server_lost, get_database
from titans_assets.lib.errors import Failure, from_text, run_failure
from titans_assets.lib.incremental import ANALYSIS_GROUP, FULL_REFRESH_TAG
from titans_assets.lib.landing import loaded_checksums, partition_sync
from titans_assets.lib.loader import landing_files, source_file_key
from titans_assets.lib.paths import PROJECT_ROOT
from titans_assets.lib.settings import Settings


def prepare_environment(settings: Settings | None = None) -> tuple[Settings, Database]:
    """Point this process (and the Dagster processes it starts) at the configured database. dbt gets its
    connection from its resource (resources/dbt.py), or explicitly where it runs outside Dagster."""
    settings = settings or Settings.from_env()
    db = get_database(settings)
    db.ping()  # fail fast with E001, before Dagster's storage retries for a minute
    settings.dagster_home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(PROJECT_ROOT / "dagster.yaml", settings.dagster_home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(settings.dagster_home)
    os.environ["TITANS_DAGSTER_PG_URL"] = db.sqlalchemy_url()
    ensure_dbt_manifest()
    return settings, db


def ensure_dbt_manifest() -> Path:
    """Parse the dbt project when the manifest is missing or older than any project file."""
    from titans_assets.defs.transform.project import titans_dbt_project
    from titans_assets.resources.dbt import TitansDbtResource

    manifest = Path(titans_dbt_project.manifest_path)
    project_dir = Path(titans_dbt_project.project_dir)
    sources = [
        p for d in ("models", "macros", "seeds", "tests") for p in (project_dir / d).rglob("*") if p.is_file()
    ]
    sources += [project_dir / "dbt_project.yml", project_dir / "profiles.yml"]
    if not manifest.exists() or max(p.stat().st_mtime for p in sources) > manifest.stat().st_mtime:
        # The venv's dbt even when it is not on PATH.
        TitansDbtResource().parse(Path(titans_dbt_project.target_path))
    return manifest


def get_instance() -> dg.DagsterInstance:
    return dg.DagsterInstance.get()


def register_landing_files(instance: dg.DagsterInstance, settings: Settings, db: Database) -> list[str]:
    """Sync the file partitions with the landing folder; return all partition keys, in order.

    A new file gets a partition. A file that left the folder keeps its partition for one more run
    (which removes its rows), and loses it once nothing of it is left in raw.files.
    """
    from titans_assets.defs.ingest.assets import landing_files as partitions

    present = [source_file_key(settings.landing_dir, p) for p in landing_files(settings.landing_dir)]
    known = instance.get_dynamic_partitions(partitions.name)
    add, stale = partition_sync(known, present, set(present), set(loaded_checksums(db)))
    for key in stale:
        instance.delete_dynamic_partition(partitions.name, key)
    if add:
        instance.add_dynamic_partitions(partitions.name, add)
    return list(instance.get_dynamic_partitions(partitions.name))


@dataclass
class RunSummary:
    run_id: str
    success: bool
    materialized: list[str] = field(default_factory=list)
    checks: dict[str, str] = field(default_factory=dict)  # "asset:check" -> passed | warning | failed
    failed_steps: list[str] = field(default_factory=list)
    not_materialized: list[str] = field(default_factory=list)  # selected, but stopped upstream
    seconds: float = 0.0
    error: str | None = None
    check_metadata: dict[str, dict] = field(default_factory=dict)  # check -> its metadata (plain values)
    step_errors: list[tuple[str, str]] = field(default_factory=list)  # (error class, message and causes)

    def failure(self) -> Failure | None:
        """Why the run failed, as one coded line (lib/errors.py), or None when it succeeded."""
        if self.success:
            return None
        return run_failure({k: self.check_metadata.get(k, {}) for k in self.checks_failed}, self.step_errors)

    @property
    def checks_failed(self) -> list[str]:
        return [k for k, state in self.checks.items() if state == "failed"]

    @property
    def checks_warning(self) -> list[str]:
        return [k for k, state in self.checks.items() if state == "warning"]


def materialize(
    selection: str | None = None,
    *,
    instance: dg.DagsterInstance | None = None,
    settings: Settings | None = None,
    on_event: Callable[[str], None] | None = None,
    on_lost: Callable[[Failure], None] | None = None,
    full_refresh: bool = False,
) -> RunSummary:
    """One run of the graph (or of `selection`, Dagster's selection syntax), over every landed file.

    Without a selection, everything but the `analysis` group (built on demand: `--select
    'group:analysis'`). dbt builds incrementally unless `full_refresh` (lib/incremental.py).

    `on_lost` is called (from another thread) when the embedded PostgreSQL dies under the run: the
    run's own storage is gone with it, so nothing can be recorded any more and Dagster's storage
    would only retry for half a minute before failing; the caller decides how to end (the CLI: at once)."""
    from titans_assets.definitions import defs

    settings = settings or Settings.from_env()
    instance = instance or get_instance()
    job = defs.resolve_implicit_global_asset_job_def()
    graph = defs.resolve_asset_graph()
    keys = _selected(graph, selection)
    tags = _run_tags(instance, settings, graph, keys, full_refresh)
    run_id = str(uuid.uuid4())
    watcher = _ProgressWatcher(instance, run_id, on_event) if on_event else None
    started = time.perf_counter()
    if watcher:
        watcher.start()
    guard = _EmbeddedServerGuard(settings, on_lost) if on_lost else None
    if guard:
        guard.start()
    try:
        result = job.execute_in_process(
            instance=instance,
            asset_selection=sorted(keys, key=lambda k: k.to_user_string()),
            tags=tags,
            run_id=run_id,
            raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
        )
    finally:
        if guard:
            guard.stop()
        if watcher:
            watcher.stop()
    return _summarize(result, run_id, time.perf_counter() - started, keys)


def _selected(graph, selection: str | None) -> set[dg.AssetKey]:
    """The keys `selection` names; without one, every asset outside the on-demand analysis group."""
    keys = (
        dg.AssetSelection.from_string(selection).resolve(graph)
        if selection
        else (dg.AssetSelection.all() - dg.AssetSelection.groups(ANALYSIS_GROUP)).resolve(graph)
    )
    if not keys:
        raise ValueError(f"E003 selection {selection!r} matches no asset")
    return keys


def _run_tags(
    instance: dg.DagsterInstance, settings: Settings, graph, keys: set[dg.AssetKey], full_refresh: bool
) -> dict[str, str]:
    """The run's tags; a run of partitioned assets covers every landed file (registered here)."""
    # The pid lets `titans status` tell a run that is still going from one whose process died with it.
    tags = {"titans/trigger": "cli", "titans/pid": str(os.getpid()), "titans/host": socket.gethostname()}
    if full_refresh:
        tags[FULL_REFRESH_TAG] = "1"
    partitioned = [k for k in keys if graph.get(k).partitions_def is not None]
    if partitioned:
        partition_keys = register_landing_files(instance, settings, get_database(settings))
        if not partition_keys:
            raise ValueError(
                f"E003 no CSV files in {settings.landing_dir}: drop exports there or run `titans generate`"
            )
        tags |= {
            "dagster/asset_partition_range_start": partition_keys[0],
            "dagster/asset_partition_range_end": partition_keys[-1],
            "titans/ingest": "landing",
        }
    return tags


def _summarize(result, run_id: str, seconds: float, keys: set[dg.AssetKey]) -> RunSummary:
    """What the run materialized, its checks' states and its failed steps, from its events."""
    summary = RunSummary(run_id=run_id, success=result.success, seconds=seconds)
    for event in result.all_events:
        if event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION:
            summary.materialized.append(event.asset_key.to_user_string())
        elif event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            ev = event.event_specific_data
            name = f"{ev.asset_key.to_user_string()}:{ev.check_name}"
            summary.checks[name] = check_state(ev)
            summary.check_metadata[name] = plain_metadata(ev.metadata)
        elif event.event_type == dg.DagsterEventType.STEP_FAILURE:
            summary.failed_steps.append(event.step_key)
            error = event.event_specific_data.error
            if summary.error is None:
                summary.error = _one_line(error.message)
            summary.step_errors.append(error_with_causes(error))
    summary.materialized = sorted(set(summary.materialized))
    summary.not_materialized = sorted({k.to_user_string() for k in keys} - set(summary.materialized))
    return summary


def _one_line(message: str) -> str:
    """First lines of an error, without the exception's module path (`dagster._core.errors.X: ...`)."""
    lines = [ln.strip() for ln in (message or "").strip().splitlines() if ln.strip()]
    text = " ".join(lines[:2])[:300] if lines else "unknown error"
    return re.sub(r"^(?:[a-z_]\w*\.)+(\w+(?:Error|Exception): )", r"\1", text)


class _EmbeddedServerGuard:
    """Watches the embedded PostgreSQL's postmaster during a run; calls `on_lost` once if it dies."""

    def __init__(self, settings: Settings, on_lost: Callable[[Failure], None], interval: float = 0.5):
        self._settings, self._on_lost, self._interval = settings, on_lost, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> None:
        if not self._settings.database_url:  # only the embedded server: a TCP server may come back
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            why = embedded_server_lost(self._settings)
            if why and not self._stop.is_set():
                self._on_lost(
                    from_text("DatabaseError", f"E001 database connection lost during the run: {why}")
                )
                return


class _ProgressWatcher:
    """Prints step starts and ends of a run as they land in the event log (long steps show progress)."""

    _SHOWN = {
        dg.DagsterEventType.STEP_START: "started",
        dg.DagsterEventType.STEP_SUCCESS: "done",
        dg.DagsterEventType.STEP_FAILURE: "FAILED",
        dg.DagsterEventType.ASSET_CHECK_EVALUATION: "check",
    }

    def __init__(self, instance: dg.DagsterInstance, run_id: str, emit: Callable[[str], None]):
        self._instance, self._run_id, self._emit = instance, run_id, emit
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._cursor = None
        self._started: dict[str, float] = {}

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._poll()

    def _loop(self) -> None:
        while not self._stop.wait(0.5):
            try:
                self._poll()
            except Exception:  # progress is best-effort; the run's own result is authoritative
                pass

    def _poll(self) -> None:
        conn = self._instance.get_records_for_run(self._run_id, cursor=self._cursor)
        self._cursor = conn.cursor
        for record in conn.records:
            event = record.event_log_entry.dagster_event
            if event is None or event.event_type not in self._SHOWN:
                continue
            if event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
                ev = event.event_specific_data
                state = check_state(ev)
                if state != "passed" or ev.check_name.startswith(
                    "gx_"
                ):  # dbt's many passing tests: counted at the end
                    self._emit(f"  check {ev.asset_key.to_user_string()}:{ev.check_name} {state}")
                continue
            step = event.step_key
            if event.event_type == dg.DagsterEventType.STEP_START:
                self._started[step] = record.event_log_entry.timestamp
                self._emit(f"  {step} started")
            else:
                took = record.event_log_entry.timestamp - self._started.get(
                    step, record.event_log_entry.timestamp
                )
                self._emit(f"  {step} {self._SHOWN[event.event_type]} ({took:.1f}s)")
