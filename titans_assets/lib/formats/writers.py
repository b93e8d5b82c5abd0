"""Bank statement writers: transactions -> OFX 1.02 (SGML), CAMT.053.001.02, MT940, QIF or CSV bytes.

The generator's other half (the readers are formats.ofx/camt/mt940/qif). `write(fmt, statement)`
returns the file's bytes and the physical line (1-based) where each transaction's record starts, in
the readers' numbering; `csv-profile:<name>` writes a built-in CSV profile's layout. Output is a pure
function of its input: the same statement gives the same bytes.

Design notes (what each format carries, descriptions): docs/generator.md#titans_assetslibformatswriterspy
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

from titans_assets.lib.csv_contract import CANONICAL_COLUMNS

STATEMENT_FORMATS = ("ofx", "camt053", "mt940", "qif")
# One `csv-profile:<name>` per built-in profile (the file stems: no YAML parsed at import).
PROFILE_FORMATS = tuple(
    f"csv-profile:{p.stem}" for p in sorted(Path(__file__).with_name("profiles").glob("*.yaml"))
)
FORMATS = STATEMENT_FORMATS + PROFILE_FORMATS
EXTENSIONS = {
    "ofx": ".ofx",
    "camt053": ".xml",
    "mt940": ".sta",
    "qif": ".qif",
    **dict.fromkeys(PROFILE_FORMATS, ".csv"),
}


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
    if fmt in PROFILE_FORMATS:
        return write_profile_csv(fmt.removeprefix("csv-profile:"), statement)
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
    return s.created.isoformat() if s.created else s.span()[1]


# -- OFX 1.02 (SGML) --------------------------------------------------------------------------------
def _ofx(s: Statement, out: list[str], starts: list[int]) -> None:
    first, last = s.span()
    stamp = _created(s).replace("-", "") + "120000"
    card = s.kind == "credit_card"
    out += [
        "OFXHEADER:100",
        "DATA:OFXSGML",
        "VERSION:102",
        "SECURITY:NONE",
        "ENCODING:USASCII",
        "CHARSET:1252",
        "COMPRESSION:NONE",
        "OLDFILEUID:NONE",
        f"NEWFILEUID:{s.statement_id}",
        "",
        "<OFX>",
        "<SIGNONMSGSRSV1>",
        "<SONRS>",
        "<STATUS>",
        "<CODE>0",
        "<SEVERITY>INFO",
        "</STATUS>",
        f"<DTSERVER>{stamp}",
        "<LANGUAGE>ENG",
        "<FI>",
        f"<ORG>{escape(s.institution)}",
        "<FID>1001",
        "</FI>",
        "</SONRS>",
        "</SIGNONMSGSRSV1>",
        "<CREDITCARDMSGSRSV1>" if card else "<BANKMSGSRSV1>",
        "<CCSTMTTRNRS>" if card else "<STMTTRNRS>",
        f"<TRNUID>{s.statement_id}",
        "<STATUS>",
        "<CODE>0",
        "<SEVERITY>INFO",
        "</STATUS>",
        "<CCSTMTRS>" if card else "<STMTRS>",
        f"<CURDEF>{s.currency}",
    ]
    if card:
        out += ["<CCACCTFROM>", f"<ACCTID>{escape(s.account)}", "</CCACCTFROM>"]
    else:
        out += [
            "<BANKACCTFROM>",
            f"<BANKID>{s.routing}",
            f"<ACCTID>{escape(s.account)}",
            "<ACCTTYPE>CHECKING",
            "</BANKACCTFROM>",
        ]
    out += ["<BANKTRANLIST>", f"<DTSTART>{first.replace('-', '')}", f"<DTEND>{last.replace('-', '')}"]
    for t in s.txns:
        starts.append(len(out) + 1)
        desc = escape(_text(t.description))
        kind = "CHECK" if t.reference.isdigit() else ("CREDIT" if t.cents > 0 else "DEBIT")
        out += [
            "<STMTTRN>",
            f"<TRNTYPE>{kind}",
            f"<DTPOSTED>{t.date.replace('-', '')}",
            f"<TRNAMT>{_money(t.cents)}",
            f"<FITID>{escape(t.bank_id)}",
        ]
        if t.reference:
            out.append(f"<REFNUM>{escape(t.reference[:32])}")
        out.append(f"<NAME>{desc}" if len(desc) <= 32 else f"<MEMO>{desc[:255]}")
        out.append("</STMTTRN>")
    out += [
        "</BANKTRANLIST>",
        "<LEDGERBAL>",
        f"<BALAMT>{_money(s.closing_cents)}",
        f"<DTASOF>{stamp}",
        "</LEDGERBAL>",
        "</CCSTMTRS>" if card else "</STMTRS>",
        "</CCSTMTTRNRS>" if card else "</STMTTRNRS>",
        "</CREDITCARDMSGSRSV1>" if card else "</BANKMSGSRSV1>",
        "</OFX>",
    ]


# -- CAMT.053.001.02 --------------------------------------------------------------------------------
def _camt(s: Statement, out: list[str], starts: list[int]) -> None:
    first, last = s.span()
    created = _created(s) + "T23:59:59"
    ccy = escape(s.currency, {'"': "&quot;"})

    def balance(code: str, cents: int, date: str) -> list[str]:
        return [
            "      <Bal>",
            f"        <Tp><CdOrPrtry><Cd>{code}</Cd></CdOrPrtry></Tp>",
            f'        <Amt Ccy="{ccy}">{_money(abs(cents))}</Amt>',
            f"        <CdtDbtInd>{'DBIT' if cents < 0 else 'CRDT'}</CdtDbtInd>",
            f"        <Dt><Dt>{date}</Dt></Dt>",
            "      </Bal>",
        ]

    out += [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02">',
        "  <BkToCstmrStmt>",
        f"    <GrpHdr><MsgId>{escape(s.statement_id)}</MsgId><CreDtTm>{created}</CreDtTm></GrpHdr>",
        "    <Stmt>",
        f"      <Id>{escape(s.statement_id)}</Id>",
        f"      <CreDtTm>{created}</CreDtTm>",
        f"      <FrToDt><FrDtTm>{first}T00:00:00</FrDtTm><ToDtTm>{last}T23:59:59</ToDtTm></FrToDt>",
        f"      <Acct><Id><IBAN>{escape(s.account)}</IBAN></Id><Ccy>{ccy}</Ccy>"
        f"<Svcr><FinInstnId><BIC>{s.bic}</BIC><Nm>{escape(s.institution)}</Nm></FinInstnId></Svcr></Acct>",
    ]
    out += balance("OPBD", s.opening_cents, first)
    out += balance("CLBD", s.closing_cents, last)
    for t in s.txns:
        starts.append(len(out) + 1)
        debit = t.cents < 0
        family = (
            ("CCRD", "POSD") if s.kind == "credit_card" else (("ICDT", "DMCT") if debit else ("RCDT", "DMCT"))
        )
        e2e = escape(t.reference[:35]) if t.reference else "NOTPROVIDED"
        out += [
            "      <Ntry>",
            f'        <Amt Ccy="{ccy}">{_money(abs(t.cents))}</Amt>',
            f"        <CdtDbtInd>{'DBIT' if debit else 'CRDT'}</CdtDbtInd>",
            "        <Sts>BOOK</Sts>",
            f"        <BookgDt><Dt>{t.date}</Dt></BookgDt><ValDt><Dt>{t.date}</Dt></ValDt>",
            f"        <AcctSvcrRef>{escape(t.bank_id)}</AcctSvcrRef>",
            f"        <BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>{family[0]}</Cd><SubFmlyCd>{family[1]}</SubFmlyCd>"
            "</Fmly></Domn></BkTxCd>",
            f"        <NtryDtls><TxDtls><Refs><EndToEndId>{e2e}</EndToEndId></Refs>"
            f"<RmtInf><Ustrd>{escape(_text(t.description)[:140])}</Ustrd></RmtInf></TxDtls></NtryDtls>",
            "      </Ntry>",
        ]
    out += ["    </Stmt>", "  </BkToCstmrStmt>", "</Document>"]


# -- MT940 ------------------------------------------------------------------------------------------
def _yymmdd(iso: str) -> str:
    return iso[2:4] + iso[5:7] + iso[8:10]


def _mt940(s: Statement, out: list[str], starts: list[int]) -> None:
    first, last = s.span()

    def balance(tag: str, cents: int, date: str) -> str:
        return f":{tag}:{'D' if cents < 0 else 'C'}{_yymmdd(date)}{s.currency}{_money(abs(cents), ',')}"

    out += [
        f":20:{s.statement_id[:16]}",
        f":25:{s.account[:35]}",
        ":28C:1/1",
        balance("60F", s.opening_cents, first),
    ]
    for t in s.txns:
        starts.append(len(out) + 1)
        code = "NCHK" if t.reference.isdigit() else ("NTRF" if s.kind == "checking" else "NMSC")
        out.append(
            f":61:{_yymmdd(t.date)}{t.date[5:7]}{t.date[8:10]}{'D' if t.cents < 0 else 'C'}"
            f"{_money(abs(t.cents), ',')}{code}NONREF//{t.bank_id[:16]}"
        )
        text = _text(t.description).replace("?", " ").lstrip(":-") or "-"
        out += [f":86:{text[:65]}"] + [text[i : i + 65] for i in range(65, min(len(text), 390), 65)]
    out.append(balance("62F", s.closing_cents, last))


# -- QIF --------------------------------------------------------------------------------------------
def _qif(s: Statement, out: list[str], starts: list[int]) -> None:
    kind = "CCard" if s.kind == "credit_card" else "Bank"
    out += ["!Account", f"N{s.account}", f"T{kind}", "^", f"!Type:{kind}"]
    for t in s.txns:
        starts.append(len(out) + 1)
        out += [
            f"D{t.date[5:7]}/{t.date[8:10]}/{t.date[:4]}",
            f"T{_money(t.cents)}",
            f"P{_text(t.description)}",
        ]
        if t.category:
            out.append(f"L{t.category}")
        out.append("^")


# -- CSV in a built-in profile's layout -------------------------------------------------------------
# `date_format: auto` profiles: the order their banks write, used when the file's dates prove it
# (a day above 12), else ISO (which reads one way only).
_AUTO_DATES = {"de_csv_camt": "%d.%m.%y", "debit_credit": "%d/%m/%Y", "card_statement_as": "%m/%d/%Y"}
_SEED_HEADER = CANONICAL_COLUMNS


# The roles a profile CSV is written with, in column order (those the profile has).
_PROFILE_ROLES = (
    "date",
    "description",
    "payee",
    "reference",
    "id",
    "debit",
    "credit",
    "amount",
    "balance",
    "currency",
    "category",
    "type",
    "account",
)


def write_profile_csv(name: str, s: Statement) -> tuple[bytes, list[int]]:
    """The statement as a CSV in built-in profile `name`'s layout: (bytes, line of each row)."""
    from titans_assets.lib.formats.profiles import builtin_profiles

    profile = next((p for p in builtin_profiles() if p.name == name), None)
    if profile is None:
        raise ValueError(f"format 'csv-profile:{name}': known {', '.join(FORMATS)}")
    lines = list(range(2, len(s.txns) + 2))
    if profile.contract:
        return _seed_csv(s), lines
    decimal = profile.decimal or "."
    delimiter = profile.delimiter or (";" if decimal == "," else ",")
    date_format = profile.date_format or _AUTO_DATES.get(name, "%Y-%m-%d")
    if profile.date_format is None and not any(int(t.date[8:10]) > 12 for t in s.txns):
        date_format = "%Y-%m-%d"
    roles = [r for r in _PROFILE_ROLES if r in profile.columns]
    label = {r: profile.labels.get(profile.columns[r][0], profile.columns[r][0]) for r in roles}
    extra = [
        profile.labels.get(m, m) for m in profile.match if m not in {profile.columns[r][0] for r in roles}
    ]
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=delimiter, lineterminator="\n")
    writer.writerow([label[r] for r in roles] + extra)
    balance = s.opening_cents
    for t in s.txns:
        balance += t.cents
        day = dt.date.fromisoformat(t.date).strftime(date_format)
        cells = _profile_cells(profile, s, t, day, balance, decimal)
        writer.writerow([cells[r] for r in roles] + [_match_only_cell(m, day, s, t) for m in extra])
    return buf.getvalue().encode(profile.encoding or "utf-8"), lines


