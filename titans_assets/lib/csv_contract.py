"""The input contract: turn the bytes of one CSV export into typed rows and quarantined lines.

`split_csv` gives a `SplitFile` (rows, quarantined lines with line number, raw text and reason, and
`file_error`: one E003 line when the first line is not a header of the contract). Syntax is checked
here, business rules by the Great Expectations suites; rows_read = rows_loaded + rows_quarantined
always holds. Dates must be ISO `YYYY-MM-DD`. No database, no Dagster.

Design notes (what is accepted, encodings, the fast and slow paths): docs/design-notes.md#titans_assetslibcsv_contractpy
"""

from __future__ import annotations

import csv
import datetime
import gc
import io
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from itertools import islice
from json.encoder import encode_basestring

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

CANONICAL_COLUMNS = (
    "Date",
    "Type",
    "Description",
    "Amount",
    "Category",
    "Payment Method",
    "Status",
    "Reference",
    "Receipt URL",
)
# Our column name for each canonical header.
FIELD_OF = {
    "Date": "txn_date",
    "Type": "txn_type",
    "Description": "description",
    "Amount": "amount",
    "Category": "category",
    "Payment Method": "payment_method",
    "Status": "status",
    "Reference": "reference",
    "Receipt URL": "receipt_url",
}
REQUIRED = ("Date", "Type", "Description", "Amount")
# The loader's output columns, in COPY order (without source_file/account/loaded_at added by the loader).
OUTPUT_COLUMNS = ("line_number",) + tuple(FIELD_OF.values()) + ("extra",)

_ALIASES = {
    "date": "Date",
    "transaction date": "Date",
    "posted date": "Date",
    "posting date": "Date",
    "txn date": "Date",
    "type": "Type",
    "transaction type": "Type",
    "txn type": "Type",
    "description": "Description",
    "memo": "Description",
    "details": "Description",
    "narrative": "Description",
    "amount": "Amount",
    "transaction amount": "Amount",
    "category": "Category",
    "payment method": "Payment Method",
    "method": "Payment Method",
    "payment type": "Payment Method",
    "status": "Status",
    "reference": "Reference",
    "ref": "Reference",
    "vendor": "Reference",
    "payee": "Reference",
    "receipt url": "Receipt URL",
    "receipt": "Receipt URL",
    "receipt link": "Receipt URL",
}
_DELIMITERS = (",", ";", "\t", "|")
MAX_FIELD_CHARS = 4096  # a bank description is short; a 10 MB cell is an export bug, quarantined whole
MAX_ABS_AMOUNT = Decimal("999999999999.99")  # what numeric(14,2) can hold; business bounds live in GX
# Byte-order marks and the encoding each one names (UTF-32 LE before UTF-16 LE: its BOM starts the same).
_BOMS = (
    (b"\xef\xbb\xbf", "utf-8"),
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\xfe\xff", "utf-16-be"),
)
_SHOWN_HEADER_CHARS = 300  # how much of an unreadable first line an error message repeats
_ISO_DATE = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:[T ][0-9:.+\-Z]*)?$")
_CURRENCY = re.compile(r"[$€£¥₹]|\b(?:USD|EUR|GBP|CAD|AUD|CHF)\b", re.IGNORECASE)


class ContractError(ValueError):
    """A whole-file problem (e.g. a required column is missing). Code E003, one readable line."""

    code = "E003"


@dataclass
class ParsedFile:
    header: list[str]
    # OUTPUT_COLUMNS: line_number int64, the rest strings; amounts as exact decimal strings, dates as
    # ISO strings, empty cells as "", absent optional columns and rows without extra values as null.
    table: pa.Table
    quarantine: list[tuple[int, str, str]] = field(default_factory=list)  # (line_number, raw_line, reason)
    rows_read: int = 0
    encoding: str = "utf-8"
    delimiter: str = ","
    file_error: str | None = None  # set when the whole file was quarantined
    _rows: pd.DataFrame | None = field(default=None, repr=False, compare=False)

    @property
    def rows(self) -> pd.DataFrame:
        """The table as a pandas DataFrame of Python objects (None for null), built on first use."""
        if self._rows is None:
            self._rows = pd.DataFrame(
                {
                    c: pd.Series(self.table.column(c).to_numpy(zero_copy_only=False), dtype=object)
                    for c in OUTPUT_COLUMNS
                }
            )
        return self._rows

    @property
    def rows_loaded(self) -> int:
        return self.table.num_rows

    @property
    def rows_quarantined(self) -> int:
        return len(self.quarantine)


def normalize_header_name(name: str) -> str:
    """`  PAYMENT_method ` -> `payment method` (the key used for alias lookup)."""
    return re.sub(r"[\s_\-]+", " ", name.replace("\ufeff", "")).strip().lower()


