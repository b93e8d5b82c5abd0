"""`titans`: the command line. Every failure ends as one readable line with its code, never a traceback
(set TITANS_DEBUG=1 to see one)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import click

from titans_assets.commands.dashboard import dashboard
from titans_assets.commands.generate import generate, generate_report
from titans_assets.commands.metrics import metrics
from titans_assets.commands.profile import profile
from titans_assets.commands.serve import serve
from titans_assets.commands.up import up


class _Group(click.Group):
    """Ends every failure in one line `error: E00x what happened -> next: what to do` (lib/errors.py);
    usage errors exit with 2, the rest with 1; TITANS_DEBUG=1 shows the traceback instead."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        from titans_assets.lib import errors

        debug = bool(os.environ.get("TITANS_DEBUG"))
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.Abort:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except click.exceptions.NoArgsIsHelpError as exc:  # bare `titans`: the help, as click shows it
            exc.show()
            sys.exit(exc.exit_code)
        except click.UsageError as exc:
            if debug:
                raise
            command = exc.ctx.command_path if exc.ctx else (prog_name or "titans")
            _fail(errors.usage_failure(exc.format_message(), command), 2)
        except click.ClickException as exc:
            if debug:
                raise
            _fail(errors.from_text(type(exc).__name__, exc.format_message()), exc.exit_code or 1)
        except Exception as exc:  # noqa: BLE001 - the one place that turns failures into a line
            if debug:
                raise
            _fail(errors.from_exception(exc), 1)
        sys.exit(rv if isinstance(rv, int) else 0)


def _fail(failure, exit_code: int) -> None:
    click.echo(f"error: {failure.line()}", err=True)
    sys.exit(exit_code)


@click.group(cls=_Group)
def main() -> None:
    """Titans Finance: bank and ledger CSV exports -> PostgreSQL -> dbt marts -> checked data."""
    # A terminated CLI still runs its exit handlers, which release the embedded PostgreSQL.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


main.add_command(generate)
main.add_command(generate_report)
main.add_command(serve)
main.add_command(dashboard)
main.add_command(up)
main.add_command(metrics)
main.add_command(profile)


@main.command()
@click.option("--rows", type=click.IntRange(min=1), default=None,
              help="Rows to generate when the landing folder is empty (default: two years of ledgers).")
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


@main.command()
@click.option("--select", "selection", default=None,
              help="Dagster asset selection, e.g. 'key:marts/*' or 'raw/transactions+'. Default: everything.")
def materialize(selection: str | None) -> None:
    """Materialize the asset graph (or a selection) over every file in the landing folder."""
    settings, db = _prepare()
    _run_and_report(selection, settings, db)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(as_json: bool) -> None:
    """Database in use, row counts, files, last materializations and check results."""
    report = collect_status()
    if as_json:
        click.echo(json.dumps(report, indent=2, default=str))
        return
    click.echo(f"database: {report['database']}")
    click.echo(f"landing:  {report['landing_dir']}")
    click.echo("tables:")
    for table, n in report["tables"].items():
        click.echo(f"  {table:<40} {'-' if n is None else n:>10}")
    click.echo("files:")
    for f in report["files"] or [{"source_file": "(none loaded yet)"}]:
        if "rows_read" in f:
            click.echo(f"  {f['source_file']:<40} read {f['rows_read']}, loaded {f['rows_loaded']}, "
                       f"quarantined {f['rows_quarantined']} ({f['loaded_at']})")
        else:
            click.echo(f"  {f['source_file']}")
    click.echo("last materializations:")
    for key, when in report["materializations"].items():
        click.echo(f"  {key:<40} {when or 'never'}")
    states = [c["status"] for c in report["checks"].values()]
    click.echo(f"checks: {len(states)} ({', '.join(f'{states.count(s)} {s}' for s in CHECK_STATES)})")
    skipped: dict[str, int] = {}
    for key, state in report["checks"].items():
        if state["status"] == "failed":
            click.echo(f"  {key:<60} failed: {state['message']}")
        elif state["status"] == "skipped":  # one line per cause, not one per check
            skipped[state["reason"]] = skipped.get(state["reason"], 0) + 1
        elif state["status"] != "passed":
            click.echo(f"  {key:<60} {state['status']}")
    for reason, n in skipped.items():
        click.echo(f"  {n} check{'s' if n > 1 else ''} skipped: {reason}")
    _echo_models(report["models"])


