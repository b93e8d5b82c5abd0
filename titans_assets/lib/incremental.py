"""When an incremental dbt build must be a full refresh instead.

The incremental models (dbt_project/macros/incremental.sql) follow the data: a run recomputes only what
the changed files touch. Nothing in them follows the project itself, so a change to the models,
macros or seeds (label aliases, exchange rates) or to an environment variable the models read would
leave rows built by the old definition beside rows built by the new one. The dbt step therefore
fingerprints the project and builds with `--full-refresh` whenever the fingerprint differs from the
one recorded by the last complete build (or none is recorded).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from titans_assets.lib.db import Database

# Environment variables the models read (env_var() in models/*.sql).
MODEL_ENV = ("TITANS_REPORTING_CURRENCY",)
STATE_SCHEMA = "intermediate"
STATE_TABLE = "titans_build_state"
FULL_REFRESH_TAG = "titans/full_refresh"  # a run tag: this run's dbt step builds with --full-refresh
# dbt models tagged `analysis` form this Dagster group: no automation condition, and left out of
# `titans materialize` unless selected (defs/transform/dbt.py, runner.py).
ANALYSIS_GROUP = "analysis"


def project_files(project_dir: Path) -> list[Path]:
    """The files whose content defines the models' rows (tests do not: they only read)."""
    files = [p for d in ("models", "macros", "seeds") for p in (project_dir / d).rglob("*") if p.is_file()]
    return sorted([*files, project_dir / "dbt_project.yml"])


def fingerprint(
    project_dir: Path, env: Mapping[str, str] | None = None, names: Iterable[str] = MODEL_ENV
) -> str:
    """sha256 over the project files (path and content) and the model environment variables."""
    env = os.environ if env is None else env
    digest = hashlib.sha256()
    for path in project_files(project_dir):
        digest.update(path.relative_to(project_dir).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    for name in names:
        digest.update(f"{name}={env.get(name, '')}\0".encode())
    return digest.hexdigest()


def recorded_fingerprint(db: Database) -> str | None:
    """The fingerprint of the last complete build, or None (never built, or the state is gone)."""
    from psycopg2 import sql

    with db.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT to_regclass(%s)", (f"{STATE_SCHEMA}.{STATE_TABLE}",))
        if cur.fetchone()[0] is None:
            return None
        cur.execute(
            sql.SQL("SELECT fingerprint FROM {} LIMIT 1").format(sql.Identifier(STATE_SCHEMA, STATE_TABLE))
        )
        row = cur.fetchone()
    return row[0] if row else None


def record_fingerprint(db: Database, value: str) -> None:
    """Remember that every incremental model is now built from the project with this fingerprint."""
    from psycopg2 import sql

    table = sql.Identifier(STATE_SCHEMA, STATE_TABLE)
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(STATE_SCHEMA)))
        cur.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (fingerprint text NOT NULL, "
                "built_at timestamptz NOT NULL DEFAULT now())"
            ).format(table)
        )
        cur.execute(sql.SQL("DELETE FROM {}").format(table))
        cur.execute(sql.SQL("INSERT INTO {} (fingerprint) VALUES (%s)").format(table), (value,))
        conn.commit()


def dbt_build_args(requested_full_refresh: bool, recorded: str | None, current: str) -> tuple[list[str], str]:
    """The `dbt build` arguments and why: a full refresh when asked for, or when the project changed
    since the last complete build (or none is recorded); else an incremental build."""
    if requested_full_refresh:
        return ["build", "--full-refresh"], "full refresh: asked for (--full-refresh)"
    if recorded is None:
        return ["build", "--full-refresh"], "full refresh: no complete build recorded"
    if recorded != current:
        return ["build", "--full-refresh"], "full refresh: the dbt project or its environment changed"
    return ["build"], "incremental: only what the changed files touch"
