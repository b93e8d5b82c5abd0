"""`titans metrics`: the pipeline's Prometheus exporter (lib/observability/pipeline.py) on /metrics.

Prometheus scrapes it beside the service (docker/prometheus/prometheus.yml): rows loaded and
quarantined per file, check outcomes, the champions' metrics beside their best baselines, data
freshness, the retrain signal. Each scrape reads the warehouse at most once per --cache-seconds.
"""

from __future__ import annotations

import signal
import threading

import click


@click.command("metrics")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", type=click.IntRange(1, 65535), default=9108, show_default=True)
@click.option(
    "--cache-seconds",
    type=click.FloatRange(min=0),
    default=15.0,
    show_default=True,
    help="Read the warehouse and Dagster's tables at most this often.",
)
@click.option(
    "--registry-seconds",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    help="Read the MLflow registry at most this often.",
)
def metrics(host: str, port: int, cache_seconds: float, registry_seconds: float) -> None:
    """Export the pipeline's metrics for Prometheus (files, checks, champions, freshness) on /metrics."""
    from prometheus_client import CollectorRegistry, start_http_server

    from titans_assets.lib.db import get_database
    from titans_assets.lib.observability.logs import use_json
    from titans_assets.lib.observability.pipeline import PipelineCollector
    from titans_assets.lib.settings import Settings

    use_json()
    settings = Settings.from_env()
    db = get_database(settings)
    db.ping()  # E001 now, not on the first scrape
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PipelineCollector(settings, db, cache_seconds, registry_seconds))
    server, thread = start_http_server(port, addr=host, registry=registry)
    click.echo(f"database: {db.redacted()}")
    click.echo(f"pipeline metrics on http://{host}:{port}/metrics")
    stop = threading.Event()
    for s in (signal.SIGTERM, signal.SIGINT):
        signal.signal(s, lambda signum, frame: stop.set())
    stop.wait()
    server.shutdown()
    thread.join(timeout=5)
