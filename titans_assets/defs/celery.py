"""The same graph on Celery workers: the code location's definitions, unchanged, with dagster-celery's
executor as the default executor (the optional `celery` dependency group: `uv sync --group celery`).

Each step of a run becomes a Celery task; a worker (`dagster-celery worker start -A dagster_celery.app`)
imports this module, rebuilds the job from it and runs the step against the same Dagster instance
(DAGSTER_HOME's dagster.yaml: storage in PostgreSQL) and the same warehouse. The broker, the result
backend and the queue come from run config (`execution.config`, see `execution_config`), the same block
the workers read with `dagster-celery worker start -y`.

    dagster dev -m titans_assets.defs.celery -a celery_defs     # every run of this location on Celery
"""

from __future__ import annotations

import sys
from pathlib import Path

import dagster as dg
from dagster_celery import celery_executor

from titans_assets.definitions import defs

CELERY_JOB = "titans_celery"

# The default executor of this location (UI launches, sensors' runs) and a named job over every asset
# (the implicit asset job's name is reserved, so it cannot be rebuilt by a worker from a function).
celery_defs = dg.Definitions.merge(
    defs,
    dg.Definitions(
        executor=celery_executor,
        jobs=[
            dg.define_asset_job(CELERY_JOB, selection=dg.AssetSelection.all(), executor_def=celery_executor)
        ],
    ),
)


def celery_asset_job() -> dg.JobDefinition:
    """Every asset of the graph (select a subset at launch), run step by step on Celery workers.
    Module-level, so `dg.reconstructable(celery_asset_job)` points the workers at it."""
    return celery_defs.resolve_job_def(CELERY_JOB)


def execution_config(
    broker: str, queue: str = "dagster", backend: str | None = None, result_expires: int = 3600
) -> dict:
    """The executor's `execution.config` block, which is also the workers' `-y` YAML (under
    `execution: config:`): broker, result backend (the broker unless given), the queue steps go to, and
    one step at a time per worker process (a step is a whole dbt build or a model fit)."""
    return {
        "broker": broker,
        "backend": backend or broker,
        "config_source": {
            "task_default_queue": queue,
            "worker_concurrency": 1,
            "worker_prefetch_multiplier": 1,
            "result_expires": result_expires,
        },
    }


def worker_argv(config_yaml: Path, queue: str, name: str) -> list[str]:
    """The command line of one worker (this venv's `dagster-celery`) on `queue`, named `name`, with the
    executor's YAML; `-i` imports this location once, before Celery forks its pool process."""
    executable = Path(sys.executable).parent / "dagster-celery"
    start = [str(executable), "worker", "start", "-A", "dagster_celery.app", "-y", str(config_yaml)]
    return [*start, "-q", queue, "-n", name, "-i", "titans_assets.defs.celery", "-l", "INFO"]
