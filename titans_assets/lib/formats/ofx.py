"""OFX 1.x (SGML) and 2.x (XML) statements, and QFX (OFX with Intuit's extension tags), via ofxtools.

`read` parses the file with ofxtools and reads each STMTTRN on its own, so one malformed transaction
is quarantined while the others load. A record's number is the line of its `<STMTTRN>` tag (or its
ordinal on a line holding several).

Design notes (why not ofxtools' models, the field mapping): docs/design-notes.md#titans_assetslibformatsofxpy
"""

from __future__ import annotations

import io
import re
import warnings
from decimal import Decimal
from xml.sax.saxutils import unescape

from titans_assets.lib.formats._common import (
    Record,
    StatementFile,
    build,
    join_text,
    reject,
    unique_ids,
)

FORMAT = "OFX"
MARKER = r"(?i)<STMTTRN>"


def read(data: bytes) -> StatementFile:
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
    position = {id(e): lines[i] for i, e in enumerate(elements)}
    raw_of = _RawText(text, lines, len(elements))
    records: list[Record] = []
    org = _text(root, "SIGNONMSGSRSV1/SONRS/FI/ORG")
    for stmt in (e for e in root.iter() if e.tag in ("STMTRS", "CCSTMTRS")):
        account = _text(stmt, "BANKACCTFROM/ACCTID") or _text(stmt, "CCACCTFROM/ACCTID") or None
        currency = _text(stmt, "CURDEF") or None
        ledger = _text(stmt, "LEDGERBAL/BALAMT")
        institution = org or _text(stmt, "BANKACCTFROM/BANKID") or None
        for elem in stmt.iter("STMTTRN"):
            line = position[id(elem)]
            record = Record(line, "", account=account, currency=currency, institution=institution)
            error = _fill(record, elem)
            if error is not None:
                record.error = f"OFX transaction: {error}"
                record.raw = raw_of(line)
            elif ledger:
                record.extra["statement balance"] = ledger
            records.append(record)
    seen = {id(e) for s in root.iter() if s.tag in ("STMTRS", "CCSTMTRS") for e in s.iter("STMTTRN")}
    for elem in elements:  # a STMTTRN outside a statement (malformed nesting) is still accounted for
        if id(elem) not in seen:
            line = position[id(elem)]
            records.append(
                Record(line, raw_of(line), error="OFX transaction outside a STMTRS/CCSTMTRS statement")
            )
    if not records and not any(e.tag in ("STMTRS", "CCSTMTRS") for e in root.iter()):
        return reject(FORMAT, text, "no bank or card statement (STMTRS/CCSTMTRS) in the file", MARKER)
    unique_ids(records)
    return build(FORMAT, ["OFX"], records, raw_of=raw_of)


# Elements the OFX spec requires in every STMTTRN, and the forms of the values read from it.
_REQUIRED = ("TRNTYPE", "DTPOSTED", "TRNAMT", "FITID")
_DATE = re.compile(r"(\d{4})(\d{2})(\d{2})")
_AMOUNT = re.compile(r"[+-]?(\d+([.,]\d*)?|[.,]\d+)")


def _fill(record: Record, elem) -> str | None:
    """The transaction's fields read from ofxtools' parse tree (its elements' text, already
    unescaped by its parser); the reason it cannot be read, else None. One pass over the children:
    converting each STMTTRN with ofxtools' model classes cost three quarters of the reading time."""
    fields: dict[str, str] = {}
    for child in elem:
        if len(child):  # an aggregate: PAYEE (its NAME), CURRENCY / ORIGCURRENCY (its CURSYM)
            for leaf in child:
                fields.setdefault(f"{child.tag}/{leaf.tag}", _value(leaf.text))
        else:
            fields.setdefault(child.tag, _value(child.text))
    missing = [tag for tag in _REQUIRED if not fields.get(tag)]
    if missing:
        return f"missing required element(s) {', '.join(missing)}"
    posted = _DATE.match(fields["DTPOSTED"])
    if posted is None:
        return f"DTPOSTED {fields['DTPOSTED'][:40]!r} is not a date (YYYYMMDD...)"
    amount = fields["TRNAMT"]
    if _AMOUNT.fullmatch(amount) is None:
        return f"TRNAMT {amount[:40]!r} is not a number"
    record.date = f"{posted[1]}-{posted[2]}-{posted[3]}"
    record.amount = Decimal(amount.replace(",", "."))
    record.description = join_text(fields.get("NAME") or fields.get("PAYEE/NAME"), fields.get("MEMO"))
    check = fields.get("CHECKNUM", "")
    record.reference = check or fields.get("REFNUM", "")
    record.bank_txn_id = fields["FITID"]
    currency = fields.get("CURRENCY/CURSYM") or fields.get("ORIGCURRENCY/CURSYM")
    if currency:
        record.currency = currency
    extra = record.extra
    extra["bank code"] = fields["TRNTYPE"]
    user = _DATE.match(fields.get("DTUSER", ""))
    if user is not None:
        extra["value date"] = f"{user[1]}-{user[2]}-{user[3]}"
    if check:
        extra["check number"] = check
    return None


_ENTITIES = {"&nbsp;": " ", "&apos;": "'", "&quot;": '"'}


def _value(text: str | None) -> str:
    """An element's text as ofxtools' String type gives it: trimmed, `&amp;` `&lt;` `&gt;` `&nbsp;`
    (OFX 2.3) and the other XML entities unescaped."""
    text = (text or "").strip()
    return unescape(text, _ENTITIES) if "&" in text else text


class _RawText:
    """line -> the text of the STMTTRN starting there, cut out of the file only when first asked."""

    def __init__(self, text: str, lines: list[int], count: int):
        self._text, self._lines, self._count = text, lines, count
        self._by_line: dict[int, str] | None = None

    def __call__(self, line: int) -> str:
        if self._by_line is None:
            raws = _raw_records(self._text)
            if len(raws) != self._count:
                raws = ["<STMTTRN>"] * self._count
            self._by_line = dict(zip(self._lines, raws))
        return self._by_line.get(line, "<STMTTRN>")


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
