"""The loader against a real PostgreSQL: the embedded pgserver, and the external server when
TITANS_TEST_EXTERNAL_URL is set (the `any_db` fixture in conftest.py runs every test once per server).

Each test writes its own uniquely named files, so tests share the database without seeing each other.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import threading
import uuid
from decimal import Decimal
from pathlib import Path

import numpy as np
import psycopg2
import psycopg2.errors
import pyarrow as pa
import pytest

from titans_assets.lib import loader
from titans_assets.lib.csv_contract import CANONICAL_COLUMNS, parse_csv
from titans_assets.lib.db import Database

pytestmark = pytest.mark.integration

HEADER = ",".join(CANONICAL_COLUMNS)
V1 = [
    HEADER,
    "2024-01-03,Expense,COFFEE,-4.50,meals_entertainment,credit_card,paid,Blue Bottle,",
    '2024-01-02,Income,ACME PAYROLL,"$1,234.56",,ach,received,ACME,https://r.example/1.pdf',
    "",
    "2024-13-45,Expense,BAD DATE,-1.00,other,cash,paid,X,",
    "01/02/2024,Expense,AMBIGUOUS,-1.00,other,cash,paid,X,",
    "2024-01-01,Refund,BAD TYPE,1.00,,,,,",
    '2024-01-01,Expense,"two\nlines",(12.50),fuel,debit_card,paid,Shell,',
    "2024-01-01,Expense,NO AMOUNT,,fuel,debit_card,paid,Shell,",
]
V2 = [
    HEADER,
    "2024-02-01,Expense,NEW ONE,-1.00,other,cash,paid,X,",
    "2024-02-02,Income,NEW TWO,2.00,,,,,",
    "yesterday,Expense,NEW BAD,-3.00,,,,,",
]


@pytest.fixture
def db(any_db: Database) -> Database:
    loader.ensure_raw_schema(any_db)  # idempotent: safe before every test
    return any_db


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    return tmp_path  # only this process reads the CSVs, so pytest's private tmp_path is fine


def write(landing: Path, lines: list[str], name: str | None = None, end: str = "\n") -> Path:
    path = landing / (name or f"t_{uuid.uuid4().hex[:10]}.csv")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes((end.join(lines) + end).encode())
    return path


def query(db: Database, sql: str, params: tuple = ()) -> list[tuple]:
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def snapshot(db: Database, source_file: str) -> dict:
    """Everything the database holds about one file (xmin shows whether a row was rewritten)."""
    return {
        "file": query(
            db,
            "SELECT account, size_bytes, sha256, rows_read, rows_loaded, rows_quarantined, header,"
            " loaded_at, xmin::text FROM raw.files WHERE source_file = %s",
            (source_file,),
        ),
        "rows": query(
            db,
            "SELECT line_number, account, txn_date, txn_type, description, amount, category,"
            " payment_method, status, reference, receipt_url, extra, loaded_at, xmin::text"
            " FROM raw.transactions WHERE source_file = %s ORDER BY line_number",
            (source_file,),
        ),
        "quarantine": query(
            db,
            "SELECT line_number, raw_line, reason, quarantined_at, xmin::text"
            " FROM raw.quarantine WHERE source_file = %s ORDER BY line_number",
            (source_file,),
        ),
    }


def assert_matches_parse(db: Database, path: Path, landing: Path) -> None:
    """The database holds exactly what parse_csv makes of the file's current bytes."""
    data = path.read_bytes()
    parsed = parse_csv(data)
    key = loader.source_file_key(landing, path)
    snap = snapshot(db, key)
    [(account, size, sha, read, loaded, quarantined, header, *_)] = snap["file"]
    assert (account, size, sha) == (loader.account_of(key), len(data), hashlib.sha256(data).hexdigest())
    assert (read, loaded, quarantined) == (parsed.rows_read, parsed.rows_loaded, parsed.rows_quarantined)
    assert read == loaded + quarantined
    assert header == parsed.header
    assert [r[0] for r in snap["rows"]] == list(parsed.rows["line_number"])
    assert [r[4] for r in snap["rows"]] == list(parsed.rows["description"])
    assert [q[:3] for q in snap["quarantine"]] == parsed.quarantine


