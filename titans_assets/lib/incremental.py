"""When an incremental dbt build must be a full refresh instead.

The incremental models (dbt_project/macros/incremental.sql) follow the data: a run recomputes only what
the changed files touch. Nothing in them follows the project itself, so a change to the models,
macros or seeds (label aliases, exchange rates) or to an environment variable the models read would
leave rows built by the old definition beside rows built by the new one. The dbt step therefore
fingerprints the project and builds with `--full-refresh` whenever the fingerprint differs from the
one recorded by the last complete build (or none is recorded).

The blocking GX suite on fct_transactions follows the same chain (`check_scope`): after an
incremental build it checks only the rows that build replaced, and only when it passed on the table as
the build before left it, with the same expectations and parameters; otherwise every row.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from titans_assets.lib.db import Database

# Environment variables the models read (env_var() in models/*.sql).
MODEL_ENV = ("TITANS_REPORTING_CURRENCY",)
STATE_SCHEMA = "intermediate"
STATE_TABLE = "titans_build_state"
CHECK_STATE_TABLE = "titans_check_state"
# The rows an incremental build replaced (side 'new': as they are now); empty after a full refresh.
CHANGES_TABLE = "intermediate.int_transaction_changes"
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


def _table(name: str):
    from psycopg2 import sql

    return sql.Identifier(STATE_SCHEMA, name)


def _ensure_state(cur) -> None:
    """The build and check state tables. A warehouse built before builds had ids gets the columns."""
    from psycopg2 import sql

    cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(STATE_SCHEMA)))
    cur.execute(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (fingerprint text, built_at timestamptz NOT NULL DEFAULT now(), "
            "build_id bigint NOT NULL DEFAULT 0, mode text NOT NULL DEFAULT 'unknown')"
        ).format(_table(STATE_TABLE))
    )
    if not _has_build_ids(cur):
        cur.execute(
            sql.SQL(
                "ALTER TABLE {} ALTER COLUMN fingerprint DROP NOT NULL, "
                "ADD COLUMN build_id bigint NOT NULL DEFAULT 0, ADD COLUMN mode text NOT NULL DEFAULT 'unknown'"
            ).format(_table(STATE_TABLE))
        )
    cur.execute(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (suite text PRIMARY KEY, build_id bigint NOT NULL, "
            "passed boolean NOT NULL, definition text NOT NULL, tomorrow date NOT NULL, "
            "checked_at timestamptz NOT NULL DEFAULT now())"
        ).format(_table(CHECK_STATE_TABLE))
    )


def _exists(cur, name: str) -> bool:
    cur.execute("SELECT to_regclass(%s)", (f"{STATE_SCHEMA}.{name}",))
    return cur.fetchone()[0] is not None


def _has_build_ids(cur) -> bool:
    cur.execute(
        "SELECT 1 FROM information_schema.columns WHERE table_schema = %s AND table_name = %s "
        "AND column_name = 'build_id'",
        (STATE_SCHEMA, STATE_TABLE),
    )
    return cur.fetchone() is not None


def recorded_fingerprint(db: Database) -> str | None:
    """The fingerprint of the last complete build, or None (never built, or the state is gone)."""
    from psycopg2 import sql

    with db.connect() as conn, conn.cursor() as cur:
        if not _exists(cur, STATE_TABLE):
            return None
        cur.execute(sql.SQL("SELECT fingerprint FROM {} LIMIT 1").format(_table(STATE_TABLE)))
        row = cur.fetchone()
    return row[0] if row else None


# A build's mode: how its dbt step ended. Only after an 'incremental' one may a check read the slice.
RUNNING, INCREMENTAL, FULL, PARTIAL = "running", "incremental", "full", "partial"


@dataclass(frozen=True)
class BuildState:
    build_id: int  # counts the dbt steps that started
    mode: str  # RUNNING (it started and did not end: it failed, or it runs), INCREMENTAL, FULL, PARTIAL


def build_mode(args: list[str], complete: bool) -> str:
    """How a dbt step that succeeded ended: FULL or INCREMENTAL when it built every incremental model
    (`complete`), else PARTIAL."""
    if not complete:
        return PARTIAL
    return FULL if "--full-refresh" in args else INCREMENTAL


def start_build(db: Database) -> int:
    """A dbt step starts: the next build id, in mode RUNNING until `finish_build`."""
    from psycopg2 import sql

    with db.connect() as conn, conn.cursor() as cur:
        _ensure_state(cur)
        cur.execute(
            sql.SQL("UPDATE {} SET build_id = build_id + 1, mode = %s RETURNING build_id").format(
                _table(STATE_TABLE)
            ),
            (RUNNING,),
        )
        row = cur.fetchone()
        if row is None:
            cur.execute(
                sql.SQL("INSERT INTO {} (fingerprint, build_id, mode) VALUES (NULL, 1, %s)").format(
                    _table(STATE_TABLE)
                ),
                (RUNNING,),
            )
            row = (1,)
        conn.commit()
    return int(row[0])


def finish_build(db: Database, build_id: int, mode: str, fingerprint: str | None = None) -> None:
    """The dbt step `build_id` ended in `mode`; a complete build (every incremental model) also records
    the project `fingerprint` it was built from."""
    from psycopg2 import sql

    with db.connect() as conn, conn.cursor() as cur:
        _ensure_state(cur)
        cur.execute(
            sql.SQL(
                "UPDATE {} SET mode = %s, fingerprint = coalesce(%s, fingerprint), built_at = now() "
                "WHERE build_id = %s"
            ).format(_table(STATE_TABLE)),
            (mode, fingerprint, build_id),
        )
        conn.commit()


def build_state(db: Database) -> BuildState | None:
    """How the last dbt step went, or None (never built, or built before builds had ids)."""
    from psycopg2 import sql

    with db.connect() as conn, conn.cursor() as cur:
        if not _exists(cur, STATE_TABLE) or not _has_build_ids(cur):
            return None
        cur.execute(sql.SQL("SELECT build_id, mode FROM {} LIMIT 1").format(_table(STATE_TABLE)))
        row = cur.fetchone()
    return BuildState(int(row[0]), row[1]) if row else None


@dataclass(frozen=True)
class CheckState:
    build_id: int  # the build whose table the suite last ran on
    passed: bool
    definition: str  # sha256 of the suite's expectations and non-date parameters
    tomorrow: dt.date  # the newest date the txn_date range allowed


def check_state(db: Database, suite: str) -> CheckState | None:
    from psycopg2 import sql

    with db.connect() as conn, conn.cursor() as cur:
        if not _exists(cur, CHECK_STATE_TABLE):
            return None
        cur.execute(
            sql.SQL("SELECT build_id, passed, definition, tomorrow FROM {} WHERE suite = %s").format(
                _table(CHECK_STATE_TABLE)
            ),
            (suite,),
        )
        row = cur.fetchone()
    return CheckState(int(row[0]), bool(row[1]), row[2], row[3]) if row else None


def record_check(db: Database, suite: str, state: CheckState) -> None:
    from psycopg2 import sql

    with db.connect() as conn, conn.cursor() as cur:
        _ensure_state(cur)
        cur.execute(
            sql.SQL(
                "INSERT INTO {} (suite, build_id, passed, definition, tomorrow) VALUES (%s, %s, %s, %s, %s) "
                "ON CONFLICT (suite) DO UPDATE SET build_id = EXCLUDED.build_id, passed = EXCLUDED.passed, "
                "definition = EXCLUDED.definition, tomorrow = EXCLUDED.tomorrow, checked_at = now()"
            ).format(_table(CHECK_STATE_TABLE)),
            (suite, state.build_id, state.passed, state.definition, state.tomorrow),
        )
        conn.commit()


def check_scope(
    build: BuildState | None, last: CheckState | None, definition: str, tomorrow: dt.date
) -> tuple[bool, str]:
    """Whether a suite may check only the rows the current build replaced, and why (or why not).

    Exact for row-local expectations when the build is incremental (every other row is as the build
    before left it) and the suite passed on that table (`last.build_id` is the build before) with the
    same definition; the date range may only have widened since (a later today)."""
    if build is None or build.mode != INCREMENTAL:
        return (
            False,
            f"all rows: the last build was {build.mode if build else 'not recorded'}, not incremental",
        )
    if last is None:
        return False, "all rows: no earlier check recorded"
    if last.definition != definition:
        return False, "all rows: the expectations or their parameters changed"
    if tomorrow < last.tomorrow:
        return False, "all rows: today moved back since the last check"
    if not last.passed:
        return False, "all rows: the last check failed"
    if last.build_id != build.build_id - 1:
        before = build.build_id - 1
        return (
            False,
            f"all rows: the last check ran on build {last.build_id}, not on the one before ({before})",
        )
    return (
        True,
        f"the rows build {build.build_id} replaced and the newest day (passed on build {last.build_id})",
    )


def run_suite_scoped(db: Database, suite_factory, params: Mapping, today: dt.date):
    """quality.run_suite of `suite_factory()`, or of `suite_factory(changed=CHANGES_TABLE)` (the rows
    the build replaced) when `check_scope` allows it; the result's `scope` says which and why. Records
    the outcome for the next run's decision."""
    from titans_assets.lib import quality

    whole = suite_factory()
    defined = quality.definition(whole, params)
    tomorrow = quality.resolve_params(whole, params, today)["tomorrow"]
    build = build_state(db)
    sliced, why = check_scope(build, check_state(db, whole.name), defined, tomorrow)
    spec = suite_factory(changed=CHANGES_TABLE) if sliced else whole
    result = quality.run_suite(spec, db.sqlalchemy_url(), params=params, today=today)
    result.scope = why
    if build is not None:
        record_check(db, whole.name, CheckState(build.build_id, result.success, defined, tomorrow))
    return result


# The dbt step sets this for the dbt process: "1" lets the row-local generic tests of fct_transactions
# read only the rows the build replaces (dbt_project/macros/test_slice.sql).
TEST_SLICE_ENV = "TITANS_DBT_TEST_SLICE"


def dbt_test_scope(args: list[str], complete: bool, previous: BuildState | None) -> tuple[bool, str]:
    """Whether this build's row-local dbt tests may read only the rows it replaces, and why: when it is
    an incremental build of every incremental model, and the build before it ended complete (a dbt
    build ends only when every test passed, so every other row passed them on the table it left)."""
    if "--full-refresh" in args:
        return False, "dbt tests on whole tables: a full refresh"
    if not complete:
        return False, "dbt tests on whole tables: not every incremental model is built"
    if previous is None or previous.mode not in (INCREMENTAL, FULL):
        ended = previous.mode if previous else "not recorded"
        return False, f"dbt tests on whole tables: the build before ended {ended}, not complete"
    return (
        True,
        f"dbt tests of fct_transactions on the replaced rows (build {previous.build_id} passed them all)",
    )


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
