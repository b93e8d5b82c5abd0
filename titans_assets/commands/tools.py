"""`titans docs`, `titans mlflow` and `titans dagster`: the dbt docs site, the MLflow UI and the Dagster
CLI, each on this project's database and store."""

from __future__ import annotations

import os
import subprocess
import sys

import click

from titans_assets.lib.paths import executable
from titans_assets.lib.supervisor import run_until_child_exits


def _prepare():
    from titans_assets import runner

    return runner.prepare_environment()


@click.command()
@click.option("--port", type=int, default=8580, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--no-serve", is_flag=True, help="Only generate the site (into $TITANS_HOME/dbt-docs).")
def docs(port: int, host: str, no_serve: bool) -> None:
    """Generate the dbt docs site from the live database and serve it locally."""
    from titans_assets.defs.transform.project import DBT_EXECUTABLE, titans_dbt_project

    settings, db = _prepare()
    env = os.environ | db.dbt_env()  # the connection, for dbt_project/profiles.yml
    target = settings.home / "dbt-docs"
    base = [DBT_EXECUTABLE, "--no-use-colors", "docs"]
    common = [
        "--project-dir",
        str(titans_dbt_project.project_dir),
        "--profiles-dir",
        str(titans_dbt_project.profiles_dir),
        "--target-path",
        str(target),
    ]
    click.echo("generating dbt docs ...")
    done = subprocess.run([*base, "generate", *common], capture_output=True, text=True, env=env)
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
    os.execve(
        DBT_EXECUTABLE,
        [DBT_EXECUTABLE, "docs", "serve", *common, "--port", str(port), "--host", host, "--no-browser"],
        env,
    )


@click.command()
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
    sys.exit(
        run_until_child_exits(
            [
                executable("mlflow"),
                "server",
                "--host",
                host,
                "--port",
                str(port),
                "--workers",
                "1",
                "--backend-store-uri",
                registry.tracking_uri,
                "--default-artifact-root",
                registry.artifact_root,
            ]
        )
    )


@click.command(
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []}
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def dagster(args: tuple[str, ...]) -> None:
    """Run the `dagster` CLI against this project's instance and database, e.g.
    `titans dagster dev -w workspace.yaml` or `titans dagster definitions validate -w workspace.yaml`."""
    _prepare()
    sys.exit(run_until_child_exits([executable("dagster"), *args]))
