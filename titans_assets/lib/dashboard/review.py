"""The Review page's data and actions: the queue of transactions worth a look (ranked by
lib/categories/review.py), category corrections written through lib/categories/corrections.record_correction
(actor 'dashboard'), and the learned rules the corrections proposed (lib/categories/rules).

The queue reads marts.fct_transactions_enriched (the category every row ends up with, and where it came
from) beside app.category_corrections as it is now: a row corrected a moment ago leaves the queue at
once, before the next materialization rebuilds the mart. Parameterized SQL only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pandas as pd

from titans_assets.lib.categories import corrections as C
from titans_assets.lib.categories import review as R
from titans_assets.lib.categories import rules as RL
from titans_assets.lib.db import Database

ENRICHED = "marts.fct_transactions_enriched"
PREDICTIONS = "predictions.transaction_categories"
ACTOR = "dashboard"
PAGE_ROWS = 20
CHANGE_ROWS = 200  # rows of the Transactions table offered for a category change


def _frame(db: Database, query: str, params=()) -> pd.DataFrame:
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(query, list(params))
        return pd.DataFrame(cur.fetchall(), columns=[d.name for d in cur.description])


def _exists(db: Database, table: str) -> bool:
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT to_regclass(%s) IS NOT NULL", (table,))
        return bool(cur.fetchone()[0])


def enriched_ready(db: Database) -> bool:
    return _exists(db, ENRICHED)


def _open_rows(db: Database) -> pd.DataFrame:
    """Expenses a model categorised, or nothing did, and nobody corrected since the mart was built;
    with the prediction's top-3 alternatives when the predictions table holds them."""
    C.ensure_tables(db)
    top3 = (
        f"LEFT JOIN {PREDICTIONS} p ON p.transaction_id = e.transaction_id"
        if _exists(db, PREDICTIONS)
        else "LEFT JOIN (SELECT NULL::text AS transaction_id, NULL::jsonb AS top3) p ON false"
    )
    return _frame(
        db,
        f"""
        SELECT e.transaction_id, e.txn_date, e.account, e.description, e.merchant, e.amount::float8 AS amount,
               e.category_display AS predicted, e.category_source, e.category_confidence::float8 AS confidence,
               e.model_version, p.top3
        FROM {ENRICHED} e
        LEFT JOIN app.category_corrections c ON c.transaction_id = e.transaction_id
        {top3}
        WHERE c.transaction_id IS NULL AND e.txn_type = 'Expense' AND NOT coalesce(e.is_transfer, false)
          AND coalesce(e.category_source, 'none') <> ALL(%s)
        ORDER BY e.transaction_id""",
        (list(R.SETTLED_SOURCES),),
    )  # noqa: S608 (constant table names)


def labelled_merchants(db: Database) -> set[str]:
    """Merchant keys (review.merchant_key) with a labelled row: the export's label or a correction."""
    C.ensure_tables(db)
    seen = _frame(
        db,
        f"""
        SELECT DISTINCT e.merchant, CASE WHEN e.merchant IS NULL THEN e.description END AS description
        FROM {ENRICHED} e LEFT JOIN app.category_corrections c ON c.transaction_id = e.transaction_id
        WHERE c.transaction_id IS NOT NULL OR e.category_source IN ('export', 'correction')""",
    )  # noqa: S608
    return set(R.merchant_key(seen["merchant"], seen["description"]))


def queue(
    db: Database, limit: int | None = PAGE_ROWS, weights: R.ReviewWeights = R.DEFAULT_WEIGHTS
) -> pd.DataFrame:
    """The review queue, best first: transaction_id, txn_date, account, description, merchant, amount,
    predicted (None when nothing categorised it), confidence, alternatives (list of categories),
    new_merchant, review_score, and merchant_key."""
    rows = _open_rows(db)
    rows["alternatives"] = [_alternatives(t) for t in rows.pop("top3")]
    return R.rank(rows, labelled_merchants(db), weights, limit=limit).reset_index(drop=True)


