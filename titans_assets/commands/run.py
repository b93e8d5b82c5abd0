"""`titans demo` and `titans materialize`: one run of the asset graph, its log in a file, a summary
on the terminal (files, marts, checks, champions) and one coded line when it fails."""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import click

from titans_assets.commands.status import echo_models


@click.command()
@click.option(
    "--rows",
    type=click.IntRange(min=1),
    default=None,
    help="Rows to generate when the landing folder is empty (default: two years of ledgers).",
)
def demo(rows: int | None) -> None:
    """Generate sample data if the landing folder is empty, build everything, print a summary.

    The sample ledgers have a fixed calendar (they end on a fixed date), so the summary is the same on
    any day; while the landing folder holds exactly those files, freshness is judged as of their end."""
    from titans_assets.lib.generator import generate_demo, generated_as_of
    from titans_assets.lib.loader import landing_files

    settings, db = _prepare()
    if not landing_files(settings.landing_dir):
        click.echo(f"landing folder {settings.landing_dir} is empty: generating sample ledgers")
        summary = generate_demo(settings.landing_dir, rows=rows, labels_dir=settings.labels_dir)
        click.echo("  " + summary.format().replace("\n", "\n  "))
    as_of = generated_as_of(settings.landing_dir, settings.labels_dir)
    if as_of is not None and settings.as_of is None:
        os.environ["TITANS_AS_OF"] = as_of.isoformat()  # read by the checks of this run (in-process)
        settings = replace(settings, as_of=as_of)
        click.echo(f"the landing folder holds the generated sample ledgers: data is judged as of {as_of}")
    _run_and_report(None, settings, db)


@click.command()
@click.option(
    "--select",
    "selection",
    default=None,
    help="Dagster asset selection, e.g. 'key:marts/*' or 'raw/transactions+'. Default: everything "
    "but the analysis group ('group:analysis' builds it).",
)
@click.option(
    "--full-refresh",
    is_flag=True,
    help="Rebuild the incremental dbt models from scratch (the same tables an incremental run gives).",
)
def materialize(selection: str | None, full_refresh: bool) -> None:
    """Materialize the asset graph (or a selection) over every file in the landing folder."""
    settings, db = _prepare()
    _run_and_report(selection, settings, db, full_refresh=full_refresh)


def _prepare():
    from titans_assets import runner

    return runner.prepare_environment()


def _run_and_report(selection: str | None, settings, db, full_refresh: bool = False) -> None:
    from titans_assets import runner
    from titans_assets.lib.ml.tracking import Registry
    from titans_assets.lib.status import champion_summary, file_summary, table_counts

    log_dir = settings.home / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"run-{datetime.now(UTC):%Y%m%dT%H%M%S}.log"
    click.echo(f"database: {db.redacted()}")
    click.echo(
        "materializing"
        + (f" {selection}" if selection else " the whole graph")
        + f" (full log: {log_path}) ..."
    )
    with _output_to(log_path) as (out, err, json_log):

        def lost(failure) -> None:
            """The embedded server died under the run: its storage is gone with it, nothing more can be
            recorded, and Dagster's storage would retry for half a minute. End now, in one line."""
            click.echo(f"error: {failure.line()}", file=err)
            err.flush()
            out.flush()
            _end_now(1)

        def progress(line: str) -> None:
            click.echo(line, file=out)
            if json_log is not None:  # TITANS_LOG_FORMAT=json: the progress lines are log records too
                json_log.record(line.strip(), component="titans.run.progress")

        summary = runner.materialize(selection, on_event=progress, on_lost=lost, full_refresh=full_refresh)
        if json_log is not None:
            json_log.late["run_id"] = summary.run_id
            json_log.record(
                f"run {'succeeded' if summary.success else 'failed'}",
                event="run_finished",
                level="info" if summary.success else "error",
                success=summary.success,
                latency_seconds=round(summary.seconds, 3),
            )
    files = file_summary(db)
    tables = table_counts(db)
    click.echo("")
    click.echo(
        f"run {summary.run_id} {'succeeded' if summary.success else 'FAILED'} in {summary.seconds:.1f}s"
    )
    click.echo(
        f"  files: {len(files)}; rows loaded: {sum(f['rows_loaded'] for f in files)}; "
        f"quarantined: {sum(f['rows_quarantined'] for f in files)}"
    )
    marts = {t: n for t, n in tables.items() if t.startswith("marts.")}
    click.echo("  marts: " + ", ".join(f"{t.removeprefix('marts.')}={n}" for t, n in marts.items()))
    failed, warned = summary.checks_failed, summary.checks_warning
    click.echo(
        f"  checks: {len(summary.checks) - len(failed) - len(warned)} passed, {len(failed)} failed, "
        f"{len(warned)} warnings"
    )
    for name in failed:
        click.echo(f"    FAILED  {name}")
    for name in warned:
        click.echo(f"    warning {name}")
    if summary.not_materialized:
        click.echo(f"  not materialized (stopped upstream): {', '.join(summary.not_materialized)}")
    if any(k.startswith("ml/") for k in summary.materialized):
        from titans_assets.check_records import untrained_reasons
        from titans_assets.lib.ml.catalog import SPECS

        untrained = untrained_reasons(runner.get_instance(), [s.key for s in SPECS])
        echo_models(champion_summary(Registry.from_settings(settings, db), untrained), indent="  ")
    if not summary.success:
        from titans_assets.lib.errors import CodedError

        raise CodedError(summary.failure())


@contextlib.contextmanager
def _output_to(log_path: Path):
    """Everything a run prints, its child processes (dbt) included, goes to the log file, at the level
    of file descriptors; yields the terminal's stdout and stderr for the progress lines and the error,
    and with TITANS_LOG_FORMAT=json the JSON-lines log (one object per line, lib/observability/logs.py)."""
    from titans_assets.lib.observability.logs import JsonLinesFile, env_secrets, log_format

    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    out = os.fdopen(os.dup(saved[0]), "w", buffering=1)
    err = os.fdopen(os.dup(saved[1]), "w", buffering=1)
    json_log = JsonLinesFile(log_path, secrets=env_secrets()) if log_format() == "json" else None
    with contextlib.nullcontext(json_log) if json_log is not None else open(log_path, "w") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                yield out, err, json_log
        finally:
            log.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            out.close()
            err.close()
            if json_log is not None:
                json_log.close()


def _end_now(code: int) -> None:
    """Exit at once from any thread: stop our child processes (dbt), release the embedded server, and
    leave without waiting for the run's threads, which can only retry a database that is gone."""
    import psutil

    from titans_assets.lib.db import stop_embedded

    children = psutil.Process().children(recursive=True)
    for child in children:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.terminate()
    _, alive = psutil.wait_procs(children, timeout=2)
    for child in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
    with contextlib.suppress(Exception):
        stop_embedded()
    os._exit(code)