# -- load, reload, replace -----------------------------------------------------------------------------


def test_load_matches_parse_and_types_values(db, landing):
    path = write(landing, V1)
    result = loader.load_file(db, landing, path)
    assert result.status == "loaded"
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (7, 3, 4)
    assert result.rows_read == result.rows_loaded + result.rows_quarantined
    assert_matches_parse(db, path, landing)
    rows = snapshot(db, result.source_file)["rows"]
    assert [r[:12] for r in rows] == [
        (
            2,
            result.account,
            dt.date(2024, 1, 3),
            "Expense",
            "COFFEE",
            Decimal("-4.50"),
            "meals_entertainment",
            "credit_card",
            "paid",
            "Blue Bottle",
            None,
            None,
        ),
        (
            3,
            result.account,
            dt.date(2024, 1, 2),
            "Income",
            "ACME PAYROLL",
            Decimal("1234.56"),
            None,
            "ach",
            "received",
            "ACME",
            "https://r.example/1.pdf",
            None,
        ),
        (
            8,
            result.account,
            dt.date(2024, 1, 1),
            "Expense",
            "two\nlines",
            Decimal("-12.50"),
            "fuel",
            "debit_card",
            "paid",
            "Shell",
            None,
            None,
        ),
    ]
    reasons = [q[:3] for q in snapshot(db, result.source_file)["quarantine"]]
    assert [(n, reason.split()[0]) for n, _, reason in reasons] == [
        (5, "date"),
        (6, "date"),
        (7, "type"),
        (10, "amount"),
    ]


def test_reload_of_same_bytes_changes_nothing(db, landing):
    path = write(landing, V1)
    first = loader.load_file(db, landing, path)
    before = snapshot(db, first.source_file)
    second = loader.load_file(db, landing, path)
    assert second.status == "unchanged"
    assert (second.sha256, second.rows_read, second.rows_loaded, second.rows_quarantined) == (
        first.sha256,
        first.rows_read,
        first.rows_loaded,
        first.rows_quarantined,
    )
    assert snapshot(db, first.source_file) == before  # same rows, same loaded_at, not even rewritten (xmin)


def test_changed_file_replaces_its_rows(db, landing):
    path = write(landing, V1)
    first = loader.load_file(db, landing, path)
    other = write(landing, V1)  # a neighbour that must not be touched
    loader.load_file(db, landing, other)
    neighbour = snapshot(db, loader.source_file_key(landing, other))
    write(landing, V2, name=path.name)
    second = loader.load_file(db, landing, path)
    assert second.status == "replaced" and second.sha256 != first.sha256
    assert (second.rows_read, second.rows_loaded, second.rows_quarantined) == (3, 2, 1)
    assert_matches_parse(db, path, landing)
    descriptions = [r[4] for r in snapshot(db, second.source_file)["rows"]]
    assert descriptions == ["NEW ONE", "NEW TWO"]
    assert snapshot(db, loader.source_file_key(landing, other)) == neighbour
    assert loader.load_file(db, landing, path).status == "unchanged"


@pytest.mark.parametrize("fail_on_copy", [1, 2], ids=["transactions-copy", "quarantine-copy"])
def test_replace_is_atomic_when_the_load_fails_midway(db, landing, monkeypatch, fail_on_copy):
    path = write(landing, V1)
    key = loader.load_file(db, landing, path).source_file
    before = snapshot(db, key)
    write(landing, V2, name=path.name)

    made = []

    class FailingStream(loader._CopyStream):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

        def read(self, size: int = -1) -> bytes:
            if len(made) == fail_on_copy:
                raise RuntimeError("disk on fire")
            return super().read(size)

    monkeypatch.setattr(loader, "_CopyStream", FailingStream)
    with pytest.raises(Exception, match="disk on fire|read"):
        loader.load_file(db, landing, path)
    assert len(made) == fail_on_copy  # the delete (and, for the quarantine, the rows and registry) had run
    assert snapshot(db, key) == before  # rolled back: the previous load is intact
    assert not [t for t in threading.enumerate() if t.name == "copy-stream"]  # the producer was stopped
    monkeypatch.undo()
    assert loader.load_file(db, landing, path).status == "replaced"
    assert_matches_parse(db, path, landing)


