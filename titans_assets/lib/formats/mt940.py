"""SWIFT MT940 statements (with or without the {1:}{2:}{4:} envelope), via the mt-940 library.

`read` parses each tag on its own, so a `:61:` the grammar rejects quarantines that transaction
(with its `:86:`) and the rest of the file loads. A transaction's record number is the line of its
`:61:`.

Design notes (the field mapping, balances): docs/design-notes.md#titans_assetslibformatsmt940py
"""

from __future__ import annotations

import re
from decimal import Decimal

from titans_assets.lib.formats._common import (
    Record,
    StatementFile,
    bank_code,
    build,
    iso_date,
    join_text,
    reject,
    running_balances,
    unique_ids,
)

FORMAT = "MT940"
MARKER = r"^\s*:61:"


def read(data: bytes) -> StatementFile:
    import logging

    from titans_assets.lib.csv_contract import decode

    logging.getLogger("mt940").setLevel(logging.CRITICAL)  # it logs every grammar miss; we quarantine them

    text, encoding = decode(data)
    try:
        parsed = _Statements()
        parsed.parse(text)
    except Exception as exc:  # noqa: BLE001 - a statement-level tag that does not parse rejects the file
        return reject(FORMAT, text, f"{type(exc).__name__}: {_first_line(exc)}", MARKER)
    if not parsed.groups:
        return reject(FORMAT, text, "no :61: transaction and no :20:/:25: statement tags found", MARKER)
    lines = text.splitlines()
    records: list[Record] = []
    sender = envelope_bic(text)
    for statement in parsed.groups:
        mine: list[Record] = []
        institution = sender or bank_code(statement["account"])
        for txn, start, end, error in statement["transactions"]:
            raw = "\n".join(lines[start - 1 : end])[:4096]
            record = Record(
                start,
                raw,
                account=statement["account"],
                currency=statement["currency"],
                institution=institution,
            )
            if error is not None:
                record.error = error
            else:
                try:
                    _fill(record, txn.data)
                except (ValueError, TypeError, AttributeError) as exc:
                    record.error = f"MT940 :61: {exc}"
            if statement["closing"] is not None:
                record.extra["statement balance"] = str(statement["closing"])
            mine.append(record)
        running_balances(mine, statement["opening"], statement["closing"])
        records += mine
    unique_ids(records)
    return build(FORMAT, [":20:", ":25:", ":60F:", ":61:", ":86:", ":62F:"], records, encoding=encoding)


def _fill(record: Record, data: dict) -> None:
    amount = data.get("amount")
    if amount is None or data.get("date") is None:
        raise ValueError("no amount or date")
    record.amount = Decimal(amount.amount)
    record.currency = amount.currency or record.currency
    record.date = iso_date(data.get("entry_date") or data.get("date"))
    record.extra["value date"] = iso_date(data.get("date"))
    details = data.get("transaction_details") or ""
    name = data.get("applicant_name") or ""
    purpose = data.get("purpose") or ""
    record.description = join_text(name, purpose, data.get("additional_purpose")) or join_text(
        data.get("posting_text"), data.get("end_to_end_reference"), details
    )
    if not record.description:
        record.description = join_text(data.get("extra_details")) or (
            "Credit" if record.amount >= 0 else "Debit"
        )
    customer = (data.get("customer_reference") or "").strip()
    bank = (data.get("bank_reference") or "").strip()
    if customer.upper() == "NONREF":
        customer = ""
    record.reference = customer
    record.bank_txn_id = bank or customer or None
    record.extra["bank code"] = " ".join(p for p in (data.get("id"), data.get("transaction_code")) if p)


_ENVELOPE = (
    re.compile(r"\{2:O\d{3}(?:\d{10})?([A-Z]{6}[A-Z0-9]{2})[A-Z0-9]([A-Z0-9]{3})"),
    re.compile(r"\{1:F\d{2}([A-Z]{6}[A-Z0-9]{2})[A-Z0-9]([A-Z0-9]{3})"),
)


def envelope_bic(text: str) -> str | None:
    """The BIC of the bank that sent the statement, from its SWIFT envelope (block 2's sender, else
    block 1's address), when every message of the file names the same one; `XXX` branch dropped."""
    for pattern in _ENVELOPE:
        found = {m.group(1) + ("" if m.group(2) == "XXX" else m.group(2)) for m in pattern.finditer(text)}
        if len(found) == 1:
            return found.pop()
        if found:
            return None
    return None


