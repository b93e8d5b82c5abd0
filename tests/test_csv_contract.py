"""The input contract (DESIGN.md "The input contract"): bytes of one export -> typed rows + quarantine.

Pure unit tests, no database. Every test checks the invariant rows_read = rows_loaded + rows_quarantined.
"""

from __future__ import annotations

import csv
import io
import json
import random
import warnings
from decimal import Decimal

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from titans_assets.lib import csv_contract as cc
from titans_assets.lib.csv_contract import (
    CANONICAL_COLUMNS,
    OUTPUT_COLUMNS,
    ParsedFile,
    parse_amount,
    parse_csv,
)

HEADER = ",".join(CANONICAL_COLUMNS)


def line(
    date="2024-01-15",
    type_="Expense",
    desc="COFFEE SHOP",
    amount="-4.50",
    category="meals_entertainment",
    method="credit_card",
    status="paid",
    ref="Blue Bottle",
    url="",
    delimiter=",",
) -> str:
    """One record as a spreadsheet would write it (quoted only when needed), without line end."""
    buf = io.StringIO()
    # lineterminator "\r\n" so that fields holding either character get quoted; then cut it off
    csv.writer(buf, delimiter=delimiter, lineterminator="\r\n").writerow(
        [date, type_, desc, amount, category, method, status, ref, url]
    )
    return buf.getvalue()[:-2]


def parse(*lines: str, end: str = "\n", trailing: bool = True, encoding: str = "utf-8") -> ParsedFile:
    text = end.join(lines) + (end if trailing else "")
    return checked(parse_csv(text.encode(encoding)))


def checked(p: ParsedFile) -> ParsedFile:
    """Structural invariants every parse must satisfy."""
    assert p.rows_read == p.rows_loaded + p.rows_quarantined
    assert tuple(p.rows.columns) == OUTPUT_COLUMNS
    lines = list(p.rows["line_number"]) + [q[0] for q in p.quarantine]
    assert len(lines) == len(set(lines)), "a line is both loaded and quarantined, or twice"
    if p.file_error is None:
        assert all(n >= 2 for n in lines), "line 1 is the header"
    else:  # a rejected file: nothing loads, every line (the first too: it may be data) is quarantined
        assert p.rows_loaded == 0 and all(q[2] == p.file_error for q in p.quarantine)
        assert p.file_error.startswith("E003 ")
    assert [q[0] for q in p.quarantine] == sorted(q[0] for q in p.quarantine)
    for _, raw, reason in p.quarantine:
        assert "\x00" not in raw and reason
    return p


def records(p: ParsedFile) -> list[dict]:
    return p.rows.to_dict("records")


def only_row(p: ParsedFile) -> dict:
    assert p.rows_loaded == 1 and p.rows_quarantined == 0, p.quarantine
    return records(p)[0]


def only_reason(p: ParsedFile) -> str:
    assert p.rows_loaded == 0 and p.rows_quarantined == 1, records(p)
    return p.quarantine[0][2]


# -- empty and degenerate files --------------------------------------------------------------------


@pytest.mark.parametrize("data", [b"", b"   ", b" \n\t\r\n  \n", b"\xef\xbb\xbf", b"\r\n\r\n"])
def test_empty_or_whitespace_file_has_no_rows_and_no_error(data):
    p = checked(parse_csv(data))
    assert (p.header, p.rows_read, p.rows_loaded, p.rows_quarantined, p.file_error) == ([], 0, 0, 0, None)
    assert p.rows.empty


@pytest.mark.parametrize(
    "data",
    [HEADER.encode(), (HEADER + "\n").encode(), (HEADER + "\r\n").encode(), (HEADER + "\n\n\n").encode()],
)
def test_header_only(data):
    p = checked(parse_csv(data))
    assert p.header == list(CANONICAL_COLUMNS)
    assert (p.rows_read, p.rows_loaded, p.rows_quarantined, p.file_error) == (0, 0, 0, None)


def test_utf8_bom_is_stripped_from_first_header_name():
    p = checked(parse_csv(b"\xef\xbb\xbf" + (HEADER + "\n" + line() + "\n").encode()))
    assert p.header[0] == "Date" and p.encoding == "utf-8"
    assert only_row(p)["txn_date"] == "2024-01-15"


@pytest.mark.parametrize("end", ["\r\n", "\r", "\n"], ids=["crlf", "lone-cr", "lf"])
@pytest.mark.parametrize("trailing", [True, False], ids=["trailing-newline", "no-trailing-newline"])
def test_line_ends(end, trailing):
    p = parse(
        HEADER, line(desc="A"), line(date="bad"), line(desc="C", amount="7"), end=end, trailing=trailing
    )
    assert [(r["line_number"], r["description"], r["amount"]) for r in records(p)] == [
        (2, "A", "-4.50"),
        (4, "C", "7"),
    ]
    assert p.quarantine == [(3, line(date="bad"), "date 'bad' is not a valid YYYY-MM-DD date")]
    assert p.header[-1] == "Receipt URL"  # no '\r' left on the last header name


def test_no_trailing_newline_keeps_the_last_row():
    p = parse(HEADER, line(desc="first"), line(desc="last", url="https://x.example/r.pdf"), trailing=False)
    assert [r["description"] for r in records(p)] == ["first", "last"]
    assert records(p)[-1]["receipt_url"] == "https://x.example/r.pdf"


