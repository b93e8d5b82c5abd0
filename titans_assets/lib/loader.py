"""Load landed CSV files into raw.transactions / raw.quarantine / raw.files with PostgreSQL COPY.

Per file, in one transaction (readers never see half a file):
- same sha256 as the registered load -> nothing happens ("unchanged");
- new or changed bytes -> the file's previous rows and quarantine are deleted, the new rows are
  COPYed, and the registry row records the counts.
Invariant, enforced by a CHECK on raw.files: rows_read = rows_loaded + rows_quarantined.
"""

from __future__ import annotations

import hashlib
import io
import time
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from titans_assets.lib.csv_contract import OUTPUT_COLUMNS, parse_csv
from titans_assets.lib.db import Database

_SCHEMA_LOCK = 7_201_113  # advisory lock id serialising DDL between concurrent loaders


@dataclass(frozen=True)
class LoadResult:
    source_file: str
    account: str
    status: str  # "loaded" (new), "replaced" (bytes changed), "unchanged" (same sha256)
    sha256: str
    size_bytes: int
    rows_read: int
    rows_loaded: int
    rows_quarantined: int
    seconds: float
    file_error: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def source_file_key(landing_dir: Path, path: Path) -> str:
    """The file's identity: its path relative to the landing folder, with forward slashes."""
    return path.resolve().relative_to(landing_dir.resolve()).as_posix()


def account_of(source_file: str) -> str:
    """`checking/2024-q1.csv` -> `checking` (one folder per account); `personal_card.csv` -> `personal_card`."""
    parts = source_file.split("/")
    return parts[-2] if len(parts) > 1 else Path(parts[-1]).stem


def landing_files(landing_dir: Path) -> list[Path]:
    """CSV files under the landing folder (any depth, case-insensitive suffix), sorted by key."""
    if not landing_dir.is_dir():
        return []
    return sorted(
        (p for p in landing_dir.rglob("*") if p.is_file() and p.suffix.lower() == ".csv" and not p.name.startswith(".")),
        key=lambda p: p.relative_to(landing_dir).as_posix(),
    )


def ensure_raw_schema(db: Database) -> None:
    ddl = resources.files("titans_assets.lib").joinpath("sql/raw_schema.sql").read_text()
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
        cur.execute(ddl)


def load_file(db: Database, landing_dir: Path, path: Path) -> LoadResult:
    started = time.perf_counter()
    source_file = source_file_key(landing_dir, path)
    account = account_of(source_file)
    data = path.read_bytes()
    sha256 = hashlib.sha256(data).hexdigest()
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (source_file,))
        cur.execute(
            "SELECT sha256, rows_read, rows_loaded, rows_quarantined FROM raw.files WHERE source_file = %s",
            (source_file,),
        )
        previous = cur.fetchone()
        if previous is not None and previous[0] == sha256:
            return LoadResult(
                source_file, account, "unchanged", sha256, len(data), previous[1], previous[2], previous[3],
                time.perf_counter() - started,
            )
        parsed = parse_csv(data)
        _delete_file_rows(cur, source_file)
        cur.execute(
            "INSERT INTO raw.files (source_file, account, size_bytes, sha256, rows_read, rows_loaded,"
            " rows_quarantined, header) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (source_file, account, len(data), sha256, parsed.rows_read, parsed.rows_loaded,
             parsed.rows_quarantined, parsed.header),
        )
        if parsed.rows_loaded:
            cur.copy_expert(
                f"COPY raw.transactions (source_file, account, {', '.join(OUTPUT_COLUMNS)}) FROM STDIN"
                " WITH (FORMAT csv, FORCE_NOT_NULL (description))",
                _CsvStream(copy_rows(parsed.table, source_file, account)),
            )
        if parsed.quarantine:
            line_numbers, raw_lines, reasons = zip(*parsed.quarantine)
            cur.copy_expert(
                "COPY raw.quarantine (source_file, line_number, raw_line, reason) FROM STDIN"
                " WITH (FORMAT csv, FORCE_NOT_NULL (raw_line))",
                _CsvStream(pa.table({
                    "source_file": _constant(source_file, len(line_numbers)),
                    "line_number": pa.array(line_numbers, pa.int64()),
                    "raw_line": pa.array(raw_lines, pa.string()),
                    "reason": pa.array(reasons, pa.string()),
                })),
            )
    return LoadResult(
        source_file, account, "replaced" if previous else "loaded", sha256, len(data), parsed.rows_read,
        parsed.rows_loaded, parsed.rows_quarantined, time.perf_counter() - started, parsed.file_error,
    )


# Text columns whose empty cells are stored as NULL (as before: an empty unquoted CSV field).
_NULL_IF_EMPTY = ("category", "payment_method", "status", "reference", "receipt_url")


def copy_rows(table: pa.Table, source_file: str, account: str) -> pa.Table:
    """raw.transactions' COPY columns: the file's key and account, then the parsed columns with
    empty optional text as null (description keeps its empty string)."""
    n = table.num_rows
    columns = {"source_file": _constant(source_file, n), "account": _constant(account, n)}
    for name in OUTPUT_COLUMNS:
        column = table.column(name)
        if name in _NULL_IF_EMPTY:
            column = pc.if_else(pc.equal(column, ""), pa.scalar(None, pa.string()), column)
        columns[name] = column
    return pa.table(columns)


def _constant(value: str, n: int) -> pa.Array:
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, dtype=np.int32)), pa.array([value])).cast(pa.string())


class _CsvStream:
    """A file-like object COPY reads from: pyarrow's C++ CSV writer formats the table slice by slice,
    so the server parses one slice while the next is formatted. Strings are always quoted (so an
    empty string is `""`, and a value `\\.` cannot end the data), nulls are empty and unquoted."""

    def __init__(self, table: pa.Table, chunk_rows: int = 32_768):
        self._table = table
        self._chunk_rows = chunk_rows
        self._offset = 0
        self._options = pa_csv.WriteOptions(include_header=False, quoting_style="needed")

    def read(self, size: int = -1) -> bytes:
        if self._offset >= self._table.num_rows:
            return b""
        buf = io.BytesIO()
        pa_csv.write_csv(self._table.slice(self._offset, self._chunk_rows), buf, self._options)
        self._offset += self._chunk_rows
        return buf.getvalue()

    readline = read


def remove_file(db: Database, source_file: str) -> bool:
    """Forget a file that left the landing folder: its rows and quarantine go with it. True if it existed."""
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (source_file,))
        return _delete_file_rows(cur, source_file)


def _delete_file_rows(cur, source_file: str) -> bool:
    """Remove a file's registry row, its rows and its quarantine (quarantine cascades from raw.files)."""
    cur.execute("DELETE FROM raw.transactions WHERE source_file = %s", (source_file,))
    cur.execute("DELETE FROM raw.files WHERE source_file = %s", (source_file,))
    return cur.rowcount > 0


def quarantine_reasons(db: Database, source_files: list[str] | None = None, limit: int = 5) -> dict[str, int]:
    """The commonest kinds of quarantine reason (quoted values cut off), for these files or all."""
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(
            r"SELECT regexp_replace(reason, '\s*''[^'']*''', '', 'g') AS kind, count(*) FROM raw.quarantine"
            " WHERE %s::text[] IS NULL OR source_file = ANY(%s::text[])"
            " GROUP BY kind ORDER BY count(*) DESC, kind LIMIT %s",
            (source_files, source_files, limit),
        )
        return {kind: n for kind, n in cur.fetchall()}
