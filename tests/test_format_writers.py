"""Statement writers (lib/formats/writers.py) and `titans generate --format`: round trips through the readers."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from click.testing import CliRunner

from titans_assets.lib import formats
from titans_assets.lib import generator as gen
from titans_assets.lib.formats import writers

END = dt.date(2025, 6, 30)
# format -> does it carry (bank ids, reference, category, currency, balance)
CARRIES = {
    "ofx": (True, True, False, True, False),
    "camt053": (True, True, False, True, True),
    "mt940": (True, False, False, True, True),
    "qif": (False, False, True, False, False),
}


def _typed(name: str, data: bytes):
    split = formats.read(name, data)
    rows, bad = split.typed()
    return split, rows, split.quarantine + bad


TXNS = [
    writers.Txn("2025-01-15", -1250, "AMZN MKTP US*2K4RT1", "250115K3F9000001", "Amazon", "office_supplies"),
    writers.Txn(
        "2025-01-16",
        250_000,
        "ACH CREDIT ACME & SONS <INV 1234> A DESCRIPTION LONGER THAN 32",
        "250116ABCD000002",
        "Acme & Sons",
        "",
    ),
    writers.Txn("2025-01-16", -4500, "CHECK  1043", "250116ABCD000003", "Landlord", "rent"),
    writers.Txn("2025-01-31", -1, "BANK FEE", "250131ZZZZ000004", "", "other"),
]


@pytest.mark.parametrize("kind", ["checking", "credit_card"])
@pytest.mark.parametrize("fmt", writers.STATEMENT_FORMATS)
def test_writer_round_trip(fmt, kind):
    statement = writers.Statement(
        "GB33TITN40000012345678",
        TXNS,
        kind=kind,
        opening_cents=100_000,
        statement_id="S1",
        created=dt.date(2025, 1, 31),
    )
    data, starts = writers.write(fmt, statement)
    assert writers.write(fmt, statement) == (data, starts)  # a pure function
    split, rows, bad = _typed("statement" + writers.EXTENSIONS[fmt], data)
    assert split.file_error is None and not bad
    assert rows.num_rows == len(TXNS)
    got = rows.to_pylist()
    assert [r["line_number"] for r in got] == starts
    lines = data.decode("cp1252").splitlines()
    assert all(lines[n - 1].strip() for n in starts)
    ids, reference, category, currency, balance = CARRIES[fmt]
    for txn, row in zip(TXNS, got):
        assert str(row["txn_date"])[:10] == txn.date
        assert Decimal(str(row["amount"])) == Decimal(txn.cents) / 100
        assert row["description"] == " ".join(txn.description.split())
        assert row["bank_txn_id"] == (txn.bank_id if ids else None)
        assert row["account"] == statement.account
        if reference:
            assert row["reference"] == txn.reference
        if category:
            assert row["category"] == txn.category
        assert row["currency"] == ("USD" if currency else None)
    if balance:
        assert Decimal(got[-1]["balance"]) == Decimal(statement.closing_cents) / 100


def test_unknown_format_is_refused():
    with pytest.raises(ValueError, match="known"):
        writers.write("xls", writers.Statement("A", TXNS))


def _csv_rows(path):
    df = gen.read_export(path)
    return sorted(
        zip(
            df["Date"].dt.strftime("%Y-%m-%d"),
            df["Amount"].map(lambda a: f"{a:.2f}"),
            df["Description"].map(lambda d: " ".join(d.split())),
        )
    )


@pytest.fixture(scope="module")
def reference_csv(tmp_path_factory):
    root = tmp_path_factory.mktemp("csv")
    gen.generate(root / "raw", rows=2500, seed=11, end_date=END, messy_rate=0, file_quirks=False)
    return root / "raw"


@pytest.mark.parametrize("fmt", writers.STATEMENT_FORMATS)
def test_generated_statements_hold_the_same_rows_as_the_csv(fmt, reference_csv, tmp_path):
    summary = gen.generate(tmp_path / "raw", rows=2500, seed=11, end_date=END, format=fmt)
    data_files = [p for p in summary.paths if p.parent == tmp_path / "raw"]
    assert [p.suffix for p in data_files] == [writers.EXTENSIONS[fmt]] * 3
    assert summary.total_rows == 2500 and summary.total_invalid == 0
    ids_carried = CARRIES[fmt][0]
    for path in data_files:
        split, rows, bad = _typed(path.name, path.read_bytes())
        assert split.file_error is None and not bad  # every record accounted for, none quarantined
        got = sorted(
            zip(
                [str(d)[:10] for d in rows.column("txn_date").to_pylist()],
                [f"{Decimal(str(a)):.2f}" for a in rows.column("amount").to_pylist()],
                rows.column("description").to_pylist(),
            )
        )
        assert got == _csv_rows(reference_csv / f"{path.stem}.csv")
        ids = rows.column("bank_txn_id").to_pylist()
        if ids_carried:
            assert None not in ids and len(set(ids)) == len(ids)  # duplicated charges keep their own id
            assert all(len(i) <= 16 for i in ids)
        else:
            assert set(ids) == {None}
        accounts = set(rows.column("account").to_pylist())
        assert accounts == {gen.account_id(path.stem, fmt)}
        assert summary.manifest["files"][path.name]["format"] == fmt


@pytest.mark.parametrize("fmt", writers.FORMATS)
def test_same_seed_same_bytes(fmt, tmp_path):
    a = gen.generate(tmp_path / "a" / "raw", rows=600, seed=3, end_date=END, format=fmt)
    b = gen.generate(tmp_path / "b" / "raw", rows=600, seed=3, end_date=END, format=fmt)
    for pa_, pb in zip(a.paths, b.paths):
        assert pa_.read_bytes() == pb.read_bytes()
    c = gen.generate(tmp_path / "c" / "raw", rows=600, seed=4, end_date=END, format=fmt)
    assert a.paths[0].read_bytes() != c.paths[0].read_bytes()


def test_ground_truth_names_statement_records(tmp_path):
    summary = gen.generate(
        tmp_path / "raw", rows=3000, seed=5, end_date=END, anomaly_rate=0.02, format="camt053"
    )
    import pandas as pd

    truth = pd.read_csv(summary.labels_dir / "anomalies.csv", dtype=str)
    assert len(truth) == summary.total_anomalies > 0
    for name, group in truth.groupby("file"):
        _, rows, _ = _typed(name, (tmp_path / "raw" / name).read_bytes())
        by_line = {r["line_number"]: r for r in rows.to_pylist()}
        for rec in group.itertuples():
            row = by_line[int(rec.line_number)]
            assert str(row["txn_date"])[:10] == rec.date
            assert f"{Decimal(str(row['amount'])):.2f}" == rec.amount


def test_per_account_formats_leave_the_other_files_unchanged(tmp_path):
    plain = gen.generate(tmp_path / "a" / "raw", rows=1500, seed=9, end_date=END)
    mixed = gen.generate(
        tmp_path / "b" / "raw", rows=1500, seed=9, end_date=END, format={"business_checking": "ofx"}
    )
    assert [p.name for p in mixed.paths[:3]] == [
        "business_checking.ofx",
        "business_credit_card.csv",
        "personal_card.csv",
    ]
    for pa_, pb in zip(plain.paths[1:3], mixed.paths[1:3]):
        assert pa_.read_bytes() == pb.read_bytes()
    assert gen.generated_as_of(tmp_path / "b" / "raw", mixed.labels_dir) == END
    with pytest.raises(ValueError, match="known"):
        gen.generate(tmp_path / "c" / "raw", rows=100, seed=9, end_date=END, format="xls")


def test_cli_format_option(tmp_path):
    from titans_assets.commands.generate import generate

    out = tmp_path / "raw"
    result = CliRunner().invoke(
        generate,
        [
            "--out",
            str(out),
            "--rows",
            "300",
            "--format",
            "mt940",
            "--end-date",
            "2025-06-30",
            "--accounts",
            "business_checking",
        ],
    )
    assert result.exit_code == 0, result.output
    assert [p.name for p in out.iterdir()] == ["business_checking.sta"]
    assert "business_checking.sta" in result.output
    bad = CliRunner().invoke(generate, ["--out", str(out), "--format", "xls"])
    assert bad.exit_code != 0 and "csv" in bad.output


# -- CSV in each built-in profile's layout (`--format csv-profile:<name>`) ------------------------------

PROFILE_TXNS = [
    *TXNS,
    writers.Txn(
        "2025-02-03", -99_999_99, 'WIRE; TO "SUPPLIER", LTD', "250203WIRE000005", "Supplier", "hardware"
    ),
    writers.Txn("2025-02-28", 12_34, "REFUND  Café Crème", "250228REFD000006", "Café", ""),
]


def _profile_rows(name: str, data: bytes, tmp_path):
    from titans_assets.lib.formats import profiles as pf

    tmp_path.mkdir(parents=True, exist_ok=True)
    split = formats.read("export.csv", data, profiles_dir=tmp_path)  # no profile named: detection alone
    rows, bad = split.typed()
    text, _ = pf.decode(data)
    choice, _, _ = pf.choose(text, list(pf.builtin_profiles()))
    return choice.profile.name if choice.profile else choice.error, split, rows, split.quarantine + bad


@pytest.mark.parametrize("fmt", writers.PROFILE_FORMATS)
def test_profile_csv_round_trip(fmt, tmp_path):
    from titans_assets.lib.formats.profiles import builtin_profiles

    name = fmt.removeprefix("csv-profile:")
    profile = next(p for p in builtin_profiles() if p.name == name)
    statement = writers.Statement("ACC-7", PROFILE_TXNS, currency="EUR", opening_cents=100_000)
    data, starts = writers.write(fmt, statement)
    assert writers.write(fmt, statement) == (data, starts)
    chosen, split, rows, bad = _profile_rows(name, data, tmp_path)
    assert chosen == name  # the header fits this profile alone
    assert split.file_error is None and not bad
    got = rows.to_pylist()
    assert [r["line_number"] for r in got] == starts == list(range(2, len(PROFILE_TXNS) + 2))
    for txn, row in zip(PROFILE_TXNS, got):
        assert str(row["txn_date"])[:10] == txn.date
        assert Decimal(str(row["amount"])) == Decimal(txn.cents) / 100
        assert row["description"] == " ".join(txn.description.split())
        if "id" in profile.columns:
            assert row["bank_txn_id"] == txn.bank_id
        if "category" in profile.columns:
            assert (row["category"] or "") == txn.category
    if "balance" in profile.columns:
        assert Decimal(got[-1]["balance"]) == Decimal(statement.closing_cents) / 100
    if "account" in profile.columns:
        assert {r["account"] for r in got} == {"ACC-7"}
    # the amount as written follows the profile's sign convention: a charge is...
    import csv as csv_
    import io

    text = data.decode("utf-8")
    table = list(csv_.DictReader(io.StringIO(text), delimiter=";" if profile.decimal == "," else ","))
    first = table[0]  # PROFILE_TXNS[0] is a charge of 12.50
    if "debit" in profile.columns:
        assert first["Debit"] == "12.50" and first["Credit"] == ""
    elif profile.contract or profile.sign == "signed":
        assert "-12" in next(v for k, v in first.items() if k in ("Amount", "Betrag"))
    elif profile.sign == "inverted":
        assert first["Amount"] == "12.50"
    elif profile.sign == "type":
        assert first["Amount"] == "12.50" and first["Transaction Type"].lower() in profile.debit_values


@pytest.mark.parametrize(
    "fmt", ["csv-profile:debit_credit", "csv-profile:de_csv_camt", "csv-profile:card_statement_as"]
)
def test_profile_csv_without_a_proving_date_is_iso(fmt, tmp_path):
    """A day-first or month-first layout whose dates never pass the 12th could read both ways: the
    writer falls back to ISO, which reads one way only, so detection never rejects it."""
    txns = [writers.Txn("2025-03-04", -500, "A", "1"), writers.Txn("2025-04-03", 700, "B", "2")]
    data, _ = writers.write(fmt, writers.Statement("X", txns))
    assert "2025-03-04" in data.decode()
    _, split, rows, bad = _profile_rows(fmt, data, tmp_path)
    assert split.file_error is None and not bad
    assert [str(d)[:10] for d in rows.column("txn_date").to_pylist()] == ["2025-03-04", "2025-04-03"]


@pytest.mark.parametrize("fmt", writers.PROFILE_FORMATS)
def test_generated_profile_csv_holds_the_same_rows_as_the_csv(fmt, reference_csv, tmp_path):
    summary = gen.generate(tmp_path / "raw", rows=2500, seed=11, end_date=END, format=fmt)
    data_files = [p for p in summary.paths if p.parent == tmp_path / "raw"]
    assert [p.suffix for p in data_files] == [".csv"] * 3
    for path in data_files:
        chosen, split, rows, bad = _profile_rows(fmt, path.read_bytes(), tmp_path / "profiles")
        assert chosen == fmt.removeprefix("csv-profile:")
        assert split.file_error is None and not bad
        got = sorted(
            zip(
                [str(d)[:10] for d in rows.column("txn_date").to_pylist()],
                [f"{Decimal(str(a)):.2f}" for a in rows.column("amount").to_pylist()],
                rows.column("description").to_pylist(),
            )
        )
        assert got == _csv_rows(reference_csv / path.name)
        assert summary.manifest["files"][path.name]["format"] == fmt


def test_cli_csv_profile_format(tmp_path):
    from titans_assets.commands.generate import generate

    out = tmp_path / "raw"
    result = CliRunner().invoke(
        generate,
        [
            "--out",
            str(out),
            "--rows",
            "200",
            "--format",
            "csv-profile:mint",
            "--end-date",
            "2025-06-30",
            "--accounts",
            "personal_card",
        ],
    )
    assert result.exit_code == 0, result.output
    assert (
        (out / "personal_card.csv")
        .read_text()
        .startswith("Date,Description,Amount,Category,Transaction Type")
    )
    bad = CliRunner().invoke(generate, ["--out", str(out), "--format", "csv-profile:nope"])
    assert bad.exit_code != 0 and "csv-profile:generic" in bad.output
