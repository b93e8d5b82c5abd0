"""QIF (Quicken Interchange Format) bank, cash and card registers, via quiffen.

`read` parses each record of a bank, cash, credit-card or asset/liability section with quiffen, so
one bad record is quarantined with quiffen's reason; other sections are skipped. The date order is
chosen once for the whole file, never per record. A record's number is the line of its first field.

Design notes (sections, the date order, the field mapping): docs/design-notes.md#titans_assetslibformatsqifpy
"""

from __future__ import annotations

import functools
import logging
import re

from titans_assets.lib.formats._common import Record, StatementFile, build, iso_date, join_text, reject

FORMAT = "QIF"
MARKER = r"^\^"
_TRANSACTION_TYPES = {"bank", "cash", "ccard", "oth a", "oth l", "invoice"}


def read(data: bytes) -> StatementFile:
    from quiffen.core.transaction import Transaction

    from titans_assets.lib.csv_contract import decode

    logging.getLogger("quiffen").setLevel(logging.CRITICAL)
    _memoize_quiffen_dates()
    text, encoding = decode(data)
    chunks, saw_header = _chunks(text)
    if not saw_header:
        return reject(FORMAT, text, "no !Type: header (a QIF file starts with one, e.g. !Type:Bank)", MARKER)
    best: list[Record] | None = None
    for day_first in (False, True):
        if best is not None and not any(r.error is not None for r in best):
            break  # month first read every record: day first cannot read more (and halves the time)
        records = [_record(Transaction, lines, start, account, day_first) for start, lines, account in chunks]
        if best is None or sum(r.error is not None for r in records) < sum(r.error is not None for r in best):
            best = records
    return build(FORMAT, ["!Type"], best or [], encoding=encoding)


def _memoize_quiffen_dates() -> None:
    """quiffen parses each record's D field with dateutil (half the QIF reading time, measured on a
    100k-record register), though a register holds a few hundred distinct dates: its own
    `quiffen.utils.parse_date` is wrapped once in a bounded cache (a pure function of its string and
    day_first; a failure is not cached and raises again). Same parser, same results."""
    from quiffen import utils

    if not hasattr(utils.parse_date, "cache_info"):
        utils.parse_date = functools.lru_cache(maxsize=1 << 16)(utils.parse_date)


def _chunks(text: str) -> tuple[list[tuple[int, list[str], str | None]], bool]:
    """(first line, field lines, account) of each record in a transaction section."""
    out: list[tuple[int, list[str], str | None]] = []
    section = None
    account: str | None = None
    in_account_block = False
    saw_header = False
    current: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("!"):
            saw_header = True
            head = line[1:].lower()
            if head.startswith("type:"):
                section = head[5:].strip()
                in_account_block = False
            elif head.startswith("account"):
                in_account_block, section = True, None
            elif head.startswith("option") or head.startswith("clear"):
                pass
            current = []
            continue
        if line.startswith("^"):
            if in_account_block:
                name = next((f[1:].strip() for f in current if f.startswith("N")), None)
                account = name or account
                in_account_block = False
            elif current and section in _TRANSACTION_TYPES:
                out.append((start, current, account))
            current = []
            continue
        if not current:
            start = number
        current.append(line)
    if current and section in _TRANSACTION_TYPES:  # last record without its ^
        out.append((start, current, account))
    return out, saw_header


def _record(transaction_cls, lines: list[str], start: int, account: str | None, day_first: bool) -> Record:
    record = Record(start, "\n".join(lines)[:4096], account=account)
    try:
        txn, _ = transaction_cls.from_list(list(lines), day_first=day_first, line_number=start)
    except Exception as exc:  # noqa: BLE001 - quiffen's validation names the field
        record.error = f"QIF record: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
        return record
    record.date = iso_date(txn.date)
    record.amount = txn.amount
    record.description = join_text(txn.payee, txn.memo)
    category = txn.category
    if category is not None:
        names = []
        while category is not None:
            names.append(category.name)
            category = category.parent
        record.category = ":".join(reversed(names))
    if txn.to_account:
        record.category = ""
        record.extra["bank code"] = f"transfer [{txn.to_account}]"
    if txn.check_number is not None:
        record.reference = str(txn.check_number)
        record.extra["check number"] = str(txn.check_number)
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", record.date or ""):
        record.error = "QIF record: no date (D)"
    return record