# -- header --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        "date,type,description,amount,category,payment_method,status,reference,receipt_url",
        " Date , TYPE ,DESCRIPTION,  amount ,Category,PAYMENT_METHOD,Status ,Reference,Receipt-URL",
        "DATE,Type,Description,Amount,CATEGORY,payment-method,STATUS,REFERENCE,receipt  url",
        "Transaction Date,Transaction Type,Memo,Transaction Amount,Category,Method,Status,Vendor,Receipt Link",
        "Posted Date,Txn Type,Details,Amount,Category,Payment Type,Status,Payee,Receipt",
    ],
)
def test_header_case_spacing_underscores_and_aliases(header):
    p = parse(header, line(url="https://r.example/1"))
    assert p.file_error is None
    assert only_row(p) == {
        "line_number": 2,
        "txn_date": "2024-01-15",
        "txn_type": "Expense",
        "description": "COFFEE SHOP",
        "amount": "-4.50",
        "category": "meals_entertainment",
        "payment_method": "credit_card",
        "status": "paid",
        "reference": "Blue Bottle",
        "receipt_url": "https://r.example/1",
        "extra": None,
    }


def test_columns_in_another_order():
    p = parse(
        "Reference,Amount,Status,Description,Date,Category,Type,Receipt URL,Payment Method",
        "ACME,-12.00,paid,PAPER,2024-02-01,office_supplies,Expense,,check",
    )
    row = only_row(p)
    assert (
        row["txn_date"],
        row["txn_type"],
        row["description"],
        row["amount"],
        row["category"],
        row["payment_method"],
        row["reference"],
    ) == ("2024-02-01", "Expense", "PAPER", "-12.00", "office_supplies", "check", "ACME")


def test_extra_columns_are_kept_as_json_and_absent_optional_columns_are_null():
    p = parse("Date,Balance,Type,Description,Amount,Notes", '2024-02-01,1000.00,Income,PAY,50.00,"a,b"')
    row = only_row(p)
    assert json.loads(row["extra"]) == {"Balance": "1000.00", "Notes": "a,b"}
    assert row["category"] is None and row["reference"] is None and row["receipt_url"] is None
    assert (row["txn_date"], row["amount"]) == ("2024-02-01", "50.00")


def test_extra_json_escapes_anything_and_is_null_when_every_extra_cell_is_empty():
    nasty = 'say "hi" \\ tab\t caf\u00e9 \U0001f600 {x}: y'
    p = parse(
        'Date,Type,Description,Amount,"Note ""1""",Memo2',
        f'2024-02-01,Expense,A,-1.00,"{nasty.replace(chr(34), chr(34) * 2)}",',
        "2024-02-02,Expense,B,-2.00,,",
    )
    first, second = records(p)
    assert json.loads(first["extra"]) == {'Note "1"': nasty, "Memo2": ""}
    assert second["extra"] is None  # nothing beyond the contract was written on that row


def test_duplicate_known_column_first_wins_and_second_is_extra():
    p = parse("Date,Type,Description,Amount,Amount", "2024-02-01,Income,PAY,50.00,99")
    row = only_row(p)
    assert row["amount"] == "50.00" and json.loads(row["extra"]) == {"Amount": "99"}


@pytest.mark.parametrize("missing", ["Date", "Type", "Description", "Amount"])
def test_missing_required_column_quarantines_every_data_row(missing):
    header = [c for c in CANONICAL_COLUMNS if c != missing]
    rows = [",".join(["2024-01-15", "Expense", "X", "-1.00", "", "", "", "", ""][: len(header)])] * 3
    p = parse(",".join(header), rows[0], "", rows[1], ",,,,,,,", rows[2])
    # the whole file is rejected, its first line included (a header naming too little may be data)
    assert p.rows_loaded == 0 and p.rows_quarantined == 4 == p.rows_read
    assert p.file_error.startswith("E003 invalid input: header: missing required column(s) " + missing)
    assert [q[0] for q in p.quarantine] == [1, 2, 4, 6]  # blank lines skipped, numbers physical
    assert [q[1] for q in p.quarantine] == [",".join(header)] + [rows[0]] * 3
    for _, _, reason in p.quarantine:
        assert reason == p.file_error


# -- delimiter --------------------------------------------------------------------------------------


@pytest.mark.parametrize("delimiter", [";", "\t", "|"])
def test_delimiter_detected_from_header(delimiter):
    header = delimiter.join(CANONICAL_COLUMNS)
    p = parse(
        header,
        line(amount="1.234,56", desc="a, b", delimiter=delimiter),
        line(amount="-12,5", type_="Expense", delimiter=delimiter),
    )
    assert p.delimiter == delimiter and p.file_error is None
    assert [(r["description"], r["amount"]) for r in records(p)] == [
        ("a, b", "1234.56"),
        ("COFFEE SHOP", "-12.5"),
    ]


def test_comma_file_with_semicolons_in_values_stays_comma():
    p = parse(HEADER, line(desc="a;b;c;d;e"))
    assert p.delimiter == "," and only_row(p)["description"] == "a;b;c;d;e"


# -- dates ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "date",
    [
        "2024-13-45",
        "2024-02-30",
        "01/02/2024",
        "2024/01/02",
        "yesterday",
        "",
        " ",
        "20240102",
        "2024-01-02junk",
        "02024-01-02",
    ],
)
def test_bad_dates_are_quarantined(date):
    p = parse(HEADER, line(desc="ok"), line(date=date))
    assert records(p)[0]["description"] == "ok"
    assert p.rows_quarantined == 1
    n, raw, reason = p.quarantine[0]
    assert n == 3 and raw == line(date=date)
    assert reason == f"date {date!r} is not a valid YYYY-MM-DD date"


