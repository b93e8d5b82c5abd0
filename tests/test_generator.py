"""The synthetic export generator: format, ground truth, realism and determinism.

Pure Python (no database). Checks are written against the files as bytes/text, with a strict
validator written here independently of the generator's own reader.
"""

from __future__ import annotations

import csv
import datetime as dt
import importlib.util
import io
import json
import re
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from titans_assets.cli import main as titans_main
from titans_assets.commands.generate import generate as generate_cmd
from titans_assets.commands.generate import generate_report as report_cmd
from titans_assets.lib import generator as gen

END = dt.date(2024, 6, 30)
FIXTURES = Path(__file__).parent / "fixtures"
CANONICAL = [
    "date",
    "type",
    "description",
    "amount",
    "category",
    "payment method",
    "status",
    "reference",
    "receipt url",
]


# --------------------------------------------------------------------------- helpers
def read_records(path: Path) -> tuple[list[str], list[tuple[int, dict]]]:
    """(header as written, [(physical line number, {canonical name: raw value})])."""
    text = path.read_bytes().decode("utf-8")
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader)
    names = [h.strip().lower() for h in header]
    assert names[:9] == CANONICAL, header
    records = []
    for row in reader:
        assert reader.line_num == len(records) + 2  # one physical line per record
        records.append((reader.line_num, dict(zip(names, row))))
    return header, records


def strict_problem(rec: dict) -> str | None:
    """The contract, strictly: ISO date, Income/Expense, a number (currency symbol, commas, spaces allowed)."""
    date = rec["date"].strip()
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", date):
        return "bad_date"
    try:
        dt.date.fromisoformat(date)
    except ValueError:
        return "bad_date"
    if rec["type"].strip() not in ("Income", "Expense"):
        return "bad_type"
    raw = rec["amount"].replace("$", "").replace(",", "").strip()
    if not raw:
        return "missing_amount"
    if not re.fullmatch(r"-?\d+\.\d{2}", raw):
        return "non_numeric_amount"
    return None


def amount_of(rec: dict) -> float:
    return float(rec["amount"].replace("$", "").replace(",", "").strip())


def valid_records(path: Path) -> list[tuple[int, dict]]:
    return [(line, r) for line, r in read_records(path)[1] if strict_problem(r) is None]


def data_files(out: Path) -> list[Path]:
    return sorted(out.glob("*.csv"))


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    """The default two-year run for the three default accounts, with more messy rows than default."""
    root = tmp_path_factory.mktemp("default")
    summary = gen.generate(root / "raw", end_date=END, messy_rate=0.03)
    return summary


# --------------------------------------------------------------------------- determinism
def _all_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_arguments_give_identical_bytes_and_another_seed_differs(tmp_path):
    kwargs = {"rows": 3000, "end_date": END, "messy_rate": 0.05, "anomaly_rate": 0.02}
    gen.generate(tmp_path / "a" / "raw", seed=11, **kwargs)
    gen.generate(tmp_path / "b" / "raw", seed=11, **kwargs)
    gen.generate(tmp_path / "c" / "raw", seed=12, **kwargs)
    a, b, c = (_all_bytes(tmp_path / x) for x in "abc")
    assert set(a) == {
        "raw/business_checking.csv",
        "raw/business_credit_card.csv",
        "raw/personal_card.csv",
        "labels/anomalies.csv",
        "labels/label_noise.csv",
        "labels/manifest.json",
        "labels/transfers.csv",
    }
    assert a == b
    assert set(c) == set(a)
    for name in ("raw/business_checking.csv", "raw/business_credit_card.csv", "raw/personal_card.csv"):
        assert a[name] != c[name]