def test_an_error_while_encoding_a_later_slice_rolls_the_whole_file_back(db, landing, monkeypatch):
    """The rows are typed and encoded slice by slice in a background thread while COPY runs: an
    error there (here: in the 3rd slice) must reach load_file and roll back the rows already sent."""
    lines = [HEADER] + [
        f"2024-01-{1 + i % 28:02d},Expense,ROW {i},-{i}.00,other,cash,paid,X," for i in range(50)
    ]
    path = write(landing, V2)
    key = loader.load_file(db, landing, path).source_file
    before = snapshot(db, key)
    write(landing, lines, name=path.name)
    real = loader.encode_transactions
    calls = []

    def encode(table, prefix):
        calls.append(table.num_rows)
        if len(calls) == 3:
            raise RuntimeError("encoder on fire")
        return real(table, prefix)

    monkeypatch.setattr(loader, "encode_transactions", encode)
    monkeypatch.setattr(loader._Batches.__init__, "__defaults__", (10, 10))  # 10-row slices
    with pytest.raises(Exception, match="encoder on fire"):  # psycopg2 wraps it: "error in .read() call"
        loader.load_file(db, landing, path)
    assert calls == [10, 10, 10]
    assert snapshot(db, key) == before
    monkeypatch.undo()
    result = loader.load_file(db, landing, path)
    assert (result.status, result.rows_loaded, result.rows_quarantined) == ("replaced", 50, 0)
    assert_matches_parse(db, path, landing)


@pytest.mark.parametrize("records", [0, 1, 9, 10, 11, 45, 100])
def test_slices_cover_every_record_once_first_slice_smaller(records):
    lines = [HEADER] + [
        f"2024-01-{1 + i % 28:02d},Expense,ROW {i},-{i}.00,other,cash,paid,X," for i in range(records)
    ]
    split = loader.split_csv(("\n".join(lines) + "\n").encode())
    sizes = []
    real_typed = split.typed

    def typed(start, stop):
        sizes.append((start, stop))
        return real_typed(start, stop)

    split.typed = typed
    batches = loader._Batches(split, "f.csv", "f", rows=10, first=4)
    list(batches)
    covered = [i for start, stop in sizes for i in range(start, min(stop, records))]
    assert covered == list(range(records))
    assert batches.rows_loaded == records
    if records > 4:
        assert sizes[0] == (0, 4) and sizes[1][1] - sizes[1][0] >= 10


def test_load_files_loads_concurrently_in_order_and_a_failure_spares_the_others(db, landing, monkeypatch):
    paths = [write(landing, V1, name=f"acct_{i}.csv") for i in range(4)]
    real, threads, gate = loader.load_file, set(), threading.Barrier(2, timeout=10)

    def load(db_, landing_, path):
        threads.add(threading.get_ident())
        if path.name in ("acct_0.csv", "acct_1.csv"):
            gate.wait()  # both in flight at once: deadlocks (BrokenBarrierError) if loads ran one by one
        if path.name == "acct_2.csv":
            raise RuntimeError("disk on fire")
        return real(db_, landing_, path)

    monkeypatch.setattr(loader, "load_file", load)
    with pytest.raises(RuntimeError, match="disk on fire"):
        loader.load_files(db, landing, paths, workers=2)
    assert len(threads) == 2
    monkeypatch.undo()
    loaded = {row[0] for row in query(db, "SELECT source_file FROM raw.files")}
    assert {"acct_0.csv", "acct_1.csv", "acct_3.csv"} <= loaded and "acct_2.csv" not in loaded
    results = loader.load_files(db, landing, paths, workers=2)
    assert [r.source_file for r in results] == [p.name for p in paths]
    assert [r.status for r in results] == ["unchanged", "unchanged", "loaded", "unchanged"]
    for path in paths:
        assert_matches_parse(db, path, landing)


def test_failed_first_load_leaves_no_registry_row_so_it_is_retried(db, landing, monkeypatch):
    path = write(landing, V1)
    key = loader.source_file_key(landing, path)

    def boom(self, size=-1):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(loader._CopyStream, "read", boom)
    with pytest.raises(Exception, match="disk on fire|read"):
        loader.load_file(db, landing, path)
    assert snapshot(db, key) == {"file": [], "rows": [], "quarantine": []}
    monkeypatch.undo()
    assert loader.load_file(db, landing, path).status == "loaded"


