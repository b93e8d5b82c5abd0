"""`titans serve`: the BentoML service (bento/service.py) on the configured database and MLflow registry.

It runs `bentoml serve bento.service:TitansService` as a child process (BentoML's supervisor starts
the workers), with an environment that pins everything relative (TITANS_HOME, the database URL, the
key file) to absolute values, since the workers run from the project directory. The number of
workers reaches BentoML through BENTOML_CONFIG_OPTIONS. API keys: TITANS_API_KEYS or
TITANS_API_KEYS_FILE; without either the command refuses to start, except with --dev, which
generates a key and prints it.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

import click

from titans_assets.lib.paths import PROJECT_ROOT, executable
from titans_assets.lib.supervisor import run_until_child_exits

SERVICE = "bento.service:TitansService"
SERVICE_NAME = "titans"


def service_environment(
    environ: dict[str, str],
    settings,
    database_url: str,
    workers: int,
    access_log: bool,
    dev_key: str | None = None,
) -> dict[str, str]:
    """The child's environment (pure: tested without starting anything)."""
    env = settings.child_env(environ, database_url)
    if env.get("TITANS_API_KEYS_FILE"):
        env["TITANS_API_KEYS_FILE"] = str(Path(env["TITANS_API_KEYS_FILE"]).resolve())
    if dev_key:
        env["TITANS_API_KEYS"] = ",".join(k for k in (env.get("TITANS_API_KEYS"), dev_key) if k)
    options = [env.get("BENTOML_CONFIG_OPTIONS", "").strip(), f"services.{SERVICE_NAME}.workers={workers}"]
    if not access_log:
        options.append(f"services.{SERVICE_NAME}.logging.access.enabled=false")
    env["BENTOML_CONFIG_OPTIONS"] = " ".join(o for o in options if o)
    env.setdefault("BENTOML_DO_NOT_TRACK", "True")
    return env


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", type=click.IntRange(1, 65535), default=3000, show_default=True)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Worker processes (each loads the champions and polls the registry).",
)
@click.option("--dev", is_flag=True, help="Development: generate an API key and print it.")
@click.option(
    "--access-log/--no-access-log", default=True, show_default=True, help="BentoML's per-request access log."
)
@click.option(
    "--hash-key",
    metavar="KEY",
    default=None,
    help="Print the SHA-256 line for KEY to put in a TITANS_API_KEYS_FILE, and exit.",
)
def serve(host: str, port: int, workers: int, dev: bool, access_log: bool, hash_key: str | None) -> None:
    """Serve the champion models over HTTP (BentoML): /predict/*, /models/*, /health, /metrics."""
    from titans_assets.lib.serving.auth import MIN_KEY_LENGTH, KeyRing
    from titans_assets.lib.serving.auth import hash_key as _hash
    from titans_assets.lib.settings import Settings

    if hash_key is not None:
        if len(hash_key) < MIN_KEY_LENGTH:
            raise click.BadParameter(
                f"a key needs at least {MIN_KEY_LENGTH} characters", param_hint="--hash-key"
            )
        click.echo(_hash(hash_key))
        return
    keys = KeyRing.from_env(dict(os.environ))  # a malformed key file fails here, not in every worker
    dev_key = None
    if dev:
        dev_key = secrets.token_urlsafe(24)
    elif not keys:
        raise click.UsageError(
            "no API keys: set TITANS_API_KEYS (comma-separated) or TITANS_API_KEYS_FILE "
            "(SHA-256 lines, see --hash-key), or run with --dev"
        )
    from titans_assets.lib.db import get_database

    settings = Settings.from_env()
    db = get_database(settings)  # starts the embedded server if that is the configuration
    db.ping()  # E001 now rather than in every worker
    env = service_environment(dict(os.environ), settings, db.url, workers, access_log, dev_key)
    click.echo(f"database: {db.redacted()}")
    click.echo(f"serving {SERVICE} on http://{host}:{port} with {workers} worker(s)")
    if dev_key:
        click.echo(f"dev API key (this run only): {dev_key}")
        click.echo(f"  curl -H 'Authorization: Bearer {dev_key}' http://{host}:{port}/models/status")
    os.environ.clear()
    os.environ.update(env)
    sys.exit(
        run_until_child_exits(
            [
                executable("bentoml"),
                "serve",
                SERVICE,
                "--working-dir",
                str(PROJECT_ROOT),
                "--host",
                host,
                "--port",
                str(port),
            ]
        )
    )
