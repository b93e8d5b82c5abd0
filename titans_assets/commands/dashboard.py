"""`titans dashboard`: the Streamlit dashboard (titans_assets/dashboard/app.py) on the configured database.

Like `titans serve`, it prepares the environment (database, Dagster home, dbt manifest: the Data
health page reads `titans status`), then runs `streamlit run` as a child process with everything
relative pinned to absolute values, headless and without usage statistics. Predictions come from
the service at TITANS_SERVICE_URL with the key TITANS_API_KEY.
"""

from __future__ import annotations

import os
import sys

import click

from titans_assets.lib.paths import PROJECT_ROOT
from titans_assets.lib.supervisor import run_until_child_exits

APP = PROJECT_ROOT / "titans_assets" / "dashboard" / "app.py"


def dashboard_environment(environ: dict[str, str], settings, database_url: str) -> dict[str, str]:
    """The child's environment (pure: tested without starting anything)."""
    env = settings.child_env(environ, database_url)
    env["STREAMLIT_BROWSER_GATHER_USAGE_STATS"] = "false"
    return env


def streamlit_argv(host: str, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--server.address",
        host,
        "--server.port",
        str(port),
        "--server.fileWatcherType",
        "none",
        "--client.toolbarMode",
        "minimal",
    ]


@click.command("dashboard")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", type=click.IntRange(1, 65535), default=8501, show_default=True)
def dashboard(host: str, port: int) -> None:
    """The dashboard (Streamlit): overview, transactions, predictions, anomalies, cash flow, data health."""
    from titans_assets.lib.dashboard.service import ServiceClient
    from titans_assets.runner import prepare_environment

    settings, db = prepare_environment()
    env = dashboard_environment(dict(os.environ), settings, db.url)
    service = ServiceClient.from_env(env)
    click.echo(f"database: {db.redacted()}")
    click.echo(
        f"predictions from {service.base_url}"
        + ("" if service.api_key else " (TITANS_API_KEY is not set: prediction pages will say so)")
    )
    click.echo(f"dashboard on http://{host}:{port} (Ctrl-C to stop)")
    os.environ.clear()
    os.environ.update(env)
    sys.exit(run_until_child_exits(streamlit_argv(host, port)))