def map_header(header: list[str]) -> tuple[dict[str, int], dict[str, int]]:
    """Canonical column -> index, and extra column name -> index. The first occurrence of a contract
    column wins; every other column is extra, so no value is dropped: a repeated name gets `.1`, `.2`
    (as pandas names them), an unnamed column is `column N` (1-based)."""
    known: dict[str, int] = {}
    extra: dict[str, int] = {}
    for i, name in enumerate(header):
        canonical = _ALIASES.get(normalize_header_name(name))
        if canonical and canonical not in known:
            known[canonical] = i
            continue
        base = name.strip() or f"column {i + 1}"
        key, n = base, 0
        while key in extra:
            n += 1
            key = f"{base}.{n}"
        extra[key] = i
    return known, extra


def decode(data: bytes) -> tuple[str, str]:
    """Bytes -> text, and the encoding read. The one decoding rule of every CSV the platform reads:

    - a byte-order mark names the encoding (UTF-8, UTF-16 LE/BE, UTF-32 LE/BE) and is dropped;
    - otherwise each physical line (ended by LF, CRLF or CR, bytes no encoding here uses otherwise)
      is UTF-8 when it is valid UTF-8, else Windows-1252, what spreadsheet exports fall back to.
      A line is never read as Windows-1252 when it is valid UTF-8, so a file mixing the two keeps
      both intact. Bytes Windows-1252 leaves undefined (0x81, 0x8D, 0x8F, 0x90, 0x9D), and malformed
      UTF-16/32, become U+FFFD, visibly, never another character.

    A file without a BOM whose bytes at odd (even) offsets are mostly NUL, and at the others hardly
    ever, is UTF-16 LE (BE): that is ASCII-heavy text in UTF-16, and no UTF-8 or Windows-1252 export
    looks like it.

    The encoding is that of the BOM (or of that pattern), `utf-8`, `cp1252` (every line that is not ASCII is
    Windows-1252), or `utf-8+cp1252` (both kinds of line)."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            data = data[len(bom) :]
            if encoding != "utf-8":
                return data.decode(encoding, errors="replace"), encoding
            break
    else:
        encoding = _utf16_without_bom(data)
        if encoding is not None:
            return data.decode(encoding, errors="replace"), encoding
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    if not _may_hold_utf8(data):  # no line can be non-ASCII UTF-8: one decode (4x faster than by line)
        return data.decode("cp1252", errors="replace"), "cp1252"
    parts: list[str] = []
    utf8_lines = False
    for raw in data.splitlines(keepends=True):  # bytes split only on LF, CR and CRLF
        if raw.isascii():
            parts.append(raw.decode("ascii"))
            continue
        try:
            parts.append(raw.decode("utf-8"))
            utf8_lines = True
        except UnicodeDecodeError:
            parts.append(raw.decode("cp1252", errors="replace"))
    return "".join(parts), "utf-8+cp1252" if utf8_lines else "cp1252"


def _may_hold_utf8(data: bytes) -> bool:
    """Whether some byte that can start a multi-byte UTF-8 sequence (0xC2-0xF4) is followed by a
    continuation byte (0x80-0xBF): without one, no part of the data is non-ASCII UTF-8."""
    buf = np.frombuffer(data, dtype=np.uint8)
    lead = np.flatnonzero(buf[:-1] >= 0xC2)
    return bool(((buf[lead + 1] & 0xC0) == 0x80).any())


def _utf16_without_bom(data: bytes) -> str | None:
    """`utf-16-le` / `utf-16-be` when the NUL bytes of the first 4 KB say so (see decode), else None."""
    sample = data[:4096]
    if len(sample) < 8 or b"\x00" not in sample:
        return None
    sample = sample[: len(sample) // 2 * 2]
    even, odd = sample[0::2].count(0), sample[1::2].count(0)
    half = len(sample) // 2
    if odd >= 0.4 * half and even <= 0.05 * half:
        return "utf-16-le"
    if even >= 0.4 * half and odd <= 0.05 * half:
        return "utf-16-be"
    return None


def sniff_delimiter(header_line: str) -> str:
    """The delimiter under which the header line names the most contract columns (ties: comma)."""
    best, best_hits = ",", -1
    for delim in _DELIMITERS:
        names = next(csv.reader([header_line], delimiter=delim), [])
        hits = sum(1 for n in names if normalize_header_name(n) in _ALIASES)
        if hits > best_hits:
            best, best_hits = delim, hits
    return best


def parse_amount(text: str, decimal: str | None = None, thousands: str | None = None) -> Decimal:
    """`$1,234.56`, `(12.50)`, `12.50-`, `EUR 1.234,56`, `-$45` -> Decimal. Raises ValueError with a reason.

    Without `decimal` the separators are read from the value (the contract's rule); a CSV profile
    declares them (`decimal=","`, `thousands="."`), and then `1,234` is 1.234, never 1234."""
    s = _CURRENCY.sub("", text).replace("\u00a0", "").replace(" ", "").replace("'", "")
    if not s:
        raise ValueError("amount is empty")
    negative = False
    if s.startswith("(") and s.endswith(")"):
        negative, s = True, s[1:-1]
    if s.endswith("-"):
        negative, s = True, s[:-1]
    if s.startswith(("-", "+")):
        negative, s = negative ^ (s[0] == "-"), s[1:]
    s = _CURRENCY.sub("", s)
    if decimal is not None:
        grouping = thousands if thousands is not None else ("." if decimal == "," else ",")
        if grouping and grouping != decimal:
            s = s.replace(grouping, "")
        if decimal != "." and "." in s:
            raise ValueError(f"amount {text.strip()!r} is not a number with decimal separator {decimal!r}")
        s = s.replace(decimal, ".")
    if "," in s and "." in s:  # the later one is the decimal separator
        s = s.replace(".", "").replace(",", ".") if s.rfind(",") > s.rfind(".") else s.replace(",", "")
    elif "," in s:
        if re.fullmatch(r"\d{1,3}(,\d{3})+", s):
            s = s.replace(",", "")
        elif re.fullmatch(r"\d+,\d{1,2}", s):
            s = s.replace(",", ".")
        else:
            raise ValueError(f"amount {text.strip()!r} is not a number")
    elif re.fullmatch(r"\d{1,3}(\.\d{3}){2,}", s):  # 1.234.567 (European thousands)
        s = s.replace(".", "")
    if not re.fullmatch(r"\d+(\.\d+)?|\.\d+", s):
        raise ValueError(f"amount {text.strip()!r} is not a number")
    try:
        value = Decimal(s)
    except InvalidOperation:
        raise ValueError(f"amount {text.strip()!r} is not a number") from None
    # The bound first: quantize() raises InvalidOperation beyond the context's 28 digits.
    if value > MAX_ABS_AMOUNT:
        raise ValueError(f"amount {text.strip()!r} is out of range")
    if value != value.quantize(Decimal("0.01")):
        raise ValueError(f"amount {text.strip()!r} has more than 2 decimal places")
    return -value if negative else value


# The date formats a whole file's dates are tried against when no format is declared (`%y`: 2-digit year).
DATE_FORMATS = (
    "%Y-%m-%d",
    "%Y/%m/%d",
    "%Y.%m.%d",
    "%Y%m%d",
    "%d/%m/%Y",
    "%m/%d/%Y",
    "%d.%m.%Y",
    "%d-%m-%Y",
    "%m-%d-%Y",
    "%d/%m/%y",
    "%m/%d/%y",
    "%d.%m.%y",
    "%d-%m-%y",
    "%d-%b-%Y",
    "%d %b %Y",
    "%b %d, %Y",
    "%d-%b-%y",
)
_TIME_PART = re.compile(
    r"^(.*?\d)(?:[T ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:\s*[AaPp][Mm])?(?:Z|[+-]\d{2}:?\d{2})?)$"
)


def parse_date(text: str, fmt: str) -> str:
    """`31/01/2024` with `%d/%m/%Y` -> `2024-01-31` (a time part is ignored). Raises ValueError with a
    reason. The one place a non-ISO date is read: a CSV profile declares `fmt`, or `date_formats`
    finds the one format that reads a whole file."""
    value = text.strip()
    m = _TIME_PART.match(value)
    if m:
        value = m.group(1)
    try:
        day = datetime.datetime.strptime(value, fmt).date()
    except ValueError:
        raise ValueError(f"date {text!r} does not match the date format {fmt!r}") from None
    if not 1900 <= day.year < 2200:
        raise ValueError(f"date {text!r} is out of range")
    return day.isoformat()


def date_formats(values, formats=DATE_FORMATS) -> list[str]:
    """The formats that read every non-empty value, each kept only if it reads them differently from
    the formats before it (`01/01/2024` reads the same as DD/MM and MM/DD: not a second reading).
    Empty: no format reads them all; more than one: the file's date order is ambiguous."""
    values = [v for v in dict.fromkeys(v.strip() for v in values) if v]
    readings: list[tuple[str, list[str]]] = []
    for fmt in formats:
        try:
            days = [parse_date(v, fmt) for v in values]
        except ValueError:
            continue
        if not any(days == other for _, other in readings):
            readings.append((fmt, days))
    return [fmt for fmt, _ in readings]


def parse_csv(data: bytes) -> ParsedFile:
    """Parse one export. Never raises for bad content: whole-file problems quarantine every line."""
    split = split_csv(data)
    rows, quarantine = split.typed()
    quarantine = sorted(split.quarantine + quarantine, key=lambda q: q[0])
    return ParsedFile(
        header=split.header,
        table=rows,
        quarantine=quarantine,
        rows_read=rows.num_rows + len(quarantine),
        encoding=split.encoding,
        delimiter=split.delimiter,
        file_error=split.file_error,
    )


@dataclass
class SplitFile:
    """A file split into records but not yet typed: `typed(start, stop)` validates any slice of the
    records, so a loader can stream a big file in slices (parse_csv types them all at once)."""

    header: list[str]
    known: dict[str, int]
    extra: dict[str, int]
    encoding: str
    delimiter: str
    file_error: str | None
    table: _Table
    quarantine: list[tuple[int, str, str]]  # records that failed structurally (malformed CSV, huge cells)

    @property
    def records(self) -> int:
        return len(self.table.starts)

    def typed(self, start: int = 0, stop: int | None = None) -> tuple[pa.Table, list[tuple[int, str, str]]]:
        """Records [start, stop): the rows that pass, and (line_number, raw_line, reason) for the rest."""
        starts = self.table.starts[start:stop]
        if self.file_error is not None:
            return _empty_table(), [(int(s_), self.table.raw(int(s_)), self.file_error) for s_ in starts]
        columns = [c[start:stop] for c in self.table.columns]
        rows, bad = _validate(columns, starts, self.known, self.extra)
        return rows, [(int(starts[i]), self.table.raw(int(starts[i])), reason) for i, reason in bad]


def split_csv(data: bytes) -> SplitFile:
    """Decode, read the header and split the records (pyarrow, else pandas, else the csv module)."""
    gc_was_enabled = gc.isenabled()
    gc.disable()  # the fallback paths make millions of short-lived strings; the collector only costs time
    try:
        return _split(data)
    finally:
        if gc_was_enabled:
            gc.enable()


def _split(data: bytes) -> SplitFile:
    split = _split_one_line_records(data)
    if split is not None:
        return split
    text, encoding = decode(data)
    if not text.strip():
        empty = _Table([], np.empty(0, dtype=np.int64), [], {})
        return SplitFile([], {}, {}, encoding, ",", None, empty, [])
    csv.field_size_limit(1 << 30)
    # The header is the first non-blank line (text.strip() is not empty, so there is one).
    line, first_line = next((n, t) for n, t in enumerate(io.StringIO(text, newline=""), start=1) if t.strip())
    header = _read_header(first_line, line)
    table = (_fast_table(text, header) if header.line == 1 else None) or _careful_table(text, header)
    return _split_file(header, encoding, table)


@dataclass
class _Header:
    line: int  # its 1-based physical line
    raw: str  # as written, without its line end (NUL replaced: storable as text)
    delimiter: str
    names: list[str]
    known: dict[str, int]
    extra: dict[str, int]
    error: str | None  # E003 and what was read, when the line is not a header of the contract

    @property
    def required(self) -> dict[str, int]:
        return {c: self.known[c] for c in REQUIRED if c in self.known}


def _read_header(first_line: str, line: int) -> _Header:
    """Delimiter, header names, their mapping, and the whole-file error when the line is not a header
    of the contract: it names none of its columns (a file without a header), or misses a required one."""
    # NUL cannot be stored in PostgreSQL text (raw.files.header, extra's keys, raw_line).
    first_line = first_line.replace("\x00", "\ufffd")
    delimiter = sniff_delimiter(first_line)
    names = next(csv.reader([first_line], delimiter=delimiter), [])
    known, extra = map_header(names)
    shown = repr(names)
    if len(shown) > _SHOWN_HEADER_CHARS:
        shown = shown[:_SHOWN_HEADER_CHARS] + "..."
    missing = [c for c in REQUIRED if c not in known]
    error = None
    if not known:
        error = (
            f"E003 invalid input: header: the first line names no column of the contract, so the file "
            f"is rejected whole (read {shown} with delimiter {delimiter!r}; expected a header such as "
            f"{','.join(CANONICAL_COLUMNS)})"
        )
    elif missing:
        error = (
            f"E003 invalid input: header: missing required column(s) {', '.join(missing)}, so the file "
            f"is rejected whole (read {shown} with delimiter {delimiter!r})"
        )
    return _Header(line, first_line.rstrip("\r\n"), delimiter, names, known, extra, error)


def _split_file(header: _Header, encoding: str, table: _Table) -> SplitFile:
    """A rejected file quarantines every record with the file's reason, and its first line too: a line
    that is not a header of the contract may well be the file's first transaction."""
    quarantine = list(table.quarantine)
    if header.error is not None:
        quarantine = [(header.line, header.raw, header.error)] + [
            (n, raw, header.error) for n, raw, _ in quarantine
        ]
    return SplitFile(
        header.names, header.known, header.extra, encoding, header.delimiter, header.error, table, quarantine
    )


def _split_one_line_records(data: bytes) -> SplitFile | None:
    """The fast path: UTF-8, no NUL, no lone CR, no line longer than MAX_FIELD_CHARS bytes, and
    pyarrow's reader finds exactly one record per non-empty physical line. None otherwise.
    (pyarrow checks that every field is valid UTF-8; the header line is decoded here.)"""
    if b"\x00" in data:
        return None
    spans = line_spans(data)
    if spans is None or not len(spans) or int((spans[:, 1] - spans[:, 0]).max()) > MAX_FIELD_CHARS:
        return None
    first_line, encoding = decode(data[: spans[1, 0] if len(spans) > 1 else len(data)])
    if encoding != "utf-8" or not first_line.strip():
        return None
    header = _read_header(first_line, 1)
    table = _arrow_table(data, spans, header.delimiter, len(header.names))
    if table is None:
        return None
    return _split_file(header, "utf-8", table)


def line_spans(data: bytes) -> np.ndarray | None:
    """[begin, end) byte offsets of each physical line, line end (LF or CRLF) excluded; a trailing
    newline does not start another line. None if the data has a CR that does not end a line."""
    buf = np.frombuffer(data, dtype=np.uint8)
    newlines = np.flatnonzero(buf == 10)
    begins = np.concatenate(([0], newlines + 1))
    ends = np.concatenate((newlines, [len(data)]))
    if begins[-1] == len(data):
        begins, ends = begins[:-1], ends[:-1]
    crlf = (ends > begins) & (buf[ends - 1] == 13) if len(ends) else np.zeros(0, dtype=bool)
    if np.count_nonzero(buf == 13) != np.count_nonzero(crlf & (ends < len(data))):
        return None
    return np.stack([begins, ends - crlf], axis=1)


@dataclass
class _Table:
    """Structurally split records: one array per header column (numpy object or pyarrow strings),
    and each record's first physical line."""

    columns: list
    starts: np.ndarray
    quarantine: list[tuple[int, str, str]]
    spans: dict[int, str]  # first line -> raw text, for records the careful path saw

    lines: list[str] | None = None  # the pandas path: the text's lines
    data: bytes | None = None  # the pyarrow path: the UTF-8 bytes, and line_spans() of them
    line_bytes: np.ndarray | None = None

    def raw(self, start: int) -> str:
        if start in self.spans:
            return self.spans[start]
        if self.lines is not None:
            return self.lines[start - 1].rstrip("\r\n").replace("\x00", "\ufffd")
        begin, end = self.line_bytes[start - 1]
        return self.data[begin:end].decode("utf-8")


def _arrow_table(data: bytes, spans: np.ndarray, delimiter: str, width: int) -> _Table | None:
    """pyarrow's C++ reader over the data lines; None unless it returns exactly one record for each
    non-empty physical line (a quoted field spanning lines, a ragged row, a parse error all mean no)."""
    lengths = spans[1:, 1] - spans[1:, 0]
    starts = np.flatnonzero(lengths > 0).astype(np.int64) + 2
    if not len(starts):
        return _Table([pa.array([], pa.string())] * width, starts, [], {}, data=data, line_bytes=spans)
    names = [f"c{i}" for i in range(width)]
    try:
        read = pa_csv.read_csv(
            pa.BufferReader(pa.py_buffer(data)[int(spans[1, 0]) :]),
            # One thread: the second core is the server's (and on a busy machine pyarrow's pool only
            # adds CPU time: measured 0.5 vs 0.6-1.1 s per 1M rows).
            read_options=pa_csv.ReadOptions(column_names=names, use_threads=False),
            parse_options=pa_csv.ParseOptions(
                delimiter=delimiter,
                quote_char='"',
                double_quote=True,
                escape_char=False,
                newlines_in_values=True,
                ignore_empty_lines=True,
            ),
            convert_options=pa_csv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()),
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if read.num_rows != len(starts):
        return None
    columns = [read.column(i).combine_chunks() for i in range(width)]
    # Lines of empty cells (`,,,,`) are not records.
    blank = pc.equal(columns[0], "")
    if pc.any(blank).as_py():
        for col in columns[1:]:
            blank = pc.and_(blank, pc.equal(col, ""))
        if pc.any(blank).as_py():
            keep = pc.invert(blank)
            columns = [c.filter(keep) for c in columns]
            starts = starts[keep.to_numpy(zero_copy_only=False)]
    return _Table(columns, starts, [], {}, data=data, line_bytes=spans)


def _fast_table(text: str, header: _Header) -> _Table | None:
    """pandas' C parser, when every record is one physical line (so line numbers are exact).

    Returns None whenever that cannot be guaranteed (multi-line quoted fields, lone CR line ends,
    ragged rows, NUL bytes or huge cells); the careful path then handles the file.
    """
    width = len(header.names)
    if "\x00" in text or text.count("\r") != text.count("\r\n"):
        return None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if max(map(len, lines)) > MAX_FIELD_CHARS:
        return None
    try:
        df = pd.read_csv(
            io.StringIO(text),
            sep=header.delimiter,
            header=None,
            skiprows=1,
            dtype=object,
            na_filter=False,
            skip_blank_lines=False,
            engine="c",
            quoting=csv.QUOTE_MINIMAL,
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError):
        if len(lines) == 1:  # header only
            return _Table([np.empty(0, dtype=object)] * width, np.empty(0, dtype=np.int64), [], {}, lines)
        return None
    if len(df) != len(lines) - 1 or df.shape[1] > width:
        return None
    columns = [df[c].to_numpy(dtype=object) for c in df.columns]
    columns += [np.full(len(df), "", dtype=object)] * (width - len(columns))
    starts = np.arange(2, len(df) + 2, dtype=np.int64)
    # Blank lines (or lines of empty cells) are not records.
    blank = columns[0] == ""
    for col in columns[1:]:
        if not blank.any():
            break
        blank &= col == ""
    # pandas pads a short row with empty cells. A row that ends before a required column is
    # quarantined with its field count (_fit_width, as on the careful path); such a row has every cell
    # empty from the last required column on, so only rows like that are read again (on a real export
    # the last column or two already rule out every row).
    quarantine: list[tuple[int, str, str]] = []
    short = np.zeros(len(starts), dtype=bool)
    candidates = np.empty(0, dtype=np.int64)
    if header.required:
        empty_from = np.ones(len(starts), dtype=bool)
        for j in range(width - 1, max(header.required.values()) - 1, -1):
            empty_from &= columns[j] == ""
            if not empty_from.any():
                break
        candidates = np.flatnonzero(empty_from & ~blank)
    for k in candidates:
        raw = lines[int(starts[k]) - 1].rstrip("\r")
        fields = next(csv.reader([raw], delimiter=header.delimiter), [])
        reason = _fit_width(fields, width, header.required)[1] if len(fields) < width else None
        if reason is not None:
            quarantine.append((int(starts[k]), raw, reason))
            short[k] = True
    if blank.any() or short.any():
        keep = ~(blank | short)
        columns, starts = [c[keep] for c in columns], starts[keep]
    return _Table(columns, starts, quarantine, {}, lines)


def _careful_table(text: str, header: _Header) -> _Table:
    """The csv module, record by record, tracking each record's physical lines.

    Strict quoting: a malformed record (text after a closing quote, a quote never closed) costs only
    its first line, which is quarantined; reading resumes on the next line, so one stray quote cannot
    swallow the rest of the file into a single record.
    """
    lines = list(io.StringIO(text, newline=""))  # the same line splitting as csv's line_num
    width = len(header.names)
    quarantine: list[tuple[int, str, str]] = []
    good: list[list[str]] = []
    starts: list[int] = []
    spans: dict[int, str] = {}
    offset = header.line  # lines before the current reader's first line (the header, then resumptions)
    while offset < len(lines):
        reader = csv.reader(islice(lines, offset, None), delimiter=header.delimiter, strict=True)
        done = 0  # lines the current reader has consumed up to the end of its last good record
        try:
            for row in reader:
                start, end = offset + done + 1, offset + reader.line_num
                done = reader.line_num
                if not any(row):
                    continue
                raw = _raw_text(lines, start, end)
                reason = None
                if len(row) != width:
                    row, reason = _fit_width(row, width, header.required)
                if reason is None:
                    reason = _cell_problem(row, header.names)
                if reason is not None:
                    quarantine.append((start, raw, reason))
                    continue
                good.append(row)
                starts.append(start)
                spans[start] = raw
            break
        except csv.Error as exc:
            start = offset + done + 1
            quarantine.append((start, _raw_text(lines, start, start), f"malformed CSV: {exc}"))
            offset = start
    if good:
        matrix = np.empty((len(good), width), dtype=object)
        matrix[:] = good
        columns = [matrix[:, i] for i in range(width)]
    else:
        columns = [np.empty(0, dtype=object) for _ in range(width)]
    return _Table(columns, np.asarray(starts, dtype=np.int64), quarantine, spans)


def _fit_width(row: list[str], width: int, required: dict[str, int]) -> tuple[list[str], str | None]:
    """Pad a short row whose missing trailing fields are optional (as spreadsheets write them); trim
    empty extras. A row that ends before a required column, or has values beyond the header, is
    quarantined with both counts (`row has 3 fields, expected 9 (no Amount)`)."""
    counted = f"row has {len(row)} field{'' if len(row) == 1 else 's'}, expected {width}"
    if len(row) < width:
        absent = [name for name, i in required.items() if i >= len(row)]
        if absent:
            return row, f"{counted} (no {', '.join(absent)})"
        return row + [""] * (width - len(row)), None
    if len(row) > width and not any(cell.strip() for cell in row[width:]):
        return row[:width], None
    return row, counted


def _cell_problem(row: list[str], header: list[str]) -> str | None:
    for i, cell in enumerate(row):
        if len(cell) > MAX_FIELD_CHARS:
            return f"field {header[i].strip()!r} is {len(cell)} characters (max {MAX_FIELD_CHARS})"
        if "\x00" in cell:
            return f"field {header[i].strip()!r} contains a NUL byte"
    return None


def _raw_text(lines: list[str], start: int, end: int) -> str:
    """The record's text as written (all its physical lines), safe to store in a text column."""
    return "".join(lines[start - 1 : end]).rstrip("\r\n").replace("\x00", "\ufffd")


def _empty_table() -> pa.Table:
    return pa.table(
        {c: pa.array([], pa.int64() if c == "line_number" else pa.string()) for c in OUTPUT_COLUMNS}
    )


def _strings(column) -> pa.Array:
    """A column as one pyarrow string array (the pandas and careful paths hand over numpy objects)."""
    if isinstance(column, pa.ChunkedArray):
        return column.combine_chunks()
    if isinstance(column, pa.Array):
        return column
    return pa.array(column, type=pa.string())


def _validate(
    columns: list, starts: np.ndarray, known: dict[str, int], extra: dict[str, int]
) -> tuple[pa.Table, list[tuple[int, str]]]:
    """Type the structurally sound records; returns the typed rows and (position, reason) for records
    that fail. Text columns stay as written (trimming and normalisation are dbt's job).

    Each typed field is accepted by a vectorised kernel when it is in its plain form (`2024-01-15`,
    `Expense`, `-4.50`), which on a real export is nearly every value; the others, and only they, go
    through the row-wise functions that define the contract (_typed_dates, _typed_types, _typed_amounts).
    A kernel may only accept values those functions would pass through unchanged."""
    n = len(starts)
    if n == 0:
        return _empty_table(), []
    columns = [_strings(c) for c in columns]
    out: dict[str, pa.Array] = {"line_number": pa.array(starts, pa.int64())}
    for canonical, name in FIELD_OF.items():
        out[name] = columns[known[canonical]] if canonical in known else pa.nulls(n, pa.string())
    reasons: dict[int, str] = {}  # the first failing field wins: date, then type, then amount
    out["txn_date"] = _typed(out["txn_date"], *_plain_dates(out["txn_date"]), _typed_dates, reasons)
    out["txn_type"] = _typed(out["txn_type"], *_plain_types(out["txn_type"]), _typed_types, reasons)
    out["amount"] = _typed(out["amount"], *_plain_amounts(out["amount"]), _typed_amounts, reasons)
    out["extra"] = _extra_json(columns, extra, n)
    table = pa.table([out[c] for c in OUTPUT_COLUMNS], names=list(OUTPUT_COLUMNS))
    bad = sorted(reasons)
    if bad:
        keep = np.ones(n, dtype=bool)
        keep[bad] = False
        table = table.filter(pa.array(keep))
    return table, [(i, reasons[i]) for i in bad]


def _typed(
    values: pa.Array, typed: pa.Array, plain: np.ndarray, rowwise, reasons: dict[int, str]
) -> pa.Array:
    """`typed` where `plain`; elsewhere the row-wise function's value, and its reason if it has one."""
    rest = np.flatnonzero(~plain)
    if not len(rest):
        return typed
    subset = np.empty(len(rest), dtype=object)
    subset[:] = values.take(pa.array(rest)).to_pylist()
    fixed, why = rowwise(subset)
    for i, reason in zip(rest.tolist(), why.tolist()):
        if reason is not None:
            reasons.setdefault(i, reason)
    mask = np.zeros(len(values), dtype=bool)
    mask[rest] = True
    return pc.replace_with_mask(typed, pa.array(mask), pa.array(fixed.tolist(), pa.string()))


def _plain_dates(values: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """`YYYY-MM-DD`, a real calendar day, year 1900-2199: passed through as written."""
    parsed = pc.strptime(values, format="%Y-%m-%d", unit="s", error_is_null=True)
    canonical = pc.cast(pc.cast(parsed, pa.date32()), pa.string())  # `2024-02-30` comes back as 2024-03-01
    plain = pc.and_(
        pc.equal(canonical, values),
        pc.and_(pc.greater_equal(values, "1900-01-01"), pc.less(values, "2200-01-01")),
    )
    return values, pc.fill_null(plain, False).to_numpy(zero_copy_only=False)


_TYPE_SPELLINGS = pa.array(["Income", "Expense", "income", "expense"])
_TYPE_VALUES = pa.array(["Income", "Expense", "Income", "Expense"])


def _plain_types(values: pa.Array) -> tuple[pa.Array, np.ndarray]:
    index = pc.index_in(values, value_set=_TYPE_SPELLINGS)
    return pc.take(_TYPE_VALUES, index), pc.is_valid(index).to_numpy(zero_copy_only=False)


def _plain_amounts(values: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """`-1234.5`, `12`, `-4.50`: up to 7 integer digits and 2 decimals, under 11 characters."""
    plain = pc.and_(
        pc.match_substring_regex(values, r"^-?[0-9]{1,7}(\.[0-9]{1,2})?$"),
        pc.less(pc.binary_length(values), 11),
    )
    return values, pc.fill_null(plain, False).to_numpy(zero_copy_only=False)


_JSON_SPECIAL = r'["\\\x00-\x1f]'  # what json's string encoder escapes (it keeps other characters)


def _may_need_escaping(values: pa.Array) -> bool:
    """Whether any byte of the strings is `"`, a backslash or a control character (a quick scan of
    the data buffer, which may hold a little more than the values; a false yes only costs time)."""
    data = values.buffers()[2]
    if data is None:
        return False
    raw = np.frombuffer(data, dtype=np.uint8)
    return bool((raw < 0x20).any() or (raw == 0x22).any() or (raw == 0x5C).any())


def _extra_json(columns: list[pa.Array], extra: dict[str, int], n: int) -> pa.Array:
    """The extra columns of each record as a JSON object; null where every extra cell is empty.

    Built column-wise: a quoted value needs escaping only if it holds `"`, `\\` or a control
    character, which json's encoder does for those few."""
    if not extra:
        return pa.nulls(n, pa.string())
    filled = None
    for i in extra.values():
        cell = pc.not_equal(columns[i], "")
        filled = cell if filled is None else pc.or_(filled, cell)
    if not pc.any(filled).as_py():
        return pa.nulls(n, pa.string())
    parts: list = []
    for j, (name, i) in enumerate(extra.items()):
        parts += [("{" if j == 0 else ", ") + encode_basestring(name) + ": ", _json_strings(columns[i])]
    text = pc.binary_join_element_wise(*parts, "}", "")
    return pc.if_else(filled, text, pa.scalar(None, pa.string()))


def _json_strings(values: pa.Array) -> pa.Array:
    quoted = pc.binary_join_element_wise('"', values, '"', "")
    if not _may_need_escaping(values):
        return quoted
    special = pc.match_substring_regex(values, _JSON_SPECIAL)
    rows = pa.array(np.flatnonzero(special.to_numpy(zero_copy_only=False)))
    escaped = [encode_basestring(v) for v in values.take(rows).to_pylist()]
    return pc.replace_with_mask(quoted, special, pa.array(escaped, pa.string()))


def _typed_dates(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ISO dates (an optional time part is dropped) -> ISO strings; anything else gets a reason."""
    parsed = pd.to_datetime(pd.Series(values, dtype=object), format="%Y-%m-%d", errors="coerce")
    out = values.copy()
    reasons = np.full(len(values), None, dtype=object)
    for i in np.flatnonzero(parsed.isna().to_numpy()):
        text = values[i] if isinstance(values[i], str) else ""
        m = _ISO_DATE.match(text.strip())
        ok = m is not None and not pd.isna(pd.to_datetime(m.group(1), format="%Y-%m-%d", errors="coerce"))
        if ok:
            out[i] = m.group(1)
        else:
            reasons[i] = f"date {text!r} is not a valid YYYY-MM-DD date"
    # pandas also reads forms PostgreSQL's date input rejects (`２０２４-01-15`, `-2024-01-15`,
    # `0000-01-01`), which used to abort the whole file's COPY: those rows are quarantined too.
    for i in np.flatnonzero(pd.isna(reasons)):
        if not _PG_DATE.match(out[i]):
            reasons[i] = f"date {values[i]!r} is not a valid YYYY-MM-DD date"
    return out, reasons


_PG_DATE = re.compile(r"(?!0000)[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}\Z", re.ASCII)


def _typed_types(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mapped = pd.Series(values, dtype=object).map(_TYPES).to_numpy(dtype=object)
    reasons = np.full(len(values), None, dtype=object)
    for i in np.flatnonzero(pd.isna(mapped)):
        text = values[i] if isinstance(values[i], str) else ""
        mapped[i] = _TYPES.get(text.strip().lower())
        if mapped[i] is None:
            reasons[i] = f"type {text!r} is not Income or Expense"
    return mapped, reasons


_TYPES = {"Income": "Income", "Expense": "Expense", "income": "Income", "expense": "Expense"}


def _typed_amounts(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Plain numbers with at most 2 decimals pass through as written (exact); the rest go through
    parse_amount (currency symbols, separators, parentheses...)."""
    number = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").to_numpy(dtype=float)
    # Out of range (`1e308`, `inf`) is not plain: masked before any arithmetic, which would overflow
    # (a numpy RuntimeWarning in the run log); parse_amount then gives the reason.
    number = np.where(np.abs(number) < 1e12, number, np.nan)
    cents = number * 100
    plain = ~np.isnan(number) & (np.abs(cents - np.round(cents)) < 1e-6)
    # A float cannot see `12.340000001` (or tell `1e2` from 100): long or exponent strings take the
    # exact Decimal path. Ordinary amounts are under 11 characters.
    plain &= np.fromiter(
        (len(v) < 11 and "e" not in v and "E" not in v if isinstance(v, str) else False for v in values),
        dtype=bool,
        count=len(values),
    )
    out = values.copy()
    reasons = np.full(len(values), None, dtype=object)
    for i in np.flatnonzero(~plain):
        try:
            out[i] = str(parse_amount(values[i] if isinstance(values[i], str) else ""))
        except ValueError as exc:
            reasons[i] = str(exc)
    return out, reasons