def _alternatives(top3) -> list[str]:
    if top3 is None:
        return []
    items = json.loads(top3) if isinstance(top3, str) else top3
    out = []
    for item in items or []:
        name = item.get("category") if isinstance(item, dict) else item
        if name and name not in out:
            out.append(str(name))
    return out


def queue_size(db: Database) -> int:
    return len(_open_rows(db))


def categories(db: Database) -> list[str]:
    """Every category a row shows (the enriched mart, else the export's labels) or a correction named,
    as written, for the change select."""
    C.ensure_tables(db)
    shown = (
        f"SELECT category_display AS c FROM {ENRICHED} WHERE category_display IS NOT NULL"
        if enriched_ready(db)
        else "SELECT category_raw AS c FROM marts.fct_transactions"
    )
    names = _frame(db, f"{shown} UNION SELECT category FROM app.category_corrections")  # noqa: S608
    return sorted({c for c in names["c"] if c}, key=str.lower)


def row_label(row) -> str:
    """One transaction in a select: date, description, amount, category."""
    category = row.get("category") if hasattr(row, "get") else None
    return (
        f"{row['txn_date']} · {str(row['description'])[:60]} · {float(row['amount']):,.2f}"
        f" · {category or 'no category'}"
    )


@dataclass(frozen=True)
class Saved:
    corrections: list[C.Correction]
    proposed: list[RL.Rule]  # learned rules these corrections proposed


def correct(db: Database, changes: dict[str, str]) -> Saved:
    """Write each transaction_id -> category through record_correction (actor 'dashboard'), then let
    the corrections propose learned rules (three consistent corrections of one merchant)."""
    done = [C.record_correction(db, tid, category, ACTOR) for tid, category in changes.items()]
    return Saved(done, RL.propose_rules(db) if done else [])


def accept(db: Database, rows: pd.DataFrame) -> Saved:
    """Accept the predicted category of each row (rows without a prediction are left out)."""
    rows = rows[rows["predicted"].notna()]
    return correct(db, dict(zip(rows["transaction_id"], rows["predicted"])))


def merchant_rows(db: Database, merchant_key: str) -> pd.DataFrame:
    """The open rows of one merchant (review.merchant_key), for a bulk accept."""
    rows = queue(db, limit=None)
    return rows[rows["merchant_key"] == merchant_key]


def proposed_rules(db: Database) -> pd.DataFrame:
    """Learned rules waiting for a decision, with their evidence: rule_id, payee, category, evidence
    (consistent corrections), matches (open queue rows of that merchant the rule would settle), rule."""
    rules = [r for r in RL.stored_rules(db, RL.LEARNED) if r.status == RL.PROPOSED]
    if not rules:
        return pd.DataFrame(columns=["rule_id", "payee", "category", "evidence", "rule"])
    return pd.DataFrame(
        {
            "rule_id": [r.rule_id for r in rules],
            "payee": [r.payee for r in rules],
            "category": [r.category for r in rules],
            "evidence": [r.evidence for r in rules],
            "rule": [r.describe() for r in rules],
        }
    )


def rule_evidence(db: Database, payee: str) -> pd.DataFrame:
    """The corrections behind a learned rule: the merchant's corrected transactions."""
    C.ensure_tables(db)
    return _frame(
        db,
        """
        SELECT t.txn_date, t.description, t.amount::float8 AS amount, c.category, c.corrected_by, c.corrected_at
        FROM app.category_corrections c JOIN marts.fct_transactions t ON t.transaction_id = c.transaction_id
        WHERE t.merchant = %s ORDER BY c.corrected_at""",
        (payee,),
    )


def decide(db: Database, rule_id: str, accept_rule: bool) -> RL.Rule:
    """Accept or reject a learned rule (a conflict with an applying rule: RuleConflictError, E003)."""
    return RL.decide_rule(db, rule_id, accept_rule)