def _seed_csv(s: Statement) -> bytes:
    """The statement in the seed CSV's layout (the contract profile)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(_SEED_HEADER)
    for t in s.txns:
        writer.writerow(
            [
                t.date,
                "Expense" if t.cents < 0 else "Income",
                _text(t.description),
                _money(t.cents),
                t.category if t.cents < 0 else "",
                "bank_transfer",
                "paid" if t.cents < 0 else "received",
                _text(t.reference),
                "",
            ]
        )
    return buf.getvalue().encode("utf-8")


def _profile_cells(profile, s: Statement, t: Txn, day: str, balance: int, decimal: str) -> dict[str, str]:
    """One row's cell for every role, in the profile's sign convention."""
    cells = {
        "date": day,
        "description": _text(t.description),
        "payee": _text(t.reference),
        "reference": _text(t.reference),
        "id": t.bank_id,
        "balance": _money(balance, decimal),
        "debit": _money(-t.cents, decimal) if t.cents < 0 else "",
        "credit": _money(t.cents, decimal) if t.cents >= 0 else "",
        "currency": s.currency,
        "category": t.category,
        "account": s.account,
    }
    if profile.sign == "type":
        cells["amount"] = _money(abs(t.cents), decimal)
        cells["type"] = (profile.debit_values if t.cents < 0 else profile.credit_values)[0]
    else:
        cells["amount"] = _money(-t.cents if profile.sign == "inverted" else t.cents, decimal)
        cells["type"] = "Sale" if t.cents < 0 else "Payment"
    return cells


def _match_only_cell(column: str, day: str, s: Statement, t: Txn) -> str:
    """A match-only column's cell: a second date where the name says so, else the description."""
    m = column.lower()
    if "date" in m or "valuta" in m:
        return day
    if m == "buchungstext":
        return "TRANSFER"
    return s.account if "account" in m else _text(t.description)


_WRITERS = {"ofx": _ofx, "camt053": _camt, "mt940": _mt940, "qif": _qif}