# -- hostile content --------------------------------------------------------------------------------


INJECTIONS = [
    "Robert'); DROP TABLE raw.transactions;--",
    "x' OR '1'='1",
    '"; DELETE FROM raw.files; --',
    "\\'; TRUNCATE raw.quarantine; --",
    "$$; DROP SCHEMA raw CASCADE; $$",
    "\\.",
    "before\n\\.\nafter",  # COPY's end-of-data marker on a line of its own, inside a quoted field
    "tab\there, backslash \\N \\0",
    "%s %(x)s {0}",
]


def test_sql_injection_text_is_stored_verbatim(db, landing):
    lines = [HEADER] + [
        '2024-01-01,Expense,"{}",-1.00,,,,,'.format(text.replace('"', '""')) for text in INJECTIONS
    ]
    path = write(landing, lines, name=f"it's; DROP TABLE raw.files;-- {uuid.uuid4().hex[:6]}.csv")
    result = loader.load_file(db, landing, path)
    assert (result.rows_loaded, result.rows_quarantined) == (len(INJECTIONS), 0)
    assert [r[4] for r in snapshot(db, result.source_file)["rows"]] == INJECTIONS
    tables = {
        t for (t,) in query(db, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'raw'")
    }
    assert {"files", "transactions", "quarantine"} <= tables
    assert query(db, "SELECT count(*) FROM raw.files WHERE source_file = %s", (result.source_file,)) == [(1,)]


def test_ten_megabyte_description_lands_in_quarantine_whole(db, landing):
    huge = "X" * (10 * 1024 * 1024)
    big = f"2024-01-01,Expense,{huge},-1.00,,,,,"
    path = write(landing, [HEADER, "2024-01-02,Income,SMALL,5.00,,,,,", big])
    result = loader.load_file(db, landing, path)
    assert (result.rows_loaded, result.rows_quarantined) == (1, 1)
    [(line_number, length, digest, reason)] = query(
        db,
        "SELECT line_number, length(raw_line), md5(raw_line), reason FROM raw.quarantine WHERE source_file = %s",
        (result.source_file,),
    )
    assert (line_number, length, digest) == (3, len(big), hashlib.md5(big.encode()).hexdigest())
    assert "'Description'" in reason and str(len(huge)) in reason


def test_nul_bytes_and_utf16_exports_load_without_error(db, landing):
    nul = write(landing, [HEADER, "2024-01-01,Expense,A\x00B,-1.00,,,,,", "2024-01-01,Income,OK,1.00,,,,,"])
    result = loader.load_file(db, landing, nul)
    assert (result.rows_loaded, result.rows_quarantined) == (1, 1)
    [(raw, reason)] = query(
        db, "SELECT raw_line, reason FROM raw.quarantine WHERE source_file = %s", (result.source_file,)
    )
    assert raw == "2024-01-01,Expense,A\ufffdB,-1.00,,,,," and "NUL" in reason


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-be"])
def test_utf16_export_is_decoded_by_its_byte_order_mark(db, landing, codec):
    """It used to be quarantined row by row as "contains a NUL byte" (issue 15)."""
    utf16 = landing / f"u16_{uuid.uuid4().hex[:8]}.csv"
    text = HEADER + "\r\n2024-01-01,Income,Café €,1.00,,,,,\r\nnope,Income,X,1.00,,,,,\r\n"
    utf16.write_bytes((b"\xfe\xff" if codec == "utf-16-be" else b"") + text.encode(codec))
    result = loader.load_file(db, landing, utf16)
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined, result.file_error) == (
        2,
        1,
        1,
        None,
    )
    assert [r[4] for r in snapshot(db, result.source_file)["rows"]] == ["Café €"]
    assert_matches_parse(db, utf16, landing)