@pytest.mark.parametrize(
    "date",
    [
        "2024-03-05T14:22:00",
        "2024-03-05 14:22",
        "2024-03-05T14:22:00Z",
        "2024-03-05T14:22:00.123+02:00",
        " 2024-03-05 ",
        "2024-03-05",
    ],
)
def test_iso_date_with_time_part_is_accepted_and_time_dropped(date):
    assert only_row(parse(HEADER, line(date=date)))["txn_date"] == "2024-03-05"


def test_leap_day():
    assert only_row(parse(HEADER, line(date="2024-02-29")))["txn_date"] == "2024-02-29"
    assert "date" in only_reason(parse(HEADER, line(date="2023-02-29")))


# -- amounts --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,expected",
    [
        ("$1,234.56", "1234.56"),
        ("-$45.00", "-45.00"),
        ("$-45.00", "-45.00"),
        ("(12.50)", "-12.50"),
        ("($12.50)", "-12.50"),
        ("12.50-", "-12.50"),
        ("EUR 1.234,56", "1234.56"),
        ("1 234,56", "1234.56"),
        ("€12,5", "12.5"),
        ("1.234.567", "1234567"),
        ("1,234,567.89", "1234567.89"),
        ("+7", "7"),
        ("£0.99", "0.99"),
        ("12 USD", "12"),
        ("\u00a01\u00a0000,00", "1000.00"),
        ("999999999999.99", "999999999999.99"),
    ],
)
def test_messy_amounts(text, expected):
    assert parse_amount(text) == Decimal(expected)
    # and the same through a whole file (the vectorised path hands these to parse_amount)
    row = only_row(parse(HEADER, line(amount=text)))
    assert Decimal(row["amount"]) == Decimal(expected)


@pytest.mark.parametrize(
    "text,reason",
    [
        ("abc", "amount 'abc' is not a number"),
        ("", "amount is empty"),
        ("   ", "amount is empty"),
        ("$", "amount is empty"),
        ("12.345", "amount '12.345' has more than 2 decimal places"),
        ("1e400", "amount '1e400' is not a number"),
        ("-1e400", "amount '-1e400' is not a number"),
        ("nan", "amount 'nan' is not a number"),
        ("inf", "amount 'inf' is not a number"),
        ("1,2,3", "amount '1,2,3' is not a number"),
        ("1.2.3", "amount '1.2.3' is not a number"),
        ("--5", "amount '--5' is not a number"),
        ("1000000000000", "amount '1000000000000' is out of range"),
        ("12.340000001", "amount '12.340000001' has more than 2 decimal places"),  # a float cannot see this
        ("1e2", "amount '1e2' is not a number"),  # spreadsheet exponent notation: precision already lost
        ("-1.5E+3", "amount '-1.5E+3' is not a number"),
    ],
)
def test_non_numeric_amounts_are_quarantined(text, reason):
    with pytest.raises(ValueError, match="amount"):
        parse_amount(text)
    p = parse(HEADER, line(amount=text), line(desc="fine"))
    assert [r["description"] for r in records(p)] == ["fine"]
    assert p.quarantine == [(2, line(amount=text), reason)]


def test_plain_amounts_pass_through_exactly():
    amounts = ["0", "-0.01", "12", "12.5", "-1234.56", "999999999999.99", "-999999999999.99", "0.10"]
    p = parse(HEADER, *(line(amount=a) for a in amounts))
    assert [r["amount"] for r in records(p)] == amounts  # exact strings, no float round trip


# -- type ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,expected",
    [
        ("Income", "Income"),
        ("income", "Income"),
        ("INCOME", "Income"),
        ("EXPENSE", "Expense"),
        ("expense", "Expense"),
        (" Expense ", "Expense"),
    ],
)
def test_type_case_variants_are_normalized(text, expected):
    assert only_row(parse(HEADER, line(type_=text)))["txn_type"] == expected


@pytest.mark.parametrize("text", ["Refund", "", "Transfer", "Incomes"])
def test_unknown_type_is_quarantined(text):
    assert only_reason(parse(HEADER, line(type_=text))) == f"type {text!r} is not Income or Expense"


def test_first_failing_field_is_the_reason():
    assert only_reason(parse(HEADER, line(date="x", type_="Refund", amount="abc"))).startswith("date")
    assert only_reason(parse(HEADER, line(type_="Refund", amount="abc"))).startswith("type")


# -- hostile content ------------------------------------------------------------------------------


def test_ten_megabyte_description_is_quarantined_whole():
    huge = "A" * (10 * 1024 * 1024)
    big = line(desc=huge)
    p = parse(HEADER, line(desc="before"), big, line(desc="after"))
    assert [(r["line_number"], r["description"]) for r in records(p)] == [(2, "before"), (4, "after")]
    assert p.rows_quarantined == 1
    n, raw, reason = p.quarantine[0]
    assert n == 3 and raw == big and len(raw) == len(big)
    assert "'Description'" in reason and str(len(huge)) in reason


def test_long_but_allowed_description_is_loaded():
    desc = "B" * cc.MAX_FIELD_CHARS
    assert only_row(parse(HEADER, line(desc=desc)))["description"] == desc


