"""A CSV of uncategorised transactions -> category requests -> a downloadable CSV with predictions.

The file is read like a bank export (lib/csv_contract: encoding, delimiter, header aliases, amount
formats): Date (ISO), Description and Amount are required; Reference and Payment Method are used
when present; every other column is kept and returned untouched. Rows that cannot be read are
listed with their line number and reason, never guessed.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from titans_assets.lib.csv_contract import ContractError, decode, map_header, parse_amount, sniff_delimiter
from titans_assets.lib.serving.validation import TEXT_LIMITS

MAX_ROWS = 20_000
REQUIRED = ("Date", "Description", "Amount")
FIELDS = {
    "Date": "date",
    "Description": "description",
    "Amount": "amount",
    "Reference": "reference",
    "Payment Method": "payment_method",
}
_ISO = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:[T ][0-9:.+\-Z]*)?$")


@dataclass
class Upload:
    rows: pd.DataFrame  # the file's columns as written, plus line_number
    requests: list[dict]  # one CategoryRequest per row of `rows`
    rejected: pd.DataFrame  # line_number, reason


def read_uncategorised(data: bytes, max_rows: int = MAX_ROWS) -> Upload:
    text, _ = decode(data)
    if not text.strip():
        raise ContractError("E003 invalid input: file: the file is empty")
    first = next(iter(io.StringIO(text, newline="")))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sniff_delimiter(first))
    header = next(reader)
    known, _ = map_header(header)
    missing = [c for c in REQUIRED if c not in known]
    if missing:
        raise ContractError(
            f"E003 invalid input: file: missing column(s) {', '.join(missing)} (header read as {header!r})"
        )
    kept, requests, rejected = [], [], []
    for line, record in enumerate(reader, start=2):
        if not any(cell.strip() for cell in record):
            continue
        if len(kept) >= max_rows:
            raise ContractError(f"E003 invalid input: file: more than {max_rows:,} rows; split it")
        cells = record + [""] * (len(header) - len(record))
        value = {arg: cells[known[name]].strip() if name in known else "" for name, arg in FIELDS.items()}
        try:
            requests.append(_request(**value))
        except ValueError as exc:
            rejected.append({"line_number": line, "reason": str(exc)})
            continue
        kept.append({"line_number": line, **{h: cells[i] for i, h in enumerate(header) if i < len(cells)}})
    rows = pd.DataFrame(kept, columns=["line_number", *header])
    return Upload(rows, requests, pd.DataFrame(rejected, columns=["line_number", "reason"]))


def _request(date: str, description: str, amount: str, reference: str, payment_method: str) -> dict:
    m = _ISO.match(date)
    if not m:
        raise ValueError(f"Date: expected YYYY-MM-DD, got {date[:40]!r}")
    try:
        day = dt.date.fromisoformat(m.group(1))
    except ValueError:
        raise ValueError(f"Date: not a calendar date: {date[:40]!r}") from None
    if not description:
        raise ValueError("Description: empty")
    if not amount:
        raise ValueError("Amount: empty")
    value = float(parse_amount(amount))  # ValueError names the amount
    out = {"amount": value, "description": description[: TEXT_LIMITS["description"]], "date": day.isoformat()}
    if reference:
        out["reference"] = reference[: TEXT_LIMITS["reference"]]
    if payment_method:
        out["payment_method"] = payment_method[: TEXT_LIMITS["payment_method"]]
    return out


def with_predictions(rows: pd.DataFrame, predictions: list[dict], top: int = 3) -> pd.DataFrame:
    """The uploaded rows with predicted_category, confidence and the next alternatives."""
    if len(predictions) != len(rows):
        raise ValueError(f"{len(predictions)} predictions for {len(rows)} rows")
    out = rows.copy()
    out["predicted_category"] = [p["prediction"] for p in predictions]
    out["confidence"] = [
        round(p["confidence"], 4) if p.get("confidence") is not None else None for p in predictions
    ]
    out["alternatives"] = [
        "; ".join(
            f"{a['category']} ({a['confidence']:.2f})"
            for a in [a for a in (p.get("alternatives") or []) if a["category"] != p["prediction"]][:top]
        )
        for p in predictions
    ]
    return out


# CSV injection (OWASP): a spreadsheet opening the export runs a cell that starts with one of these as a
# formula (`=HYPERLINK(...)`, `@SUM(...)`, `-2+3+cmd|...`). A text cell that does gets a leading single
# quote, which spreadsheets show as text. Text that is a plain number (an upload's `-54.99`) is left as
# it is: it cannot run anything, and it stays a number; numeric columns are never touched.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"^[+-]?(?:\d+(?:[.,]\d+)?|\d{1,3}(?:,\d{3})+(?:\.\d+)?|\.\d+)(?:[eE][+-]?\d+)?$")


def neutralise_formula(value):
    """The one rule for every CSV the dashboard exports: a text cell a spreadsheet would run as a formula
    gets a leading `'`; anything else comes back unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_START) and not _PLAIN_NUMBER.match(value):
        return "'" + value
    return value


def to_csv(frame: pd.DataFrame) -> bytes:
    """The frame as CSV with formulas neutralised in its text cells and its header (an upload's own)."""
    safe = frame.copy()
    safe.columns = [neutralise_formula(str(c)) for c in frame.columns]
    for i, dtype in enumerate(frame.dtypes):
        if pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype):
            safe.isetitem(i, frame.iloc[:, i].map(neutralise_formula))
    # CRLF rows (RFC 4180): a cell holding a bare CR is then quoted, so no reader takes it for a row end.
    return safe.to_csv(index=False, lineterminator="\r\n").encode()


def neutralise_csv(data: bytes, text_columns: Sequence[bool]) -> bytes:
    """CSV bytes (a header, then rows, e.g. PostgreSQL's COPY ... CSV) with `neutralise_formula` applied
    to the columns flagged as text; numbers, dates and the header are written back as they came."""
    reader = csv.reader(io.StringIO(data.decode(), newline=""))
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")  # quotes a cell with a bare CR (see to_csv)
    header = next(reader, None)
    if header is None:
        return data
    writer.writerow(header)
    text = [i for i, flag in enumerate(text_columns) if flag]
    for row in reader:
        for i in text:
            row[i] = neutralise_formula(row[i])
        writer.writerow(row)
    return out.getvalue().encode()
