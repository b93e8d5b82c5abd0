"""Bank statement readers (titans_assets/lib/formats): real fixtures, malformed files, the loader."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from titans_assets.lib import formats, loader
from titans_assets.lib.formats import STATEMENT_COLUMNS

FIXTURES = Path(__file__).parent / "fixtures" / "formats"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "devdata" / "formats"

# file -> (format, records read, records quarantined)
REAL = {
    "ofxparse_bank_medium.ofx": ("ofx", 3, 0),
    "ofxparse_suncorp.ofx": ("ofx", 1, 0),
    "wolph_jejik_abnamro.sta": ("mt940", 10, 0),
    "wolph_betterplace_sepa_mt9401.sta": ("mt940", 97, 0),
    "wolph_ASNB_mt940.txt": ("mt940", 8, 7),
    "wolph_mBank_mt940.sta": ("mt940", 3, 0),
    "handmade_camt053_v02.xml": ("camt", 2, 0),
    "handmade_bank.qif": ("qif", 3, 0),
}
# ../shared samples that may not be copied here (GPL / no license): read when present.
SHARED_FILES = {
    "ofx/beangulp_amex_ofxdownload.ofx": ("ofx", 12, 0),
    "ofx/ofxtools_br_nubank_cc.ofx": ("ofx", 6, 0),
    "camt053/iso20022_camt053_v08_ch.xml": ("camt", 1, 0),
    "camt053/iso20022_davider80_raiffeisen_ch.xml": ("camt", 16, 0),
    "camt053/iso20022_gcamp6_postfinance_ch.xml": ("camt", 5, 0),
    "camt053/iso20022_simple_lt.xml": ("camt", 4, 0),
    "qif/gnucash_cbb-export.qif": ("qif", 9, 0),
    "qif/gnucash_canada.qif": ("qif", 5, 0),
    "qif/gnucash_ms-money.qif": ("qif", 347, 0),
    "qif/gnucash_web.qif": ("qif", 7, 7),  # dates run into the payee ("D03/25/099Share Withdrawal")
}


def parse(name: str, data: bytes):
    split = formats.read(name, data)
    rows, bad = split.typed()
    return split, rows, sorted(split.quarantine + bad)


def check_accounted(name: str, data: bytes, expected: tuple[str, int, int]) -> None:
    kind, read, quarantined = expected
    assert formats.sniff(name, data) == kind
    split, rows, bad = parse(name, data)
    assert split.file_error is None
    assert rows.num_rows + len(bad) == read
    assert len(bad) == quarantined
    lines = rows.column("line_number").to_pylist() + [q[0] for q in bad]
    assert len(set(lines)) == len(lines)  # one record number each (raw.quarantine's key)
    assert all(q[2] and q[1] for q in bad)
    for column in STATEMENT_COLUMNS:
        assert column in rows.column_names
    for row in rows.to_pylist():
        assert row["txn_type"] == ("Expense" if row["amount"].startswith("-") else "Income")
        assert row["txn_date"][:2] in ("19", "20")


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_fixture_every_record_accounted_for(name):
    check_accounted(name, (FIXTURES / name).read_bytes(), REAL[name])


@pytest.mark.parametrize("name", sorted(SHARED_FILES))
def test_shared_samples_every_record_accounted_for(name):
    path = SHARED / name
    if not path.exists():
        pytest.skip("../shared/devdata is absent (a fresh clone)")
    check_accounted(path.name, path.read_bytes(), SHARED_FILES[name])


def test_statement_data_is_kept():
    _, rows, _ = parse("a.ofx", (FIXTURES / "ofxparse_bank_medium.ofx").read_bytes())
    first = rows.to_pylist()[0]
    assert (first["currency"], first["account"], first["amount"]) == ("CAD", "12300 000012345678", "-6.60")
    assert first["bank_txn_id"] == "0000123456782009040100001"
    _, rows, _ = parse("s.xml", (FIXTURES / "handmade_camt053_v02.xml").read_bytes())
    got = [
        (r["txn_date"], r["amount"], r["bank_txn_id"], r["balance"], r["account"], r["description"])
        for r in rows.to_pylist()
    ]
    assert got == [
        (
            "2024-01-05",
            "-42.45",
            "REF-0001",
            "957.55",
            "DE89370400440532013000",
            "Grocery Store - Card payment 4711",
        ),
        (
            "2024-01-25",
            "1500.00",
            "REF-0002",
            "2457.55",
            "DE89370400440532013000",
            "Employer GmbH - Salary January",
        ),
    ]
    _, rows, _ = parse("m.sta", (FIXTURES / "wolph_mBank_mt940.sta").read_bytes())
    assert rows.column("balance").to_pylist()[-1] == "0.43"  # :60F: + transactions reconcile with :62F:
    assert set(rows.column("account").to_pylist()) == {"PL29114010810000267002001002"}
    _, rows, _ = parse("q.qif", (FIXTURES / "handmade_bank.qif").read_bytes())
    assert rows.column("category").to_pylist() == ["Food:Groceries", "Salary", ""]  # [Savings] is a transfer
    assert rows.column("amount").to_pylist() == ["-42.45", "1500.00", "-300.00"]


# file -> the institution its rows name (None: the file names no bank, or only a bare account number)
INSTITUTIONS = {
    "ofxparse_suncorp.ofx": "SUNCORP",  # <FI><ORG>
    "ofxparse_bank_medium.ofx": "160000100",  # no FI aggregate: BANKACCTFROM/BANKID (routing number)
    "wolph_ASNB_mt940.txt": "ASNBNL21",  # the SWIFT envelope's sender BIC ({2:O940ASNBNL21XXXX...})
    "wolph_betterplace_sepa_mt9401.sta": "50880050",  # :25:50880050/0194774600888 (BLZ/account)
    "wolph_mBank_mt940.sta": "11401081",  # :25: PL IBAN's bank identifier
    "wolph_jejik_abnamro.sta": None,  # :25:517852257, no envelope
    "handmade_camt053_v02.xml": "37040044",  # no Acct/Svcr: the DE IBAN's Bankleitzahl
    "handmade_bank.qif": None,  # QIF names no bank
}
SHARED_INSTITUTIONS = {
    "ofx/beangulp_amex_ofxdownload.ofx": "AMEX",
    "camt053/iso20022_davider80_raiffeisen_ch.xml": "Raiffeisen",  # Acct/Svcr/FinInstnId/Nm
    "camt053/iso20022_simple_lt.xml": "AB DNB bankas",  # Nm before BIC
    "camt053/iso20022_camt053_v08_ch.xml": "SAMPLEBANK222",
}


@pytest.mark.parametrize("name", sorted(INSTITUTIONS))
def test_institution_from_the_file(name):
    _, rows, _ = parse(name, (FIXTURES / name).read_bytes())
    assert set(rows.column("institution").to_pylist()) == {INSTITUTIONS[name]}


@pytest.mark.parametrize("name", sorted(SHARED_INSTITUTIONS))
def test_institution_from_shared_samples(name):
    path = SHARED / name
    if not path.exists():
        pytest.skip("../shared/devdata is absent (a fresh clone)")
    _, rows, _ = parse(path.name, path.read_bytes())
    assert set(rows.column("institution").to_pylist()) == {SHARED_INSTITUTIONS[name]}


def test_bank_code_and_envelope_rules():
    from titans_assets.lib.formats._common import bank_code
    from titans_assets.lib.formats.mt940 import envelope_bic

    assert bank_code("GB33TITN40000012345678") == "TITN"
    assert bank_code("de89 3704 0044 0532 0130 00") == "37040044"
    assert bank_code("12345678") is None and bank_code("") is None and bank_code(None) is None
    assert bank_code("XX00ABCDEFGHIJKL") is None  # a country whose IBAN layout is not known: no guess
    assert envelope_bic("{1:F01ABNANL2AAXXX0000000000}{2:O9401200240101DEUTDEFFAXXX}{4:") == "DEUTDEFF"
    assert envelope_bic("{1:F01ABNANL2AAXXX0000000000}{4:") == "ABNANL2A"
    assert envelope_bic("{1:F01ABNANL2AA123}{4:\n-}{1:F01DEUTDEFFAXXX}{4:") is None  # two banks: none
    assert envelope_bic(":20:X\n:25:123\n") is None


def test_csv_still_goes_to_the_contract():
    data = b"Date,Type,Description,Amount\n2024-01-01,Expense,X,-1.00\n"
    assert formats.sniff("a.csv", data) == "csv"
    assert type(formats.read("a.csv", data)).__name__ == "SplitFile"


MALFORMED = {
    "broken.ofx": b"OFXHEADER:100\nDATA:OFXSGML\nVERSION:102\n\n<OFX><BANKMSGSRSV1><STMTTRNRS>\n<STMTTRN><TRNTYPE>POS",
    "broken.xml": b'<?xml version="1.0"?>\n<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02">\n<Ntry>',
    "broken.sta": b":20:X\n:25:123\n:28C:1\n:60F:C2401XXEURabc\n:61:2401010101D10,00NTRFNONREF\n:86:X\n",
    "broken.qif": b"D01/01/2024\nT-1.00\n^\n",
    "notes.xml": b"<html><body>not a statement</body></html>",
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_file_is_rejected_with_one_e003_line(name):
    split, rows, bad = parse(name, MALFORMED[name])
    assert rows.num_rows == 0
    assert split.file_error is not None and split.file_error.startswith("E003 invalid input: ")
    assert "\n" not in split.file_error
    assert bad and all(q[2] == split.file_error for q in bad)


def test_bad_records_are_quarantined_alone():
    data = (
        (FIXTURES / "handmade_camt053_v02.xml")
        .read_bytes()
        .replace(b'<Amt Ccy="EUR">42.45', b'<Amt Ccy="EUR">4x')
    )
    split, rows, bad = parse("s.xml", data)
    assert (
        rows.num_rows == 1
        and len(bad) == 1
        and "not a number" in bad[0][2]
        and bad[0][1].lstrip().startswith("<Ntry>")
    )
    qif = b"!Type:Bank\nD01/05/2024\nT-1.00\nPA\n^\nDnot a date\nT-2.00\nPB\n^\n"
    split, rows, bad = parse("q.qif", qif)
    assert rows.num_rows == 1 and [q[0] for q in bad] == [6]


def test_landing_picks_up_statement_files(tmp_path):
    for name in ("a.csv", "b.OFX", "c.qfx", "d.xml", "e.sta", "f.mt940", "g.940", "h.qif", "i.txt", ".j.ofx"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in loader.landing_files(tmp_path)] == [
        "a.csv",
        "b.OFX",
        "c.qfx",
        "d.xml",
        "e.sta",
        "f.mt940",
        "g.940",
        "h.qif",
    ]


# -- through PostgreSQL and dbt: bank ids dedupe overlapping statements ---------------------------------


@pytest.fixture(scope="module")
def warehouse(embedded_db):
    from conftest import scratch_database

    with scratch_database(embedded_db) as db:
        loader.ensure_raw_schema(db)
        yield db


@pytest.mark.integration
def test_same_statement_twice_and_overlapping_statements_give_no_duplicates(warehouse, tmp_path):
    from test_dbt_project import _dbt, _query

    landing = tmp_path / "landing"
    (landing / "checking").mkdir(parents=True)
    january = (FIXTURES / "ofxparse_bank_medium.ofx").read_bytes()
    # The same statement saved twice under two names, and a later export that overlaps it: the same
    # FITIDs with the bank's text changed (so the natural key alone would count them twice) and one new one.
    later = january.replace(b"MCDONALD'S #112", b"MCDONALDS 112 TORONTO")
    new = (
        b"<STMTTRN><TRNTYPE>POS<DTPOSTED>20090430<TRNAMT>-1.23<FITID>NEW-FITID-1<NAME>NEW ONE</STMTTRN>\n"
        b"</BANKTRANLIST>"
    )
    later = later.replace(b"</BANKTRANLIST>", new, 1)
    for name, data in (("2009-04.ofx", january), ("2009-04 copy.ofx", january), ("2009-05.qfx", later)):
        (landing / "checking" / name).write_bytes(data)
    results = loader.load_files(warehouse, landing, loader.landing_files(landing), workers=1)
    assert [r.rows_loaded for r in results] == [3, 3, 4] and not any(r.rows_quarantined for r in results)
    args = ["build", "--select", "+fct_transactions", "--exclude-resource-type", "test"]
    code, _, output = _dbt(args, os.environ | warehouse.dbt_env(), tmp_path / "t")
    assert code == 0, output
    fct = _query(warehouse, "select bank_txn_id, currency, account, description from marts.fct_transactions")
    ids = [r["bank_txn_id"] for r in fct]
    assert len(fct) == 4 and len(set(ids)) == 4 and "NEW-FITID-1" in ids
    assert {r["currency"] for r in fct} == {"CAD"} and {r["account"] for r in fct} == {"12300 000012345678"}
    stored = _query(warehouse, "select distinct institution from raw.transactions")
    assert [r["institution"] for r in stored] == ["160000100"]  # BANKID, carried into raw per row
    # the later export's copy wins (its text)
    assert any("MCDONALDS 112 TORONTO" in r["description"] for r in fct)


@pytest.mark.integration
def test_overlapping_csv_without_ids_and_ofx_with_ids_give_each_transaction_once(embedded_db, tmp_path):
    """One account exported twice over the same days: a CSV (no bank ids, the bank's text written
    differently) and an OFX statement (FITIDs). The CSV names the OFX's account through its profile
    (without that they are two accounts: the folder's and ACCTID). Each transaction is kept once, the
    OFX copy (with its id); the CSV's rows on days and amounts the OFX does not hold stay, as does a
    second identical CSV charge the OFX holds only once."""
    from conftest import scratch_database
    from test_dbt_project import _dbt, _query

    landing = tmp_path / "landing"
    (landing / "checking").mkdir(parents=True)
    (landing / "checking" / "2009-04.ofx").write_bytes((FIXTURES / "ofxparse_bank_medium.ofx").read_bytes())
    (landing / "checking" / "2009-04.csv").write_text(
        "Date,Description,Amount\n"
        "2009-03-31,OPENING FEE,-1.00\n"  # before the OFX: kept
        "2009-04-01,MCDONALDS 112,-6.60\n"  # FITID ...100001
        "2009-04-02,CHECK 0 JOES BALD HAIR,-316.67\n"  # FITID ...200004
        "2009-04-03,CONNIES HAIR,-22.00\n"  # FITID ...300005
        "2009-04-03,CONNIES HAIR,-22.00\n"  # a second charge the OFX does not hold: kept
        "2009-04-03,REFUND,5.00\n"
    )  # same day, another amount: kept
    (landing / "checking" / "2009-04.csv.profile.yaml").write_text(
        'account: "12300 000012345678"\ncolumns: {date: Date, description: Description, amount: Amount}\n'
    )
    with scratch_database(embedded_db) as db:
        loader.ensure_raw_schema(db)
        results = loader.load_files(db, landing, loader.landing_files(landing), workers=1)
        assert sorted(r.rows_loaded for r in results) == [3, 6]
        args = ["build", "--select", "+fct_transactions", "--exclude-resource-type", "test"]
        code, _, output = _dbt(args, os.environ | db.dbt_env(), tmp_path / "t")
        assert code == 0, output
        fct = _query(
            db, "select txn_date::text as d, amount::text as a, bank_txn_id as id from marts.fct_transactions"
        )
    got = sorted((r["d"], r["a"], r["id"] is not None) for r in fct)
    assert got == [
        ("2009-03-31", "-1.00", False),
        ("2009-04-01", "-6.60", True),
        ("2009-04-02", "-316.67", True),
        ("2009-04-03", "-22.00", False),
        ("2009-04-03", "-22.00", True),
        ("2009-04-03", "5.00", False),
    ]