def test_committed_fixtures_are_reproducible_and_show_export_quirks(tmp_path):
    spec = importlib.util.spec_from_file_location("make_fixtures", FIXTURES / "make_fixtures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    built = module.build(tmp_path)
    for path in built:
        rel = path.relative_to(tmp_path)
        assert path.read_bytes() == (FIXTURES / rel).read_bytes(), (
            f"{rel} differs from the committed fixture: the generator changed; rebuild with "
            "`.venv/bin/python tests/fixtures/make_fixtures.py` and review the diff"
        )
    base = (FIXTURES / "sample_ledger.csv").read_bytes()
    no_nl = (FIXTURES / "sample_no_trailing_newline.csv").read_bytes()
    crlf = (FIXTURES / "sample_crlf.csv").read_bytes()
    assert base.endswith(b"\n") and b"\r" not in base
    assert not no_nl.endswith(b"\n") and no_nl + b"\n" == base
    assert crlf.count(b"\r\n") == base.count(b"\n") and crlf.replace(b"\r\n", b"\n") == base
    _, records = read_records(FIXTURES / "sample_ledger.csv")
    assert 190 <= len(records) <= 210
    for variant in ("sample_no_trailing_newline.csv", "sample_crlf.csv"):
        assert read_records(FIXTURES / variant)[1] == records
    manifest = json.loads((FIXTURES / "sample_labels" / "manifest.json").read_text())
    assert manifest["files"]["ledger.csv"]["data_rows"] == len(records)


# --------------------------------------------------------------------------- ground truth
def test_ground_truth_lives_outside_the_landing_folder(default_run, tmp_path):
    out = default_run.out_dir
    assert default_run.labels_dir == out.parent / "labels"
    assert sorted(p.name for p in out.iterdir()) == [
        "business_checking.csv",
        "business_credit_card.csv",
        "personal_card.csv",
    ]
    assert {p.name for p in default_run.labels_dir.iterdir()} == {
        "anomalies.csv",
        "label_noise.csv",
        "manifest.json",
        "transfers.csv",
    }
    for p in data_files(out):
        text = p.read_text()
        for word in gen.ANOMALY_TYPES:
            assert word not in text
    with pytest.raises(ValueError, match="inside the landing folder"):
        gen.generate(tmp_path / "raw", rows=100, labels_dir=tmp_path / "raw" / "labels", end_date=END)
    assert not (tmp_path / "raw").exists()


def test_anomaly_labels_point_at_real_rows(default_run):
    rows = list(csv.DictReader((default_run.labels_dir / "anomalies.csv").open()))
    total = default_run.total_rows
    assert len(rows) == round(0.01 * total) == default_run.total_anomalies
    assert {r["anomaly_type"] for r in rows} == set(gen.ANOMALY_TYPES)
    by_file = {p.name: dict(read_records(p)[1]) for p in data_files(default_run.out_dir)}
    for r in rows:
        rec = by_file[r["file"]][int(r["line_number"])]
        assert strict_problem(rec) is None
        assert rec["description"].strip() == r["description"]
        assert rec["date"] == r["date"]
        assert amount_of(rec) == pytest.approx(float(r["amount"]))
        assert rec["type"] == "Expense"


def test_each_anomaly_type_is_what_it_claims(default_run):
    labels = list(csv.DictReader((default_run.labels_dir / "anomalies.csv").open()))
    anomalous = {(r["file"], int(r["line_number"])) for r in labels}
    normal = defaultdict(list)  # (file, reference, category) -> [(date, amount, description)]
    seen_refs = Counter()
    holidays = {
        h
        for y in range(default_run.start_date.year, default_run.end_date.year + 1)
        for h in gen.us_holidays(y)
    }
    for p in data_files(default_run.out_dir):
        for line, rec in valid_records(p):
            seen_refs[rec["reference"].strip()] += 1
            if (p.name, line) not in anomalous:
                normal[(p.name, rec["reference"].strip())].append(
                    (dt.date.fromisoformat(rec["date"]), amount_of(rec), rec["description"].strip())
                )
                normal[(p.name, rec["reference"].strip(), rec["category"])].append(
                    (dt.date.fromisoformat(rec["date"]), amount_of(rec), rec["description"].strip())
                )
    records = {p.name: dict(read_records(p)[1]) for p in data_files(default_run.out_dir)}
    for r in labels:
        rec = records[r["file"]][int(r["line_number"])]
        ref, day, amount = rec["reference"].strip(), dt.date.fromisoformat(r["date"]), float(r["amount"])
        others = normal[(r["file"], ref)]
        if r["anomaly_type"] == "unusual_day":
            assert day.weekday() >= 5 or day in holidays
            assert others and all(d.weekday() < 5 and d not in holidays for d, _, _ in others), ref
        elif r["anomaly_type"] == "new_merchant_large":
            assert seen_refs[ref] == 1 and amount <= -2000
        elif r["anomaly_type"] == "amount_spike":
            same_category = normal[(r["file"], ref, rec["category"])]
            assert abs(amount) >= 5 * np.median([abs(a) for _, a, _ in same_category])
        elif r["anomaly_type"] == "duplicate_charge":
            assert any(
                desc == r["description"] and a == amount and abs((d - day).days) <= 1 for d, a, desc in others
            )
        elif r["anomaly_type"] == "small_charge_burst":
            assert -5 < amount < 0 and not normal[(r["file"], ref)]
        elif r["anomaly_type"] == "atypical_merchant":
            cat = rec["category"]
            usual = {gen._MERCHANTS[e.merchant][0] for e in gen._ENTRY_LIST if e.category == cat}
            assert ref not in usual


def test_manifest_invalid_rows_match_a_strict_check(default_run):
    manifest = json.loads((default_run.labels_dir / "manifest.json").read_text())
    assert manifest["totals"]["invalid_rows"] == default_run.total_invalid > 0
    messy_amounts = typos = 0
    for p in data_files(default_run.out_dir):
        info = manifest["files"][p.name]
        header, records = read_records(p)
        assert header == info["header"]
        assert info["data_rows"] == len(records) == default_run.rows[p.name]
        found = {line: strict_problem(r) for line, r in records if strict_problem(r)}
        written = {i["line_number"]: i["reason"] for i in info["invalid"]}
        assert found == written
        assert info["valid_rows"] + info["invalid_rows"] == info["data_rows"]
        for _, r in records:
            messy_amounts += "$" in r["amount"] or r["amount"] != r["amount"].strip()
            typos += r["payment method"] not in gen.PAYMENT_METHODS
        raw = p.read_bytes()
        assert raw.endswith(info["line_terminator"].encode()) == info["trailing_newline"]
        assert (b"\r\n" in raw) == (info["line_terminator"] == "\r\n")
    assert messy_amounts > 0 and typos > 0
    assert sum(manifest["invalid_by_reason"].values()) == default_run.total_invalid
    # About 10% of messy rows are invalid, so invalid rows stay a small fraction of messy_rate.
    assert default_run.total_invalid <= 0.03 * default_run.total_rows * 0.2


# --------------------------------------------------------------------------- format and realism
def transfer_sides(labels_dir: Path) -> set[tuple[str, int]]:
    """(file, line) of both sides of every ground-truth transfer."""
    rows = list(csv.DictReader((labels_dir / "transfers.csv").open()))
    return {(r[f"{s}_file"], int(r[f"{s}_line"])) for r in rows for s in ("out", "in")}


def test_signs_categories_and_statuses_follow_the_contract(default_run):
    statuses = Counter()
    transfers = transfer_sides(default_run.labels_dir)
    for p in data_files(default_run.out_dir):
        for line, r in valid_records(p):
            amount = amount_of(r)
            statuses[r["status"]] += 1
            if (p.name, line) in transfers:  # a move between the user's accounts: no category, either sign
                assert (
                    r["category"] == ""
                    and r["payment method"].strip().lower().replace(" ", "_")
                    in ("bank_transfer", "bank_tranfer")
                    and (amount < 0) == (r["type"] == "Expense")
                )
            elif r["type"] == "Expense":
                assert amount < 0 and r["category"] in gen.CATEGORIES
            else:
                assert amount > 0 and r["category"] == "" and p.name == "business_checking.csv"
            if r["category"] == "bad_debts":
                assert r["status"] == "written_off"
            assert re.fullmatch(r"(https://\S+)?", r["receipt url"])
    assert set(statuses) <= set(gen.STATUSES) and statuses["pending"] > 0


def test_rows_are_newest_first(default_run):
    for p in data_files(default_run.out_dir):
        dates = [r["date"] for _, r in valid_records(p)]
        assert dates == sorted(dates, reverse=True)
        assert dates[0] <= END.isoformat()


def test_every_category_is_present_in_a_two_year_run(default_run):
    transfers = transfer_sides(default_run.labels_dir)
    counts = Counter(
        r["category"]
        for p in data_files(default_run.out_dir)
        for line, r in valid_records(p)
        if r["type"] == "Expense" and (p.name, line) not in transfers
    )
    assert set(counts) == set(gen.CATEGORIES)
    assert min(counts.values()) >= 8, counts.most_common()[-5:]
    assert 2800 <= default_run.total_rows <= 3600
    assert (default_run.end_date - default_run.start_date).days + 1 == round(2 * 365.25)


def test_report_shares_amounts_and_recurring_intervals(default_run):
    rep = gen.report(default_run.out_dir)
    shares = rep["category_shares"]
    assert sum(shares.values()) == pytest.approx(1, abs=1e-3)
    top3 = sorted(shares, key=shares.get, reverse=True)[:3]
    assert "food" in top3 and "meals_entertainment" in top3
    q = rep["amount_quantiles"]
    assert q["meals_entertainment"]["p50"] < 30 < q["travel"]["p50"] < q["computer_equipment"]["p50"]
    # Heavy tail: computer equipment's p95 is far above its median; coffee-like meals are not.
    assert q["computer_equipment"]["p95"] > 3 * q["computer_equipment"]["p50"]
    assert q["rent"]["p95"] >= 3000
    rec = rep["recurring"]
    rent = rec["business_checking.csv:Oakwood Properties LLC (rent)"]
    assert 29 <= rent["median_days"] <= 31.5 and rent["n"] >= 20
    for key in (
        "business_checking.csv:J. Rivera (contractor) (professional_fees)",
        "business_checking.csv:M. Chen (contractor) (professional_fees)",
    ):
        assert rec[key]["median_days"] == 14
    subs = [v for k, v in rec.items() if k.startswith("business_credit_card.csv") and "(software)" in k]
    assert len(subs) >= 7 and all(29 <= v["median_days"] <= 31.5 for v in subs)
    wd = rep["weekday_shares"]
    assert min(wd["Mon"], wd["Tue"], wd["Wed"], wd["Thu"], wd["Fri"]) > max(wd["Sat"], wd["Sun"])
    assert sum(rep["month_shares"].values()) == pytest.approx(1, abs=1e-3)
    text = gen.format_report(rep)
    assert "Oakwood Properties LLC" in text and "computer_equipment" in text


def test_calendar_structure_business_weekdays_personal_weekends_december_and_vacations(tmp_path):
    s = gen.generate(
        tmp_path / "raw",
        rows=40_000,
        accounts=("personal_card", "business_credit_card"),
        end_date=END,
        anomaly_rate=0,
        messy_rate=0,
        label_noise=0,
    )
    per_day = {}
    for p in data_files(s.out_dir):
        days = Counter(dt.date.fromisoformat(r["date"]) for _, r in valid_records(p))
        per_day[p.name] = days
    personal, business = per_day["personal_card.csv"], per_day["business_credit_card.csv"]

    def mean(counter, pred):
        vals = [counter.get(d, 0) for d in _days(s) if pred(d)]
        return sum(vals) / len(vals)

    assert mean(personal, lambda d: d.weekday() == 5) > 1.3 * mean(personal, lambda d: d.weekday() == 1)
    assert mean(business, lambda d: d.weekday() == 1) > 3 * mean(business, lambda d: d.weekday() == 6)
    assert mean(personal, lambda d: d.month == 12) > 1.15 * mean(personal, lambda d: d.month in (10, 11))
    # Vacations: business-card days with almost nothing (only subscriptions) come in runs.
    typical = np.median([business.get(d, 0) for d in _days(s)])
    quiet = [business.get(d, 0) < 0.15 * typical for d in _days(s)]
    runs, current = [], 0
    for q in quiet:
        current = current + 1 if q else 0
        runs.append(current)
    assert max(runs) >= 5


def _days(summary):
    d = summary.start_date
    while d <= summary.end_date:
        yield d
        d += dt.timedelta(1)


def test_descriptions_are_bank_style_and_some_are_shared_across_categories(default_run):
    cats_by_desc = defaultdict(set)
    descs_by_ref = defaultdict(set)
    rows_by_ref = Counter()
    for p in data_files(default_run.out_dir):
        for _, r in valid_records(p):
            if r["type"] == "Expense":
                cats_by_desc[r["description"].strip()].add(r["category"])
                descs_by_ref[r["reference"].strip()].add(r["description"].strip())
                rows_by_ref[r["reference"].strip()] += 1
    shared = {d: c for d, c in cats_by_desc.items() if len(c) > 1}
    assert len(shared) >= 20
    amazon = set().union(*(cats_by_desc[d] for d in descs_by_ref["Amazon"]))
    assert {"office_supplies", "hardware", "software", "computer_equipment"} <= amazon
    assert {"food", "supplies"} <= set().union(*(cats_by_desc[d] for d in descs_by_ref["Costco"]))
    assert {"food", "supplies"} <= set().union(*(cats_by_desc[d] for d in descs_by_ref["Walmart"]))
    assert len(descs_by_ref["Amazon"]) > 50  # written many ways (reference codes)
    assert any(re.fullmatch(r"AMZN MKTP US\*[0-9A-Z]{6}", d) for d in descs_by_ref["Amazon"])
    assert any(
        re.fullmatch(r"SQ \*BLUE BOTTLE COFFEE \d{4} [A-Z ]+ CA", d)
        for d in descs_by_ref["Blue Bottle Coffee"]
    )
    assert any(re.fullmatch(r"POS PURCHASE SHELL \d{4} \d{2}/\d{2}", d) for d in descs_by_ref["Shell"])
    assert any(d.startswith("ADOBE") for d in descs_by_ref["Adobe"])
    # The same merchant is written several ways.
    busy = [ref for ref, n in rows_by_ref.items() if n >= 20]
    multi = [ref for ref in busy if len(descs_by_ref[ref]) >= 2]
    assert len(busy) >= 30 and len(multi) >= 0.8 * len(busy)
    # Bank descriptors, not clean names: few rows read exactly like the vendor's name.
    clean = total = 0
    for p in data_files(default_run.out_dir):
        for _, r in valid_records(p):
            total += 1
            clean += r["description"].strip().lower() == r["reference"].strip().lower()
    assert clean < 0.15 * total


def test_label_noise_rate_and_pairs(tmp_path):
    for rate in (0.02, 0.10):
        s = gen.generate(tmp_path / str(rate) / "raw", rows=5000, label_noise=rate, end_date=END, seed=5)
        noise = list(csv.DictReader((s.labels_dir / "label_noise.csv").open()))
        records = {p.name: dict(read_records(p)[1]) for p in data_files(s.out_dir)}
        expenses = sum(r["type"] == "Expense" for recs in records.values() for r in recs.values())
        assert len(noise) / expenses == pytest.approx(rate, rel=0.05)
        for n in noise:
            assert n["written_category"] in gen._NEAR[n["true_category"]]
            assert records[n["file"]][int(n["line_number"])]["category"] == n["written_category"]
    s = gen.generate(tmp_path / "none" / "raw", rows=2000, label_noise=0, end_date=END)
    assert s.label_noise_rows == 0


def test_rows_is_exact_and_small_runs_work(tmp_path):
    for rows, accounts in (
        (150, gen.DEFAULT_ACCOUNTS),
        (1, ("business_checking",)),
        (2345, ("personal_card",)),
        (200, ("ledger",)),
    ):
        out = tmp_path / f"{rows}" / "raw"
        s = gen.generate(out, rows=rows, accounts=accounts, end_date=END)
        assert s.total_rows == rows == sum(len(read_records(p)[1]) for p in data_files(out))
        assert [p.name for p in data_files(out)] == sorted(f"{a}.csv" for a in accounts)
    s = gen.generate(tmp_path / "small" / "raw", rows=150, end_date=END)
    assert (s.end_date - s.start_date).days + 1 >= 31 and s.years < 0.2
    assert s.total_anomalies == 2


def test_invalid_arguments_are_rejected(tmp_path):
    for kwargs, match in (
        ({"accounts": ("savings",)}, "unknown"),
        ({"rows": 0}, "rows"),
        ({"years": -1}, "years"),
        ({"anomaly_rate": 0.9}, "anomaly_rate"),
        ({"accounts": ("ledger", "ledger")}, "once"),
    ):
        with pytest.raises(ValueError, match=match):
            gen.generate(tmp_path / "raw", end_date=END, **kwargs)


# --------------------------------------------------------------------------- CLI
def test_cli_generate_and_report(tmp_path, monkeypatch):
    runner = CliRunner()
    out = tmp_path / "landing"
    result = runner.invoke(
        generate_cmd,
        [
            "--out",
            str(out),
            "--rows",
            "800",
            "--seed",
            "3",
            "--end-date",
            "2024-06-30",
            "--accounts",
            "business_checking,personal_card",
            "--messy-rate",
            "0.05",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "800 rows" in result.output and "invalid" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["business_checking.csv", "personal_card.csv"]
    manifest = json.loads((tmp_path / "labels" / "manifest.json").read_text())
    assert manifest["args"]["seed"] == 3 and manifest["end_date"] == "2024-06-30"

    result = runner.invoke(report_cmd, ["--dir", str(out)])
    assert result.exit_code == 0, result.output
    assert "recurring" in result.output and "food" in result.output
    result = runner.invoke(report_cmd, ["--dir", str(out), "--json"])
    assert json.loads(result.output)["files"]["personal_card.csv"] > 0

    result = runner.invoke(titans_main, ["generate", "--out", str(out), "--rows", "10", "--years", "1"])
    assert result.exit_code == 2 and "E003" in result.output and "mutually exclusive" in result.output
    result = runner.invoke(titans_main, ["generate", "--out", str(out), "--accounts", "savings"])
    assert result.exit_code == 2 and "E003" in result.output
    result = runner.invoke(titans_main, ["generate", "--out", str(out), "--labels-dir", str(out / "gt")])
    assert result.exit_code == 2 and "E003" in result.output

    monkeypatch.setenv("TITANS_LANDING_DIR", str(tmp_path / "from_env"))
    result = runner.invoke(generate_cmd, ["--years", "0.25", "--end-date", "2024-06-30"])
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "from_env").glob("*.csv"))) == 3
    assert (tmp_path / "labels").is_dir()