def test_mixed_utf8_and_cp1252_lines_are_stored_without_mojibake(db, landing):
    """The hostile tester's file: one UTF-8 line, one Windows-1252 line (issue 15, defect 1)."""
    path = landing / f"mixed_{uuid.uuid4().hex[:8]}.csv"
    path.write_bytes(
        (HEADER + "\n2024-01-01,Expense,Café,-1.00,,,,,\n").encode()
        + "2024-01-02,Expense,Café … €,-2.00,,,,,\n".encode("cp1252")
    )
    result = loader.load_file(db, landing, path)
    assert (result.rows_loaded, result.rows_quarantined) == (2, 0)
    assert query(
        db,
        "SELECT description FROM raw.transactions WHERE source_file = %s ORDER BY line_number",
        (result.source_file,),
    ) == [("Café",), ("Café … €",)]
    assert_matches_parse(db, path, landing)


def test_headerless_file_is_rejected_whole_with_every_line_in_quarantine(db, landing):
    """3 data lines and no header: rows_read used to be 2, the first transaction lost (issue 15, defect 2)."""
    lines = [f"2024-01-0{d},Expense,SHOP {d},-{d}.00,,,,," for d in (1, 2, 3)]
    path = write(landing, lines)
    result = loader.load_file(db, landing, path)
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (3, 0, 3)
    assert result.file_error.startswith("E003 invalid input: header:") and "'2024-01-01'" in result.file_error
    snap = snapshot(db, result.source_file)
    assert [(n, raw, reason) for n, raw, reason, *_ in snap["quarantine"]] == [
        (n, text, result.file_error) for n, text in enumerate(lines, start=1)
    ]
    assert snap["file"][0][3:6] == (3, 0, 3)
    # The loader reads CSVs through the profiles: its reason is the contract's, extended with the
    # profiles it tried and how to write one (so it is no longer parse_csv's reason word for word).
    assert result.file_error.startswith(parse_csv(path.read_bytes()).file_error)
    assert (
        "profiles tried: seed_ledger" in result.file_error and "titans profile suggest" in result.file_error
    )
    again = loader.load_file(db, landing, path)  # the reason is kept with the file, not only in this result
    assert (again.status, again.file_error) == ("unchanged", result.file_error)


def test_a_rejected_file_loads_once_a_profile_beside_it_reads_it(db, landing):
    """Same bytes, but a profile written since the rejection (here the one `titans profile suggest`
    drafts): the next load reads the rows instead of reporting the old rejection; then it is unchanged."""
    from titans_assets.lib.formats import profiles

    lines = [f"2024-01-{d:02d},SHOP {d},-{d}.25" for d in (13, 14, 15)]
    path = write(landing, lines)
    assert loader.load_file(db, landing, path).file_error.startswith("E003")
    assert loader.load_file(db, landing, path).status == "unchanged"  # still rejected: nothing re-registered
    path.with_name(path.name + ".profile.yaml").write_text(profiles.suggest(path.read_bytes()))
    result = loader.load_file(db, landing, path)
    assert (result.status, result.file_error, result.rows_loaded, result.rows_quarantined) == (
        "replaced",
        None,
        3,
        0,
    )
    snap = snapshot(db, result.source_file)
    assert snap["quarantine"] == [] and snap["file"][0][3:6] == (3, 3, 0)
    assert loader.load_file(db, landing, path).status == "unchanged"


def test_empty_and_header_only_files_are_registered(db, landing):
    for data in (b"", (HEADER + "\n").encode()):
        path = landing / f"e_{uuid.uuid4().hex[:8]}.csv"
        path.write_bytes(data)
        result = loader.load_file(db, landing, path)
        assert (result.status, result.rows_read, result.rows_loaded, result.rows_quarantined) == (
            "loaded",
            0,
            0,
            0,
        )
        assert_matches_parse(db, path, landing)
        assert loader.load_file(db, landing, path).status == "unchanged"


# -- files, accounts, removal, reasons ------------------------------------------------------------------