@pytest.mark.parametrize(
    "desc",
    [
        "Robert'); DROP TABLE raw.transactions;--",
        "x' OR '1'='1",
        '"; DELETE FROM raw.files; --',
        "\\'; COPY raw.files TO PROGRAM 'rm -rf /'; --",
        "$$; DROP SCHEMA raw CASCADE; $$",
        "\\.",
        "%s %(x)s {0}",
    ],
)
def test_sql_injection_text_is_kept_verbatim(desc):
    assert only_row(parse(HEADER, line(desc=desc)))["description"] == desc


def test_nul_byte_quarantines_the_row_and_keeps_the_rest():
    bad = line(desc="A\x00B")
    p = parse(HEADER, line(desc="ok"), bad, line(desc="ok2"))
    assert [r["line_number"] for r in records(p)] == [2, 4]
    assert p.quarantine == [(3, bad.replace("\x00", "\ufffd"), "field 'Description' contains a NUL byte")]


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_utf16_without_a_bom_is_recognised_by_its_nul_bytes(codec):
    data = (HEADER + "\n" + line(desc="Café") + "\n" + line() + "\n").encode(codec)
    p = checked(parse_csv(data))
    assert (p.encoding, p.rows_loaded, p.rows_read) == (codec, 2, 2)
    assert records(p)[0]["description"] == "Café"


def test_a_few_nul_bytes_do_not_make_a_file_utf16():
    data = (HEADER + "\n" + line(desc="A\x00B") + "\n" + line() + "\n").encode()
    p = checked(parse_csv(data))
    assert p.encoding == "utf-8" and p.rows_loaded == 1 and "NUL" in p.quarantine[0][2]


def test_text_columns_stay_as_written():
    row = only_row(
        parse(HEADER, line(desc="  padded  ", category="Food ", method="credit_car", ref="Café ☕"))
    )
    assert (row["description"], row["category"], row["payment_method"], row["reference"]) == (
        "  padded  ",
        "Food ",
        "credit_car",
        "Café ☕",
    )


# -- physical structure ---------------------------------------------------------------------------------


def test_multiline_quoted_description_keeps_physical_line_numbers():
    multi_ok = line(desc="line one\nline two\nline three")
    multi_bad = line(desc="bad\r\nrecord", date="nope")
    p = parse(HEADER, line(desc="A"), multi_ok, line(desc="B"), multi_bad, line(desc="C"))
    # lines: 1 header, 2 A, 3-5 multi_ok, 6 B, 7-8 multi_bad, 9 C
    assert [(r["line_number"], r["description"]) for r in records(p)] == [
        (2, "A"),
        (3, "line one\nline two\nline three"),
        (6, "B"),
        (9, "C"),
    ]
    assert p.quarantine == [(7, multi_bad, "date 'nope' is not a valid YYYY-MM-DD date")]
    assert p.quarantine[0][1].count("\n") == 1  # raw line spans both physical lines


def test_blank_lines_and_comma_only_rows_are_skipped_and_not_counted():
    p = parse(HEADER, "", line(desc="A"), "", "", ",,,,,,,,", ",,", line(desc="B"), "", trailing=True)
    assert p.rows_read == 2
    assert [(r["line_number"], r["description"]) for r in records(p)] == [(3, "A"), (8, "B")]


def test_ragged_rows():
    too_many = line() + ",surprise"
    empty_extras = line(desc="empty extras") + ",,"
    short_ok = "2024-01-15,Income,SHORT,10.00"  # optional trailing fields missing
    short_bad = "2024-01-15,Income,NO AMOUNT"  # the required Amount is missing
    p = parse(HEADER, too_many, empty_extras, short_ok, short_bad)
    assert [(r["line_number"], r["description"], r["category"]) for r in records(p)] == [
        (3, "empty extras", "meals_entertainment"),
        (4, "SHORT", ""),
    ]
    assert p.quarantine == [
        (2, too_many, "row has 10 fields, expected 9"),
        (5, short_bad, "row has 3 fields, expected 9 (no Amount)"),
    ]


def test_unclosed_quote_costs_only_its_own_line():
    bad = '2024-01-15,Expense,"never closed,-1.00'
    p = parse(HEADER, line(desc="A"), bad, line(desc="B"), line(desc="C"))
    assert [r["description"] for r in records(p)] == ["A", "B", "C"]
    assert p.rows_read == 4 and p.rows_quarantined == 1
    assert p.quarantine[0][:2] == (3, bad) and p.quarantine[0][2].startswith("malformed CSV")


def test_text_after_a_closing_quote_is_malformed_and_reading_resumes():
    bad = '2024-01-15,Expense,"quoted"tail,-1.00'
    p = parse(HEADER, bad, line(desc="B"))
    assert [r["description"] for r in records(p)] == ["B"]
    assert p.quarantine[0][:2] == (2, bad) and "malformed CSV" in p.quarantine[0][2]


@pytest.mark.parametrize("data,text", [(b"Caf\xe9 \x80 na\xefve", "Café € naïve"), (b"a\x81b", "a\ufffdb")])
def test_cp1252_fallback(data, text):
    p = checked(parse_csv(HEADER.encode() + b"\n2024-01-15,Expense," + data + b",-1.00\n"))
    assert p.encoding == "cp1252" and only_row(p)["description"] == text


