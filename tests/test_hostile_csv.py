"""Hostile CSV files (issue 15): nothing lost, nothing garbled.

- The corpus in tests/fixtures/hostile/ (made by its make_corpus.py, one README line per file) goes
  through the real loader into PostgreSQL: every line accounted for (rows_read = rows_loaded +
  rows_quarantined, in the result and in raw.files, raw.transactions and raw.quarantine), or the whole
  file rejected with one E003 reason; the stored descriptions exactly as meant; no mojibake anywhere.
- A property test (hypothesis) writes random files (UTF-8 and Windows-1252 lines mixed, UTF-16, with
  and without a header, good and bad rows, any line end) and checks the same of the pure parse; a few
  of its files also go through PostgreSQL.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import sys
import uuid
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_loader import db, query  # noqa: F401 - db is the loader tests' fixture (raw schema ensured)

from titans_assets.lib import loader
from titans_assets.lib.csv_contract import CANONICAL_COLUMNS, ParsedFile, parse_csv

CORPUS = Path(__file__).parent / "fixtures" / "hostile"


def _corpus_module():
    spec = importlib.util.spec_from_file_location("hostile_corpus", CORPUS / "make_corpus.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


corpus = _corpus_module()


def mojibake(text: str) -> list[str]:
    """Runs of non-ASCII characters that are UTF-8 bytes read as Windows-1252 (`Ã©` for `é`)."""
    found = []
    run = ""
    for ch in text + "\x00":
        if ord(ch) > 127:
            run += ch
            continue
        if run:
            try:
                if run.encode("cp1252").decode("utf-8") != run:
                    found.append(run)
            except UnicodeError:
                pass
        run = ""
    return found


def test_mojibake_detector():
    assert mojibake("CafÃ© CrÃ¨me â˜•") == ["Ã©", "Ã¨", "â˜•"]
    assert mojibake("Café Crème ☕ € … “quoted” \ufffd") == []


# -- the corpus -----------------------------------------------------------------------------------------


def test_committed_corpus_is_what_make_corpus_writes(tmp_path):
    corpus.build(tmp_path)
    made = sorted(p.name for p in tmp_path.iterdir())
    committed = sorted(p.name for p in CORPUS.iterdir() if p.name not in ("make_corpus.py", "__pycache__"))
    assert made == committed
    for name in made:
        assert (CORPUS / name).read_bytes() == (tmp_path / name).read_bytes(), name
    readme = (CORPUS / "README.md").read_text()
    assert all(f"`{case.name}`" in readme for case in corpus.CASES)
    assert len({case.name for case in corpus.CASES}) == len(corpus.CASES)


def stored_text(database, source_file: str) -> list[str]:
    """Every text value the database holds for one file."""
    values = []
    for sql in (
        "SELECT txn_type, description, category, payment_method, status, reference, receipt_url, extra::text"
        " FROM raw.transactions WHERE source_file = %s",
        "SELECT raw_line, reason FROM raw.quarantine WHERE source_file = %s",
        "SELECT array_to_string(header, chr(31)) FROM raw.files WHERE source_file = %s",
    ):
        values += [v for record in query(database, sql, (source_file,)) for v in record if v is not None]
    return values


def assert_accounted(database, result: loader.LoadResult, scan_for_mojibake: bool = True) -> None:
    """The result, raw.files and the two tables agree, and every line is loaded or quarantined; no
    stored text looks like mojibake (a heuristic: for the corpus, whose text is chosen not to trip it;
    the property tests compare the text exactly instead)."""
    assert result.rows_read == result.rows_loaded + result.rows_quarantined
    key = result.source_file
    assert query(
        database,
        "SELECT rows_read, rows_loaded, rows_quarantined FROM raw.files WHERE source_file = %s",
        (key,),
    ) == [(result.rows_read, result.rows_loaded, result.rows_quarantined)]
    loaded = {
        n
        for (n,) in query(database, "SELECT line_number FROM raw.transactions WHERE source_file = %s", (key,))
    }
    quarantined = {
        n for (n,) in query(database, "SELECT line_number FROM raw.quarantine WHERE source_file = %s", (key,))
    }
    assert (len(loaded), len(quarantined)) == (
        result.rows_loaded,
        result.rows_quarantined,
    )  # one row per line
    assert not loaded & quarantined
    if result.file_error is not None:
        assert result.file_error.startswith("E003 invalid input: ") and "\n" not in result.file_error
        assert result.rows_loaded == 0
        assert query(
            database, "SELECT DISTINCT reason FROM raw.quarantine WHERE source_file = %s", (key,)
        ) in ([(result.file_error,)], [])
    for text in stored_text(database, key) if scan_for_mojibake else ():
        assert not mojibake(text), (text, mojibake(text))


@pytest.mark.integration
@pytest.mark.parametrize("case", corpus.CASES, ids=lambda c: c.name)
def test_hostile_file_through_the_loader(db, tmp_path, case):  # noqa: F811 - db is the imported fixture
    path = tmp_path / f"hostile_{uuid.uuid4().hex[:8]}_{case.name}"
    path.write_bytes((CORPUS / case.name).read_bytes())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. numpy's overflow warning on `1e308` fails the load
        result = loader.load_file(db, tmp_path, path)
    assert_accounted(db, result)
    assert (result.file_error is not None) == case.rejected, result.file_error
    if case.quarantined is not None:
        assert result.rows_quarantined == case.quarantined
    if case.rejected:
        assert result.rows_read > 0  # the rejection is recorded with its lines, not dropped
    stored = [
        d
        for (d,) in query(
            db,
            "SELECT description FROM raw.transactions WHERE source_file = %s ORDER BY line_number",
            (result.source_file,),
        )
    ]
    assert tuple(stored) == case.loaded
    assert loader.load_file(db, tmp_path, path).status == "unchanged"


def test_corpus_reasons_name_the_field_or_the_counts():
    """The corpus's quarantine reasons that issue 15 named (parse only; the loader stores these)."""

    def reasons(name: str) -> list[str]:
        return [q[2] for q in parse_csv((CORPUS / name).read_bytes()).quarantine]

    assert reasons("short_rows.csv") == [
        "row has 3 fields, expected 9 (no Amount)",
        "row has 1 field, expected 9 (no Type, Description, Amount)",
    ]
    assert reasons("trailing_garbage_columns.csv") == ["row has 11 fields, expected 9"]
    assert all(r.startswith("amount ") for r in reasons("huge_amounts.csv"))
    [headerless] = set(reasons("headerless.csv"))
    assert headerless.startswith("E003 invalid input: header: the first line names no column of the contract")
    assert "'SHOP ONE'" in headerless
    assert "NUL" in reasons("nul_bytes.csv")[0]