def test_subfolder_file_account_is_the_folder_name(db, landing):
    folder = f"checking_{uuid.uuid4().hex[:6]}"
    nested = write(landing, V2, name=f"{folder}/2024-q1.csv")
    top = write(landing, V2, name=f"personal_card_{uuid.uuid4().hex[:6]}.csv")
    r_nested = loader.load_file(db, landing, nested)
    r_top = loader.load_file(db, landing, top)
    assert (r_nested.source_file, r_nested.account) == (f"{folder}/2024-q1.csv", folder)
    assert r_top.account == top.stem
    for r in (r_nested, r_top):
        assert query(
            db, "SELECT DISTINCT account FROM raw.transactions WHERE source_file = %s", (r.source_file,)
        ) == [(r.account,)]
        assert query(db, "SELECT account FROM raw.files WHERE source_file = %s", (r.source_file,)) == [
            (r.account,)
        ]


def test_remove_file_deletes_rows_quarantine_and_registry(db, landing):
    path = write(landing, V1)
    keep = write(landing, V1)
    key = loader.load_file(db, landing, path).source_file
    loader.load_file(db, landing, keep)
    kept = snapshot(db, loader.source_file_key(landing, keep))
    assert loader.remove_file(db, key) is True
    assert snapshot(db, key) == {"file": [], "rows": [], "quarantine": []}
    assert snapshot(db, loader.source_file_key(landing, keep)) == kept
    assert loader.remove_file(db, key) is False
    assert loader.load_file(db, landing, path).status == "loaded"  # comes back as new


def test_quarantine_reasons_groups_kinds_of_reason(db, landing):
    lines = [HEADER] + [f"2024-0{m}-3{m},Expense,D,-1.00,,,,," for m in (2, 4, 6)]  # three bad dates
    lines += ["2024-01-01,Refund,T,1.00,,,,,", "2024-01-01,Loan,T,1.00,,,,,"]  # two bad types
    lines += ["2024-01-01,Expense,A,abc,,,,,", "2024-01-01,Income,OK,1.00,,,,,"]
    key = loader.load_file(db, landing, write(landing, lines)).source_file
    reasons = loader.quarantine_reasons(db, [key])
    assert reasons == {
        "date is not a valid YYYY-MM-DD date": 3,
        "type is not Income or Expense": 2,
        "amount is not a number": 1,
    }
    assert loader.quarantine_reasons(db, [key], limit=1) == {"date is not a valid YYYY-MM-DD date": 3}
    assert loader.quarantine_reasons(db, ["no/such/file.csv"]) == {}
    everything = loader.quarantine_reasons(db, None, limit=100)
    assert everything["date is not a valid YYYY-MM-DD date"] >= 3


def test_files_check_constraint_holds(db, landing):
    key = loader.load_file(db, landing, write(landing, V1)).source_file
    assert query(db, "SELECT count(*) FROM raw.files WHERE rows_read <> rows_loaded + rows_quarantined") == [
        (0,)
    ]
    with pytest.raises(psycopg2.errors.CheckViolation), db.connect() as conn, conn.cursor() as cur:
        cur.execute("UPDATE raw.files SET rows_loaded = rows_loaded + 1 WHERE source_file = %s", (key,))
    with pytest.raises(psycopg2.errors.CheckViolation), db.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO raw.files (source_file, account, size_bytes, sha256, rows_read, rows_loaded,"
            " rows_quarantined, header) VALUES (%s, 'a', 1, 'x', 3, 1, 1, '{}')",
            (f"ghost-{key}",),
        )
    # and the registry agrees with the tables it describes
    assert query(
        db, "SELECT rows_loaded, rows_quarantined FROM raw.files WHERE source_file = %s", (key,)
    ) == [
        (
            query(db, "SELECT count(*) FROM raw.transactions WHERE source_file = %s", (key,))[0][0],
            query(db, "SELECT count(*) FROM raw.quarantine WHERE source_file = %s", (key,))[0][0],
        )
    ]


@pytest.mark.parametrize("previous", [None, V2], ids=["new-file", "changed-file"])
def test_concurrent_loads_of_the_same_file_leave_one_copy(db, landing, previous):
    path = write(landing, previous or V1)
    if previous:
        loader.load_file(db, landing, path)
        write(landing, V1, name=path.name)
    barrier = threading.Barrier(3)
    results, errors = [], []

    def run():
        try:
            barrier.wait(timeout=10)
            results.append(loader.load_file(db, landing, path))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert sorted(r.status for r in results) == sorted(
        ["replaced" if previous else "loaded"] + ["unchanged"] * 2
    )
    assert_matches_parse(db, path, landing)
    key = results[0].source_file
    assert query(
        db,
        "SELECT count(*), count(DISTINCT line_number) FROM raw.transactions WHERE source_file = %s",
        (key,),
    ) == [(3, 3)]


