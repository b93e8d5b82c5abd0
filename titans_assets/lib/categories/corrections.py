"""A person's category corrections: the latest per transaction in app.category_corrections (it wins
over the export's label in the marts and is a training label), every one in app.category_correction_log.

Keyed by the stable transaction_id of marts.fct_transactions, so a correction survives rebuilds and
re-imports. The category is kept as the user wrote it (display spelling); matching normalizes it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from importlib import resources

from titans_assets.lib.db import Database

_LOCK_KEY = 7_240_019  # the advisory lock lib/balances.ensure_tables takes: one DDL at a time
MAX_CATEGORY_LENGTH = 64
MAX_ACTOR_LENGTH = 128


class CorrectionError(ValueError):
    """E003: a correction that cannot be stored (unknown transaction, bad category). One line."""

    code = "E003"


@dataclass(frozen=True)
class Correction:
    transaction_id: str
    old: str | None  # the category the transaction showed before (correction, else the marts')
    new: str
    actor: str
    at: dt.datetime


def ensure_tables(db: Database) -> None:
    """The category tables (sql/app_categories.sql); idempotent, serialised with the other app DDL."""
    db.run_ddl(resources.files("titans_assets.lib").joinpath("sql/app_categories.sql").read_text(), _LOCK_KEY)


def clean_category(category: object) -> str:
    """The category as stored: trimmed, inner whitespace runs collapsed; empty or too long -> E003."""
    if not isinstance(category, str):
        raise CorrectionError(f"E003 invalid input: category must be text, not {type(category).__name__}")
    text = " ".join(category.split())
    if not text:
        raise CorrectionError("E003 invalid input: category is empty")
    if len(text) > MAX_CATEGORY_LENGTH:
        raise CorrectionError(f"E003 invalid input: category is longer than {MAX_CATEGORY_LENGTH} characters")
    return text


def _clean_actor(actor: object) -> str:
    text = actor.strip() if isinstance(actor, str) else ""
    if not text or len(text) > MAX_ACTOR_LENGTH:
        raise CorrectionError(f"E003 invalid input: corrected_by must be 1..{MAX_ACTOR_LENGTH} characters")
    return text


def _exists(cur, schema: str, table: str) -> bool:
    cur.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{schema}.{table}",))
    return bool(cur.fetchone()[0])


def _shown_category(cur, transaction_id: str) -> str | None:
    """What the marts show for the transaction now: the enriched mart's category when it is built,
    else the export's label as written."""
    if _exists(cur, "marts", "fct_transactions_enriched"):
        cur.execute(
            "SELECT category_display FROM marts.fct_transactions_enriched WHERE transaction_id = %s",
            (transaction_id,),
        )
        row = cur.fetchone()
        if row is not None:
            return row[0]
    cur.execute(
        "SELECT category_raw FROM marts.fct_transactions WHERE transaction_id = %s", (transaction_id,)
    )
    row = cur.fetchone()
    return row[0] if row else None


def record_correction(db: Database, transaction_id: str, category: str, actor: str) -> Correction:
    """Set the category of one transaction (again: the latest wins; the log keeps both)."""
    new = clean_category(category)
    who = _clean_actor(actor)
    if not isinstance(transaction_id, str) or not transaction_id.strip():
        raise CorrectionError("E003 invalid input: transaction_id is empty")
    ensure_tables(db)
    with db.connect() as conn, conn.cursor() as cur:
        if not _exists(cur, "marts", "fct_transactions"):
            raise CorrectionError(
                "E003 invalid input: transaction_id: no transactions are loaded yet "
                "(run `titans materialize` first)"
            )
        cur.execute("SELECT 1 FROM marts.fct_transactions WHERE transaction_id = %s", (transaction_id,))
        if cur.fetchone() is None:
            raise CorrectionError(
                f"E003 invalid input: transaction_id {transaction_id[:80]!r} is not a known transaction"
            )
        # one writer per transaction at a time: the old value read here is the one replaced
        cur.execute("SELECT pg_advisory_xact_lock(hashtext('category_correction:' || %s))", (transaction_id,))
        cur.execute(
            "SELECT category FROM app.category_corrections WHERE transaction_id = %s", (transaction_id,)
        )
        row = cur.fetchone()
        old = row[0] if row else _shown_category(cur, transaction_id)
        cur.execute(
            """INSERT INTO app.category_corrections (transaction_id, category, previous_category, corrected_by)
               VALUES (%s, %s, %s, %s)
               ON CONFLICT (transaction_id) DO UPDATE SET category = EXCLUDED.category,
                   previous_category = EXCLUDED.previous_category, corrected_by = EXCLUDED.corrected_by,
                   corrected_at = now()
               RETURNING corrected_at""",
            (transaction_id, new, old, who),
        )
        at = cur.fetchone()[0]
        cur.execute(
            """INSERT INTO app.category_correction_log
                         (transaction_id, old_category, new_category, corrected_by, corrected_at)
                       VALUES (%s, %s, %s, %s, %s)""",
            (transaction_id, old, new, who, at),
        )
    return Correction(transaction_id, old, new, who, at)


def corrections_since(db: Database, since: dt.datetime | None) -> int:
    """Corrections made after `since` (every one in the log; all of them when None)."""
    ensure_tables(db)
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM app.category_correction_log WHERE %s::timestamptz IS NULL"
            " OR corrected_at > %s::timestamptz",
            (since, since),
        )
        return int(cur.fetchone()[0])


def latest_corrections(db: Database) -> list[tuple[str, str]]:
    """(transaction_id, category) of every corrected transaction, the latest correction each."""
    ensure_tables(db)
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT transaction_id, category FROM app.category_corrections ORDER BY transaction_id")
        return [(t, c) for t, c in cur.fetchall()]


def retrain_reason(count: int, threshold: int) -> str | None:
    """The retrain signal's reason when `count` corrections since the last training reach `threshold`."""
    if threshold > 0 and count >= threshold:
        return f"{count} category corrections since the last training (threshold {threshold})"
    return None


def with_corrected_labels(db: Database, frame):
    """Training labels = the user's correction, else the export's label: `frame` (load_transactions'
    columns) with `category` (normalized like dbt's labels) and `category_raw` (as written) replaced on
    the corrected expense rows. Never a rule's or a model's output. Unchanged when nothing is corrected."""
    import pandas as pd

    from titans_assets.lib.ml.features import Vocabulary

    with db.connect() as conn, conn.cursor() as cur:
        if not _exists(cur, "app", "category_corrections"):
            return frame
        cur.execute("SELECT transaction_id, category FROM app.category_corrections")
        rows = cur.fetchall()
    if not rows or frame.empty:
        return frame
    corrected = pd.Series(dict(rows), dtype=object)
    text = frame["transaction_id"].map(corrected)
    mask = text.notna() & (frame["txn_type"] == "Expense")
    if not mask.any():
        return frame
    out = frame.copy()
    out.loc[mask, "category"] = Vocabulary.from_seeds().category(text[mask]).to_numpy()
    out.loc[mask, "category_raw"] = text[mask].to_numpy()
    return out