def test_line_numbers_are_physical_one_based_with_header_line_one():
    lines = [HEADER, "", line(date="bad1"), line(desc="x\ny"), "", line(date="bad2"), line(desc="z")]
    # 1 header, 2 blank, 3 bad1, 4-5 x/y, 6 blank, 7 bad2, 8 z
    p = parse(*lines, end="\r\n")
    assert [r["line_number"] for r in records(p)] == [4, 8]
    assert [(q[0], q[1]) for q in p.quarantine] == [(3, line(date="bad1")), (7, line(date="bad2"))]


# -- fast path (pandas C parser) vs careful path (csv module) -----------------------------------------------


def _mixed_lines(n: int, seed: int) -> list[str]:
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        kind = rnd.random()
        if kind < 0.6:
            out.append(
                line(
                    desc=f"ok {i}",
                    amount=rnd.choice(["-4.50", "12", "$1,234.56", "(3.00)", "7.1"]),
                    type_=rnd.choice(["Expense", "income", "EXPENSE"]),
                )
            )
        elif kind < 0.7:
            out.append(
                line(date=rnd.choice(["2024-13-01", "01/02/2024", "", "2024-01-05T10:00"]), desc=f"d {i}")
            )
        elif kind < 0.8:
            out.append(line(amount=rnd.choice(["abc", "1.234", "", "1e400", "12.345"]), desc=f"a {i}"))
        elif kind < 0.85:
            out.append(line(type_="Refund", desc=f"t {i}"))
        elif kind < 0.9:
            out.append(line(desc=f'quoted "{i}", with comma'))
        elif kind < 0.95:
            out.append("2024-01-15,Income,SHORT,10.00")
        else:
            out.append("")
    return out


def _spy_fast_path(monkeypatch) -> list[bool]:
    used: list[bool] = []
    real = cc._fast_table

    def spy(*args, **kwargs):
        table = real(*args, **kwargs)
        used.append(table is not None)
        return table

    monkeypatch.setattr(cc, "_fast_table", spy)
    return used


def _key(p: ParsedFile) -> tuple:
    return (records(p), p.quarantine, p.rows_read, p.header, p.delimiter, p.encoding, p.file_error)


@pytest.mark.parametrize("end", ["\n", "\r\n"])
def test_fast_and_careful_paths_agree(monkeypatch, end):
    used = _spy_fast_path(monkeypatch)
    body = _mixed_lines(400, seed=7)
    fast = parse(HEADER, *body, end=end)
    multi = line(desc="multi\nline record")
    careful = parse(HEADER, *body, multi, end=end)
    assert used == [True, False]
    assert fast.rows_quarantined > 20 and fast.rows_loaded > 200  # a meaningful mix
    extra = records(careful).pop()
    assert extra["description"] == "multi\nline record" and extra["line_number"] == len(body) + 2
    assert records(careful)[:-1] == records(fast)
    assert careful.quarantine == fast.quarantine
    assert careful.rows_read == fast.rows_read + 1


def test_fast_path_disabled_gives_identical_result(monkeypatch):
    body = _mixed_lines(300, seed=11)
    data = (HEADER + "\n" + "\n".join(body) + "\n").encode()
    used = _spy_fast_path(monkeypatch)
    fast = checked(parse_csv(data))
    assert used == [True]
    monkeypatch.setattr(cc, "_fast_table", lambda *a, **k: None)
    careful = checked(parse_csv(data))
    assert _key(fast) == _key(careful)
    pd.testing.assert_frame_equal(fast.rows.reset_index(drop=True), careful.rows.reset_index(drop=True))


# -- property: random files ----------------------------------------------------------------------------


def _random_record(rnd: random.Random, i: int) -> tuple[str, str | None, bool | None]:
    """(text, description, valid?) — valid is None for blank records, which must be skipped."""
    r = rnd.random()
    if r < 0.45:
        desc = rnd.choice([f"ok{i}", f"ok{i}, comma", f'ok{i} "q"', f"ok{i}\nnext", f"ok{i}\r\nnext"])
        return (
            line(
                desc=desc,
                amount=rnd.choice(["1", "-2.5", "$3.00", "(4)", "5,5", "1,234.00"]),
                date=rnd.choice(["2024-01-01", "2023-12-31 23:59"]),
                type_=rnd.choice(["Income", "expense"]),
            ),
            desc,
            True,
        )
    if r < 0.55:
        return line(desc=f"bad{i}", date=rnd.choice(["2024-02-30", "x", "", "1/1/2024"])), None, False
    if r < 0.65:
        return line(desc=f"bad{i}", amount=rnd.choice(["", "z", "1.001", "1e999"])), None, False
    if r < 0.7:
        return line(desc=f"bad{i}", type_="Refund"), None, False
    if r < 0.75:
        return line(desc=f"bad{i}") + ",extra", None, False
    if r < 0.78:
        return line(desc=f"bad{i}\x00"), None, False
    if r < 0.8:
        return line(desc="L" * (cc.MAX_FIELD_CHARS + 1 + i)), None, False
    if r < 0.9:
        return rnd.choice(["", ",,,,", ",,,,,,,,"]), None, None
    return f"2024-01-01,Income,short{i},{i}", f"short{i}", True