def test_ensure_raw_schema_is_idempotent(db):
    loader.ensure_raw_schema(db)
    loader.ensure_raw_schema(db)
    assert query(
        db, "SELECT count(*) FROM pg_constraint WHERE conrelid = 'raw.files'::regclass AND contype = 'c'"
    ) == [(1,)]


# -- pure helpers (no database needed) ----------------------------------------------------------------


def test_account_and_key_helpers(tmp_path):
    assert loader.account_of("checking/2024-q1.csv") == "checking"
    assert loader.account_of("a/b/c.csv") == "b"
    assert loader.account_of("personal_card.csv") == "personal_card"
    (tmp_path / "sub").mkdir()
    for name in ["b.csv", "a.CSV", "sub/c.csv", ".hidden.csv", "notes.txt", "sub/.x.csv"]:
        (tmp_path / name).write_text(HEADER)
    found = loader.landing_files(tmp_path)
    assert [loader.source_file_key(tmp_path, p) for p in found] == ["a.CSV", "b.csv", "sub/c.csv"]
    assert loader.landing_files(tmp_path / "missing") == []


def test_extra_columns_round_trip_as_jsonb_or_null(db, landing):
    path = write(
        landing,
        [
            HEADER + ",Notes,Balance",
            '2024-03-01,Expense,WITH NOTE,-1.00,other,cash,paid,X,,"say ""hi"", café",10.00',
            "2024-03-02,Expense,NO EXTRAS,-2.00,other,cash,paid,X,,,",
            "2024-03-03,Expense,BALANCE ONLY,-3.00,other,cash,paid,X,,,7.00",
        ],
    )
    loader.load_file(db, landing, path)
    rows = query(
        db,
        "SELECT description, extra FROM raw.transactions WHERE source_file = %s ORDER BY line_number",
        (loader.source_file_key(landing, path),),
    )
    assert rows == [
        ("WITH NOTE", {"Notes": 'say "hi", café', "Balance": "10.00"}),
        ("NO EXTRAS", None),
        ("BALANCE ONLY", {"Notes": "", "Balance": "7.00"}),
    ]


# -- the binary COPY encoder (pg_copy) against the server's own reading of the same values -----------------


def test_binary_copy_encoding_round_trips_edge_values(db):
    from titans_assets.lib import pg_copy

    amounts = [
        "0",
        "-0",
        "-0.00",
        "0.01",
        "-0.01",
        "1.5",
        "1.500",
        "+5",
        "5.",
        ".5",
        "-.5",
        "007",
        "12345678.9",
        "999999999999.99",
        "-999999999999.99",
        "-4.50",
        "10000",
        "99990000.01",
    ]
    dates = [
        "2000-01-01",
        "1999-12-31",
        "1970-01-01",
        "0001-01-01",
        "9999-12-31",
        "2024-02-29",
        "2024-1-5",
        "1900-03-01",
        "2199-12-31",
        "2024-01-15",
        "2000-02-29",
        "1600-02-29",
        "2100-03-01",
        "2024-12-31",
        "2038-01-19",
        "1901-12-13",
        "2023-06-30",
        "2000-12-31",
    ]
    texts = [
        "",
        "plain",
        "café ☕",
        'q"uote',
        "back\\slash",
        "tab\t",
        "new\nline",
        "\\.",
        "NULL",
        "x" * 5000,
        "",
        "z",
        "",
        "ü",
        "",
        "end",
        "",
        "ok",
    ]
    extras = ['{"a": "1"}', None, '{"k": "v \\"q\\" \\\\ \\n"}', None, "{}", '{"Notes": ""}'] * 3
    n = len(amounts)
    payload = (
        pg_copy.HEADER
        + pg_copy.rows(
            pg_copy.row_prefix(7, "constant ✓"),
            [
                *pg_copy.int4_field(np.arange(n) - 5),
                *pg_copy.date_field(pa.array(dates)),
                *pg_copy.numeric_2_field(pa.array(amounts)),
                *pg_copy.text_field(pa.array(texts)),
                *pg_copy.text_field(pa.array(texts), null_if_empty=True),
                *pg_copy.jsonb_field(pa.array(extras, pa.string())),
            ],
        )
        + pg_copy.TRAILER
    )
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "CREATE TEMP TABLE t (c text, n integer, d date, a numeric(14,2), s text, s_null text, j jsonb)"
        )
        cur.copy_expert("COPY t FROM STDIN WITH (FORMAT binary)", io.BytesIO(payload))
        cur.execute("SELECT c, n, d::text, a::text, s, s_null, j FROM t ORDER BY n")
        got = cur.fetchall()
        # What the server makes of the same values as text.
        cur.execute(
            "SELECT x::date::text, y::numeric(14,2)::text, z::jsonb FROM unnest(%s::text[], %s::text[], %s::text[])"
            " AS u(x, y, z)",
            (dates, amounts, extras),
        )
        expected = cur.fetchall()
    assert [g[0] for g in got] == ["constant ✓"] * n
    assert [g[1] for g in got] == list(range(-5, n - 5))
    assert [(g[2], g[3], g[6]) for g in got] == expected
    assert [g[4] for g in got] == texts
    assert [g[5] for g in got] == [t or None for t in texts]


