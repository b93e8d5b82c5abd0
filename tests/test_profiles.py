"""CSV profiles (titans_assets/lib/formats/profiles.py): built-in layouts, detection, rejection in one
E003 line, date order never guessed, `titans profile suggest` round trip, and the real card and bank
exports of ../shared/devdata (skipped when it is absent)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from titans_assets.lib import formats, loader
from titans_assets.lib.csv_contract import parse_amount, parse_date, split_csv
from titans_assets.lib.formats import profiles as pf
from titans_assets.lib.formats._common import StatementFile

FIXTURES = Path(__file__).parent / "fixtures" / "profiles"
DEVDATA = Path(__file__).resolve().parents[2] / "shared" / "devdata"
EMPTY = Path("/nonexistent-profiles-dir")  # no user profiles unless a test gives some


def read(name: str, data: bytes | None = None, **kw):
    data = (FIXTURES / name).read_bytes() if data is None else data
    split = formats.read(name, data, profiles_dir=kw.pop("profiles_dir", EMPTY), **kw)
    rows, bad = split.typed()
    return split, rows.to_pylist(), sorted(split.quarantine + bad)


def amounts(rows) -> list[Decimal]:
    return [Decimal(r["amount"]) for r in rows]


# -- the one home of amount and date parsing -------------------------------------------------------------


def test_parse_amount_with_declared_separators():
    assert parse_amount("1.234,56", ",") == Decimal("1234.56")
    with pytest.raises(ValueError, match="more than 2 decimal places"):
        parse_amount("1,234", ",")
    assert parse_amount("1,234", ".") == Decimal("1234")
    assert parse_amount("-33,87", ",") == Decimal("-33.87")
    with pytest.raises(ValueError):
        parse_amount("1.234,56", ".")
    assert parse_amount("$1,234.56") == Decimal("1234.56")  # the contract's rule is unchanged


def test_parse_date_formats_and_whole_file_order():
    from titans_assets.lib.csv_contract import date_formats

    assert parse_date("10/2/2022", "%m/%d/%Y") == "2022-10-02"
    assert parse_date("22.02.18", "%d.%m.%y") == "2018-02-22"
    assert parse_date("2024-01-02 10:30:00", "%Y-%m-%d") == "2024-01-02"
    with pytest.raises(ValueError, match="does not match"):
        parse_date("31/01/2024", "%m/%d/%Y")
    assert date_formats(["01/02/2024", "13/02/2024"]) == ["%d/%m/%Y"]
    assert date_formats(["01/02/2024", "03/04/2024"]) == ["%d/%m/%Y", "%m/%d/%Y"]  # ambiguous
    assert date_formats(["01/01/2024"]) == ["%d/%m/%Y"]  # both read it the same: not ambiguous


# -- built-in profiles --------------------------------------------------------------------------------------


def test_builtin_profiles_load_and_the_seed_ledger_is_the_contract():
    names = [p.name for p in pf.builtin_profiles()]
    assert names[0] == "seed_ledger" and pf.builtin_profiles()[0].contract
    assert {"generic", "debit_credit", "mint", "card_posted", "card_statement_as", "de_csv_camt"} <= set(
        names
    )


def test_seed_ledger_goes_through_the_contract_unchanged():
    data = (Path(__file__).parent / "fixtures" / "sample_ledger.csv").read_bytes()
    split = formats.read("sample_ledger.csv", data, profiles_dir=EMPTY)
    assert type(split).__name__ == "SplitFile" and split.file_error is None
    expected = split_csv(data)
    assert split.typed()[0].equals(expected.typed()[0])


def test_generic_profile_reads_dmy_dates_balance_and_thousands():
    split, rows, bad = read("generic_dmy.csv")
    assert split.profile == "generic" and split.file_error is None and not bad
    assert [r["txn_date"] for r in rows] == ["2024-01-15", "2024-01-20", "2024-02-03"]
    assert amounts(rows) == [Decimal("-4.50"), Decimal("1000.00"), Decimal("-1200.00")]
    assert [r["txn_type"] for r in rows] == ["Expense", "Income", "Expense"]
    assert [r["balance"] for r in rows] == ["95.50", "1095.50", "-104.50"]
    assert [r["line_number"] for r in rows] == [2, 3, 4]


def test_debit_credit_profile_semicolons_decimal_commas_and_a_bad_row():
    split, rows, bad = read("debit_credit_semicolon.csv")
    assert split.profile == "debit_credit" and split.delimiter == ";"
    assert amounts(rows) == [Decimal("-12.50"), Decimal("2.00")]
    assert [r["txn_date"] for r in rows] == ["2024-01-13", "2024-01-14"]
    assert [r["balance"] for r in rows] == ["87.50", "89.50"]
    assert [(n, reason) for n, _, reason in bad] == [(4, "debit 'abc' is not a number")]
    assert split.records + len(split.quarantine) == 3  # rows_read = loaded + quarantined


def test_mint_profile_signs_by_transaction_type_and_keeps_the_account():
    split, rows, bad = read("mint.csv")
    assert split.profile == "mint" and not bad
    assert amounts(rows) == [Decimal("-12.50"), Decimal("2000.00")]
    assert [r["account"] for r in rows] == ["Card", "Checking"]
    assert json.loads(rows[0]["extra"])["Original Description"] == "GROCER #12"


def test_card_posted_profile():
    split, rows, bad = read("card_posted.csv")
    assert split.profile == "card_posted" and not bad
    assert amounts(rows) == [Decimal("-10.25"), Decimal("50.00")]
    assert json.loads(rows[0]["extra"]) == {"Post Date": "01/14/2024", "Type": "Sale", "Memo": ""}


def test_card_statement_as_profile_inverts_charges_and_keeps_the_issuer_reference():
    split, rows, bad = read("card_statement_as.csv")
    assert split.profile == "card_statement_as" and not bad
    assert amounts(rows) == [Decimal("-19.95"), Decimal("19.95")]
    assert [r["line_number"] for r in rows] == [2, 5]  # a multi-line record keeps its first line
    assert [r["bank_txn_id"] for r in rows] == ["'100000000000000001'", "'100000000000000002'"]


# -- detection and rejection -------------------------------------------------------------------------------


def test_unknown_layout_is_rejected_in_one_e003_line_naming_columns_profiles_and_suggest():
    data = b"When,What,How much\n2024-01-01,x,1\n2024-01-02,y,2\n"
    split, rows, bad = read("odd.csv", data)
    error = split.file_error
    assert error.startswith("E003 invalid input: header:") and "\n" not in error
    assert "'When'" in error and "profiles tried: seed_ledger" in error and "generic" in error
    assert "titans profile suggest odd.csv" in error
    assert not rows and [n for n, _, _ in bad] == [1, 2, 3] and {r for _, _, r in bad} == {error}


def test_ambiguous_layout_is_rejected_whole(tmp_path):
    for name in ("a", "b"):
        (tmp_path / f"{name}.yaml").write_text("columns: {date: When, amount: Sum, description: What}\n")
    data = b"When,What,Sum\n2024-01-01,x,1\n"
    split, rows, bad = read("odd.csv", data, profiles_dir=tmp_path)
    assert split.file_error.startswith("E003 invalid input: header: the columns fit CSV profiles a and b")
    assert not rows and [n for n, _, _ in bad] == [2]


def test_ambiguous_date_order_is_rejected_whole():
    split, rows, bad = read("ambiguous_dates.csv")
    assert split.file_error.startswith("E003 invalid input: dates:") and "date_format" in split.file_error
    assert "%d/%m/%Y" in split.file_error and "%m/%d/%Y" in split.file_error
    assert not rows and [n for n, _, _ in bad] == [2, 3]


def test_user_profile_wins_and_declared_date_order_is_used(tmp_path):
    (tmp_path / "us.yaml").write_text(
        'date_format: "%m/%d/%Y"\ncolumns: {date: Date, amount: Amount, description: Description}\n'
    )
    split, rows, bad = read("ambiguous_dates.csv", profiles_dir=tmp_path)
    assert split.profile == "us" and not bad
    assert [r["txn_date"] for r in rows] == ["2024-01-02", "2024-03-04"]


def test_profile_beside_the_file_and_in_its_folder(tmp_path):
    folder = tmp_path / "acct"
    folder.mkdir()
    path = folder / "x.csv"
    path.write_bytes(b"18.09.2017;SHOP;-33,87;EUR\n19.09.2017;PAY;1.000,00;EUR\n")
    (folder / "profile.yaml").write_text(
        'header: false\ndelimiter: ";"\ndate_format: "%d.%m.%Y"\ndecimal: ","\n'
        "account: giro\ncolumns: {date: 1, description: 2, amount: 3, currency: 4}\n"
    )
    split = formats.read(path.name, path.read_bytes(), path=path, profiles_dir=EMPTY)
    rows = split.typed()[0].to_pylist()
    assert amounts(rows) == [Decimal("-33.87"), Decimal("1000.00")]
    assert {r["currency"] for r in rows} == {"EUR"} and {r["account"] for r in rows} == {"giro"}
    assert {r["institution"] for r in rows} == {None}  # the profile names no bank
    (folder / "profile.yaml").write_text(
        (folder / "profile.yaml").read_text() + "institution: Sparkasse Musterstadt\n"
    )
    rows = formats.read(path.name, path.read_bytes(), path=path, profiles_dir=EMPTY).typed()[0].to_pylist()
    assert {r["institution"] for r in rows} == {"Sparkasse Musterstadt"}
    (folder / "x.csv.profile.yaml").write_text("columns: {date: Nope, amount: Nope}\n")  # the nearer one wins
    split = formats.read(path.name, path.read_bytes(), path=path, profiles_dir=EMPTY)
    assert split.file_error.startswith("E003 invalid input: header: the columns do not fit CSV profile x")
    assert split.records + len(split.quarantine) == 2


def test_invalid_profile_is_one_e003_line(tmp_path):
    with pytest.raises(pf.ProfileError, match=r"^E003 invalid input: profile .*unknown setting\(s\) colums"):
        pf.parse_profile("colums: {}\n", str(tmp_path / "bad.yaml"))
    with pytest.raises(pf.ProfileError, match="columns.date is required"):
        pf.parse_profile("columns: {amount: A}\n")
    with pytest.raises(pf.ProfileError, match="needs a day, a month and a year"):
        pf.parse_profile("date_format: '%d/%m'\ncolumns: {date: D, amount: A}\n")


# -- suggest -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["generic_dmy.csv", "debit_credit_semicolon.csv", "card_posted.csv"])
def test_suggest_round_trips_into_a_profile_that_loads_the_file(tmp_path, name):
    result = CliRunner().invoke(
        __import__("titans_assets.cli", fromlist=["main"]).main,
        ["profile", "suggest", str(FIXTURES / name)],
        standalone_mode=False,
    )
    assert result.exit_code == 0, result.output
    path = tmp_path / name
    path.write_bytes((FIXTURES / name).read_bytes())
    (tmp_path / f"{name}.profile.yaml").write_text(result.output)
    split = formats.read(name, path.read_bytes(), path=path, profiles_dir=EMPTY)
    rows, bad = split.typed()
    assert split.file_error is None and rows.num_rows >= 2
    assert rows.num_rows + len(bad) + len(split.quarantine) == split.records + len(split.quarantine)


def test_suggest_headerless_semicolon_decimal_comma():
    text = pf.suggest(
        b"18.09.2017;SHOP A;18.09.2017;-33,87;EUR\n19.09.2017;SHOP B;17.09.2017;-1,50;EUR\n", "x.csv"
    )
    assert "header: false" in text and 'delimiter: ";"' in text and 'decimal: ","' in text
    assert 'date_format: "%d.%m.%Y"' in text and "amount: 4" in text


# -- through the loader into PostgreSQL --------------------------------------------------------------------


@pytest.fixture
def db(any_db):
    loader.ensure_raw_schema(any_db)
    return any_db


def _query(db, sql, params=()):
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


@pytest.mark.integration
@pytest.mark.parametrize("name", ["generic_dmy.csv", "debit_credit_semicolon.csv", "card_statement_as.csv"])
def test_profile_files_load_into_postgres(db, tmp_path, monkeypatch, name):
    monkeypatch.setenv("TITANS_PROFILES_DIR", str(EMPTY))
    path = tmp_path / f"p_{__import__('uuid').uuid4().hex[:8]}_{name}"
    path.write_bytes((FIXTURES / name).read_bytes())
    result = loader.load_file(db, tmp_path, path)
    assert result.file_error is None
    assert result.rows_read == result.rows_loaded + result.rows_quarantined
    stored = _query(
        db,
        "SELECT count(*), count(balance), sum(amount) FROM raw.transactions WHERE source_file = %s",
        (result.source_file,),
    )
    split = formats.read(name, path.read_bytes(), profiles_dir=EMPTY)
    rows, _ = split.typed()
    assert stored[0][0] == rows.num_rows == result.rows_loaded
    assert stored[0][2] == sum(Decimal(a) for a in rows.column("amount").to_pylist())
    assert loader.load_file(db, tmp_path, path).status == "unchanged"


# -- real exports (../shared/devdata; never printed) --------------------------------------------------------

REAL = [
    ("ledgers/apiispanen_chase_history.CSV", "card_posted"),
    ("ledgers/brkconcepts_amex_activity.csv", "card_statement_as"),
    ("formats/csv/bank2ynab_BOI_TransactionExport.csv", "debit_credit"),
    ("formats/csv/bank2ynab_sparkasse_de_umsatz.CSV", "de_csv_camt"),
    (
        "formats/csv/bank2ynab_raiffeisen_at_01.csv",
        None,
    ),  # no header: rejected whole unless a profile is named
]


@pytest.mark.parametrize(("rel", "profile"), REAL, ids=[Path(r).name for r, _ in REAL])
def test_real_exports_are_read_with_every_row_accounted_for(rel, profile):
    path = DEVDATA / rel
    if not path.is_file():
        pytest.skip("../shared/devdata is absent")
    split, rows, bad = read(path.name, path.read_bytes())
    assert getattr(split, "profile", None) == profile
    records = split.records + len(split.quarantine)
    assert len(rows) + len(bad) == records
    if profile is None:
        assert split.file_error.startswith("E003 ") and "titans profile suggest" in split.file_error
    else:
        assert split.file_error is None and not bad and len(rows) == split.records


def test_real_headerless_export_loads_with_a_suggested_profile(tmp_path):
    source = DEVDATA / "formats/csv/bank2ynab_raiffeisen_at_01.csv"
    if not source.is_file():
        pytest.skip("../shared/devdata is absent")
    path = tmp_path / source.name
    path.write_bytes(source.read_bytes())
    (tmp_path / f"{source.name}.profile.yaml").write_text(pf.suggest(path.read_bytes(), source.name))
    split = formats.read(path.name, path.read_bytes(), path=path, profiles_dir=EMPTY)
    rows, bad = split.typed()
    assert split.file_error is None and rows.num_rows > 0.9 * split.records
    assert rows.num_rows + len(bad) + len(split.quarantine) == split.records + len(split.quarantine)


@pytest.mark.integration
@pytest.mark.parametrize(("rel", "profile"), REAL[:3], ids=[Path(r).name for r, _ in REAL[:3]])
def test_real_exports_through_the_loader(db, tmp_path, monkeypatch, rel, profile):
    source = DEVDATA / rel
    if not source.is_file():
        pytest.skip("../shared/devdata is absent")
    monkeypatch.setenv("TITANS_PROFILES_DIR", str(EMPTY))
    path = tmp_path / f"r_{__import__('uuid').uuid4().hex[:8]}_{source.name}"
    path.write_bytes(source.read_bytes())
    result = loader.load_file(db, tmp_path, path)
    assert result.file_error is None and result.rows_quarantined == 0
    assert result.rows_read == result.rows_loaded + result.rows_quarantined
    [(n,)] = _query(db, "SELECT count(*) FROM raw.transactions WHERE source_file = %s", (result.source_file,))
    assert n == result.rows_loaded > 0


@pytest.mark.integration
def test_profile_institution_is_stored_per_row(db, tmp_path):
    folder = tmp_path / f"acct_{__import__('uuid').uuid4().hex[:8]}"
    folder.mkdir()
    path = folder / "x.csv"
    path.write_bytes(b"Date,Description,Amount\n2024-01-05,SHOP,-3.50\n2024-01-06,PAY,10.00\n")
    (folder / "profile.yaml").write_text(
        "institution: First Example Bank\ncolumns: {date: Date, description: Description, amount: Amount}\n"
    )
    result = loader.load_file(db, tmp_path, path)
    assert result.rows_loaded == 2
    rows = _query(
        db, "SELECT institution FROM raw.transactions WHERE source_file = %s", (result.source_file,)
    )
    assert rows == [("First Example Bank",)] * 2


def test_statement_file_type():
    split, _, _ = read("generic_dmy.csv")
    assert isinstance(split, StatementFile)
