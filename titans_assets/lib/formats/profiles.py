"""CSV profiles: a small YAML file per bank layout says which column is what and how values are written.

`load_profile` / `builtin_profiles` / `user_profiles` read profiles; `choose` picks the one that reads a
CSV (a profile named beside the file always; else the one claiming the most header columns; none or
a tie rejects the file with one E003 line); `read` reads the file with it. `contract: true` marks the
seed ledger's profile (read by csv_contract.split_csv). Unmapped columns go to the row's extra JSON;
date order is never guessed per row. Pure code: no Dagster, no database.

Design notes (every YAML key, the choice rules): docs/design-notes.md#titans_assetslibformatsprofilespy
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

import yaml

from titans_assets.lib.csv_contract import (
    DATE_FORMATS,
    SplitFile,
    _careful_table,
    _Header,
    date_formats,
    decode,
    normalize_header_name,
    parse_amount,
    parse_date,
)
from titans_assets.lib.formats._common import Record, build, unique_ids

BUILTIN_DIR = Path(__file__).with_name("profiles")
ROLES = (
    "date",
    "amount",
    "debit",
    "credit",
    "description",
    "payee",
    "reference",
    "id",
    "balance",
    "currency",
    "category",
    "type",
    "account",
)
_SETTINGS = {
    "name",
    "description",
    "header",
    "skip_lines",
    "delimiter",
    "encoding",
    "date_format",
    "decimal",
    "thousands",
    "sign",
    "debit_values",
    "credit_values",
    "account",
    "currency",
    "columns",
    "match",
    "keep",
    "contract",
    "institution",
}
_DELIMITERS = (",", ";", "\t", "|")
_SAMPLE_BYTES = 1 << 16
FORMAT = "CSV profile"


class ProfileError(ValueError):
    """A profile file that cannot be used. Code E003, one line naming the file and the key."""

    code = "E003"


@dataclass(frozen=True)
class Profile:
    name: str
    source: str  # `builtin` or the YAML file's path
    columns: dict[str, tuple]  # role -> accepted header names (normalised) or one 0-based position
    header: bool = True
    skip_lines: int = 0
    delimiter: str | None = None
    encoding: str | None = None
    date_format: str | None = None
    decimal: str | None = None
    thousands: str | None = None
    sign: str = "signed"
    debit_values: tuple[str, ...] = ("debit", "dr", "d", "withdrawal", "payment", "out")
    credit_values: tuple[str, ...] = ("credit", "cr", "c", "deposit", "in")
    account: str | None = None
    currency: str | None = None
    institution: str | None = None
    match: tuple[str, ...] = ()
    keep: tuple[str, ...] = ()
    contract: bool = False
    description: str = ""
    labels: dict[str, str] = field(default_factory=dict)  # normalised header name -> as the YAML spells it

    @property
    def builtin(self) -> bool:
        return self.source == "builtin"


# -- loading -------------------------------------------------------------------------------------------


def parse_profile(text: str, source: str = "builtin", default_name: str = "profile") -> Profile:
    """YAML text -> Profile; ProfileError (E003, one line) names what is wrong."""
    where = source if source != "builtin" else f"built-in profile {default_name}"
    try:
        spec = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ProfileError(
            f"E003 invalid input: profile {where}: not YAML ({' '.join(str(exc).split())[:200]})"
        ) from None
    if not isinstance(spec, dict):
        raise ProfileError(f"E003 invalid input: profile {where}: expected a mapping of settings")

    def bad(why: str) -> ProfileError:
        return ProfileError(f"E003 invalid input: profile {where}: {why}")

    unknown = sorted(set(map(str, spec)) - _SETTINGS)
    if unknown:
        raise bad(f"unknown setting(s) {', '.join(unknown)} (known: {', '.join(sorted(_SETTINGS))})")
    header = bool(spec.get("header", True))
    columns, labels = _parse_columns(spec, header, bad)
    contract = bool(spec.get("contract", False))
    if not contract:
        if "date" not in columns:
            raise bad("columns.date is required")
        if "amount" not in columns and not ({"debit", "credit"} & set(columns)):
            raise bad("columns.amount (or debit and credit) is required")
    sign = str(spec.get("sign", "signed"))
    if sign not in ("signed", "inverted", "type"):
        raise bad(f"sign {sign!r} is not signed, inverted or type")
    if sign == "type" and "type" not in columns:
        raise bad("sign: type needs columns.type")
    fmt = _parse_format(spec, bad)
    skip = spec.get("skip_lines", 0)
    if not isinstance(skip, int) or skip < 0:
        raise bad("skip_lines must be a whole number >= 0")
    match = tuple(normalize_header_name(str(n)) for n in spec.get("match") or ())
    keep = tuple(normalize_header_name(str(n)) for n in spec.get("keep") or ())
    for names in (spec.get("match") or (), spec.get("keep") or ()):
        labels.update({normalize_header_name(str(n)): str(n) for n in names})
    return Profile(
        name=str(spec.get("name") or default_name),
        source=source,
        columns=columns,
        header=header,
        skip_lines=skip,
        sign=sign,
        **fmt,
        debit_values=tuple(str(v).strip().lower() for v in spec.get("debit_values") or Profile.debit_values),
        credit_values=tuple(
            str(v).strip().lower() for v in spec.get("credit_values") or Profile.credit_values
        ),
        account=_text(spec.get("account")),
        currency=_text(spec.get("currency")),
        institution=_text(spec.get("institution")),
        match=match,
        keep=keep,
        contract=contract,
        description=str(spec.get("description") or ""),
        labels=labels,
    )


def _parse_columns(spec: dict, header: bool, bad) -> tuple[dict[str, tuple], dict[str, str]]:
    """`columns:` -> role -> normalised header names (or a 0-based position), and their spellings."""
    columns_spec = spec.get("columns") or {}
    if not isinstance(columns_spec, dict):
        raise bad("columns must map a role to a header name")
    roles = sorted(set(map(str, columns_spec)) - set(ROLES))
    if roles:
        raise bad(f"unknown column role(s) {', '.join(roles)} (roles: {', '.join(ROLES)})")
    columns: dict[str, tuple] = {}
    labels: dict[str, str] = {}
    for role, value in columns_spec.items():
        if value is None:
            continue
        names = value if isinstance(value, list) else [value]
        if not header:
            if len(names) != 1 or not isinstance(names[0], int) or names[0] < 1:
                raise bad(f"columns.{role}: with header: false a column is its 1-based position")
            columns[role] = (names[0] - 1,)
            continue
        if not names or not all(isinstance(n, str) and n.strip() for n in names):
            raise bad(f"columns.{role}: a header name or a list of them")
        columns[role] = tuple(normalize_header_name(n) for n in names)
        labels.update({normalize_header_name(n): n for n in names})
    return columns, labels


def _parse_format(spec: dict, bad) -> dict:
    """The number and text format settings, validated (None where `auto`)."""
    date_format = _auto(spec.get("date_format"))
    if date_format is not None and not (
        re.search(r"%d", date_format)
        and re.search(r"%[mbB]", date_format)
        and re.search(r"%[yY]", date_format)
    ):
        raise bad(f"date_format {date_format!r} needs a day, a month and a year (e.g. %d/%m/%Y)")
    decimal = _auto(spec.get("decimal"))
    if decimal not in (None, ".", ","):
        raise bad(f"decimal {decimal!r} is not '.' or ','")
    thousands = spec.get("thousands", "auto")
    thousands = None if thousands == "auto" else ("" if thousands is None else str(thousands))
    delimiter = _auto(spec.get("delimiter"))
    if delimiter is not None and len(delimiter) != 1:
        raise bad(f"delimiter {delimiter!r} is not one character")
    encoding = _auto(spec.get("encoding"))
    if encoding is not None:
        try:
            "".encode(encoding)
        except LookupError:
            raise bad(f"encoding {encoding!r} is unknown") from None
    return dict(
        date_format=date_format, decimal=decimal, thousands=thousands, delimiter=delimiter, encoding=encoding
    )


def _auto(value) -> str | None:
    return None if value is None or value == "auto" else str(value)


def _text(value) -> str | None:
    return None if value is None or str(value).strip() == "" else str(value).strip()


def load_profile(path: Path) -> Profile:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"E003 invalid input: profile {path}: cannot be read ({exc})") from None
    stem = path.name.removesuffix(".yaml").removesuffix(".yml").removesuffix(".profile")
    return parse_profile(text, str(path), stem)


@lru_cache(maxsize=1)
def builtin_profiles() -> tuple[Profile, ...]:
    """The profiles shipped in formats/profiles/*.yaml, the seed ledger first."""
    found = [
        parse_profile(p.read_text(encoding="utf-8"), "builtin", p.stem)
        for p in sorted(BUILTIN_DIR.glob("*.yaml"))
    ]
    return tuple(sorted(found, key=lambda p: (not p.contract, p.name)))


def user_profiles(directory: Path | None) -> tuple[list[Profile], list[str]]:
    """The profiles in a folder (`*.yaml`, `*.yml`), and one E003 line per file that is not one."""
    if directory is None or not directory.is_dir():
        return [], []
    found, broken = [], []
    for path in sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]):
        try:
            found.append(load_profile(path))
        except ProfileError as exc:
            broken.append(str(exc))
    return found, broken


def beside(path: Path | None) -> Path | None:
    """`<file>.profile.yaml`, else `profile.yaml` in the file's folder (one account's exports)."""
    if path is None:
        return None
    for candidate in (path.with_name(path.name + ".profile.yaml"), path.parent / "profile.yaml"):
        if candidate.is_file():
            return candidate
    return None


# -- detection -----------------------------------------------------------------------------------------


@dataclass
class Choice:
    profile: Profile | None  # None: rejected (error says why)
    error: str | None = None


def header_cells(text: str, profile: Profile) -> tuple[list[str], str, int]:
    """The header line a profile would read (after its skip_lines), split by its delimiter (or the one
    under which the most cells are names the profile knows), and its 1-based line number."""
    lines = io.StringIO(text, newline="")
    number, line = 0, ""
    for number, line in enumerate(lines, start=1):
        if number > profile.skip_lines and line.strip():
            break
    else:
        return [], profile.delimiter or ",", number
    known = set(profile.match) | set(profile.keep) | {n for names in profile.columns.values() for n in names}
    best: tuple[int, int, str, list[str]] | None = None
    for delim in [profile.delimiter] if profile.delimiter else _DELIMITERS:
        cells = next(csv.reader([line.rstrip("\r\n")], delimiter=delim), [])
        score = (sum(normalize_header_name(c) in known for c in cells), len(cells))
        if best is None or score > best[:2]:
            best = (*score, delim, cells)
    return best[3], best[2], number


def mapping(profile: Profile, cells: list[str]) -> tuple[dict[str, int], int] | None:
    """Role -> 0-based column, and how many header columns the profile claims; None if it does not
    fit the header (a required role or a `match` name is missing)."""
    names = [normalize_header_name(c) for c in cells]
    taken: set[int] = set()
    roles: dict[str, int] = {}
    for role, accepted in profile.columns.items():
        for name in accepted:
            if name in names and names.index(name) not in taken:
                roles[role] = names.index(name)
                taken.add(roles[role])
                break
    if "date" not in roles or not ("amount" in roles or {"debit", "credit"} <= set(roles)):
        return None
    if profile.sign == "type" and "type" not in roles:
        return None
    if any(n not in names for n in profile.match):
        return None
    claimed = len(taken) + sum(
        1 for i, n in enumerate(names) if i not in taken and n in (*profile.match, *profile.keep)
    )
    return roles, claimed


def contract_claim(cells: list[str]) -> int | None:
    """How many header columns the seed ledger's contract maps, None if it would reject the header."""
    from titans_assets.lib.csv_contract import REQUIRED, map_header

    known, _ = map_header(cells)
    return len(known) if all(c in known for c in REQUIRED) else None


def choose(text: str, profiles: list[Profile]) -> tuple[Choice, list[str], str]:
    """The profile that reads this CSV (see the module doc), the header cells seen and the delimiter."""
    scored: list[tuple[tuple[int, int], Profile]] = []
    seen, seen_delim = [], ","
    for profile in profiles:
        if not profile.header:
            continue
        if profile.contract:
            from titans_assets.lib.csv_contract import sniff_delimiter

            first = next((t for t in io.StringIO(text, newline="") if t.strip()), "")
            delim = sniff_delimiter(first)
            cells = next(csv.reader([first.rstrip("\r\n")], delimiter=delim), [])
            claim = contract_claim(cells)
        else:
            cells, delim, _ = header_cells(text, profile)
            fit = mapping(profile, cells)
            claim = None if fit is None else fit[1]
        if not seen or (claim is not None and not scored):
            seen, seen_delim = cells, delim
        if claim is not None:
            tier = 2 if not profile.builtin else (1 if profile.contract else 0)
            scored.append(((claim, tier), profile))
    if not scored:
        return Choice(None, "unknown"), seen, seen_delim
    scored.sort(key=lambda s: s[0], reverse=True)
    top = [p for score, p in scored if score == scored[0][0]]
    if len(top) > 1:
        return Choice(None, "ambiguous: " + " and ".join(p.name for p in top)), seen, seen_delim
    return Choice(top[0]), seen, seen_delim


def rejection(
    kind: str,
    cells: list[str],
    delimiter: str,
    profiles: list[Profile],
    name: str,
    broken: list[str] = (),
    contract_error: str | None = None,
) -> str:
    """The one E003 line for a CSV no profile reads."""
    shown = repr(cells)
    shown = shown if len(shown) <= 300 else shown[:300] + "..."
    tried = ", ".join(p.name for p in profiles if p.header) or "none"
    if kind.startswith("ambiguous"):
        head = (
            f"E003 invalid input: header: the columns fit CSV profiles {kind.removeprefix('ambiguous: ')} "
            f"equally, so the file is rejected whole (read {shown} with delimiter {delimiter!r})"
        )
    elif contract_error:
        head = contract_error
    else:
        head = (
            f"E003 invalid input: header: no CSV profile fits the columns, so the file is rejected whole "
            f"(read {shown} with delimiter {delimiter!r})"
        )
    tail = (
        f"; profiles tried: {tried}; describe this layout in a profile: `titans profile suggest {name}` "
        f"prints a draft to save as {name}.profile.yaml beside it or in the profiles folder"
    )
    if broken:
        tail += f"; unusable profiles: {' | '.join(broken)[:300]}"
    return " ".join((head + tail).split())


# -- reading -------------------------------------------------------------------------------------------


def read_text(data: bytes, profile: Profile) -> tuple[str, str]:
    if profile.encoding is None:
        return decode(data)
    try:
        return data.decode(profile.encoding.lower().replace("_", "-")), profile.encoding
    except UnicodeDecodeError:
        return data.decode(profile.encoding, errors="replace"), profile.encoding


def read(data: bytes, profile: Profile) -> SplitFile:
    """The file read by one (non-contract) profile: a StatementFile whose rows the contract types,
    bad rows quarantined with their line and reason, or the whole file rejected in one E003 line."""
    text, encoding = read_text(data, profile)
    if profile.header:
        cells, delimiter, header_line = header_cells(text, profile)
        fit = mapping(profile, cells)
        if fit is None:
            return _reject_all(
                text,
                profile,
                delimiter,
                max(header_line - 1, 0),
                cells,
                f"E003 invalid input: header: the columns do not fit CSV profile {profile.name} "
                f"(read {cells!r} with delimiter {delimiter!r}), so the file is rejected whole",
                encoding,
            )
        roles = fit[0]
    else:
        delimiter = profile.delimiter or _sniff_headerless(text, profile.skip_lines)
        header_line = profile.skip_lines
        width = _width(text, header_line, delimiter)
        roles = {role: cols[0] for role, cols in profile.columns.items()}
        width = max([width, *(i + 1 for i in roles.values())])
        cells = [f"column {i + 1}" for i in range(width)]
    table = _careful_table(text, _Header(header_line, "", delimiter, cells, {}, {}, None))
    records = [Record(line, raw, error=reason) for line, raw, reason in table.quarantine]
    rows = list(zip(table.starts.tolist(), zip(*table.columns) if table.columns else [], strict=False))
    date_format = profile.date_format
    if date_format is None and rows:
        found = date_formats(row[roles["date"]] for _, row in rows)
        if len(found) > 1:
            return _reject_all(
                text,
                profile,
                delimiter,
                header_line,
                cells,
                f"E003 invalid input: dates: every date of column {_label(cells, roles['date'])} reads as "
                f"{' and as '.join(found[:3])}, so the file is rejected whole (date order is never guessed): "
                f"set date_format in a CSV profile ({profile.name})",
                encoding,
            )
        date_format = found[0] if found else _best_format(row[roles["date"]] for _, row in rows)
    unmapped = [
        i
        for i in range(len(cells))
        if i not in roles.values() or (i == roles.get("type") and profile.sign != "type")
    ]
    for line, row in rows:
        records.append(_record(line, table.raw(line), row, roles, profile, date_format, cells, unmapped))
    unique_ids(records)
    split = build(
        FORMAT,
        cells if profile.header else [],
        records,
        encoding=encoding,
        extras=tuple(_label(cells, i) for i in unmapped),
    )
    split.delimiter = delimiter
    split.profile = profile.name
    return split


def _record(
    line: int,
    raw: str,
    row,
    roles: dict[str, int],
    profile: Profile,
    date_format: str,
    cells: list[str],
    unmapped: list[int],
) -> Record:
    def cell(role: str) -> str:
        i = roles.get(role)
        return row[i].strip() if i is not None and i < len(row) else ""

    r = Record(line, raw)
    r.extra = {_label(cells, i): row[i] for i in unmapped if i < len(row) and row[i].strip()}
    try:
        if not cell("date"):
            raise ValueError("date is empty")
        r.date = parse_date(cell("date"), date_format)
        r.amount = _amount(cell, profile)
        r.balance = _money(cell("balance"), profile, "balance") if cell("balance") else None
    except ValueError as exc:
        r.error = str(exc)
        return r
    description, payee = cell("description"), cell("payee")
    r.description = description or payee
    r.reference = cell("reference") or (payee if description else "")
    r.category = cell("category")
    r.bank_txn_id = cell("id") or None
    r.currency = (cell("currency") or profile.currency or "").upper() or None
    r.account = cell("account") or profile.account
    r.institution = profile.institution
    return r


def _amount(cell, profile: Profile) -> Decimal:
    if "amount" in profile.columns and cell("amount"):
        value = _money(cell("amount"), profile, "amount")
        if profile.sign == "inverted":
            return -value
        if profile.sign == "type":
            kind = cell("type").lower()
            if kind in profile.debit_values:
                return -abs(value)
            if kind in profile.credit_values:
                return abs(value)
            raise ValueError(
                f"type {cell('type')!r} is not one of the profile's debit_values or credit_values"
            )
        return value
    debit, credit = cell("debit"), cell("credit")
    if not debit and not credit:
        raise ValueError("amount is empty (no debit or credit)")
    total = Decimal(0)
    if debit:
        total -= abs(_money(debit, profile, "debit"))
    if credit:
        total += abs(_money(credit, profile, "credit"))
    return total


def _money(text: str, profile: Profile, what: str) -> Decimal:
    try:
        return parse_amount(text, profile.decimal, profile.thousands)
    except ValueError as exc:
        raise ValueError(str(exc).replace("amount", what, 1)) from None


def _label(cells: list[str], i: int) -> str:
    name = cells[i].strip() if i < len(cells) else ""
    return name or f"column {i + 1}"


def _best_format(values) -> str:
    """No format reads every date: the one that reads the most (the rest are quarantined with it)."""
    values = [v.strip() for v in values if v.strip()][:2000]
    best, best_n = DATE_FORMATS[0], -1
    for fmt in DATE_FORMATS:
        n = 0
        for v in values:
            try:
                parse_date(v, fmt)
                n += 1
            except ValueError:
                pass
        if n > best_n:
            best, best_n = fmt, n
    return best


def _reject_all(
    text: str, profile: Profile, delimiter: str, header_line: int, cells: list[str], error: str, encoding: str
) -> SplitFile:
    """Every record after the header quarantined with one E003 reason."""
    error = " ".join(error.split())
    table = _careful_table(text, _Header(header_line, "", delimiter, cells or ["column 1"], {}, {}, None))
    records = [Record(n, table.raw(n), error=error) for n in table.starts.tolist()]
    records += [Record(n, raw, error=error) for n, raw, _ in table.quarantine]
    split = build(
        FORMAT, cells if profile.header else [], records, file_error=error, encoding=encoding, extras=()
    )
    split.delimiter = delimiter
    return split


def _sniff_headerless(text: str, skip: int) -> str:
    sample = [t for t in text.splitlines()[skip : skip + 50] if t.strip()]
    counts = {d: [len(next(csv.reader([t], delimiter=d), [])) for t in sample] for d in _DELIMITERS}
    steady = [(min(c), d) for d, c in counts.items() if c and min(c) > 1 and len(set(c)) == 1]
    return max(steady)[1] if steady else max(_DELIMITERS, key=lambda d: sum(counts[d]) if counts[d] else 0)


def _width(text: str, skip: int, delimiter: str) -> int:
    rows = csv.reader(io.StringIO("\n".join(text.splitlines()[skip : skip + 200])), delimiter=delimiter)
    return max((len(r) for r in rows), default=1)


# -- suggest -------------------------------------------------------------------------------------------

_ROLE_NAMES = {  # header words that suggest a role (normalised), most specific first
    "date": (
        "transaction date",
        "booking date",
        "posting date",
        "posted date",
        "buchungstag",
        "date",
        "datum",
    ),
    "debit": ("debit", "debit amount", "withdrawal", "withdrawals", "money out", "paid out", "out", "soll"),
    "credit": ("credit", "credit amount", "deposit", "deposits", "money in", "paid in", "in", "haben"),
    "amount": ("amount", "transaction amount", "betrag", "value", "montant", "importe", "bedrag"),
    "balance": ("balance", "running balance", "saldo", "solde"),
    "description": (
        "description",
        "details",
        "narrative",
        "memo",
        "transaction details",
        "verwendungszweck",
        "particulars",
        "text",
        "libelle",
    ),
    "payee": ("payee", "merchant", "name", "counterparty", "beguenstigter/zahlungspflichtiger"),
    "reference": ("reference", "ref"),
    "id": ("transaction id", "fitid", "id"),
    "currency": ("currency", "ccy", "waehrung", "währung", "devise"),
    "category": ("category", "kategorie"),
    "type": ("type", "transaction type", "buchungstext"),
}
_DATEISH = re.compile(
    r"^(\d{1,4}[./-]\d{1,2}[./-]\d{2,4}|\d{8}|\d{1,2}[ -][A-Za-z]{3}[ -]\d{2,4}|[A-Za-z]{3} \d{1,2}, \d{4})\b"
)
_NUMBER = re.compile(r"^[-+(]?\s*[$€£¥]?\s*\d[\d.,' ]*\)?-?$")


def suggest(data: bytes, name: str = "my_bank", sample_lines: int = 1000) -> str:
    """A draft profile (YAML text) for a CSV, from its first `sample_lines` lines: delimiter, whether
    the first line is a header, each column's role by its name and then its values, the decimal
    separator, and the date format that reads every sampled date (a comment when several do)."""
    text, encoding = decode(data)
    lines = [t for t in text.splitlines() if t.strip()][:sample_lines]
    if not lines:
        raise ProfileError("E003 invalid input: the file is empty: nothing to suggest a profile from")
    delimiter = _sniff_headerless("\n".join(lines), 0)
    rows = list(csv.reader(io.StringIO("\n".join(lines)), delimiter=delimiter))
    width = max(len(r) for r in rows)
    rows = [r + [""] * (width - len(r)) for r in rows]
    first = rows[0]
    header = not any(_NUMBER.match(c.strip()) or date_formats([c]) for c in first if c.strip())
    body = rows[1:] if header else rows
    names = [c.strip() for c in first] if header else [f"column {i + 1}" for i in range(width)]
    columns = [[r[i].strip() for r in body] for i in range(width)]
    roles = _roles_by_name(names) if header else {}
    _roles_by_values(roles, columns)
    if "date" not in roles or not ("amount" in roles or {"debit", "credit"} <= set(roles)):
        raise ProfileError(
            f"E003 invalid input: {name}: no date and amount columns found in the first "
            f"{len(lines)} lines (read {names[:12]!r} with delimiter {delimiter!r})"
        )
    money = [
        v
        for role in ("amount", "debit", "credit", "balance")
        if role in roles
        for v in columns[roles[role]]
        if v
    ]
    decimal = "," if _share(money, lambda v: bool(re.search(r",\d{1,2}\)?-?$", v))) > 0.5 else "."
    found = date_formats(v for v in columns[roles["date"]] if _DATEISH.match(v))
    return _draft(name, header, delimiter, encoding, found, decimal, roles, names)


def _roles_by_name(names: list[str]) -> dict[str, int]:
    """Role -> column for the header names that say it (_ROLE_NAMES), one role per column."""
    roles: dict[str, int] = {}
    normalised = [normalize_header_name(n) for n in names]
    for role, words in _ROLE_NAMES.items():
        for word in words:
            if word in normalised and normalised.index(word) not in roles.values():
                roles[role] = normalised.index(word)
                break
    return roles


def _roles_by_values(roles: dict[str, int], columns: list[list[str]]) -> None:
    """The date, amount and description columns the names did not give, by their values: the first
    all-dates column, the first numeric one left, the longest text."""
    width = len(columns)
    numeric = [
        i
        for i in range(width)
        if _share(columns[i], lambda v: bool(_NUMBER.match(v)) and not _DATEISH.match(v)) >= 0.9
    ]
    dated = [
        i
        for i in range(width)
        if _share(columns[i], lambda v: bool(_DATEISH.match(v))) >= 0.9
        and date_formats(v for v in columns[i] if _DATEISH.match(v))
    ]
    if "date" not in roles and dated:
        roles["date"] = dated[0]
    if "amount" not in roles and not {"debit", "credit"} <= set(roles):
        roles.pop("debit", None), roles.pop("credit", None)
        left = [i for i in numeric if i not in roles.values() and i not in dated]
        if left:
            roles["amount"] = left[0]
    if "description" not in roles:
        texts = [i for i in range(width) if i not in roles.values() and i not in numeric and i not in dated]
        if texts:
            roles["description"] = max(texts, key=lambda i: sum(len(v) for v in columns[i]))


def _draft(name, header, delimiter, encoding, found, decimal, roles, names) -> str:
    """The draft profile's YAML text, with CHECK comments where the sample leaves a choice open."""
    out = [
        f"# Draft CSV profile for {name} (titans profile suggest): check each line, then save it as",
        f"# {name}.profile.yaml beside the file, or as <name>.yaml in the profiles folder.",
        f"name: {_slug(name)}",
        f"header: {'true' if header else 'false'}",
        f"delimiter: {_quote(delimiter)}",
    ]
    if encoding not in ("utf-8", "utf-8+cp1252"):
        out.append(f"encoding: {encoding}")
    if found:
        comment = f"  # CHECK: the sample also reads as {', '.join(found[1:])}" if len(found) > 1 else ""
        out.append(f"date_format: {_quote(found[0])}{comment}")
    else:
        out.append("date_format: auto  # CHECK: no single format reads every sampled date")
    out += [f"decimal: {_quote(decimal)}", f"thousands: {_quote('.' if decimal == ',' else ',')}"]
    if "amount" in roles:
        out.append(
            "sign: signed  # minus = money out; use inverted for card exports that list charges as positive"
        )
    out.append("columns:")
    for role in ROLES:
        if role in roles:
            i = roles[role]
            out.append(f"  {role}: {_quote(names[i]) if header else i + 1}")
    return "\n".join(out) + "\n"


def _share(values: list[str], test) -> float:
    values = [v for v in values if v]
    return sum(1 for v in values if test(v)) / len(values) if values else 0.0


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", Path(name).stem.lower()).strip("_") or "my_bank"


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\t", "\\t") + '"'