# --------------------------------------------------------------------------- transfers
def test_transfers_both_sides_are_in_the_two_files_with_bank_style_text(tmp_path):
    accounts = (*gen.DEFAULT_ACCOUNTS, "business_savings")
    for seed, end in ((3, END), (8, dt.date(2025, 2, 14))):
        out = tmp_path / f"s{seed}" / "raw"
        s = gen.generate(out, seed=seed, end_date=end, accounts=accounts, messy_rate=0.05)
        pairs = list(csv.DictReader((s.labels_dir / "transfers.csv").open()))
        assert s.transfer_pairs == len(pairs) == s.manifest["totals"]["transfer_pairs"]
        kinds = Counter(p["kind"] for p in pairs)
        # every month: one card payment and one owner draw; savings most months, sometimes back
        assert 22 <= kinds["card_payment"] <= 24 and 22 <= kinds["owner_draw"] <= 24
        assert 14 <= kinds["to_savings"] <= 24 and 2 <= kinds["from_savings"] <= 5
        records = {p.name: dict(read_records(p)[1]) for p in data_files(out)}
        anomalies = {
            (r["file"], int(r["line_number"]))
            for r in csv.DictReader((s.labels_dir / "anomalies.csv").open())
        }
        seen = set()
        for p in pairs:
            out_rec, in_rec = (
                records[p["out_file"]][int(p["out_line"])],
                records[p["in_file"]][int(p["in_line"])],
            )
            assert p["out_file"] != p["in_file"]
            for side, rec in (("out", out_rec), ("in", in_rec)):
                assert strict_problem(rec) is None  # never made invalid
                assert (p[f"{side}_file"], int(p[f"{side}_line"])) not in anomalies
                assert rec["date"] == p[f"{side}_date"] and rec["category"] == "" and rec["receipt url"] == ""
                seen.add((p[f"{side}_file"], int(p[f"{side}_line"])))
            assert amount_of(out_rec) == -amount_of(in_rec) == -float(p["amount"]) < 0
            gap = (dt.date.fromisoformat(p["in_date"]) - dt.date.fromisoformat(p["out_date"])).days
            assert -2 <= gap <= 3
            text_out, text_in = out_rec["description"].strip(), in_rec["description"].strip()
            if p["kind"] == "card_payment":
                assert "THANK YOU" in text_in and re.search(r"TRANSFER|PMT|PAYMENT|AUTOPAY", text_out)
                assert p["out_file"] == "business_checking.csv" and p["in_file"] == "business_credit_card.csv"
            else:
                assert re.search(r"TRANSFER|DRAW|DEPOSIT", text_out) and re.search(
                    r"TRANSFER|DEPOSIT", text_in
                )
            # the other account's number, where a text names one, is that account's
            for text, other in ((text_out, p["in_account"]), (text_in, p["out_account"])):
                if "..." in text:
                    assert text.split("...")[1][:4] == gen.account_id(other, "ofx")[-4:]
        assert len(seen) == 2 * len(pairs)
        # a card payment is last cycle's statement balance: the card ends near zero, never far in credit
        card = gen.read_export(out / "business_credit_card.csv")
        assert (
            card["Amount"].sum() < 0
            and -card["Amount"].sum() < 0.1 * -card.loc[card["Amount"] < 0, "Amount"].sum()
        )


