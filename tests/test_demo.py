"""The demo's sample ledgers do not depend on the day `titans demo` runs: the same bytes, so the same
rows, checks and metrics, whatever the clock says; and while the landing folder holds exactly those
files, the platform judges them as of their own end date."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
from pathlib import Path
from types import SimpleNamespace

import pytest

from titans_assets.lib import generator
from titans_assets.lib.ml import cashflow


class _FrozenDate(dt.date):
    frozen: dt.date

    @classmethod
    def today(cls) -> dt.date:
        return cls.frozen


def _demo_under_clock(monkeypatch, root: Path, today: dt.date) -> dict[str, str]:
    """generate_demo with the generator's clock set to `today`: file name -> sha256."""
    clock = SimpleNamespace(
        date=type("Frozen", (_FrozenDate,), {"frozen": today}), datetime=dt.datetime, timedelta=dt.timedelta
    )
    with monkeypatch.context() as m:
        m.setattr(generator, "dt", clock)  # the generator module's view of the calendar only
        generator.generate_demo(root / "raw", rows=1500, labels_dir=root / "labels")
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((root / "raw").iterdir())}


def _daily(landing: Path):
    import pandas as pd

    from titans_assets.lib import formats

    frames = []
    for p in sorted(landing.iterdir()):
        if p.suffix == ".csv" and p.read_bytes().startswith(b"Date,Type,"):
            frames.append(generator.read_export(p)[["Date", "Amount"]])
        else:  # a statement or a profile's CSV: its typed rows, as the loader takes them
            rows, _ = formats.read(p.name, p.read_bytes()).typed()
            frames.append(
                pd.DataFrame(
                    {
                        "Date": pd.to_datetime(rows.column("txn_date").to_pandas()),
                        "Amount": rows.column("amount").to_pandas().astype(float),
                    }
                )
            )
    rows = pd.concat(frames)
    amounts = pd.to_numeric(rows["Amount"], errors="coerce")
    return (
        amounts.groupby(rows["Date"])
        .sum()
        .rename("net_flow")
        .rename_axis("metric_date")
        .reset_index()
        .assign(metric_date=lambda d: pd.to_datetime(d["metric_date"], errors="coerce"))
        .dropna()
    )


def test_the_demo_ledger_and_its_metrics_are_the_same_on_days_a_few_days_apart(tmp_path, monkeypatch):
    first = _demo_under_clock(monkeypatch, tmp_path / "a", dt.date(2026, 12, 1))
    later = _demo_under_clock(monkeypatch, tmp_path / "b", dt.date(2026, 12, 9))
    assert first and first == later
    # two CSV layouts land: the checking account as a bank download with balances, the cards as the seed CSV
    assert sorted(first) == ["business_checking.csv", "business_credit_card.csv", "personal_card.csv"]
    metrics = [cashflow.train(_daily(tmp_path / d / "raw"), make_figures=False).metrics for d in ("a", "b")]
    assert metrics[0] == metrics[1]


def test_the_demo_checking_download_is_read_whole_with_balances_currency_and_categories(tmp_path):
    from decimal import Decimal

    from titans_assets.lib import formats

    summary = generator.generate_demo(tmp_path / "raw", rows=1500, labels_dir=tmp_path / "labels")
    download = tmp_path / "raw" / "business_checking.csv"
    split = formats.read(download.name, download.read_bytes())
    rows, bad = split.typed()
    assert split.format == "CSV profile" and not bad and not split.quarantine
    assert rows.num_rows == summary.rows["business_checking.csv"] > 0
    assert set(rows.column("currency").to_pylist()) == {"USD"}
    # a running balance on every row, from the opening balance the manifest states, to the cent
    amounts = [Decimal(str(a)) for a in rows.column("amount").to_pylist()]
    balances = [Decimal(str(b)) for b in rows.column("balance").to_pylist()]
    running, opening = [], Decimal("25000.00")
    for a in amounts:
        opening += a
        running.append(opening)
    assert balances == running
    pairs = list(csv.DictReader((summary.labels_dir / "transfers.csv").open()))
    transfers = {int(p[f"{s}_line"]) for p in pairs for s in ("out", "in") if p[f"{s}_file"] == download.name}
    assert transfers  # card payments and owner draws leave checking
    expense = [
        (line, c)
        for line, c, a in zip(
            rows.column("line_number").to_pylist(),
            rows.column("category").to_pylist(),
            rows.column("amount").to_pylist(),
        )
        if float(a) < 0
    ]
    assert expense and all(
        c for line, c in expense if line not in transfers
    )  # every expense keeps its category
    assert not any(c for line, c in expense if line in transfers)  # a transfer is not a category


def test_generated_files_unchanged_are_judged_as_of_their_end_date(tmp_path):
    raw, labels = tmp_path / "raw", tmp_path / "labels"
    generator.generate_demo(raw, rows=300, labels_dir=labels)
    assert generator.generated_as_of(raw, labels) == generator.DEMO_END_DATE

    extra = raw / "mine.csv"
    extra.write_text("Date,Type,Description,Amount\n2026-11-02,Expense,COFFEE,-3.50\n")
    assert generator.generated_as_of(raw, labels) is None  # a user's own file: judged as of today
    extra.unlink()
    first = sorted(raw.glob("*.csv"))[0]
    first.write_bytes(first.read_bytes() + b"2026-11-02,Expense,COFFEE,-3.50,food,card,paid,,\n")
    assert generator.generated_as_of(raw, labels) is None  # an edited file too
    assert generator.generated_as_of(raw, tmp_path / "nowhere") is None


@pytest.mark.parametrize("value", ["2026-13-01", "yesterday"])
def test_a_bad_platform_date_is_one_coded_line(value):
    from titans_assets.lib.settings import Settings, SettingsError

    with pytest.raises(SettingsError, match=r"^E003 .*TITANS_AS_OF"):
        Settings.from_env({"TITANS_AS_OF": value})