@pytest.mark.parametrize("seed", range(40))
def test_random_files_account_for_every_record(seed):
    rnd = random.Random(seed)
    end = rnd.choice(["\n", "\r\n", "\r"])
    header = rnd.choice([HEADER, HEADER.lower(), HEADER.upper().replace(" ", "_")])
    texts, expected = [], {}  # physical start line -> (raw text, description, valid?)
    physical = 2
    for i in range(rnd.randint(0, 60)):
        text, desc, valid = _random_record(rnd, i)
        if end != "\n":  # multi-line descriptions use the file's own line end
            text = text.replace("\r\n", "\n").replace("\n", end)
            desc = desc and desc.replace("\r\n", "\n").replace("\n", end)
        texts.append(text)
        if valid is not None:
            expected[physical] = (text, desc, valid)
        physical += 1 + text.count("\r\n" if end == "\r\n" else end)
    trailing = rnd.random() < 0.7
    data = (end.join([header] + texts) + (end if trailing else "")).encode()
    p = checked(parse_csv(data))

    loaded = {r["line_number"]: r for r in records(p)}
    quarantined = {n: raw for n, raw, _ in p.quarantine}
    assert set(loaded) | set(quarantined) == set(expected)
    assert p.rows_read == len(expected)
    for n, (text, desc, valid) in expected.items():
        if valid:
            assert n in loaded, (n, text, quarantined.get(n))
            assert loaded[n]["description"] == desc
        else:
            assert n in quarantined, (n, text)
            assert quarantined[n] == text.replace("\x00", "\ufffd")  # the line number points at its raw line


# -- the pyarrow path (the common case) against the pandas and careful paths ------------------------------


def _full_width_lines(n: int, seed: int) -> list[str]:
    """Like _mixed_lines, but every record has all fields, so the pyarrow reader can take the file."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        kind = rnd.random()
        if kind < 0.55:
            out.append(
                line(
                    desc=rnd.choice(
                        [f"ok {i}", f'q "{i}", comma', f"café {i}", f"tab\t{i}", f"back\\slash {i}"]
                    ),
                    amount=rnd.choice(["-4.50", "12", "$1,234.56", "(3.00)", "7.1", " 5 ", "+5", "1.500"]),
                    type_=rnd.choice(["Expense", "income", "EXPENSE", " Income"]),
                )
            )
        elif kind < 0.7:
            out.append(
                line(
                    date=rnd.choice(
                        [
                            "2024-13-01",
                            "01/02/2024",
                            "",
                            "2024-01-05T10:00",
                            "2024-1-5",
                            "1899-12-31",
                            "２０２４-01-05",
                            "0000-01-01",
                        ]
                    ),
                    desc=f"d {i}",
                )
            )
        elif kind < 0.8:
            out.append(
                line(amount=rnd.choice(["abc", "1.234", "", "1e400", "12.345", "1_000"]), desc=f"a {i}")
            )
        elif kind < 0.85:
            out.append(line(type_=rnd.choice(["Refund", "Ｅxpense"]), desc=f"t {i}"))
        elif kind < 0.9:
            out.append(line(category="", method="", status="", ref="", url="", desc=""))
        elif kind < 0.95:
            out.append(",,,,,,,,")
        else:
            out.append("")
    return out


def _spy_arrow_path(monkeypatch) -> list[bool]:
    used: list[bool] = []
    real = cc._arrow_table

    def spy(*args, **kwargs):
        table = real(*args, **kwargs)
        used.append(table is not None)
        return table

    monkeypatch.setattr(cc, "_arrow_table", spy)
    return used


@pytest.mark.parametrize("end", ["\n", "\r\n"])
@pytest.mark.parametrize("extra", [False, True], ids=["no-extra", "extra-columns"])
def test_pyarrow_pandas_and_careful_paths_agree(monkeypatch, end, extra):
    header = HEADER + (',Notes,"We""ird"' if extra else "")
    body = _full_width_lines(500, seed=3)
    if extra:
        rnd = random.Random(5)
        body = [
            b + "," + ",".join(rnd.choice(["", "x", '"a, ""b"""', "tab\tc", "back\\d", "café"]) for _ in "ab")
            if b
            else b
            for b in body
        ]
    data = (end.join([header, *body]) + end).encode()
    used = _spy_arrow_path(monkeypatch)
    by_arrow = checked(parse_csv(data))
    assert used == [True]
    assert by_arrow.rows_quarantined > 40 and by_arrow.rows_loaded > 250  # a meaningful mix
    monkeypatch.setattr(cc, "_arrow_table", lambda *a, **k: None)
    fast_used = _spy_fast_path(monkeypatch)
    by_pandas = checked(parse_csv(data))
    assert fast_used == [True]
    monkeypatch.setattr(cc, "_fast_table", lambda *a, **k: None)
    by_csv_module = checked(parse_csv(data))
    assert _key(by_arrow) == _key(by_pandas) == _key(by_csv_module)
    if extra:
        assert any(r["extra"] for r in records(by_arrow))


@pytest.mark.parametrize(
    "body",
    [
        line(desc="multi\nline"),  # a quoted field over two physical lines
        "2024-01-15,Income,SHORT,10.00",  # a short row
        line() + ",,",  # empty fields past the header
        line(desc="A\x00B"),  # NUL
        line(desc="lone\rCR"),
        line(desc="L" * (cc.MAX_FIELD_CHARS + 1)),  # a line too long to be sure no cell is
        "   ",  # whitespace only: not blank, not a record pyarrow can read
    ],
)
def test_pyarrow_path_declines_what_it_cannot_take_line_for_line(body):
    data = (HEADER + "\n" + line(desc="first") + "\n" + body + "\n" + line(desc="last") + "\n").encode()
    assert cc._split_one_line_records(data) is None
    p = checked(parse_csv(data))
    assert [r["description"] for r in records(p)][0] == "first" and p.rows_read in (2, 3)


