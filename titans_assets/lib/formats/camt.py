"""CAMT.053 (ISO 20022 bank-to-customer statement), any version (001.02 to 001.13), read with lxml.

One record per booked entry (`Ntry`), numbered by the line of its `<Ntry>` tag: a batch entry with
several TxDtls stays one row with the entry's amount, as the statement books it. Per entry:
date = BookgDt (else ValDt), amount = Amt signed by CdtDbtInd (DBIT negative; a reversal RvslInd
flips it), description = the counterparty's name (Cdtr for a debit, Dbtr for a credit) + the
remittance information (Ustrd, else AddtlTxInf / AddtlNtryInf), reference = EndToEndId unless
NOTPROVIDED, bank_txn_id = AcctSvcrRef (else NtryRef), currency = Amt/@Ccy, account = the
statement's IBAN (else Othr/Id), institution = the account servicer's name (Acct/Svcr/FinInstnId/Nm),
else its BIC (BICFI in later versions), else its other id, else the bank code of the IBAN. The balance after each entry comes from OPBD + the entries when
they reconcile with CLBD; CLBD also goes to extra ("statement balance").
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from titans_assets.lib.formats._common import (
    Record,
    StatementFile,
    bank_code,
    build,
    join_text,
    reject,
    running_balances,
    unique_ids,
)

FORMAT = "CAMT.053"
MARKER = r"<(\w+:)?Ntry[\s>]"
_NTRY_END = re.compile(r"</(\w+:)?Ntry>")


def read(data: bytes) -> StatementFile:
    from lxml import etree

    text = data.decode("utf-8", errors="replace")
    try:
        parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        return reject(FORMAT, text, f"XML syntax error: {exc}", MARKER)
    namespace = etree.QName(root).namespace or ""
    if "camt.053" not in namespace and _local(root) != "Document":
        return reject(FORMAT, text, f"root element {root.tag!r} is not a camt.053 Document", MARKER)
    statements = list(root.iter("{*}Stmt", "{*}Rpt"))
    if not statements:
        return reject(FORMAT, text, "no statement (Stmt) in the document", MARKER)
    lines = text.splitlines()
    records: list[Record] = []
    for stmt in statements:
        acct = _child(stmt, "Acct")
        account = _path(acct, "Id", "IBAN") or _path(acct, "Id", "Othr", "Id") or None
        currency = _path(acct, "Ccy") or None
        institution = (_path(acct, "Svcr", "FinInstnId", "Nm") or _path(acct, "Svcr", "FinInstnId", "BICFI")
                       or _path(acct, "Svcr", "FinInstnId", "BIC") or _path(acct, "Svcr", "FinInstnId", "Othr", "Id")
                       or bank_code(account))
        balances = _balances(stmt)
        entries = stmt.findall("{*}Ntry")
        mine: list[Record] = []
        for entry in entries:
            line = entry.sourceline or 1
            record = Record(line, _raw(lines, entry), account=account, currency=currency, institution=institution)
            try:
                _fill(record, entry)
                if "CLBD" in balances:
                    record.extra["statement balance"] = str(balances["CLBD"])
            except (ValueError, InvalidOperation) as exc:
                record.error = f"CAMT entry: {exc}"
            mine.append(record)
        running_balances(mine, balances.get("OPBD", balances.get("PRCD")), balances.get("CLBD"))
        records += mine
    unique_ids(records)
    return build(FORMAT, [etree.QName(root).namespace or "camt.053"], records)


def _fill(record: Record, entry) -> None:
    amt = _child(entry, "Amt")
    if amt is None or not (amt.text or "").strip():
        raise ValueError("no Amt")
    try:
        amount = Decimal(amt.text.strip())
    except InvalidOperation:
        raise ValueError(f"Amt {amt.text.strip()!r} is not a number") from None
    indicator = _path(entry, "CdtDbtInd")
    if indicator not in ("CRDT", "DBIT"):
        raise ValueError(f"CdtDbtInd {indicator!r} is not CRDT or DBIT")
    debit = indicator == "DBIT"
    if _path(entry, "RvslInd").lower() == "true":
        debit = not debit
    record.amount = -amount if debit else amount
    record.currency = amt.get("Ccy") or record.currency
    date = _path(entry, "BookgDt", "Dt") or _path(entry, "BookgDt", "DtTm") or _path(entry, "ValDt", "Dt") \
        or _path(entry, "ValDt", "DtTm")
    if not date:
        raise ValueError("no BookgDt or ValDt")
    record.date = date[:10]
    value_date = _path(entry, "ValDt", "Dt") or _path(entry, "ValDt", "DtTm")
    if value_date:
        record.extra["value date"] = value_date[:10]
    tx = _first(entry, "TxDtls")
    party = ""
    remittance = ""
    reference = ""
    if tx is not None:
        side = "Cdtr" if indicator == "DBIT" else "Dbtr"
        party = _path(tx, "RltdPties", side, "Nm") or _path(tx, "RltdPties", side, "Pty", "Nm")
        remittance = " ".join(u.text.strip() for u in tx.iter("{*}Ustrd") if u.text) \
            or _path(tx, "AddtlTxInf")
        reference = _path(tx, "Refs", "EndToEndId")
        if reference.upper() == "NOTPROVIDED":
            reference = ""
    record.description = join_text(party, remittance, _path(entry, "AddtlNtryInf")) or indicator
    record.reference = reference
    record.bank_txn_id = _path(entry, "AcctSvcrRef") or _path(entry, "NtryRef") or None
    code = "/".join(p for p in (_path(entry, "BkTxCd", "Domn", "Cd"), _path(entry, "BkTxCd", "Domn", "Fmly", "Cd"),
                                _path(entry, "BkTxCd", "Domn", "Fmly", "SubFmlyCd")) if p)
    record.extra["bank code"] = code or _path(entry, "BkTxCd", "Prtry", "Cd")


def _balances(stmt) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for bal in stmt.findall("{*}Bal"):
        kind = _path(bal, "Tp", "CdOrPrtry", "Cd")
        try:
            amount = Decimal(_path(bal, "Amt"))
        except InvalidOperation:
            continue
        out.setdefault(kind, -amount if _path(bal, "CdtDbtInd") == "DBIT" else amount)
    return out


def _local(elem) -> str:
    tag = elem.tag
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


# Children are found by local name in any (or no) namespace with lxml's `{*}` wildcard, in C: a
# Python loop over every child's tag cost most of the reading time on large statements.
def _child(elem, name: str):
    if elem is None:
        return None
    return elem.find("{*}" + name)


def _first(elem, name: str):
    return elem.find(".//{*}" + name)


def _path(elem, *names: str) -> str:
    if elem is None:
        return ""
    return (elem.findtext("/".join("{*}" + n for n in names)) or "").strip()


def _raw(lines: list[str], entry) -> str:
    """The entry's lines as written, from `<Ntry>` to `</Ntry>` (at most 200 lines, 4096 characters)."""
    start = (entry.sourceline or 1) - 1
    end = start
    while end < len(lines) - 1 and end - start < 200 and not _NTRY_END.search(lines[end]):
        end += 1
    return "\n".join(lines[start:end + 1])[:4096]
