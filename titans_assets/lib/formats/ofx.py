"""OFX 1.x (SGML) and 2.x (XML) statements, and QFX (OFX with Intuit's extension tags), via ofxtools.

ofxtools parses the file into an element tree; each STMTTRN is then converted by ofxtools' own
model on its own, so one malformed transaction is quarantined (with the spec error ofxtools gives)
while the others load. A transaction's record number is the line of its `<STMTTRN>` tag, or its
ordinal (1, 2, ...) in a file that puts several on one line.

Per transaction: date = DTPOSTED's date as written, amount = TRNAMT (signed by the bank),
description = NAME (or PAYEE's name) + MEMO, reference = CHECKNUM or REFNUM, bank_txn_id = FITID,
currency = the transaction's CURRENCY/ORIGCURRENCY or the statement's CURDEF, account = ACCTID of
BANKACCTFROM/CCACCTFROM, institution = the sign-on's FI/ORG, else BANKACCTFROM/BANKID (a routing number). The statement's LEDGERBAL goes to extra ("statement balance").
"""

from __future__ import annotations

import io
import re
import warnings
from decimal import Decimal

from titans_assets.lib.formats._common import (
    Record,
    StatementFile,
    build,
    iso_date,
    join_text,
    reject,
    unique_ids,
)

FORMAT = "OFX"
MARKER = r"(?i)<STMTTRN>"


def read(data: bytes) -> StatementFile:
    from ofxtools.models.base import Aggregate
    from ofxtools.Parser import OFXTree

    text = data.decode("latin-1")
    tree = OFXTree()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree.parse(io.BytesIO(data))
    except Exception as exc:  # noqa: BLE001 - any parser failure rejects the file with its message
        return reject(FORMAT, text, f"{type(exc).__name__}: {exc}", MARKER)
    root = tree.getroot() if hasattr(tree, "getroot") else tree._root
    lines = _stmttrn_lines(text)
    elements = [e for e in root.iter() if e.tag == "STMTTRN"]
    if len(lines) != len(elements) or len(set(lines)) != len(lines):
        # cannot number records by line (several on one line, as some banks write OFX): by ordinal
        lines = list(range(1, len(elements) + 1))
    raws = _raw_records(text)
    if len(raws) != len(elements):
        raws = ["<STMTTRN>"] * len(elements)
    position = {id(e): (lines[i], raws[i]) for i, e in enumerate(elements)}
    records: list[Record] = []
    org = _text(root, "SIGNONMSGSRSV1/SONRS/FI/ORG")
    for stmt in (e for e in root.iter() if e.tag in ("STMTRS", "CCSTMTRS")):
        account = _text(stmt, "BANKACCTFROM/ACCTID") or _text(stmt, "CCACCTFROM/ACCTID")
        currency = _text(stmt, "CURDEF")
        ledger = _text(stmt, "LEDGERBAL/BALAMT")
        institution = org or _text(stmt, "BANKACCTFROM/BANKID") or None
        for elem in stmt.iter("STMTTRN"):
            line, raw = position[id(elem)]
            record = Record(line, raw, account=account or None, currency=currency or None, institution=institution)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    txn = Aggregate.from_etree(elem)
                _fill(record, txn, elem)
                if ledger:
                    record.extra["statement balance"] = ledger
            except Exception as exc:  # noqa: BLE001 - ofxtools' spec errors name the bad element
                record.error = f"OFX transaction: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
            records.append(record)
    seen = {id(e) for s in root.iter() if s.tag in ("STMTRS", "CCSTMTRS") for e in s.iter("STMTTRN")}
    for elem in elements:  # a STMTTRN outside a statement (malformed nesting) is still accounted for
        if id(elem) not in seen:
            line, raw = position[id(elem)]
            records.append(Record(line, raw, error="OFX transaction outside a STMTRS/CCSTMTRS statement"))
    if not records and not any(e.tag in ("STMTRS", "CCSTMTRS") for e in root.iter()):
        return reject(FORMAT, text, "no bank or card statement (STMTRS/CCSTMTRS) in the file", MARKER)
    unique_ids(records)
    return build(FORMAT, ["OFX"], records)


def _fill(record: Record, txn, elem) -> None:
    posted = (_text(elem, "DTPOSTED") or "")[:8]
    record.date = f"{posted[:4]}-{posted[4:6]}-{posted[6:8]}" if re.fullmatch(r"\d{8}", posted) else iso_date(txn.dtposted)
    record.amount = Decimal(txn.trnamt)
    name = txn.name or (txn.payee.name if getattr(txn, "payee", None) is not None else None)
    record.description = join_text(name, txn.memo)
    record.reference = txn.checknum or txn.refnum or ""
    record.bank_txn_id = txn.fitid or None
    currency = getattr(txn, "currency", None) or getattr(txn, "origcurrency", None)
    if currency is not None and getattr(currency, "cursym", None):
        record.currency = currency.cursym
    record.extra["bank code"] = txn.trntype or ""
    if txn.dtuser is not None:
        record.extra["value date"] = iso_date(txn.dtuser)
    if txn.checknum:
        record.extra["check number"] = txn.checknum


def _text(elem, path: str) -> str:
    found = elem.find(path)
    return (found.text or "").strip() if found is not None and found.text else ""


def _stmttrn_lines(text: str) -> list[int]:
    """The line of each `<STMTTRN>` tag, counting newlines only between one tag and the next (linear:
    counting from the start of the file for every tag was quadratic, minutes on a 100k-row file)."""
    lines, line, last = [], 1, 0
    for m in re.finditer(MARKER, text):
        line += text.count("\n", last, m.start())
        last = m.start()
        lines.append(line)
    return lines


_RECORD = re.compile(r"(?is)<STMTTRN>.*?(?:</STMTTRN>|(?=<STMTTRN>)|(?=</BANKTRANLIST>)|\Z)")


def _raw_records(text: str) -> list[str]:
    """Each STMTTRN's text as written (its tags only), in document order."""
    return [m.group(0)[:4096] for m in _RECORD.finditer(text)]
