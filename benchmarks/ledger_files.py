"""Reading the real dev ledgers (../shared/devdata/ledgers/) for the benchmarks: every ledger is
converted to the seed CSV format by a converter for its file TYPE (a bank CSV with a header, a Ledger
journal, a QIF file), never for one file, and read back with lib/ml/data.frame_from_csvs (the input
contract's parser and the warehouse's label normalization). Used by real_ledgers.py,
cashflow_oneoffs.py and correction_loop.py."""

from __future__ import annotations

import csv
import datetime as dt
import re
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from titans_assets.lib.csv_contract import CANONICAL_COLUMNS  # noqa: E402

SEED_HEADER = CANONICAL_COLUMNS
ONE_YEAR_DAYS = 365


# --------------------------------------------------------------------------- converters (per file type)
def _amount(text: str) -> float | None:
    """'$1,234.50', '-12.3', '(12.30)', '$-5.00', '-$5.00' -> float; None when not a number."""
    s = text.strip().replace(",", "").replace("$", "").replace(" ", "")
    negative = s.startswith("(") and s.endswith(")")
    s = s.strip("()")
    try:
        value = float(s)
    except ValueError:
        return None
    return -value if negative else value


_DATE_FORMATS = ("%Y-%m-%d", "%m/%d/%Y", "%Y/%m/%d", "%m/%d/%y", "%d.%m.%Y")


def _date(text: str) -> dt.date | None:
    s = text.strip().replace("'", "/").replace(" ", "")
    for fmt in _DATE_FORMATS:
        try:
            return dt.datetime.strptime(s, fmt).date()
        except ValueError:
            continue
    return None


def _row(
    day: dt.date,
    amount: float,
    description: str,
    category: str = "",
    payment_method: str = "",
    reference: str = "",
) -> dict[str, str]:
    """One seed-format row: signed amount (expenses negative); the category is kept on expenses only
    (the seed ledger leaves it empty on income, and the warehouse drops it there)."""
    kind = "Expense" if amount < 0 else "Income"
    return {
        "Date": day.isoformat(),
        "Type": kind,
        "Description": description.strip(),
        "Amount": f"{amount:.2f}",
        "Category": category.strip() if kind == "Expense" else "",
        "Payment Method": payment_method,
        "Status": "",
        "Reference": reference.strip(),
        "Receipt URL": "",
    }


def _column(header: list[str], *wanted: str) -> int | None:
    """The first column whose lower-cased name equals, else contains, one of `wanted` (in order)."""
    names = [h.strip().lower() for h in header]
    for w in wanted:
        if w in names:
            return names.index(w)
    for w in wanted:
        for i, n in enumerate(names):
            if w in n:
                return i
    return None


def convert_bank_csv(path: Path) -> tuple[list[dict[str, str]], Counter]:
    """A bank or card CSV export with a header row: date, description, amount and category columns
    found by name (the transaction date before a posting date). The sign convention is the file's: the
    sign most categorised rows carry is the expense sign (a card export lists charges as positive or as
    negative amounts depending on the bank). No vendor column: the reference stays empty."""
    with path.open(newline="", encoding="utf-8-sig", errors="replace") as f:
        records = list(csv.reader(f))
    header, body = records[0], records[1:]
    i_date = _column(header, "transaction date", "date")
    i_desc = _column(header, "description", "payee", "details", "memo")
    i_amount = _column(header, "amount")
    i_cat = _column(header, "category")
    if None in (i_date, i_desc, i_amount):
        raise ValueError(f"{path.name}: no date/description/amount columns in its header")
    parsed, skipped = [], Counter()
    for rec in body:
        if len(rec) <= max(i_date, i_desc, i_amount):
            skipped["short record"] += 1
            continue
        day, amount = _date(rec[i_date]), _amount(rec[i_amount])
        if day is None or amount is None:
            skipped["no date or amount"] += 1
            continue
        category = rec[i_cat].strip() if i_cat is not None and i_cat < len(rec) else ""
        parsed.append((day, amount, rec[i_desc], category))
    signs = Counter(np.sign(a) for _, a, _, c in parsed if c)
    expense_sign = -1.0 if signs[-1.0] >= signs[1.0] else 1.0
    rows = [_row(day, -expense_sign * amount, desc, cat) for day, amount, desc, cat in parsed]
    return rows, skipped


_JOURNAL_HEADER = re.compile(r"^(\d{4}[/-]\d{1,2}[/-]\d{1,2})(?:=\S+)?\s*(?:[*!]\s*)?(?:\([^)]*\)\s*)?(.*)$")
_FIELD_GAP = re.compile(r"\s{2,}|\t")


