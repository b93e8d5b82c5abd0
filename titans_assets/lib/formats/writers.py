"""Bank statement writers: transactions -> OFX 1.02 (SGML), CAMT.053.001.02, MT940 or QIF bytes.

The generator's other half (the readers are formats.ofx/camt/mt940/qif; nothing here is imported by
them). `write(fmt, statement)` returns the file's bytes and the physical line (1-based) where each
transaction's record starts, in the numbering the reader gives its records (OFX `<STMTTRN>`, CAMT
`<Ntry>`, MT940 `:61:`, QIF the record's first field), so ground truth keyed by (file, line) still
names the right row once a statement is loaded.

Output is a pure function of its input (no clock, no randomness): the same statement gives the same
bytes. What each format carries:

| format | account | bank id | reference | category | balances |
|---|---|---|---|---|---|
| ofx (SGML 1.02) | BANKACCTFROM/CCACCTFROM ACCTID | FITID | REFNUM | - | LEDGERBAL |
| camt053 | Acct/Id/IBAN | AcctSvcrRef | EndToEndId | - | OPBD, CLBD |
| mt940 | :25: | :61: bank reference (//) | - | - | :60F:, :62F: |
| qif | !Account N | - | - | L | - |

Descriptions: OFX NAME holds at most 32 characters, so a longer one goes to MEMO alone (the reader
joins NAME and MEMO); CAMT writes it as the unstructured remittance (Ustrd), MT940 as the :86: text,
QIF as the payee. Whitespace runs are written as one space (every reader collapses them).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

FORMATS = ("ofx", "camt053", "mt940", "qif")
EXTENSIONS = {"ofx": ".ofx", "camt053": ".xml", "mt940": ".sta", "qif": ".qif"}


@dataclass(frozen=True)
class Txn:
    date: str  # ISO YYYY-MM-DD
    cents: int  # signed: money out is negative
    description: str
    bank_id: str = ""  # at most 16 characters for MT940
    reference: str = ""
    category: str = ""


@dataclass(frozen=True)
class Statement:
    account: str  # OFX ACCTID / MT940 :25: / CAMT IBAN / QIF account name
    txns: Sequence[Txn]  # in statement order (oldest first, as banks write them)
    currency: str = "USD"
    kind: str = "checking"  # or "credit_card"
    opening_cents: int = 0
    institution: str = "Titans Demo Bank"
    bic: str = "TITNGB2L"
    routing: str = "121000248"
    statement_id: str = "1"
    created: dt.date | None = None  # default: the last transaction's date
    extra: dict = field(default_factory=dict)

    @property
    def closing_cents(self) -> int:
        return self.opening_cents + sum(t.cents for t in self.txns)

    def span(self) -> tuple[str, str]:
        dates = [t.date for t in self.txns]
        last = (self.created or dt.date(1970, 1, 1)).isoformat()
        return (min(dates), max(dates)) if dates else (last, last)


def write(fmt: str, statement: Statement) -> tuple[bytes, list[int]]:
    """The statement as `fmt` (one of FORMATS): (file bytes, start line of each transaction)."""
    try:
        writer = _WRITERS[fmt]
    except KeyError:
        raise ValueError(f"format {fmt!r}: known {', '.join(FORMATS)}") from None
    lines: list[str] = []
    starts: list[int] = []
    writer(statement, lines, starts)
    eol = "\r\n" if fmt == "mt940" else "\n"
    data = (eol.join(lines) + eol).encode("utf-8" if fmt == "camt053" else "cp1252", errors="replace")
    return data, starts


def _money(cents: int, sep: str = ".") -> str:
    a = abs(cents)
    return f"{'-' if cents < 0 else ''}{a // 100}{sep}{a % 100:02d}"


def _text(value: str) -> str:
    return " ".join(value.split())


def _created(s: Statement) -> str:
    return (s.created.isoformat() if s.created else s.span()[1])


# -- OFX 1.02 (SGML) --------------------------------------------------------------------------------
def _ofx(s: Statement, out: list[str], starts: list[int]) -> None:
    first, last = s.span()
    stamp = _created(s).replace("-", "") + "120000"
    card = s.kind == "credit_card"
    out += ["OFXHEADER:100", "DATA:OFXSGML", "VERSION:102", "SECURITY:NONE", "ENCODING:USASCII",
            "CHARSET:1252", "COMPRESSION:NONE", "OLDFILEUID:NONE", f"NEWFILEUID:{s.statement_id}", "",
            "<OFX>", "<SIGNONMSGSRSV1>", "<SONRS>", "<STATUS>", "<CODE>0", "<SEVERITY>INFO", "</STATUS>",
            f"<DTSERVER>{stamp}", "<LANGUAGE>ENG", "<FI>", f"<ORG>{escape(s.institution)}", "<FID>1001", "</FI>",
            "</SONRS>", "</SIGNONMSGSRSV1>",
            "<CREDITCARDMSGSRSV1>" if card else "<BANKMSGSRSV1>",
            "<CCSTMTTRNRS>" if card else "<STMTTRNRS>", f"<TRNUID>{s.statement_id}",
            "<STATUS>", "<CODE>0", "<SEVERITY>INFO", "</STATUS>",
            "<CCSTMTRS>" if card else "<STMTRS>", f"<CURDEF>{s.currency}"]
    if card:
        out += ["<CCACCTFROM>", f"<ACCTID>{escape(s.account)}", "</CCACCTFROM>"]
    else:
        out += ["<BANKACCTFROM>", f"<BANKID>{s.routing}", f"<ACCTID>{escape(s.account)}", "<ACCTTYPE>CHECKING",
                "</BANKACCTFROM>"]
    out += ["<BANKTRANLIST>", f"<DTSTART>{first.replace('-', '')}", f"<DTEND>{last.replace('-', '')}"]
    for t in s.txns:
        starts.append(len(out) + 1)
        desc = escape(_text(t.description))
        kind = "CHECK" if t.reference.isdigit() else ("CREDIT" if t.cents > 0 else "DEBIT")
        out += ["<STMTTRN>", f"<TRNTYPE>{kind}", f"<DTPOSTED>{t.date.replace('-', '')}",
                f"<TRNAMT>{_money(t.cents)}", f"<FITID>{escape(t.bank_id)}"]
        if t.reference:
            out.append(f"<REFNUM>{escape(t.reference[:32])}")
        out.append(f"<NAME>{desc}" if len(desc) <= 32 else f"<MEMO>{desc[:255]}")
        out.append("</STMTTRN>")
    out += ["</BANKTRANLIST>", "<LEDGERBAL>", f"<BALAMT>{_money(s.closing_cents)}", f"<DTASOF>{stamp}",
            "</LEDGERBAL>", "</CCSTMTRS>" if card else "</STMTRS>",
            "</CCSTMTTRNRS>" if card else "</STMTTRNRS>",
            "</CREDITCARDMSGSRSV1>" if card else "</BANKMSGSRSV1>", "</OFX>"]


# -- CAMT.053.001.02 --------------------------------------------------------------------------------
def _camt(s: Statement, out: list[str], starts: list[int]) -> None:
    first, last = s.span()
    created = _created(s) + "T23:59:59"
    ccy = escape(s.currency, {'"': "&quot;"})

    def balance(code: str, cents: int, date: str) -> list[str]:
        return ["      <Bal>", f"        <Tp><CdOrPrtry><Cd>{code}</Cd></CdOrPrtry></Tp>",
                f'        <Amt Ccy="{ccy}">{_money(abs(cents))}</Amt>',
                f"        <CdtDbtInd>{'DBIT' if cents < 0 else 'CRDT'}</CdtDbtInd>",
                f"        <Dt><Dt>{date}</Dt></Dt>", "      </Bal>"]

    out += ['<?xml version="1.0" encoding="UTF-8"?>',
            '<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02">', "  <BkToCstmrStmt>",
            f"    <GrpHdr><MsgId>{escape(s.statement_id)}</MsgId><CreDtTm>{created}</CreDtTm></GrpHdr>",
            "    <Stmt>", f"      <Id>{escape(s.statement_id)}</Id>", f"      <CreDtTm>{created}</CreDtTm>",
            f"      <FrToDt><FrDtTm>{first}T00:00:00</FrDtTm><ToDtTm>{last}T23:59:59</ToDtTm></FrToDt>",
            f"      <Acct><Id><IBAN>{escape(s.account)}</IBAN></Id><Ccy>{ccy}</Ccy>"
            f"<Svcr><FinInstnId><BIC>{s.bic}</BIC><Nm>{escape(s.institution)}</Nm></FinInstnId></Svcr></Acct>"]
    out += balance("OPBD", s.opening_cents, first)
    out += balance("CLBD", s.closing_cents, last)
    for t in s.txns:
        starts.append(len(out) + 1)
        debit = t.cents < 0
        family = ("CCRD", "POSD") if s.kind == "credit_card" else (("ICDT", "DMCT") if debit else ("RCDT", "DMCT"))
        e2e = escape(t.reference[:35]) if t.reference else "NOTPROVIDED"
        out += ["      <Ntry>", f'        <Amt Ccy="{ccy}">{_money(abs(t.cents))}</Amt>',
                f"        <CdtDbtInd>{'DBIT' if debit else 'CRDT'}</CdtDbtInd>", "        <Sts>BOOK</Sts>",
                f"        <BookgDt><Dt>{t.date}</Dt></BookgDt><ValDt><Dt>{t.date}</Dt></ValDt>",
                f"        <AcctSvcrRef>{escape(t.bank_id)}</AcctSvcrRef>",
                f"        <BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>{family[0]}</Cd><SubFmlyCd>{family[1]}</SubFmlyCd>"
                "</Fmly></Domn></BkTxCd>",
                f"        <NtryDtls><TxDtls><Refs><EndToEndId>{e2e}</EndToEndId></Refs>"
                f"<RmtInf><Ustrd>{escape(_text(t.description)[:140])}</Ustrd></RmtInf></TxDtls></NtryDtls>",
                "      </Ntry>"]
    out += ["    </Stmt>", "  </BkToCstmrStmt>", "</Document>"]


# -- MT940 ------------------------------------------------------------------------------------------
def _yymmdd(iso: str) -> str:
    return iso[2:4] + iso[5:7] + iso[8:10]


def _mt940(s: Statement, out: list[str], starts: list[int]) -> None:
    first, last = s.span()

    def balance(tag: str, cents: int, date: str) -> str:
        return f":{tag}:{'D' if cents < 0 else 'C'}{_yymmdd(date)}{s.currency}{_money(abs(cents), ',')}"

    out += [f":20:{s.statement_id[:16]}", f":25:{s.account[:35]}", ":28C:1/1", balance("60F", s.opening_cents, first)]
    for t in s.txns:
        starts.append(len(out) + 1)
        code = "NCHK" if t.reference.isdigit() else ("NTRF" if s.kind == "checking" else "NMSC")
        out.append(f":61:{_yymmdd(t.date)}{t.date[5:7]}{t.date[8:10]}{'D' if t.cents < 0 else 'C'}"
                   f"{_money(abs(t.cents), ',')}{code}NONREF//{t.bank_id[:16]}")
        text = _text(t.description).replace("?", " ").lstrip(":-") or "-"
        out += [f":86:{text[:65]}"] + [text[i:i + 65] for i in range(65, min(len(text), 390), 65)]
    out.append(balance("62F", s.closing_cents, last))


# -- QIF --------------------------------------------------------------------------------------------
def _qif(s: Statement, out: list[str], starts: list[int]) -> None:
    kind = "CCard" if s.kind == "credit_card" else "Bank"
    out += ["!Account", f"N{s.account}", f"T{kind}", "^", f"!Type:{kind}"]
    for t in s.txns:
        starts.append(len(out) + 1)
        out += [f"D{t.date[5:7]}/{t.date[8:10]}/{t.date[:4]}", f"T{_money(t.cents)}", f"P{_text(t.description)}"]
        if t.category:
            out.append(f"L{t.category}")
        out.append("^")


_WRITERS = {"ofx": _ofx, "camt053": _camt, "mt940": _mt940, "qif": _qif}
