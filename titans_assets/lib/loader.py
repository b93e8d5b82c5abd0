"""Load landed bank files (CSV, OFX/QFX, CAMT.053, MT940, QIF: lib/formats) into raw.transactions / raw.quarantine / raw.files with PostgreSQL COPY.

`load_files` / `load_file` load each file in one transaction (readers never see half a file);
unchanged bytes are skipped unless the file was rejected whole. Invariant, enforced by a CHECK on
raw.files: rows_read = rows_loaded + rows_quarantined. A file rejected whole (E003) is registered
with every line in raw.quarantine and its reason in LoadResult.file_error.

Design notes (the per-file rules, speed): docs/design-notes.md#titans_assetslibloaderpy
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from importlib import resources
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from titans_assets.lib import formats, pg_copy
from titans_assets.lib.csv_contract import OUTPUT_COLUMNS, SplitFile, split_csv  # noqa: F401 - split_csv: API
from titans_assets.lib.db import Database
from titans_assets.lib.settings import Settings

# raw.transactions columns after OUTPUT_COLUMNS: the statement's own data (NULL on CSV rows).
STATEMENT_COPY_COLUMNS = ("bank_txn_id", "currency", "balance", "institution")
_COPY_COLUMNS = ("source_file", "account", *OUTPUT_COLUMNS, *STATEMENT_COPY_COLUMNS)
_NULL = b"\xff\xff\xff\xff"  # a NULL field in binary COPY

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
    """Bank files under the landing folder (any depth, case-insensitive suffix in formats.EXTENSIONS:
    .csv .ofx .qfx .xml .sta .mt940 .940 .qif), sorted by key."""
    if not landing_dir.is_dir():
        return []
    return sorted(
        (
            p
            for p in landing_dir.rglob("*")
            if p.is_file() and p.suffix.lower() in formats.EXTENSIONS and not p.name.startswith(".")
        ),
        key=lambda p: p.relative_to(landing_dir).as_posix(),
    )


def ensure_raw_schema(db: Database) -> None:
    db.run_ddl(resources.files("titans_assets.lib").joinpath("sql/raw_schema.sql").read_text(), _SCHEMA_LOCK)


def load_files(
    db: Database, landing_dir: Path, paths: list[Path], workers: int | None = None
) -> list[LoadResult]:
    """`load_file` for each path, `workers` files at a time (default: one per core, at most 4), each in
    its own transaction; results in the order of `paths`. A file that fails does not stop the others;
    the first failure is raised once they have all finished."""
    workers = min(len(paths), workers or min(os.cpu_count() or 1, 4))
    if workers <= 1:
        return [load_file(db, landing_dir, p) for p in paths]
    with ThreadPoolExecutor(workers, thread_name_prefix="load") as pool:
        futures = [pool.submit(load_file, db, landing_dir, p) for p in paths]
    return [f.result() for f in futures]


def load_file(db: Database, landing_dir: Path, path: Path) -> LoadResult:
    started = time.perf_counter()
    source_file = source_file_key(landing_dir, path)
    account = account_of(source_file)
    data = path.read_bytes()
    sha256 = hashlib.sha256(data).hexdigest()
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (source_file,))
        cur.execute(
            "SELECT sha256, rows_read, rows_loaded, rows_quarantined, file_error FROM raw.files"
            " WHERE source_file = %s",
            (source_file,),
        )
        previous = cur.fetchone()
        profiles = Settings.from_env().profiles_in(landing_dir)
        split = None
        if previous is not None and previous[0] == sha256:
            if previous[4] is not None:  # rejected whole before: a profile written since may read it now
                split = formats.read(path.name, data, path=path, profiles_dir=profiles)
            if split is None or split.file_error is not None:
                rows, file_error = previous[1:4], previous[4]
                seconds = time.perf_counter() - started
                return LoadResult(
                    source_file, account, "unchanged", sha256, len(data), *rows, seconds, file_error
                )
        split = split or formats.read(path.name, data, path=path, profiles_dir=profiles)
        account = _file_account(split, account)
        if previous is not None:
            # A file's rows exist only together with its registry row (both are written and deleted
            # in one transaction), so a new file skips this scan of the whole table.
            _delete_file_rows(cur, source_file)
        batches = _Batches(split, source_file, account)
        _copy_transactions(cur, split, batches)
        quarantine = sorted(split.quarantine + batches.quarantine, key=lambda q: q[0])
        result = LoadResult(
            source_file,
            account,
            "replaced" if previous else "loaded",
            sha256,
            len(data),
            batches.rows_loaded + len(quarantine),
            batches.rows_loaded,
            len(quarantine),
            0.0,
            split.file_error,
        )
        _register_file(cur, result, split.header)
        _copy_quarantine(cur, source_file, quarantine)
    return replace(result, seconds=time.perf_counter() - started)


def _copy(cur, sql: str, segments: Iterable[bytes]) -> None:
    """COPY binary `segments` (encoded in a background thread while the server ingests)."""
    stream = _CopyStream(segments)
    try:
        cur.copy_expert(sql, stream)
    finally:
        stream.close()


def _copy_transactions(cur, split: SplitFile, batches: _Batches) -> None:
    """COPY the file's typed records into raw.transactions; the ones that fail typing are left in
    `batches.quarantine`."""
    if split.records and split.file_error is None:
        columns = ", ".join(_COPY_COLUMNS)
        _copy(cur, f"COPY raw.transactions ({columns}) FROM STDIN WITH (FORMAT binary)", batches)
    else:
        for _ in batches:  # every record is quarantined: nothing to COPY
            pass


def _register_file(cur, result: LoadResult, header: str | None) -> None:
    """The file's row in raw.files: its bytes and counts (rows_read = rows_loaded + rows_quarantined)."""
    cur.execute(
        "INSERT INTO raw.files (source_file, account, size_bytes, sha256, rows_read, rows_loaded,"
        " rows_quarantined, header, file_error) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            result.source_file,
            result.account,
            result.size_bytes,
            result.sha256,
            result.rows_read,
            result.rows_loaded,
            result.rows_quarantined,
            header,
            result.file_error,
        ),
    )


