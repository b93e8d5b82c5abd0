"""The Anomalies page's logic: a period's transactions as service requests, batched, and ranked.

The anomaly model computes part of its evidence (duplicates, bursts of small charges, too many
charges in a day) over the frame it scores, so batches are cut between days, never inside one
(unless a single day holds more than a batch), and rows go in date order.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence

import pandas as pd

from titans_assets.lib.serving.validation import MAX_BATCH, TEXT_LIMITS

MAX_SCORED = 10_000  # rows scored per page view: 10 batch requests, well inside the default rate limits
FIELDS = ("category", "description", "payment_method", "reference")


def _text(value, name: str) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value)
    if not text.strip():
        return None
    return text[: TEXT_LIMITS[name]]


def request_row(row: dict) -> dict:
    """One warehouse row as the service's AnomalyRequest (absent values left out, text within limits)."""
    day = row["txn_date"]
    out = {
        "amount": round(float(row["amount"]), 2),
        "date": day.isoformat() if isinstance(day, (dt.date, dt.datetime)) else str(day)[:10],
    }
    for name in FIELDS:
        value = _text(row.get(name), name)
        if value is not None:
            out[name] = value
    return out


def day_batches(days: Sequence, max_rows: int = MAX_BATCH) -> list[tuple[int, int]]:
    """[start, stop) index ranges over rows sorted by day: whole days per batch, at most `max_rows`
    rows each (a day larger than a batch is split, as it must be)."""
    batches: list[tuple[int, int]] = []
    n = len(days)
    start = 0
    i = 0
    while i < n:
        j = i
        while j < n and days[j] == days[i]:  # the day starting at i is [i, j)
            j += 1
        if j - start > max_rows:
            if i > start:  # close the batch before this day
                batches.append((start, i))
                start = i
            while j - start > max_rows:  # a single day larger than a batch
                batches.append((start, start + max_rows))
                start += max_rows
        i = j
    if start < n:
        batches.append((start, n))
    return batches


def requests_in_batches(frame: pd.DataFrame, max_rows: int = MAX_BATCH) -> list[list[dict]]:
    records = frame.to_dict("records")
    return [[request_row(r) for r in records[a:b]] for a, b in day_batches(list(frame["txn_date"]), max_rows)]


def scored(frame: pd.DataFrame, predictions: list[dict], expected: dict | None = None) -> pd.DataFrame:
    """The rows beside their predictions and the user's marks, highest score first."""
    if len(predictions) != len(frame):
        raise ValueError(f"{len(predictions)} predictions for {len(frame)} rows")
    expected = expected or {}
    out = frame.reset_index(drop=True).copy()
    out["anomaly_score"] = [p.get("anomaly_score") for p in predictions]
    out["risk_level"] = [p.get("risk_level") for p in predictions]
    out["is_anomaly"] = [bool(p.get("is_anomaly")) for p in predictions]
    out["reasons"] = ["; ".join(p.get("reasons") or []) for p in predictions]
    out["expected"] = out["transaction_id"].map(lambda t: t in expected)
    out["marked_at"] = out["transaction_id"].map(lambda t: expected.get(t))
    return out.sort_values(
        ["anomaly_score", "txn_date"], ascending=[False, False], kind="stable", na_position="last"
    ).reset_index(drop=True)


def flagged(ranked: pd.DataFrame, include_medium: bool = False, hide_expected: bool = False) -> pd.DataFrame:
    keep = ranked["is_anomaly"] | (include_medium & ranked["risk_level"].eq("medium"))
    if hide_expected:
        keep &= ~ranked["expected"]
    return ranked[keep].reset_index(drop=True)


def flag_label(row) -> str:
    """How a flag is named in the 'mark as expected' picker."""
    return f"{row['txn_date']} · {str(row['description'])[:40]} · {float(row['amount']):,.2f} ({row['transaction_id'][:8]})"
