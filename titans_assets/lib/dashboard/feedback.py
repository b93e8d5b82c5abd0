"""Flags a user marked as expected: `app.anomaly_feedback`, one row per transaction.

The dashboard creates the table itself (idempotently, under an advisory lock so two sessions that
start at once do not race on CREATE). It lives in its own schema `app`, which no dbt run or loader
touches, and is keyed by marts.fct_transactions.transaction_id, which is stable across reloads (an
md5 of the transaction's natural key), so a mark survives `titans materialize`.
"""

from __future__ import annotations

import datetime as dt

from titans_assets.lib.db import Database

TABLE = "app.anomaly_feedback"
_LOCK_KEY = 7_240_001  # pg_advisory_xact_lock key for the DDL below
DDL = """
CREATE SCHEMA IF NOT EXISTS app;
CREATE TABLE IF NOT EXISTS app.anomaly_feedback (
    transaction_id text             PRIMARY KEY,
    verdict        text             NOT NULL DEFAULT 'expected' CHECK (verdict = 'expected'),
    anomaly_score  double precision,
    model_version  text,
    note           text,
    marked_at      timestamptz      NOT NULL DEFAULT now()
);
"""


def ensure_table(db: Database) -> None:
    db.run_ddl(DDL, _LOCK_KEY)


def mark_expected(
    db: Database,
    transaction_ids: list[str],
    scores: dict[str, float] | None = None,
    model_version: str | None = None,
    note: str | None = None,
) -> int:
    """Mark flags as expected (again: the latest mark wins). Returns how many were written."""
    if not transaction_ids:
        return 0
    ensure_table(db)
    scores = scores or {}
    with db.connect() as conn, conn.cursor() as cur:
        for tid in transaction_ids:
            cur.execute(
                """INSERT INTO app.anomaly_feedback (transaction_id, anomaly_score, model_version, note)
                   VALUES (%s, %s, %s, %s)
                   ON CONFLICT (transaction_id) DO UPDATE SET anomaly_score = EXCLUDED.anomaly_score,
                       model_version = EXCLUDED.model_version, note = EXCLUDED.note, marked_at = now()""",
                (str(tid), scores.get(tid), model_version, note),
            )
    return len(transaction_ids)


def unmark(db: Database, transaction_ids: list[str]) -> int:
    if not transaction_ids:
        return 0
    ensure_table(db)
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "DELETE FROM app.anomaly_feedback WHERE transaction_id = ANY(%s)",
            ([str(t) for t in transaction_ids],),
        )
        return cur.rowcount


def expected(db: Database, transaction_ids: list[str] | None = None) -> dict[str, dt.datetime]:
    """transaction_id -> when it was marked expected (all of them, or those among `transaction_ids`)."""
    ensure_table(db)
    with db.connect() as conn, conn.cursor() as cur:
        if transaction_ids is None:
            cur.execute("SELECT transaction_id, marked_at FROM app.anomaly_feedback")
        else:
            cur.execute(
                "SELECT transaction_id, marked_at FROM app.anomaly_feedback WHERE transaction_id = ANY(%s)",
                ([str(t) for t in transaction_ids],),
            )
        return dict(cur.fetchall())


def expected_ids(db: Database) -> set[str]:
    """Every transaction marked expected (read only: no table yet means no marks)."""
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT to_regclass(%s) IS NOT NULL", (TABLE,))
        if not cur.fetchone()[0]:
            return set()
        cur.execute("SELECT transaction_id FROM app.anomaly_feedback")
        return {r[0] for r in cur.fetchall()}
