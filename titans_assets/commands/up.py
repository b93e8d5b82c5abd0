"""`titans up`: the whole platform on this machine, in one command.

Starts the Dagster webserver and daemon (so the landing sensor, declarative automation, the retrain
sensor and the nightly schedule run), the MLflow UI, the BentoML service, the dbt docs site and the
dashboard; prints their URLs as each answers; Ctrl-C (or SIGTERM) stops all of them and their
children. Every server runs as its own `titans ...` / `dagster-...` process on the database this
command resolved (the embedded server's socket URL is passed on, so they share one server), and logs
to $TITANS_HOME/logs/up/<name>.log.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import signal
import time

import click

from titans_assets.lib.paths import PROJECT_ROOT, executable
from titans_assets.lib.supervisor import Service, Supervisor, tail

DEFAULT_PORTS = {"dagster": 3070, "mlflow": 5000, "service": 3000, "docs": 8580, "dashboard": 8501}


def plan_services(host: str, ports: dict[str, int], workers: int, with_dashboard: bool) -> list[Service]:
    """What `titans up` runs (pure: tested without starting anything)."""
    titans, workspace = executable("titans"), str(PROJECT_ROOT / "workspace.yaml")
    url = lambda name, path="": f"http://{host}:{ports[name]}{path}"  # noqa: E731
    services = [
        Service(
            "dagster",
            [executable("dagster-webserver"), "-w", workspace, "-h", host, "-p", str(ports["dagster"])],
            url("dagster"),
            url("dagster", "/server_info"),
        ),
        Service("dagster-daemon", [executable("dagster-daemon"), "run", "-w", workspace], "", ""),
        Service(
            "mlflow",
            [titans, "mlflow", "--host", host, "--port", str(ports["mlflow"])],
            url("mlflow"),
            url("mlflow", "/health"),
        ),
        Service(
            "service",
            [
                titans,
                "serve",
                "--host",
                host,
                "--port",
                str(ports["service"]),
                "--workers",
                str(workers),
                "--no-access-log",
            ],
            url("service", "/docs"),
            url("service", "/livez"),
        ),
        Service(
            "docs", [titans, "docs", "--host", host, "--port", str(ports["docs"])], url("docs"), url("docs")
        ),
    ]
    if with_dashboard:
        services.append(
            Service(
                "dashboard",
                [titans, "dashboard", "--host", host, "--port", str(ports["dashboard"])],
                url("dashboard"),
                url("dashboard", "/_stcore/health"),
            )
        )
    return services


def _set_api_keys(dev: bool) -> None:
    """TITANS_API_KEYS for the service and TITANS_API_KEY for the dashboard: the environment's, plus
    a key made for this run with --dev; without either, a usage error."""
    from titans_assets.lib.serving.auth import KeyRing

    keys = os.environ.get("TITANS_API_KEYS", "")
    if dev:
        generated = secrets.token_urlsafe(24)
        keys = ",".join(k for k in (keys, generated) if k)
        os.environ.setdefault("TITANS_API_KEY", generated)
    elif not KeyRing.from_env(dict(os.environ)):
        raise click.UsageError(
            "no API keys for the service: set TITANS_API_KEYS (and TITANS_API_KEY for the "
            "dashboard), or run `titans up --dev`"
        )
    if keys:
        os.environ["TITANS_API_KEYS"] = keys
        os.environ.setdefault("TITANS_API_KEY", keys.split(",")[0].strip())


def _watch(supervisor: Supervisor, ready_timeout: int, stopping: dict) -> str | None:
    """Print each server's URL as it answers, until a signal arrives (`stopping`); why it failed, if a
    server exited or some did not answer within `ready_timeout` seconds."""
    started = time.monotonic()
    announced = False
    while stopping["signal"] is None:
        became, exited = supervisor.poll()
        for r in became:
            click.echo(f"  {r.service.name:<15} {r.service.url}")
        if exited is not None:
            return (
                f"{exited.service.name} exited with code {exited.proc.returncode}: "
                f"{tail(exited.log) or 'no output'} (log: {exited.log})"
            )
        waiting = [r.service.name for r in supervisor.running if r.service.ready_url and not r.ready]
        if not waiting and not announced:
            click.echo(
                "all up: drop CSVs into the landing folder and watch the Dagster UI (Ctrl-C stops all)"
            )
            announced = True
        if waiting and time.monotonic() - started > ready_timeout:
            return f"not answering after {ready_timeout}s: {', '.join(waiting)} (logs: {supervisor.log_dir})"
        time.sleep(0.5)
    return None


@click.command("up")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface every server binds.")
@click.option(
    "--dagster-port", type=click.IntRange(1, 65535), default=DEFAULT_PORTS["dagster"], show_default=True
)
@click.option(
    "--mlflow-port", type=click.IntRange(1, 65535), default=DEFAULT_PORTS["mlflow"], show_default=True
)
@click.option(
    "--service-port", type=click.IntRange(1, 65535), default=DEFAULT_PORTS["service"], show_default=True
)
@click.option("--docs-port", type=click.IntRange(1, 65535), default=DEFAULT_PORTS["docs"], show_default=True)
@click.option(
    "--dashboard-port", type=click.IntRange(1, 65535), default=DEFAULT_PORTS["dashboard"], show_default=True
)
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True, help="Service workers.")
@click.option(
    "--dev", is_flag=True, help="Development: generate an API key for the service and the dashboard."
)
@click.option(
    "--ready-timeout",
    type=click.IntRange(10, 3600),
    default=300,
    show_default=True,
    help="Seconds to wait for every server to answer.",
)
def up(
    host: str,
    dagster_port: int,
    mlflow_port: int,
    service_port: int,
    docs_port: int,
    dashboard_port: int,
    workers: int,
    dev: bool,
    ready_timeout: int,
) -> None:
    """Start Dagster (webserver + daemon), MLflow, the service, the dbt docs and the dashboard; Ctrl-C stops all."""
    _set_api_keys(dev)

    from titans_assets.runner import prepare_environment

    settings, db = prepare_environment()  # the database (embedded: started here), DAGSTER_HOME
    os.environ.update(settings.child_env(dict(os.environ), db.url))
    settings.landing_dir.mkdir(parents=True, exist_ok=True)
    ports = {
        "dagster": dagster_port,
        "mlflow": mlflow_port,
        "service": service_port,
        "docs": docs_port,
        "dashboard": dashboard_port,
    }
    os.environ.setdefault("TITANS_SERVICE_URL", f"http://{host}:{service_port}")
    services = plan_services(
        host, ports, workers, with_dashboard=importlib.util.find_spec("streamlit") is not None
    )

    supervisor = Supervisor(settings.home / "logs" / "up", cwd=PROJECT_ROOT)
    stopping = {"signal": None}

    def on_signal(signum, frame):
        stopping["signal"] = signum

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    click.echo(f"database: {db.redacted()}")
    click.echo(f"landing folder: {settings.landing_dir} (drop CSV exports here)")
    if dev:
        click.echo(f"dev API key (this run only): {os.environ['TITANS_API_KEY']}")
    failed = None
    try:
        for service in services:
            supervisor.start(service)
        click.echo(f"starting {len(services)} servers (logs: {supervisor.log_dir}) ...")
        failed = _watch(supervisor, ready_timeout, stopping)
    finally:
        click.echo("stopping ...")
        killed = supervisor.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)
        click.echo("stopped" + (f" (killed after the grace period: {', '.join(killed)})" if killed else ""))
    if failed:
        from titans_assets.lib.errors import CodedError, server_failure

        raise CodedError(server_failure(failed, str(supervisor.log_dir)))