def test_pyarrow_path_declines_windows_1252():
    data = HEADER.encode() + b"\n2024-01-15,Expense,Caf\xe9,-1.00,,,,,\n"
    assert cc._split_one_line_records(data) is None
    assert only_row(checked(parse_csv(data)))["description"] == "Café"


def test_line_spans():
    assert cc.line_spans(b"a\nbc\r\n\r\nd").tolist() == [[0, 1], [2, 4], [6, 6], [8, 9]]
    assert cc.line_spans(b"a\n").tolist() == [[0, 1]]
    assert cc.line_spans(b"\n\n").tolist() == [[0, 0], [1, 1]]
    assert cc.line_spans(b"").tolist() == []
    assert cc.line_spans(b"a\rb\n") is None  # a CR that does not end a line
    assert cc.line_spans(b"a\r") is None


def _mutations(seed: str, n: int, alphabet: str, rnd: random.Random) -> list[str]:
    out = []
    for _ in range(n):
        s = list(seed)
        for _ in range(rnd.randint(1, 3)):
            pos = rnd.randrange(len(s) + 1)
            op = rnd.random()
            if op < 0.4 and pos < len(s):
                s[pos] = rnd.choice(alphabet)
            elif op < 0.7:
                s.insert(pos, rnd.choice(alphabet))
            elif pos < len(s):
                del s[pos]
        out.append("".join(s))
    return out


def test_vectorised_kernels_only_accept_what_the_row_wise_functions_pass_through():
    """The kernels are shortcuts: whatever they accept must come out of the row-wise function that
    defines the contract unchanged and without a reason (the rest goes through that function)."""
    rnd = random.Random(1)
    cases = [
        (
            cc._plain_dates,
            cc._typed_dates,
            ["2024-01-15", "2024-02-29", "2023-02-29", "1900-01-01", "2199-12-31", "1899-12-31", "2200-01-01"]
            + _mutations("2024-01-15", 3000, "0123456789-+ T:./x２", rnd),
        ),
        (
            cc._plain_types,
            cc._typed_types,
            ["Income", "Expense", "income", "expense", "INCOME"]
            + _mutations("Expense", 500, "eEiI nxX\t", rnd),
        ),
        (
            cc._plain_amounts,
            cc._typed_amounts,
            ["-4.50", "12", "0", "-0", "007", "1234567.89", "-1234567.8", "9999999999"]
            + _mutations("-1234.56", 3000, "0123456789.,-+ $()e_", rnd),
        ),
    ]
    for kernel, rowwise, values in cases:
        typed, plain = kernel(pa.array(values, pa.string()))
        accepted = [v for v, ok in zip(values, plain) if ok]
        assert len(accepted) > 3
        out, why = rowwise(np.array(accepted + [None], dtype=object)[:-1])
        assert list(why) == [None] * len(accepted), [(v, w) for v, w in zip(accepted, why) if w]
        assert typed.filter(pa.array(plain)).to_pylist() == list(out)


@pytest.mark.parametrize("date", ["２０２４-01-15", "٢٠٢٤-01-15", "0000-01-01", "-2024-01-15", "2024-01- 5"])
def test_dates_postgresql_cannot_read_are_quarantined(date):
    """pandas reads these; PostgreSQL did not, and one of them used to abort the whole file's COPY."""
    assert only_reason(parse(HEADER, line(date=date))) == f"date {date!r} is not a valid YYYY-MM-DD date"


def test_unpadded_iso_date_is_still_accepted_as_written():
    assert only_row(parse(HEADER, line(date="2024-1-5")))["txn_date"] == "2024-1-5"


def test_typed_slices_add_up_to_the_whole_file():
    data = (HEADER + "\n" + "\n".join(_full_width_lines(300, seed=9)) + "\n").encode()
    split = cc.split_csv(data)
    rows, bad = split.typed()
    parts = [split.typed(start, start + 37) for start in range(0, split.records, 37)]
    assert pa.concat_tables([r for r, _ in parts]).to_pylist() == rows.to_pylist()
    assert [q for _, b in parts for q in b] == bad
    assert rows.num_rows + len(bad) == split.records


# -- issue 15: what a hostile tester found ----------------------------------------------------------------


def test_mixed_utf8_and_cp1252_lines_each_decode_by_their_own_bytes():
    """A UTF-8 line stays UTF-8 when another line is Windows-1252 (it used to be stored as `CafÃ©`)."""
    data = (HEADER + "\n" + line(desc="Café") + "\n").encode() + (line(desc="Café … €") + "\n").encode(
        "cp1252"
    )
    p = checked(parse_csv(data))
    assert [r["description"] for r in records(p)] == ["Café", "Café … €"]
    assert p.encoding == "utf-8+cp1252"
    # a multi-line quoted field whose lines differ in encoding, and a cp1252 header with UTF-8 rows
    data = (HEADER + "\n" + '2024-01-15,Expense,"naïve\n').encode() + 'crème €",-1.00\n'.encode("cp1252")
    assert only_row(checked(parse_csv(data)))["description"] == "naïve\ncrème €"
    data = (
        "Date,Type,Description,Amount,Détail\n".encode("cp1252")
        + "2024-01-15,Expense,A,-1.00,Café\n".encode()
    )
    p = checked(parse_csv(data))
    assert p.header[4] == "Détail" and only_row(p)["extra"] == '{"Détail": "Café"}'