def test_binary_copy_refuses_an_amount_numeric_14_2_cannot_hold():
    from titans_assets.lib import pg_copy

    with pytest.raises(ValueError, match="out of range"):
        pg_copy.numeric_2_field(pa.array(["1000000000000.00"]))


# -- bank statement formats (lib/formats) -------------------------------------------------------------

FORMATS = Path(__file__).parent / "fixtures" / "formats"


@pytest.mark.parametrize(
    "name, loaded, quarantined",
    [
        ("ofxparse_bank_medium.ofx", 3, 0),
        ("wolph_mBank_mt940.sta", 3, 0),
        ("handmade_camt053_v02.xml", 2, 0),
        ("handmade_bank.qif", 3, 0),
    ],
)
def test_statement_loads_with_bank_ids_and_is_idempotent(db, landing, name, loaded, quarantined):
    path = landing / "bank" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes((FORMATS / name).read_bytes())
    first = loader.load_file(db, landing, path)
    assert (first.status, first.rows_loaded, first.rows_quarantined) == ("loaded", loaded, quarantined)
    assert first.rows_read == first.rows_loaded + first.rows_quarantined
    again = loader.load_file(db, landing, path)
    assert (again.status, again.rows_loaded) == ("unchanged", loaded)
    rows = query(
        db,
        "SELECT account, bank_txn_id, currency, balance FROM raw.transactions WHERE source_file = %s"
        " ORDER BY line_number",
        (first.source_file,),
    )
    assert len(rows) == loaded
    if name.endswith(".qif"):  # QIF names no account, id or currency: the folder's account, NULLs
        assert {r[0] for r in rows} == {"bank"} and {r[1:] for r in rows} == {(None, None, None)}
    else:
        assert len({r[0] for r in rows}) == 1 and rows[0][0] != "bank" and rows[0][0] == first.account
        assert all(r[1] for r in rows) and all(r[2] for r in rows)
    if name.endswith(".xml"):
        assert [r[3] for r in rows] == [Decimal("957.55"), Decimal("2457.55")]


def test_csv_rows_leave_statement_columns_null(db, landing):
    path = write(landing, V2)
    loader.load_file(db, landing, path)
    rows = query(
        db,
        "SELECT bank_txn_id, currency, balance FROM raw.transactions WHERE source_file = %s",
        (loader.source_file_key(landing, path),),
    )
    assert rows and set(rows) == {(None, None, None)}


def test_rejected_statement_is_one_e003_line(db, landing):
    path = landing / "broken.ofx"
    path.write_bytes(b"OFXHEADER:100\nDATA:OFXSGML\n\n<OFX><STMTTRN><TRNTYPE>POS")
    result = loader.load_file(db, landing, path)
    assert result.rows_loaded == 0 and result.rows_quarantined >= 1
    assert result.file_error.startswith("E003 invalid input: OFX")