def test_a_savings_account_with_no_transfer_possible_is_a_clear_error(tmp_path):
    """Savings only receives moves from checking: in another currency (no transfer crosses currencies)
    it would be empty, and a statement writer failed on it with a numpy error."""
    accounts = ("business_checking", "business_savings")
    with pytest.raises(
        ValueError, match=r"business_savings only moves money .* \(business_savings is in CHF\)"
    ):
        gen.generate(
            tmp_path / "raw",
            rows=3000,
            end_date=END,
            accounts=accounts,
            currencies={"business_savings": "CHF"},
            format={"business_savings": "mt940"},
        )
    s = gen.generate(
        tmp_path / "ok", rows=3000, end_date=END, accounts=accounts, format={"business_savings": "mt940"}
    )
    assert s.rows["business_savings.sta"] > 0


def test_transfers_do_not_disturb_one_account_runs_and_are_reproducible(tmp_path):
    a = gen.generate(tmp_path / "a" / "raw", seed=5, end_date=END, accounts=("personal_card",))
    assert a.transfer_pairs == 0 and not (a.labels_dir / "transfers.csv").exists()
    b = gen.generate(tmp_path / "b" / "raw", seed=5, end_date=END)
    c = gen.generate(tmp_path / "c" / "raw", seed=5, end_date=END)
    assert b.transfer_pairs > 40
    assert (b.labels_dir / "transfers.csv").read_bytes() == (c.labels_dir / "transfers.csv").read_bytes()
    # the QIF register writes a transfer's category as the other account in brackets
    q = gen.generate(tmp_path / "q" / "raw", seed=5, end_date=END, format={"business_checking": "qif"})
    text = (q.out_dir / "business_checking.qif").read_text()
    assert "L[Business Credit Card]" in text and "L[Personal Checking]" in text
