"""What the dashboard reads from the prediction tables (predictions.*, written by the prediction
assets, lib/ml/batch.py) instead of re-scoring the warehouse through the service on every visit.

Each reader returns None when its table does not exist yet or holds nothing (the assets have not run
since a champion was promoted): the page then says so, and the anomaly and cash-flow pages fall back
to asking the service.
"""

from __future__ import annotations

import pandas as pd

from titans_assets.lib.dashboard.periods import Period
from titans_assets.lib.dashboard.queries import SCORING_COLUMNS, TRANSACTIONS, _frame, relation_exists
from titans_assets.lib.db import Database

ANOMALIES = "predictions.transaction_anomalies"
CATEGORIES = "predictions.transaction_categories"
FORECAST = "predictions.cashflow_forecast"
MAX_ROWS = 200_000  # rows of a period read from the anomaly table (the service path scores 10,000)


def _has_rows(db: Database, table: str) -> bool:
    return relation_exists(db, table) and not _frame(db, f"SELECT 1 FROM {table} LIMIT 1").empty


def anomalies(
    db: Database, period: Period, limit: int = MAX_ROWS
) -> tuple[pd.DataFrame, list[dict], list[str]] | None:
    """The period's scored transactions in date order (the most recent `limit`), their stored
    predictions in the service's response shape, and the model versions; None without a table."""
    if not _has_rows(db, ANOMALIES):
        return None
    cols = ", ".join("t.amount::float8 AS amount" if c == "amount" else f"t.{c}" for c in SCORING_COLUMNS)
    frame = _frame(
        db,
        f"""
        SELECT * FROM (
            SELECT {cols}, t.source_file, t.line_number, p.score AS anomaly_score, p.is_anomaly, p.risk_level,
                   p.reasons, p.model_version
            FROM {TRANSACTIONS} t JOIN {ANOMALIES} p ON p.transaction_id = t.transaction_id
            WHERE t.txn_date BETWEEN %s AND %s
            ORDER BY t.txn_date DESC, t.source_file DESC, t.line_number DESC LIMIT %s) s
        ORDER BY txn_date, source_file, line_number""",
        (period.start, period.end, int(limit)),
    )
    predictions = [
        {"anomaly_score": s, "is_anomaly": bool(f), "risk_level": r, "reasons": list(reasons or [])}
        for s, f, r, reasons in zip(
            frame["anomaly_score"], frame["is_anomaly"], frame["risk_level"], frame["reasons"]
        )
    ]
    versions = sorted(frame["model_version"].dropna().unique().tolist())
    rows = frame.drop(columns=["anomaly_score", "is_anomaly", "risk_level", "reasons", "model_version"])
    return rows, predictions, versions


def categorised(
    db: Database, period: Period, unlabelled_only: bool = True, limit: int = 5000
) -> pd.DataFrame | None:
    """The period's expenses with the category model's answer (the most recent `limit`, newest first):
    by default only those the export left without a category, the ones the model fills in."""
    if not _has_rows(db, CATEGORIES):
        return None
    where = "AND t.category IS NULL" if unlabelled_only else ""
    frame = _frame(
        db,
        f"""
        SELECT t.txn_date, t.account, t.description, t.amount::float8 AS amount, t.category AS export_category,
               p.category AS predicted_category, p.confidence, p.top3, p.model_version, t.transaction_id
        FROM {TRANSACTIONS} t JOIN {CATEGORIES} p ON p.transaction_id = t.transaction_id
        WHERE t.txn_date BETWEEN %s AND %s {where}
        ORDER BY t.txn_date DESC, t.source_file, t.line_number LIMIT %s""",
        (period.start, period.end, int(limit)),
    )
    frame["alternatives"] = [
        ", ".join(f"{a['category']} {a['confidence']:.0%}" for a in (top or [])[1:]) for top in frame["top3"]
    ]
    return frame.drop(columns=["top3"])


def forecast(db: Database) -> pd.DataFrame | None:
    """The stored forecast: date, predicted_amount, lower, upper (the service's forecast columns),
    horizon_day, model_version, scored_at."""
    if not _has_rows(db, FORECAST):
        return None
    frame = _frame(
        db,
        f"""
        SELECT forecast_date AS date, predicted_net AS predicted_amount, lower, upper, horizon_day, model_version,
               scored_at
        FROM {FORECAST} ORDER BY forecast_date""",
    )
    frame["date"] = pd.to_datetime(frame["date"])
    return frame
