"""Batch scoring of the champions into the warehouse: the `predictions.*` tables.

`refresh` writes transaction_categories, transaction_anomalies and cashflow_forecast with whatever
serves (`Registry.champion`), through the champion's own `predict_columns` (the service's function),
so a row scored here and the same row sent to /predict/... get the same answer. Tables are rewritten
whole in one transaction (TRUNCATE + binary COPY): readers see old rows or new, never a mix.

Design notes (each table, day chunks for anomalies): docs/model-design.md#titans_assetslibmlbatchpy
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from titans_assets.lib import pg_copy
from titans_assets.lib.db import Database
from titans_assets.lib.ml.catalog import BY_KEY

SCHEMA = "predictions"
CATEGORIES = "transaction_categories"
ANOMALIES = "transaction_anomalies"
CASHFLOW = "cashflow_forecast"
_LOCK_KEY = 7_240_019  # pg_advisory_xact_lock key for the DDL below
DDL = """
CREATE SCHEMA IF NOT EXISTS predictions;
CREATE TABLE IF NOT EXISTS predictions.transaction_categories (
    transaction_id text PRIMARY KEY,
    category       text,
    confidence     double precision,
    top3           jsonb,
    model_version  text,
    scored_at      timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS predictions.transaction_anomalies (
    transaction_id text PRIMARY KEY,
    score          double precision,
    is_anomaly     boolean,
    reasons        jsonb,
    risk_level     text,
    model_version  text,
    scored_at      timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS predictions.cashflow_forecast (
    forecast_date  date PRIMARY KEY,
    horizon_day    integer,
    predicted_net  double precision,
    lower          double precision,
    upper          double precision,
    model_version  text,
    scored_at      timestamptz NOT NULL DEFAULT now());
"""
CHUNK_ROWS = 200_000  # rows per scoring chunk (anomalies: whole days, so a chunk may hold a little more)
DEFAULT_HORIZON = 30


def request_columns(key: str) -> list[str]:
    """The warehouse columns a request for model `key` carries (`txn_date` for the request's `date`)."""
    return list(BY_KEY[key].example[0])


# Beside the request's columns the anomaly model reads what the warehouse knows and a request cannot
# say: the account (repeats are per account) and the type (income or expense, not the sign's guess).
ANOMALY_CONTEXT = ("account", "txn_type")


@dataclass
class Written:
    """What a prediction asset reports: rows written, the model version, and why nothing was written."""

    table: str
    rows: int
    model_version: str | None = None
    reason: str | None = None  # set when the table was left empty (no champion, no rows)
    extra: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- scoring (pure)
def expense_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows the category model answers for: expenses (`txn_type`), as in training."""
    return frame[frame["txn_type"].astype(str).str.strip().str.lower().eq("expense")].reset_index(drop=True)


def _json_names(names: np.ndarray) -> np.ndarray:
    """Each distinct name JSON-quoted once."""
    codes, uniques = pd.factorize(names.ravel())
    quoted = np.array([json.dumps(str(u)) for u in uniques], dtype=object)
    return quoted[codes].reshape(names.shape)


def top_json(alternatives: np.ndarray) -> pa.Array:
    """`predict_columns`'s alternatives (per row a list of {category, confidence}) as JSON text."""
    n = len(alternatives)
    if n == 0:
        return pa.array([], pa.string())
    k = len(alternatives[0])
    if any(len(a) != k for a in alternatives):  # ragged (never from a category model): one row at a time
        return pa.array([json.dumps(list(a)) for a in alternatives], pa.string())
    names = np.array([a["category"] for alts in alternatives for a in alts], dtype=object).reshape(n, k)
    probs = np.array([a["confidence"] for alts in alternatives for a in alts], dtype=float).reshape(n, k)
    return top_json_arrays(names, probs)


def top_json_arrays(names: np.ndarray, probs: np.ndarray) -> pa.Array:
    """The top-k as JSON text per row, `[{"category": ..., "confidence": ...}, ...]`, from (rows x k)
    arrays, built column-wise: each distinct name quoted once, the numbers formatted by Arrow (the
    shortest text that reads back as the same double: valid JSON for finite numbers)."""
    import pyarrow.compute as pc

    n, k = names.shape
    if n == 0:
        return pa.array([], pa.string())
    quoted = _json_names(names)
    parts: list[Any] = ["["]
    for j in range(k):
        parts += [
            ("" if j == 0 else ", ") + '{"category": ',
            pa.array(quoted[:, j], pa.string()),
            ', "confidence": ',
            pc.cast(pa.array(np.asarray(probs[:, j], dtype=float)), pa.string()),
            "}",
        ]
    parts.append("]")
    return pc.binary_join_element_wise(*parts, "")


def score_categories(model, frame: pd.DataFrame) -> dict[str, Any]:
    """The category champion on expense rows: transaction_id, category, confidence, top3 (JSON text).
    A category model's `top` (the arrays its `predict_columns` answers from) spares building a list of
    dicts per row; any other object answers through `predict_columns`."""
    rows = expense_rows(frame)
    out: dict[str, Any] = {
        "transaction_id": rows["transaction_id"].astype(str).to_numpy(dtype=object),
        "category": np.zeros(0, dtype=object),
        "confidence": np.zeros(0),
        "top3": pa.array([], pa.string()),
    }
    if rows.empty:
        return out
    cats, conf, top = [], [], []
    for a, b in _chunks(len(rows), CHUNK_ROWS):
        chunk = rows.iloc[a:b][request_columns("category")]
        if hasattr(model, "top"):
            names, probs = model.top(chunk, 3)
            names = np.vectorize(str, otypes=[object])(names)
            cats.append(names[:, 0])
            conf.append(np.asarray(probs[:, 0], dtype=float))
            top.append(top_json_arrays(names, probs))
        else:
            pred = predict_columns(model, chunk, top_k=3)
            cats.append(np.asarray(pred["prediction"], dtype=object))
            conf.append(np.asarray(pred["confidence"], dtype=float))
            top.append(top_json(pred["alternatives"]))
    out.update(
        category=np.concatenate(cats),
        confidence=np.concatenate(conf),
        top3=pa.chunked_array(top, pa.string()).combine_chunks(),
    )
    return out


def _chunks(n: int, size: int) -> list[tuple[int, int]]:
    return [(a, min(a + size, n)) for a in range(0, n, size)]


def day_chunks(days: np.ndarray, max_rows: int) -> list[tuple[int, int]]:
    """[start, stop) ranges over rows sorted by day: whole days, about `max_rows` rows each (a chunk
    closes at the first day boundary at or after max_rows; a day is never split)."""
    n = len(days)
    if n == 0:
        return []
    day = np.asarray(days).astype("datetime64[D]")
    starts = np.flatnonzero(np.r_[True, day[1:] != day[:-1]])  # the first row of each day
    out, a = [], 0
    while a < n:
        b = int(starts[np.searchsorted(starts, a + max_rows)]) if a + max_rows < n else n
        b = n if b <= a else b
        out.append((a, b))
        a = b
    return out


def predict_columns(model, rows: pd.DataFrame, **kwargs) -> dict[str, Any]:
    """The model's output columns, as the service gets them (a model object without `predict_columns`
    answers through `predict`, as in lib/serving/predict.py)."""
    own = getattr(model, "predict_columns", None)
    if own is not None:
        return own(rows, **kwargs)
    out = model.predict(rows, **kwargs)
    return {c: out[c].to_numpy() if c != "reasons" else list(out[c]) for c in out.columns}


def score_anomalies(model, frame: pd.DataFrame, max_rows: int = CHUNK_ROWS) -> dict[str, Any]:
    """The anomaly champion on every row, in date order: transaction_id, score, is_anomaly, reasons
    (JSON text). Each chunk of whole days is scored with the day before and the day after it as
    context (the widest in-frame window the model reads), and only the chunk's own rows are kept."""
    columns = request_columns("anomaly") + [c for c in ANOMALY_CONTEXT if c in frame]
    day = pd.to_datetime(frame["txn_date"]).to_numpy().astype("datetime64[D]")
    order = np.argsort(day, kind="stable")
    rows, day = frame.iloc[order].reset_index(drop=True), day[order]
    ids, scores, flags, risks, reasons = [], [], [], [], []
    one = np.timedelta64(1, "D")
    for a, b in day_chunks(day, max_rows):
        lo = int(np.searchsorted(day, day[a] - one, side="left"))
        hi = int(np.searchsorted(day, day[b - 1] + one, side="right"))
        pred = predict_columns(model, rows.iloc[lo:hi][columns])
        keep = slice(a - lo, b - lo)
        ids.append(rows["transaction_id"].iloc[a:b].astype(str).to_numpy(dtype=object))
        scores.append(np.asarray(pred["anomaly_score"], dtype=float)[keep])
        flags.append(np.asarray(pred["is_anomaly"], dtype=bool)[keep])
        risks.append(np.asarray(pred["risk_level"], dtype=object)[keep])
        reasons.extend(
            "[]" if not r else json.dumps([str(x) for x in r]) for r in list(pred["reasons"])[keep]
        )
    if not ids:
        return {
            "transaction_id": np.zeros(0, dtype=object),
            "score": np.zeros(0),
            "is_anomaly": np.zeros(0, bool),
            "risk_level": np.zeros(0, dtype=object),
            "reasons": pa.array([], pa.string()),
        }
    return {
        "transaction_id": np.concatenate(ids),
        "score": np.concatenate(scores),
        "is_anomaly": np.concatenate(flags),
        "risk_level": np.concatenate(risks),
        "reasons": pa.array(reasons, pa.string()),
    }


def forecast_rows(model, horizon_days: int = DEFAULT_HORIZON) -> pd.DataFrame:
    """The cash-flow champion's next `horizon_days` days: forecast_date, horizon_day, predicted_net,
    lower, upper (the service's forecast, seasonality included)."""
    fc = model.forecast(horizon_days)
    return pd.DataFrame(
        {
            "forecast_date": pd.to_datetime(fc["date"]).dt.date,
            "horizon_day": np.arange(1, len(fc) + 1, dtype=np.int32),
            "predicted_net": fc["predicted_amount"].to_numpy(dtype=float),
            "lower": fc["lower"].to_numpy(dtype=float),
            "upper": fc["upper"].to_numpy(dtype=float),
        }
    )


# --------------------------------------------------------------------------- writing
def ensure_tables(db: Database) -> None:
    """The predictions schema and its three tables (idempotent; concurrent callers wait on a lock)."""
    db.run_ddl(DDL, _LOCK_KEY)


class _Stream:
    """A file-like object over COPY payload segments: the binary header, the segments, the trailer."""

    def __init__(self, segments: Iterable[bytes]):
        self._items: Iterator[bytes] = iter([pg_copy.HEADER, *segments, pg_copy.TRAILER])

    def read(self, size: int = -1) -> bytes:
        return next(self._items, b"")

    readline = read


def _segments(n: int, prefix: bytes, fields: list[list[pa.Array]], size: int = 100_000) -> Iterator[bytes]:
    for a, b in _chunks(n, size):
        yield pg_copy.rows(prefix, [part.slice(a, b - a) for f in fields for part in f])


def _rewrite(
    db: Database, table: str, columns: list[str], n: int, prefix: bytes, fields: list[list[pa.Array]]
) -> None:
    """TRUNCATE and COPY in one transaction: readers see the old rows or the new ones."""
    from psycopg2 import sql

    copy = sql.SQL("COPY {t} ({cols}) FROM STDIN WITH (FORMAT binary)").format(
        t=sql.Identifier(SCHEMA, table), cols=sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(sql.SQL("TRUNCATE {t}").format(t=sql.Identifier(SCHEMA, table)))
        if n:
            cur.copy_expert(copy.as_string(conn), _Stream(_segments(n, prefix, fields)))


def _texts(values: np.ndarray) -> pa.Array:
    return pa.array(np.asarray(values, dtype=object), pa.string())


def write_categories(db: Database, scored: dict[str, Any], version: str) -> int:
    n = len(scored["transaction_id"])
    _rewrite(
        db,
        CATEGORIES,
        ["model_version", "transaction_id", "category", "confidence", "top3"],
        n,
        pg_copy.row_prefix(5, str(version)),
        [
            pg_copy.text_field(_texts(scored["transaction_id"])),
            pg_copy.text_field(_texts(scored["category"])),
            pg_copy.float8_field(np.asarray(scored["confidence"], dtype=float)),
            pg_copy.jsonb_field(scored["top3"]),
        ],
    )
    return n


def write_anomalies(db: Database, scored: dict[str, Any], version: str) -> int:
    n = len(scored["transaction_id"])
    _rewrite(
        db,
        ANOMALIES,
        ["model_version", "transaction_id", "score", "is_anomaly", "risk_level", "reasons"],
        n,
        pg_copy.row_prefix(6, str(version)),
        [
            pg_copy.text_field(_texts(scored["transaction_id"])),
            pg_copy.float8_field(np.asarray(scored["score"], dtype=float)),
            pg_copy.bool_field(np.asarray(scored["is_anomaly"], dtype=bool)),
            pg_copy.text_field(_texts(scored["risk_level"])),
            pg_copy.jsonb_field(scored["reasons"]),
        ],
    )
    return n


def write_forecast(db: Database, forecast: pd.DataFrame, version: str) -> int:
    n = len(forecast)
    dates = pa.array([d.isoformat() for d in forecast["forecast_date"]], pa.string())
    _rewrite(
        db,
        CASHFLOW,
        ["model_version", "forecast_date", "horizon_day", "predicted_net", "lower", "upper"],
        n,
        pg_copy.row_prefix(6, str(version)),
        [
            pg_copy.date_field(dates),
            pg_copy.int4_field(forecast["horizon_day"].to_numpy()),
            *[
                pg_copy.float8_field(forecast[c].to_numpy(dtype=float))
                for c in ("predicted_net", "lower", "upper")
            ],
        ],
    )
    return n


# --------------------------------------------------------------------------- one asset's work
def no_champion_reason(model_name: str) -> str:
    return (
        f"no champion for {model_name} yet (cold start: the model has not been trained or promoted); "
        "the table is left empty until one is"
    )


def refresh(
    db: Database,
    key: str,
    champion,
    horizon_days: int = DEFAULT_HORIZON,
    transactions: pd.DataFrame | None = None,
) -> Written:
    """Rewrite the predictions table of model `key` (category | anomaly | cashflow) from `champion`
    (a tracking.Champion, or None: the table is emptied and the reason returned)."""
    from titans_assets.lib.ml import data

    table = {"category": CATEGORIES, "anomaly": ANOMALIES, "cashflow": CASHFLOW}[key]
    writer = {"category": write_categories, "anomaly": write_anomalies}
    ensure_tables(db)
    if champion is None:
        _rewrite(db, table, [], 0, b"", [])
        return Written(f"{SCHEMA}.{table}", 0, None, no_champion_reason(BY_KEY[key].name))
    version = str(champion.version)
    if key == "cashflow":
        forecast = forecast_rows(champion.model, horizon_days)
        n = write_forecast(db, forecast, version)
        extra = {
            "first_day": forecast["forecast_date"].iloc[0].isoformat() if n else "none",
            "total_predicted_net": round(float(forecast["predicted_net"].sum()), 2),
        }
        return Written(f"{SCHEMA}.{table}", n, version, None, extra)
    frame = data.load_transactions(db) if transactions is None else transactions
    scored = (score_categories if key == "category" else score_anomalies)(champion.model, frame)
    n = writer[key](db, scored, version)
    extra: dict[str, Any] = {"source_rows": len(frame)}
    if key == "category":
        labelled = expense_rows(frame)["category"].notna()
        extra["unlabelled_rows"] = int((~labelled).sum())
        extra["mean_confidence"] = round(float(np.mean(scored["confidence"])), 4) if n else None
    else:
        extra["flagged"] = int(np.sum(scored["is_anomaly"]))
    reason = None if n else "no rows to score"
    return Written(f"{SCHEMA}.{table}", n, version, reason, extra)