# -- property: random files ------------------------------------------------------------------------------

HEADER = ",".join(CANONICAL_COLUMNS)
# Descriptions: ASCII, Latin-1 letters, cp1252-only punctuation, characters only UTF-8 can hold, and
# CSV-special characters (comma, quote, an embedded newline) so that quoting and multi-line records occur.
_ALPHABET = st.sampled_from(
    list("abcXYZ 019-'") + list("éüßÀ") + list("€…“”–") + list("☕Ωあ") + [",", '"', "\n"]
)


@st.composite
def records(draw):
    """(kind, line text as written, description, encoding of its bytes)."""
    kind = draw(
        st.sampled_from(["good"] * 6 + ["bad_date", "bad_amount", "short", "too_many", "nul", "blank"])
    )
    desc = draw(st.text(_ALPHABET, max_size=12))
    if kind == "nul":
        desc += "\x00"
    date = "2024-02-30" if kind == "bad_date" else draw(st.sampled_from(["2024-01-15", "2023-12-31"]))
    amount = (
        draw(st.sampled_from(["1e308", "abc", "9" * 30, "12.345"]))
        if kind == "bad_amount"
        else draw(st.sampled_from(["-4.50", "12", "$1,234.56", "(3.00)"]))
    )
    fields = [date, draw(st.sampled_from(["Expense", "Income"])), desc, amount, "", "", "", "", ""]
    if kind == "short":
        fields = fields[:3]
    elif kind == "too_many":
        fields += ["surprise"]
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerow(fields)
    text = "" if kind == "blank" else buf.getvalue()[:-2]
    # A record is written in Windows-1252 only where that is unambiguous: encodable, and no physical line
    # of it that is not ASCII is also valid UTF-8 (the contract decodes by physical line and rightly reads
    # such a line as UTF-8; a multi-line record "À\nß–" has a second line, DF 96, that is U+07D6).
    encoding = "utf-8"
    if draw(st.booleans()):
        try:
            lines = text.encode("cp1252").splitlines()
        except UnicodeEncodeError:
            lines = []
        if any(not line.isascii() for line in lines) and not any(
            _valid_utf8(ln) for ln in lines if not ln.isascii()
        ):
            encoding = "cp1252"
    return kind, text, desc, encoding