def _first_line(exc: BaseException) -> str:
    """mt-940 raises RuntimeError(message, tag, value): the value it could not match, else the message."""
    if isinstance(exc, RuntimeError) and len(exc.args) == 3 and isinstance(exc.args[2], str):
        return f"the field grammar does not match {exc.args[2].splitlines()[0][:200]!r}"
    return (str(exc.args[0]) if exc.args else str(exc)).splitlines()[0][:300]


def _statements_class():
    import mt940

    class Statements(mt940.models.Transactions):
        """mt-940's Transactions, parsed tag by tag, remembering where each :61: starts and ends in the
        original text and why a :61: or its :86: failed; statement data kept per :20:/:25: block."""

        def __init__(self):
            super().__init__()
            self.groups: list[dict] = []
            self._line = 1
            self._current: list | None = None

        def parse(self, data: str) -> list:
            kept: list[str] = []
            origin: list[int] = []
            for number, line in enumerate(data.split("\n"), 1):
                for cleaned in self.strip([line]):
                    kept.append(cleaned)
                    origin.append(number)
            self._origin = origin
            self._text = "\n".join(kept)
            self._newlines = [m.start() for m in re.finditer("\n", self._text)]
            return super().parse(self._text)

        def _line_of(self, offset: int) -> int:
            import bisect

            return self._origin[min(bisect.bisect_left(self._newlines, offset), len(self._origin) - 1)]

        def _group(self) -> dict:
            if not self.groups:
                self.groups.append(_new_group())
            return self.groups[-1]

        def _process_match(self, match, i, valid_matches, data):
            tag = match.group("full_tag")
            line = self._line_of(match.start())
            end = valid_matches[i + 1].start() - 1 if i + 1 < len(valid_matches) else len(data)
            end_line = self._line_of(max(end, match.start()))
            if tag == "20" or (
                tag == "25"
                and self.groups
                and self._group()["account"] is not None
                and self._group()["transactions"]
            ):
                self.groups.append(_new_group())
            group = self._group()
            before = len(self.transactions)
            try:
                super()._process_match(match, i, valid_matches, data)
            except Exception as exc:  # noqa: BLE001
                if _quarantine(self, group, tag, line, end_line, exc):
                    return
                raise
            _track(self, group, tag, before, line, end_line)

    return Statements


def _quarantine(statements, group: dict, tag: str, line: int, end_line: int, exc: Exception) -> bool:
    """A :61: or its :86: the field grammar rejects: the transaction kept with the reason (True);
    any other tag's error is not handled here (False)."""
    import mt940

    txns = group["transactions"]
    if tag == "61":
        statements.transactions.append(mt940.models.Transaction(statements, {"id": "unparsed"}))
        txns.append(
            [statements.transactions[-1], line, end_line, f"MT940 :61: does not parse: {_first_line(exc)}"]
        )
        return True
    if tag.startswith("86") and txns:
        txns[-1][2] = end_line
        if txns[-1][3] is None:
            txns[-1][3] = f"MT940 :86: does not parse: {_first_line(exc)}"
        return True
    return False


def _track(statements, group: dict, tag: str, before: int, line: int, end_line: int) -> None:
    """After a tag parsed: a :61:'s lines, an :86:'s end, the block's account and balances."""
    txns = group["transactions"]
    if tag == "61":
        # a new transaction, or the library filled a placeholder it had made
        if len(statements.transactions) > before or txns:
            txns.append([statements.transactions[-1], line, end_line, None])
    elif txns and tag.startswith("86"):
        txns[-1][2] = end_line
    data = statements.data
    if tag == "25":
        group["account"] = str(data.get("account_identification") or "").strip() or None
    elif tag in ("60F", "60M", "60"):
        balance = data.get("final_opening_balance") or data.get("opening_balance")
        if balance is not None and group["opening"] is None:
            group["opening"] = Decimal(balance.amount.amount)
            group["currency"] = balance.amount.currency
    elif tag in ("62F", "62M", "62"):
        balance = data.get("final_closing_balance") or data.get("closing_balance")
        if balance is not None:
            group["closing"] = Decimal(balance.amount.amount)


def _new_group() -> dict:
    return {"account": None, "currency": None, "opening": None, "closing": None, "transactions": []}


def _Statements():  # noqa: N802 - a class built on first use (mt-940 imported lazily)
    global _STATEMENTS
    if _STATEMENTS is None:
        _STATEMENTS = _statements_class()
    return _STATEMENTS()


_STATEMENTS = None
