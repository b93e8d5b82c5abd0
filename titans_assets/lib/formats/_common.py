"""What every statement reader shares: the record it yields and the SplitFile it becomes.

A reader turns a file into `Record`s (one per transaction, numbered by the physical line where it
starts) and hands them to `build`, which lays them out as the CSV contract's canonical columns
(ISO date, Income/Expense from the sign, signed decimal amount, description, reference...), so the
contract's own validation types them and the loader takes them unchanged. The statement data the
CSV contract has no column for (the bank's transaction id, currency, balance, the account named in
the file, the institution holding it) rides along per record and is added to each typed slice (`STATEMENT_COLUMNS`).

A record the parser could not read carries `error` and goes to quarantine with its line and raw
text; a file the parser cannot read at all is rejected whole with one E003 line (`reject`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np
import pyarrow as pa

from titans_assets.lib.csv_contract import SplitFile, _empty_table, _Table

# Per-row columns a statement adds to the contract's OUTPUT_COLUMNS (null on CSV rows).
STATEMENT_COLUMNS = ("bank_txn_id", "currency", "balance", "account", "institution")
_CANONICAL = ("Date", "Type", "Description", "Amount", "Category", "Payment Method", "Reference")
_EXTRA = ("bank code", "value date", "check number", "statement balance")


@dataclass
class Record:
    line: int  # 1-based physical line where the record starts
    raw: str  # its text as written
    date: str = ""  # ISO YYYY-MM-DD
    amount: Decimal | None = None  # signed: money out is negative
    description: str = ""
    reference: str = ""
    category: str = ""
    payment_method: str = ""
    bank_txn_id: str | None = None
    currency: str | None = None
    balance: Decimal | None = None
    account: str | None = None
    institution: str | None = None  # the bank holding the account, as the file names it
    extra: dict[str, str] = field(default_factory=dict)
    error: str | None = None  # why the parser could not read it


@dataclass
class _LazyTable(_Table):
    """A _Table whose records' raw text is made on demand (only a quarantined record's is ever read):
    `raw_of(line)` gives it, so a reader never builds 100k raw strings to keep a handful."""

    raw_of: Callable[[int], str] | None = None

    def raw(self, start: int) -> str:
        if start in self.spans or self.raw_of is None:
            return super().raw(start)
        return self.raw_of(start)


class StatementFile(SplitFile):
    """A SplitFile whose typed slices also carry STATEMENT_COLUMNS."""

    statement: dict[str, np.ndarray]
    format: str

    def typed(self, start: int = 0, stop: int | None = None):
        rows, bad = super().typed(start, stop)
        if rows.num_rows == 0:
            rows = _empty_table()
        at = np.searchsorted(self.table.starts, rows.column("line_number").to_numpy())
        for name in STATEMENT_COLUMNS:
            rows = rows.append_column(name, pa.array(self.statement[name][at].tolist(), pa.string()))
        return rows, bad


def join_text(*parts: str | None) -> str:
    """Non-empty parts, trimmed, in order, without repeating one that another already contains."""
    out: list[str] = []
    for part in parts:
        text = " ".join((part or "").split())
        if text and not any(text in seen for seen in out):
            out.append(text)
    return " - ".join(out)


def unique_ids(records: list[Record]) -> None:
    """An id that names more than one record of the same account in its own file identifies none of
    them: it is dropped (those records fall back to the natural key downstream)."""
    seen: dict[tuple, int] = {}
    for r in records:
        if r.bank_txn_id:
            key = (r.account, r.bank_txn_id)
            seen[key] = seen.get(key, 0) + 1
    for r in records:
        if r.bank_txn_id and seen[(r.account, r.bank_txn_id)] > 1:
            r.bank_txn_id = None


def running_balances(records: list[Record], opening: Decimal | None, closing: Decimal | None) -> None:
    """Each record's balance after it, from the statement's opening balance, only when the statement
    proves it: every record was read and opening + amounts = closing. Otherwise left as it is."""
    if opening is None or closing is None or any(r.error or r.amount is None for r in records):
        return
    if opening + sum((r.amount for r in records), Decimal(0)) != closing:
        return
    balance = opening
    for r in records:
        balance += r.amount
        r.balance = balance


def build(
    fmt: str,
    header: list[str],
    records: list[Record],
    file_error: str | None = None,
    encoding: str = "utf-8",
    extras: tuple[str, ...] = _EXTRA,
    raw_of: Callable[[int], str] | None = None,
) -> StatementFile:
    """Records -> a StatementFile; records with `error` are quarantined with their reason. `extras`:
    the extra columns every row has (the statement formats'); others a record holds follow them.
    `raw_of(line)`: the raw text of a record, made only if the record is quarantined at typing
    (then the good records' `raw` may be left empty)."""
    if any(records[i].line > records[i + 1].line for i in range(len(records) - 1)):
        records = sorted(records, key=lambda r: r.line)
    good = [r for r in records if r.error is None]
    quarantine = [(r.line, r.raw, r.error) for r in records if r.error is not None]
    # The statement extras, then any other a reader keeps (a CSV profile's unmapped columns), in order.
    extra_names = list(dict.fromkeys([*extras, *(k for r in good for k in r.extra)]))
    names = list(_CANONICAL) + extra_names
    canonical = list(zip(*map(_canonical, good))) if good else [()] * len(_CANONICAL)
    columns = [_objects(c) for c in canonical]
    columns += [_objects([r.extra.get(k, "") for r in good]) for k in extra_names]
    starts = np.array([r.line for r in good], dtype=np.int64)
    if raw_of is None:
        table = _Table(columns, starts, [], {r.line: r.raw for r in good})
    else:
        table = _LazyTable(columns, starts, [], {}, raw_of=raw_of)
    known = {name: i for i, name in enumerate(_CANONICAL)}
    extra = {name: len(_CANONICAL) + i for i, name in enumerate(extra_names)}
    split = StatementFile(names, known, extra, encoding, "", file_error, table, quarantine)
    split.format = fmt
    split.header = header
    split.statement = {
        "bank_txn_id": np.array([r.bank_txn_id for r in good], dtype=object),
        "currency": np.array([r.currency for r in good], dtype=object),
        "balance": np.array([None if r.balance is None else str(r.balance) for r in good], dtype=object),
        "account": np.array([r.account for r in good], dtype=object),
        "institution": np.array([r.institution for r in good], dtype=object),
    }
    return split


def _objects(values) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _canonical(r: Record) -> tuple[str, ...]:
    amount = "" if r.amount is None else str(r.amount)
    kind = "Expense" if r.amount is not None and r.amount < 0 else "Income"
    return (r.date, kind, r.description, amount, r.category, r.payment_method, r.reference)


def reject(fmt: str, text: str, reason: str, marker: str | None = None) -> StatementFile:
    """The whole file is unreadable: one E003 line, and every record the marker pattern finds (a
    line starting a transaction), or else the first non-blank line, quarantined with it."""
    error = f"E003 invalid input: {fmt}: {' '.join(reason.split())[:300]}, so the file is rejected whole"
    lines = text.splitlines()
    found = [i for i, line in enumerate(lines, 1) if marker and re.search(marker, line)]
    if not found:
        found = [next((i for i, line in enumerate(lines, 1) if line.strip()), 1)]
    records = [Record(i, lines[i - 1][:4096] if lines else "", error=error) for i in found]
    return build(fmt, [], records, file_error=error)


# Where the bank identifier sits in an IBAN (0-based slice after the country and check digits are
# counted in), per the SWIFT IBAN registry, for the countries whose banks write statements most.
_IBAN_BANK = {
    "AT": (4, 9),
    "BE": (4, 7),
    "CH": (4, 9),
    "CZ": (4, 8),
    "DE": (4, 12),
    "DK": (4, 8),
    "ES": (4, 8),
    "FI": (4, 7),
    "FR": (4, 9),
    "GB": (4, 8),
    "HU": (4, 7),
    "IE": (4, 8),
    "IT": (5, 10),
    "LI": (4, 9),
    "LT": (4, 9),
    "LU": (4, 7),
    "NL": (4, 8),
    "NO": (4, 8),
    "PL": (4, 12),
    "PT": (4, 8),
    "SE": (4, 7),
    "SK": (4, 8),
}


def bank_code(account: str | None) -> str | None:
    """The bank code an account number holds (MT940 :25:, a CAMT IBAN): an IBAN's bank identifier,
    or the part before `/` of `BLZ/account` (German and Austrian banks' form); None for a bare number."""
    value = re.sub(r"\s+", "", account or "").upper()
    m = re.fullmatch(r"([A-Z]{2})\d{2}([A-Z0-9]{10,30})(?:/.*)?", value)
    if m and m.group(1) in _IBAN_BANK:
        start, stop = _IBAN_BANK[m.group(1)]
        return value[start:stop]
    m = re.fullmatch(r"(\d{5,8})/\d+.*", value)
    return m.group(1) if m else None


def iso_date(value) -> str:
    """A date or datetime -> `YYYY-MM-DD` (the date as the bank wrote it: no time-zone shift)."""
    return value.strftime("%Y-%m-%d") if value is not None else ""