def convert_journal(path: Path) -> tuple[list[dict[str, str]], Counter]:
    """A Ledger / hledger journal: one row per transaction with an Expenses: or Income: posting. The
    category is that (first) account, the amount the money leaving (expense) or entering (income) the
    books on it (an elided amount balances the others), the payment method the first two levels of the
    first other account (what paid: Assets:Checking, Liabilities:Card). Transactions between the
    books' own accounts (no Expenses:/Income: posting) are transfers and are left out."""
    rows, skipped = [], Counter()
    txns: list[tuple[dt.date, str, list[tuple[str, float | None]]]] = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip() or line.lstrip().startswith((";", "#", "%", "|", "*")) and not line[:1].isspace():
            continue
        if not line[:1].isspace():
            m = _JOURNAL_HEADER.match(line)
            if m:
                day = _date(m.group(1).replace("-", "/"))
                txns.append((day, m.group(2).split(";")[0].strip(), []) if day else (None, "", []))
            else:
                txns.append((None, "", []))  # a directive (account, commodity, ...): not a transaction
            continue
        if not txns or txns[-1][0] is None or line.strip().startswith(";"):
            continue
        parts = _FIELD_GAP.split(line.split(";")[0].strip().lstrip("*! "), maxsplit=1)
        account = parts[0].strip("()[] ")
        if account:
            amount = _amount(parts[1].split("@")[0]) if len(parts) > 1 and parts[1].strip() else None
            txns[-1][2].append((account, amount))
    for day, payee, postings in txns:
        if day is None:
            continue
        labelled = [(a, v) for a, v in postings if a.split(":")[0].lower() in ("expenses", "income")]
        if not labelled:
            skipped["transfer between own accounts"] += 1
            continue
        account, value = labelled[0]
        if value is None:  # elided: balances every posting with an amount
            known = [v for _, v in postings if v is not None]
            if len(known) != len(postings) - 1:
                skipped["unbalanced or multi-elided"] += 1
                continue
            value = -sum(known)
        others = [
            a
            for a, _ in postings
            if (a, _) != labelled[0] and a.split(":")[0].lower() not in ("expenses", "income")
        ]
        method = ":".join(others[0].split(":")[:2]) if others else ""
        # ledger signs: an expense posting is a debit (positive), income a credit (negative)
        rows.append(_row(day, -value, payee, account, method))
    return rows, skipped


def convert_qif(path: Path) -> tuple[list[dict[str, str]], Counter]:
    """A QIF bank register (!Type:Bank/CCard/Cash): D date, T amount (signed), P payee, L category
    ('[Account]' is a transfer to an own account and is left out), N check number or code (the payment
    method: 'check' when a number), M memo (joined to the payee in the description)."""
    rows, skipped = [], Counter()
    record: dict[str, str] = {}
    section = ""
    for line in path.read_text(encoding="latin-1").splitlines():
        if line.startswith("!"):
            section = line[1:].strip().lower()
            continue
        if not line.strip():
            continue
        if line.startswith("^"):
            if section.startswith("type:") and section[5:] in ("bank", "ccard", "cash", "oth a", "oth l"):
                day, amount = _date(record.get("D", "")), _amount(record.get("T", record.get("U", "")))
                label = record.get("L", "")
                if day is None or amount is None:
                    skipped["no date or amount"] += 1
                elif label.startswith("["):
                    skipped["transfer between own accounts"] += 1
                else:
                    number = record.get("N", "").strip()
                    method = "check" if number.isdigit() else number.lower()
                    text = " ".join(x for x in (record.get("P", ""), record.get("M", "")) if x.strip())
                    rows.append(_row(day, amount, text, label.split("/")[0], method))
            record = {}
            continue
        key = line[0]
        if key not in record:  # split lines (S/E/$) repeat keys: the first of each is the transaction's
            record[key] = line[1:]
    return rows, skipped


def convert(path: Path) -> tuple[list[dict[str, str]], Counter]:
    suffix = path.suffix.lower()
    if suffix == ".qif":
        return convert_qif(path)
    if suffix in (".ledger", ".journal", ".hledger", ".dat"):
        return convert_journal(path)
    if suffix in (".csv", ".txt"):
        return convert_bank_csv(path)
    raise ValueError(f"{path.name}: no converter for {suffix} files")


def write_seed_csv(rows: list[dict[str, str]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=SEED_HEADER)
        w.writeheader()
        w.writerows(rows)


def frame_of(rows: list[dict[str, str]]) -> pd.DataFrame:
    """Converted rows as the warehouse would hold them (written to a temporary landing folder, read back
    with data.frame_from_csvs)."""
    from titans_assets.lib.ml import data

    with tempfile.TemporaryDirectory(prefix="titans-ledger-") as tmp:
        write_seed_csv(rows, Path(tmp) / "raw" / "ledger.csv")
        return data.frame_from_csvs(Path(tmp) / "raw")


def ledger_paths(devdata: Path, only: str = "") -> list[Path]:
    """The dev ledgers, by name; `only`: comma-separated substrings of the names to keep."""
    wanted = [w for w in only.split(",") if w]
    folder = devdata / "ledgers"
    if not folder.is_dir():
        return []
    return [
        p
        for p in sorted(folder.iterdir())
        if p.is_file() and (not wanted or any(w in p.name for w in wanted))
    ]