def test_decode_is_per_line_and_never_reads_valid_utf8_as_cp1252():
    text, encoding = cc.decode("é\r\n".encode() + "é\r".encode("cp1252") + "ü\n".encode() + b"\x81")
    assert (text, encoding) == ("é\r\né\rü\n\ufffd", "utf-8+cp1252")
    assert cc.decode("Café".encode("cp1252")) == ("Café", "cp1252")
    assert cc.decode(b"\xef\xbb\xbfCaf\xc3\xa9") == ("Café", "utf-8")


@pytest.mark.parametrize(
    "lines",
    [
        [line(desc="A"), line(desc="B"), line(desc="C")],  # the tester's file: 3 data lines, no header
        [line(desc="A")],
        ["garbage,more garbage", line(desc="B"), "", line(desc="C")],
    ],
)
def test_headerless_file_is_rejected_whole_and_every_line_is_accounted_for(lines):
    p = parse(*lines)
    non_blank = [(i, text) for i, text in enumerate(lines, start=1) if text]
    assert (p.rows_read, p.rows_loaded, p.rows_quarantined) == (len(non_blank), 0, len(non_blank))
    assert [q[:2] for q in p.quarantine] == non_blank  # line 1 is not lost
    assert p.file_error.startswith("E003 invalid input: header:") and "\n" not in p.file_error
    assert repr(lines[0].split(",")[0]) in p.file_error  # names what it saw


def test_header_missing_a_required_column_rejects_the_file_with_e003_including_line_one():
    p = parse("Date,Type,Description,Amount Due", line(desc="A")[:40])
    assert p.file_error.startswith("E003 invalid input: header: missing required column(s) Amount")
    assert [q[0] for q in p.quarantine] == [1, 2] and p.rows_read == 2


def test_leading_blank_lines_before_the_header_are_skipped():
    p = parse("", " ", HEADER, line(desc="A"), end="\r\n")
    assert p.file_error is None and only_row(p)["line_number"] == 4


@pytest.mark.parametrize(
    "bom,codec",
    [
        (b"\xff\xfe", "utf-16-le"),
        (b"\xfe\xff", "utf-16-be"),
        (b"", "utf-16"),
        (b"\xff\xfe\x00\x00", "utf-32-le"),
        (b"\x00\x00\xfe\xff", "utf-32-be"),
        (b"\xef\xbb\xbf", "utf-8"),
    ],
)
@pytest.mark.parametrize("end", ["\r\n", "\n"])
def test_a_byte_order_mark_names_the_encoding(bom, codec, end):
    text = end.join([HEADER, line(desc="Café € ☕"), line(date="bad"), line(desc="x" + end + "y")]) + end
    p = checked(parse_csv(bom + text.encode(codec)))
    assert p.header == list(CANONICAL_COLUMNS) and p.file_error is None
    assert p.encoding == {"utf-16": "utf-16-le"}.get(codec, codec)
    assert [(r["line_number"], r["description"]) for r in records(p)] == [
        (2, "Café € ☕"),
        (4, "x" + end + "y"),
    ]
    assert p.quarantine == [(3, line(date="bad"), "date 'bad' is not a valid YYYY-MM-DD date")]


def test_short_row_names_the_field_counts(monkeypatch):
    assert only_reason(parse(HEADER, "2024-01-15,Expense,A")) == "row has 3 fields, expected 9 (no Amount)"
    assert (
        only_reason(parse(HEADER, "2024-01-15"))
        == "row has 1 field, expected 9 (no Type, Description, Amount)"
    )
    # the same on the pandas path (a Windows-1252 file), beside full rows and a full row whose
    # required Description is empty (that one is not short)
    used = _spy_fast_path(monkeypatch)
    data = (HEADER + "\n" + line() + "\n2024-01-15,Expense,Caf\xe9\n" + line(desc="") + "\n").encode(
        "latin-1"
    )
    p = checked(parse_csv(data))
    assert used == [True]
    assert p.quarantine == [(3, "2024-01-15,Expense,Café", "row has 3 fields, expected 9 (no Amount)")]
    assert [r["line_number"] for r in records(p)] == [2, 4]
    # an empty required value in a full row still says which field is empty
    assert only_reason(parse(HEADER, line(amount=""))) == "amount is empty"


@pytest.mark.parametrize(
    "amount,reason",
    [
        ("1e308", "amount '1e308' is not a number"),
        ("-1e308", "amount '-1e308' is not a number"),
        ("9" * 40, f"amount '{'9' * 40}' is out of range"),
        ("-" + "9" * 400 + ".5", f"amount '-{'9' * 400}.5' is out of range"),
        ("1" * 29 + ".123", f"amount '{'1' * 29}.123' is out of range"),
        ("1000000000000.00", "amount '1000000000000.00' is out of range"),
    ],
)
def test_huge_amounts_are_quarantined_cleanly_without_warnings(amount, reason):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a numpy overflow warning (or any other) fails the test
        p = parse(HEADER, line(desc="ok"), line(amount=amount))
        with pytest.raises(ValueError, match="amount"):
            parse_amount(amount)
    assert p.quarantine == [(3, line(amount=amount), reason)]


def test_duplicate_and_unnamed_extra_columns_keep_every_value():
    p = parse("Date,Type,Description,Amount,Note,Note,,Amount", "2024-01-15,Expense,A,-1.00,n1,n2,loose,7")
    assert json.loads(only_row(p)["extra"]) == {
        "Note": "n1",
        "Note.1": "n2",
        "column 7": "loose",
        "Amount": "7",
    }