def _echo_models(models: dict[str, dict], indent: str = "") -> None:
    """One line per model: what serves (a trained model or a baseline, named) and the latest decision."""
    click.echo(f"{indent}models (registry alias champion):")
    for m in models.values():
        decision = f": {m['last_decision']}" if m.get("last_decision") else ""
        if m.get("champion") is None:
            click.echo(f"{indent}  {m['name']:<18} {m.get('error') or 'no champion yet'}{decision}")
        else:
            click.echo(f"{indent}  {m['name']:<18} v{m['champion']:<4} {m.get('model_kind', 'model'):<26} "
                       f"{m['primary_metric']} {m['value']:.4f}{decision}")


CHECK_STATES = ("passed", "failed", "warning", "running", "skipped", "not run")


def collect_status() -> dict:
    import dagster as dg

    from titans_assets import runner
    from titans_assets.definitions import defs
    from titans_assets.lib.ml.tracking import Registry
    from titans_assets.lib.status import champion_summary, file_summary, table_counts

    settings, db = _prepare()
    instance = runner.get_instance()
    graph = defs.resolve_asset_graph()
    keys = sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string())
    latest = instance.get_latest_materialization_events(keys)
    checks = runner.check_statuses(instance, graph.asset_check_keys)
    for state in checks.values():
        state["at"] = _iso(state["at"]) if state["at"] else None
    return {
        "database": db.redacted(),
        "landing_dir": str(settings.landing_dir),
        "home": str(settings.home),
        "tables": table_counts(db),
        "files": file_summary(db),
        "materializations": {
            k.to_user_string(): (_iso(latest[k].timestamp) if latest.get(k) else None) for k in keys
        },
        "checks": checks,
        "checks_failed": [k for k, v in checks.items() if v["status"] == "failed"],
        "models": champion_summary(Registry.from_settings(settings, db)),
        "generated_at": _iso(time.time()),
        "dagster_version": dg.__version__,
    }