def _valid_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@st.composite
def files(draw):
    rows = draw(st.lists(records(), max_size=12))
    end = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    with_header = draw(st.integers(0, 4)) > 0 or not rows  # 1 in 5 without a header: rejected whole
    mode = draw(st.sampled_from(["lines", "lines", "lines", "utf-16", "utf-8-bom"]))
    trailing = draw(st.booleans())
    texts = ([HEADER] if with_header else []) + [text for _, text, _, _ in rows]
    encodings = (["utf-8"] if with_header else []) + [enc for *_, enc in rows]
    if mode == "utf-16":
        data = (end.join(texts) + (end if trailing else "")).encode("utf-16")
    else:
        data = b"".join(
            t.encode(enc) + (end.encode() if i < len(texts) - 1 or trailing else b"")
            for i, (t, enc) in enumerate(zip(texts, encodings, strict=True))
        )
        if mode == "utf-8-bom":
            data = b"\xef\xbb\xbf" + data
    return data, with_header, rows


def check_file(p: ParsedFile, with_header: bool, rows: list) -> None:
    """What a generated file must become: every record accounted for, good ones loaded as written."""
    assert p.rows_read == p.rows_loaded + p.rows_quarantined
    loaded = {int(r["line_number"]): r["description"] for r in p.rows.to_dict("records")}
    quarantined = {n: raw for n, raw, _ in p.quarantine}
    assert not loaded.keys() & quarantined.keys() and len(quarantined) == p.rows_quarantined
    line = 2 if with_header else 1
    expected_loaded, expected_quarantined = {}, {}
    for kind, text, desc, _ in rows:
        if kind == "good":
            expected_loaded[line] = desc
        elif kind != "blank":
            expected_quarantined[line] = text.replace("\x00", "\ufffd")  # the raw line as written
        line += 1 + text.count("\n")
    if not with_header:
        if not expected_loaded and not expected_quarantined:
            return  # blank lines only: an empty file
        # rejected whole: nothing loads, and every line of a record is in some quarantined record
        assert p.file_error.startswith("E003 ") and not loaded
        covered = set()
        for n, raw, _ in p.quarantine:
            covered.update(range(n, n + 1 + raw.count("\n") + raw.count("\r") - raw.count("\r\n")))
        assert (expected_loaded.keys() | expected_quarantined.keys()) <= covered
        return
    assert p.file_error is None
    # exactly as written, loaded text and quarantined raw lines alike: no mojibake, no line lost or moved
    assert loaded == expected_loaded
    assert quarantined == expected_quarantined


@settings(max_examples=300, deadline=None, database=None)
@given(files())
def test_random_files_every_record_accounted_for_and_nothing_garbled(generated):
    data, with_header, rows = generated
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = parse_csv(data)
    check_file(p, with_header, rows)


@pytest.mark.integration
@settings(
    max_examples=8, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)  # db and tmp_path are reused safely
@given(generated=files())
def test_random_files_through_postgresql(db, tmp_path, generated):  # noqa: F811 - db is the imported fixture
    data, with_header, rows = generated
    path = tmp_path / f"prop_{uuid.uuid4().hex[:10]}.csv"
    path.write_bytes(data)
    result = loader.load_file(db, tmp_path, path)
    assert_accounted(db, result, scan_for_mojibake=False)
    p = parse_csv(data)
    check_file(p, with_header, rows)
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (
        p.rows_read,
        p.rows_loaded,
        p.rows_quarantined,
    )
    assert [
        d
        for (d,) in query(
            db,
            "SELECT description FROM raw.transactions WHERE source_file = %s ORDER BY line_number",
            (result.source_file,),
        )
    ] == list(p.rows["description"])
    expected = p.quarantine
    if result.file_error is not None:  # the loader's reason is the contract's plus the CSV profiles it tried
        assert result.file_error.startswith(p.file_error)
        expected = [
            (n, raw, result.file_error if reason == p.file_error else reason) for n, raw, reason in expected
        ]
    assert (
        query(
            db,
            "SELECT line_number, raw_line, reason FROM raw.quarantine WHERE source_file = %s"
            " ORDER BY line_number",
            (result.source_file,),
        )
        == expected
    )


@settings(max_examples=500, deadline=None, database=None)
@given(with_header=st.booleans(), body=st.binary(max_size=200))
def test_any_bytes_parse_without_error_and_everything_is_storable(with_header, body):
    """Arbitrary bytes (after a header or not) never raise or warn, keep the invariant, and hold no
    NUL in anything the loader writes to a text column."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = parse_csv(((HEADER + "\n").encode() if with_header else b"") + body)
    assert p.rows_read == p.rows_loaded + p.rows_quarantined
    assert p.file_error is None or (p.file_error.startswith("E003 ") and p.rows_loaded == 0)
    texts = [*p.header, *(t for q in p.quarantine for t in q[1:])]
    texts += [
        v
        for c in (
            "txn_type",
            "description",
            "category",
            "payment_method",
            "status",
            "reference",
            "receipt_url",
            "extra",
        )
        for v in p.rows[c]
        if v is not None
    ]
    assert not [t for t in texts if "\x00" in t]