def _copy_quarantine(cur, source_file: str, quarantine: list[tuple[int, str, str]]) -> None:
    """COPY the quarantined lines (line number, raw line, reason) into raw.quarantine."""
    if not quarantine:
        return
    line_numbers, raw_lines, reasons = zip(*quarantine)
    segment = pg_copy.rows(
        pg_copy.row_prefix(4, source_file),
        [
            *pg_copy.int4_field(np.array(line_numbers, dtype=np.int64)),
            *pg_copy.text_field(pa.array(raw_lines, pa.string())),
            *pg_copy.text_field(pa.array(reasons, pa.string())),
        ],
    )
    _copy(
        cur,
        "COPY raw.quarantine (source_file, line_number, raw_line, reason) FROM STDIN WITH (FORMAT binary)",
        [segment],
    )


def _file_account(split: SplitFile, folder_account: str) -> str:
    """The account a statement names, when it names exactly one; else the folder's (or file stem's)."""
    named = {a for a in getattr(split, "statement", {}).get("account", []) if a}
    return named.pop() if len(named) == 1 else folder_account


class _Batches:
    """The file's records typed slice by slice, each slice encoded as a binary COPY segment of
    raw.transactions rows; counts what it typed."""

    def __init__(
        self, split: SplitFile, source_file: str, account: str, rows: int = 16_384, first: int = 4_096
    ):
        # At least `rows` per slice (each slice costs a fixed few dozen kernel calls), at most ~8 slices;
        # the first slice smaller, so the server starts on it while the next is typed.
        self._split, self._first = split, min(first, split.records)
        self._rows = max(rows, -(-split.records // 8))
        # A statement names its account per row (column "account", the folder's where it names none).
        self._per_row_account = isinstance(split, formats.StatementFile)
        self._account = account
        constants = (source_file,) if self._per_row_account else (source_file, account)
        self._prefix = pg_copy.row_prefix(len(_COPY_COLUMNS), *constants)
        self.rows_loaded = 0
        self.quarantine: list[tuple[int, str, str]] = []

    def __iter__(self) -> Iterator[bytes]:
        records = self._split.records
        for start in [0, *range(self._first, records, self._rows)] if records else []:
            rows, bad = self._split.typed(start, self._first if start == 0 else start + self._rows)
            self.quarantine.extend(bad)
            self.rows_loaded += rows.num_rows
            if rows.num_rows:
                if self._per_row_account:
                    i = rows.column_names.index("account")
                    rows = rows.set_column(i, "account", pc.fill_null(rows.column(i), self._account))
                yield encode_transactions(rows, self._prefix)


# Text columns whose empty cells are stored as NULL (as they always were); description keeps "".
_NULL_IF_EMPTY = ("category", "payment_method", "status", "reference", "receipt_url")


def encode_transactions(table: pa.Table, prefix: bytes) -> bytes:
    """Binary COPY rows for raw.transactions in _COPY_COLUMNS order. prefix: the field count and
    source_file, then account too unless the table has an `account` column (a statement's rows);
    the statement columns are NULL when the table has none (CSV rows)."""
    column = {name: table.column(name).combine_chunks() for name in OUTPUT_COLUMNS}
    statement = "bank_txn_id" in table.column_names
    fields = (
        [*pg_copy.text_field(table.column("account").combine_chunks())]
        if "account" in table.column_names
        else []
    )
    fields += [
        *pg_copy.int4_field(column["line_number"].to_numpy()),
        *pg_copy.date_field(column["txn_date"]),
        *pg_copy.text_field(column["txn_type"]),
        *pg_copy.text_field(column["description"]),
        *pg_copy.numeric_2_field(column["amount"]),
    ]
    for name in _NULL_IF_EMPTY:
        fields += pg_copy.text_field(column[name], null_if_empty=True)
    fields += pg_copy.jsonb_field(column["extra"])
    if statement:
        fields += pg_copy.text_field(table.column("bank_txn_id").combine_chunks(), null_if_empty=True)
        fields += pg_copy.text_field(table.column("currency").combine_chunks(), null_if_empty=True)
        fields += pg_copy.nullable_numeric_field(table.column("balance").combine_chunks())
        fields += pg_copy.text_field(table.column("institution").combine_chunks(), null_if_empty=True)
    else:
        fields.append(_NULL * len(STATEMENT_COPY_COLUMNS))
    return pg_copy.rows(prefix, fields)


class _CopyStream:
    """A file-like object a binary COPY reads from. The segments are produced (typed and encoded) in
    a background thread, a few ahead, while the server ingests what was already sent, so both cores
    work (pyarrow and psycopg2 release the GIL). The format's header and trailer are added here."""

    def __init__(self, segments: Iterable[bytes], ahead: int = 2):
        self._queue: queue.Queue = queue.Queue(ahead)
        self._stop = threading.Event()
        self._started = False
        self._thread = threading.Thread(
            target=self._produce, args=(segments,), name="copy-stream", daemon=True
        )
        self._thread.start()

    def _produce(self, segments: Iterable[bytes]) -> None:
        try:
            for segment in segments:
                if not self._put(segment):
                    return
            self._put(pg_copy.TRAILER)
            self._put(b"")
        except BaseException as exc:  # noqa: BLE001 - handed to the reader, which raises it
            self._put(exc)

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read(self, size: int = -1) -> bytes:
        if self._stop.is_set():
            return b""
        item = self._queue.get()
        if isinstance(item, BaseException):
            raise item
        if item == b"":
            self._stop.set()
        elif not self._started:
            self._started, item = True, pg_copy.HEADER + item
        return item

    readline = read

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


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