@main.command()
@click.option("--port", type=int, default=8580, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--no-serve", is_flag=True, help="Only generate the site (into $TITANS_HOME/dbt-docs).")
def docs(port: int, host: str, no_serve: bool) -> None:
    """Generate the dbt docs site from the live database and serve it locally."""
    from titans_assets.defs.transform.project import DBT_EXECUTABLE, titans_dbt_project

    settings, _ = _prepare()
    target = settings.home / "dbt-docs"
    base = [DBT_EXECUTABLE, "--no-use-colors", "docs"]
    common = ["--project-dir", str(titans_dbt_project.project_dir), "--profiles-dir",
              str(titans_dbt_project.profiles_dir), "--target-path", str(target)]
    click.echo("generating dbt docs ...")
    done = subprocess.run([*base, "generate", *common], capture_output=True, text=True)
    if done.returncode != 0:
        last = [ln for ln in (done.stdout + done.stderr).splitlines() if ln.strip()][-1:] or ["dbt failed"]
        raise RuntimeError(f"dbt docs generate failed: {last[0]}")
    click.echo(f"site written to {target}")
    if no_serve:
        return
    click.echo(f"serving dbt docs at http://{host}:{port} (Ctrl-C to stop)")
    # Serving static files needs no database: let the embedded server go before becoming dbt.
    from titans_assets.lib.db import stop_embedded

    stop_embedded()
    os.execv(DBT_EXECUTABLE, [DBT_EXECUTABLE, "docs", "serve", *common, "--port", str(port), "--host", host,
                              "--no-browser"])


@main.command()
@click.option("--port", type=int, default=5000, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
def mlflow(port: int, host: str) -> None:
    """Serve the MLflow UI (runs, metrics, plots, the model registry) on this project's store."""
    from titans_assets.lib.ml.tracking import Registry

    settings, db = _prepare()
    registry = Registry.from_settings(settings, db)
    if not registry.tracking_uri.startswith("postgresql"):
        click.echo(f"MLflow tracking server: {registry.tracking_uri}")
        return
    click.echo(f"MLflow UI on http://{host}:{port} (store: {db.redacted()} -> {db.dbname}_mlflow)")
    # No job runner: its consumer processes are for MLflow's GenAI jobs and outlive a Ctrl-C.
    os.environ["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    exe = Path(sys.executable).with_name("mlflow")
    sys.exit(run_until_child_exits([str(exe) if exe.exists() else "mlflow", "server", "--host", host,
                                    "--port", str(port), "--workers", "1",
                                    "--backend-store-uri", registry.tracking_uri,
                                    "--default-artifact-root", registry.artifact_root]))


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True,
                                "help_option_names": []})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def dagster(args: tuple[str, ...]) -> None:
    """Run the `dagster` CLI against this project's instance and database, e.g.
    `titans dagster dev -w workspace.yaml` or `titans dagster definitions validate -w workspace.yaml`."""
    _prepare()
    exe = Path(sys.executable).with_name("dagster")
    sys.exit(run_until_child_exits([str(exe) if exe.exists() else "dagster", *args]))


def run_until_child_exits(argv: list[str]) -> int:
    """Run a long-lived child (e.g. `dagster dev`) and let it shut down its own children on Ctrl-C or
    SIGTERM: the signal is passed on and we wait, instead of killing it and orphaning its servers.
    Our exit handlers (which release the embedded PostgreSQL) run after the child is gone.

    The handlers are installed before the child starts: a handled signal is reset to the default in
    the child, while an ignored one would stay ignored. That matters when we were started with SIGINT
    ignored (a background job of a script: `titans dagster ... &`): Dagster handles SIGTERM as it
    handles SIGINT, so a child inheriting the ignored SIGINT would ignore SIGTERM as well."""
    started: list[subprocess.Popen] = []
    early: list[int] = []  # a signal that came before the child existed

    def forward(signum, frame):
        if not started:
            early.append(signum)
        elif started[0].poll() is None:
            started[0].send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        # Its own process group: a Ctrl-C reaches it once, through us, not twice.
        started.append(subprocess.Popen(argv, process_group=0))
        for signum in early:
            started[0].send_signal(signum)
        return started[0].wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _prepare():
    from titans_assets import runner

    return runner.prepare_environment()


def _run_and_report(selection: str | None, settings, db) -> None:
    from titans_assets import runner
    from titans_assets.lib.ml.tracking import Registry
    from titans_assets.lib.status import champion_summary, file_summary, table_counts

    log_dir = settings.home / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"run-{datetime.now(UTC):%Y%m%dT%H%M%S}.log"
    click.echo(f"database: {db.redacted()}")
    click.echo("materializing" + (f" {selection}" if selection else " the whole graph")
               + f" (full log: {log_path}) ...")
    with _output_to(log_path) as (out, err):
        def lost(failure) -> None:
            """The embedded server died under the run: its storage is gone with it, nothing more can be
            recorded, and Dagster's storage would retry for half a minute. End now, in one line."""
            click.echo(f"error: {failure.line()}", file=err)
            err.flush()
            out.flush()
            _end_now(1)

        summary = runner.materialize(selection, on_event=lambda line: click.echo(line, file=out), on_lost=lost)
    files = file_summary(db)
    tables = table_counts(db)
    click.echo("")
    click.echo(f"run {summary.run_id} {'succeeded' if summary.success else 'FAILED'} in {summary.seconds:.1f}s")
    click.echo(f"  files: {len(files)}; rows loaded: {sum(f['rows_loaded'] for f in files)}; "
               f"quarantined: {sum(f['rows_quarantined'] for f in files)}")
    marts = {t: n for t, n in tables.items() if t.startswith("marts.")}
    click.echo("  marts: " + ", ".join(f"{t.removeprefix('marts.')}={n}" for t, n in marts.items()))
    failed, warned = summary.checks_failed, summary.checks_warning
    click.echo(f"  checks: {len(summary.checks) - len(failed) - len(warned)} passed, {len(failed)} failed, "
               f"{len(warned)} warnings")
    for name in failed:
        click.echo(f"    FAILED  {name}")
    for name in warned:
        click.echo(f"    warning {name}")
    if summary.not_materialized:
        click.echo(f"  not materialized (stopped upstream): {', '.join(summary.not_materialized)}")
    if any(k.startswith("ml/") for k in summary.materialized):
        _echo_models(champion_summary(Registry.from_settings(settings, db)), indent="  ")
    if not summary.success:
        from titans_assets.lib.errors import CodedError

        raise CodedError(summary.failure())


@contextlib.contextmanager
def _output_to(log_path: Path):
    """Everything a run prints, its child processes (dbt) included, goes to the log file, at the level
    of file descriptors; yields the terminal's stdout and stderr for the progress lines and the error."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    out = os.fdopen(os.dup(saved[0]), "w", buffering=1)
    err = os.fdopen(os.dup(saved[1]), "w", buffering=1)
    with open(log_path, "w") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                yield out, err
        finally:
            log.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            out.close()
            err.close()


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


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="seconds")


if __name__ == "__main__":
    main()
