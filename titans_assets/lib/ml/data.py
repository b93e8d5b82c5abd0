"""Training data out of the warehouse: the clean marts, read with COPY (1M rows in seconds)."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from titans_assets.lib.db import Database

# The models compute their features themselves (lib/ml/features.py, shared with serving): they read
# the clean mart's transactions that are not transfers between the user's own accounts (the dbt
# feature table features.ml_transaction_features holds the same rows; it is built for analysis only).
TRANSACTIONS_TABLE = ("marts", "fct_transactions")
DAILY_TABLE = ("features", "ml_daily_cashflow")
TRANSACTION_COLUMNS = (
    "transaction_id",
    "txn_date",
    "account",
    "source_file",
    "line_number",
    "txn_type",
    "description",
    "amount",
    "category",
    "payment_method",
    "reference",
    "merchant",
)
REPORTING_AMOUNT = "amount_reporting"  # fct_transactions' amount in TITANS_REPORTING_CURRENCY
# The label as the user wrote it (`Food & Dining` beside the normalized `food_dining`): the category
# model answers in this spelling (category.display_spellings).
MART_COLUMNS = ("category_raw",)
TEXT_COLUMNS = (
    "transaction_id",
    "account",
    "source_file",
    "txn_type",
    "description",
    "category",
    "payment_method",
    "reference",
    "merchant",
    "category_raw",
)


def _copy_out(db: Database, query) -> io.StringIO:
    """The rows of a SELECT (a psycopg2 `sql.Composed`) as CSV with a header."""
    from psycopg2 import sql

    copy = sql.SQL("COPY ({query}) TO STDOUT WITH (FORMAT csv, HEADER)").format(query=query)
    buf = io.StringIO()
    with db.connect() as conn, conn.cursor() as cur:
        cur.copy_expert(copy, buf)
    buf.seek(0)
    return buf


def _select(table: tuple[str, str], columns: tuple[str, ...], order_by: tuple[str, ...]):
    from psycopg2 import sql

    return sql.SQL("SELECT {cols} FROM {table} ORDER BY {order}").format(
        cols=sql.SQL(", ").join(map(sql.Identifier, columns)),
        table=sql.Identifier(*table),
        order=sql.SQL(", ").join(map(sql.Identifier, order_by)),
    )


def transactions_query(table: tuple[str, str] = TRANSACTIONS_TABLE):
    """The model columns and MART_COLUMNS of every transaction that is not a transfer, oldest first.
    `amount` is the amount in the reporting currency (`amount_reporting`): the models train on converted
    amounts, measured against a model per currency in docs/models.md ("Per currency or converted")."""
    from psycopg2 import sql

    def column(name: str):
        if name == "amount":
            return sql.SQL("{} AS {}").format(sql.Identifier(REPORTING_AMOUNT), sql.Identifier("amount"))
        return sql.Identifier(name)

    return sql.SQL("SELECT {cols} FROM {table} WHERE NOT is_transfer ORDER BY {order}").format(
        cols=sql.SQL(", ").join(map(column, TRANSACTION_COLUMNS + MART_COLUMNS)),
        table=sql.Identifier(*table),
        order=sql.SQL(", ").join(map(sql.Identifier, ("txn_date", "source_file", "line_number"))),
    )


def load_transactions(db: Database, table: tuple[str, str] = TRANSACTIONS_TABLE) -> pd.DataFrame:
    """Every clean transaction, oldest first, with the columns the models read (and `category_raw`,
    the label as written, for display)."""
    buf = _copy_out(db, transactions_query(table))
    # Text stays text (an empty reference is '', not NaN); NULL arrives as an empty field -> None.
    frame = pd.read_csv(
        buf,
        dtype={c: object for c in TEXT_COLUMNS},
        keep_default_na=False,
        na_values={"amount": [""], "line_number": [""]},
    )
    for c in ("category", "payment_method", "merchant", "category_raw"):
        frame[c] = frame[c].where(frame[c] != "", None)
    frame["txn_date"] = pd.to_datetime(frame["txn_date"])
    # The label is the user's correction where there is one (app.category_corrections), else the export's.
    from titans_assets.lib.categories.corrections import with_corrected_labels

    return with_corrected_labels(db, frame)


def load_daily_series(db: Database, table: tuple[str, str] = DAILY_TABLE) -> pd.DataFrame:
    """Daily net flow, every calendar day."""
    buf = _copy_out(db, _select(table, ("metric_date", "net_flow"), ("metric_date",)))
    frame = pd.read_csv(buf)
    frame["metric_date"] = pd.to_datetime(frame["metric_date"])
    return frame


def anomaly_labels(frame: pd.DataFrame, labels_dir: Path) -> pd.Series | None:
    """Ground truth for injected anomalies (the generator's anomalies.csv, by file and line), aligned
    with `frame`; None when there is no ground truth for these files (real data)."""
    path = labels_dir / "anomalies.csv"
    if not path.exists():
        return None
    truth = pd.read_csv(path, usecols=["file", "line_number"], dtype={"file": object})
    manifest_files = set(truth["file"])
    if not manifest_files & set(frame["source_file"]):
        return None
    keys = pd.MultiIndex.from_frame(truth.rename(columns={"file": "source_file"}))
    rows = pd.MultiIndex.from_arrays([frame["source_file"], frame["line_number"].astype("int64")])
    return pd.Series(rows.isin(keys), index=frame.index, name="is_anomaly")


def frame_from_csvs(landing_dir: Path) -> pd.DataFrame:
    """Warehouse-shaped transactions straight from CSV files, without a database: the input
    contract's parser, then the same label normalization and merchant as dbt (via features.prepare),
    and `category_raw`, the label as written, as load_transactions reads it.
    For tests and benchmarks of the models; the pipeline reads the dbt feature table instead."""
    from titans_assets.lib.csv_contract import parse_csv
    from titans_assets.lib.loader import account_of, landing_files, source_file_key
    from titans_assets.lib.ml.features import Vocabulary, prepare

    parts = []
    for path in landing_files(landing_dir):
        rows = parse_csv(path.read_bytes()).rows
        key = source_file_key(landing_dir, path)
        parts.append(rows.assign(source_file=key, account=account_of(key)))
    raw = pd.concat(parts, ignore_index=True)
    frame = prepare(raw, Vocabulary.from_seeds())
    frame["category"] = frame["category"].where(raw["txn_type"] == "Expense", None)
    # the label as written (trimmed, like dbt's stg_transactions), kept where the warehouse keeps it
    written = raw["category"].astype(object).where(raw["category"].notna(), "").astype(str).str.strip()
    frame["category_raw"] = written.where(frame["category"].notna() & (written != ""), None)
    frame = frame.assign(
        transaction_id=raw.index.astype(str),
        account=raw["account"],
        source_file=raw["source_file"],
        line_number=raw["line_number"].astype("int64"),
        txn_type=raw["txn_type"],
    )
    # Transfers between the user's own accounts are not spending, income or flow: left out, as the
    # feature tables leave out what dbt pairs (lib/transfers.py holds the same rule).
    from titans_assets.lib.transfers import transfer_mask

    frame = frame[~transfer_mask(frame)]
    return frame.sort_values(["txn_date", "source_file", "line_number"], kind="stable").reset_index(drop=True)


def daily_series(frame: pd.DataFrame) -> pd.DataFrame:
    """Daily net flow over every calendar day of `frame` (what features.ml_daily_cashflow holds)."""
    net = frame.groupby("txn_date")["amount"].sum()
    days = pd.date_range(net.index.min(), net.index.max(), freq="D")
    return pd.DataFrame({"metric_date": days, "net_flow": net.reindex(days, fill_value=0.0).to_numpy()})
