"""Labels come back in the user's own spelling, through the real graph (issue 16).

A ledger labelled like a personal-finance export (`Food & Dining`, now and then typed `food & dining`
or `FOOD & DINING`) is loaded, built by dbt, and the category model is trained, registered and
promoted by the Dagster assets; its predictions, read back from the MLflow registry as a pyfunc and
asked over HTTP of a real `titans serve`, name the category as the user wrote it most often, never
the internal normalized label (`food_dining`)."""

from __future__ import annotations

import csv
import datetime as dt
import subprocess
import sys
import uuid
from pathlib import Path

import dagster as dg
import httpx
import pandas as pd
import pytest
from conftest import TEST_TODAY, child_env, scratch_database, titans_env
from support import free_port, get_until_up, stop_group

from titans_assets import runner
from titans_assets.lib.csv_contract import CANONICAL_COLUMNS
from titans_assets.lib.db import Database
from titans_assets.lib.ml import data
from titans_assets.lib.ml.tracking import Registry
from titans_assets.lib.settings import Settings

pytestmark = pytest.mark.integration

HEADER = list(CANONICAL_COLUMNS)
# category as the user writes it -> (bank descriptors, typical amount)
MERCHANTS = {
    "Food & Dining": (["STARBUCKS STORE {n}", "CHIPOTLE ONLINE {n}", "WHOLEFDS MKT #{n}"], 14.0),
    "Auto & Transport": (["SHELL OIL {n}", "UBER *TRIP {n}"], 38.0),
    "Bills & Utilities": (["COMCAST CABLE COMM", "PG&E WEB ONLINE"], 95.0),
    "Shopping": (["AMAZON MKTP US*{n}", "TARGET T-{n}"], 52.0),
    "Health & Fitness": (["CVS/PHARMACY #{n}", "PLANET FITNESS CLUB"], 27.0),
    "Entertainment": (["NETFLIX.COM", "SPOTIFY USA"], 13.0),
}
# The other ways the user typed the first label (fewer rows than `Food & Dining`).
VARIANTS = ["food & dining", "FOOD & DINING "]
SHOWN = set(MERCHANTS)


def write_ledger(path: Path, end: dt.date, days: int = 300) -> dict[str, int]:
    """A seed-format ledger of `days` days ending at `end`: two expenses a day cycling through the
    merchants, a salary each month; every fourth `Food & Dining` row is spelled another way. Returns
    how many rows carry each spelling."""
    rows, spellings = [], {}
    names = list(MERCHANTS)
    food_rows = 0
    for d in range(days):
        day = end - dt.timedelta(days=days - 1 - d)
        if day.day == 1:
            rows.append(
                [
                    day.isoformat(),
                    "Income",
                    "ACME CORP PAYROLL",
                    "3200.00",
                    "",
                    "bank_transfer",
                    "received",
                    "Acme Corp",
                    "",
                ]
            )
        for k in range(2):
            i = 2 * d + k
            label = names[i % len(names)]
            patterns, typical = MERCHANTS[label]
            descriptor = patterns[(i // len(names)) % len(patterns)].format(n=1000 + (i * 37) % 90)
            if label == "Food & Dining":
                food_rows += 1
                if food_rows % 4 == 0:
                    label = VARIANTS[(food_rows // 4) % len(VARIANTS)]
            amount = typical * (0.6 + (i * 7919 % 100) / 125)
            rows.append(
                [
                    day.isoformat(),
                    "Expense",
                    descriptor,
                    f"{-amount:.2f}",
                    label,
                    "credit_card",
                    "paid",
                    "",
                    "",
                ]
            )
            spellings[label] = spellings.get(label, 0) + 1
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(HEADER)
        writer.writerows(rows)
    return spellings


@pytest.fixture(scope="module")
def trained(embedded_db: Database, tmp_path_factory: pytest.TempPathFactory):
    """The ledger through load + dbt + the category assets, in a scratch database."""
    root = tmp_path_factory.mktemp("spelling")
    landing = root / "data" / "raw"
    landing.mkdir(parents=True)
    spellings = write_ledger(landing / "card.csv", TEST_TODAY)
    with scratch_database(embedded_db) as db, pytest.MonkeyPatch.context() as monkeypatch:
        titans_env(monkeypatch, db, root / "home", landing)
        monkeypatch.setenv("TITANS_DATABASE_URL", db.url)
        settings = Settings.from_env()
        instance = dg.DagsterInstance.ephemeral()
        built = runner.materialize("not group:ml", instance=instance)
        assert built.success, built.error
        summary = runner.materialize("key:ml/category_*", instance=instance)
        assert summary.success, summary.error
        yield {
            "db": db,
            "root": root,
            "settings": settings,
            "spellings": spellings,
            "registry": Registry.from_settings(settings, db),
        }


def test_the_ledger_has_the_spellings_this_test_relies_on(trained):
    spellings = trained["spellings"]
    assert spellings["Food & Dining"] > sum(spellings[v] for v in VARIANTS) > 0


def test_the_warehouse_keeps_the_spelling_beside_the_normalized_label(trained):
    frame = data.load_transactions(trained["db"])
    expenses = frame[frame["txn_type"] == "Expense"]
    pairs = expenses.groupby(["category", "category_raw"]).size()
    food = pairs.loc["food_dining"]
    assert dict(food) == {
        "Food & Dining": trained["spellings"]["Food & Dining"],
        "food & dining": trained["spellings"]["food & dining"],
        "FOOD & DINING": trained["spellings"]["FOOD & DINING "],
    }  # trimmed
    assert set(pairs.index.get_level_values("category")) == {
        "food_dining",
        "auto_transport",
        "bills_utilities",
        "shopping",
        "health_fitness",
        "entertainment",
    }
    assert frame.loc[frame["txn_type"] == "Income", "category_raw"].isna().all()


def test_rows_read_without_a_database_carry_the_spelling_too(tmp_path):
    """data.frame_from_csvs (benchmarks, the model sweep) gives the same pairs as the warehouse."""
    spellings = write_ledger(tmp_path / "card.csv", TEST_TODAY)
    frame = data.frame_from_csvs(tmp_path)
    pairs = frame[frame["txn_type"] == "Expense"].groupby(["category", "category_raw"]).size()
    assert dict(pairs.loc["food_dining"]) == {
        "Food & Dining": spellings["Food & Dining"],
        "food & dining": spellings["food & dining"],
        "FOOD & DINING": spellings["FOOD & DINING "],
    }
    assert frame.loc[frame["txn_type"] == "Income", "category_raw"].isna().all()


def _request_frame() -> pd.DataFrame:
    """Rows of the logged signature (description, amount, txn_date, payment_method, reference)."""
    return pd.DataFrame(
        [
            {
                "description": d,
                "amount": a,
                "txn_date": "2026-07-02",
                "payment_method": "credit_card",
                "reference": "",
            }
            for d, a in (("STARBUCKS STORE 1045", -6.40), ("SHELL OIL 1020", -41.00), ("NETFLIX.COM", -15.49))
        ]
    )


def test_the_champion_answers_in_the_users_spelling_as_a_pyfunc(trained):
    import mlflow.pyfunc

    registry = trained["registry"]
    champion = registry.champion("titans_category", load=False)
    assert champion is not None
    uri = registry.client.get_model_version_download_uri("titans_category", champion.version)
    out = mlflow.pyfunc.load_model(uri).predict(_request_frame())
    assert out["prediction"].tolist() == ["Food & Dining", "Auto & Transport", "Entertainment"]
    for alternatives in out["alternatives"]:
        assert {a["category"] for a in alternatives} <= SHOWN, alternatives


def test_the_service_answers_in_the_users_spelling_over_http(trained, tmp_path):
    key = "spelling-key-" + uuid.uuid4().hex
    port = free_port()
    env = child_env("TITANS_") | {
        "TITANS_HOME": str(trained["root"] / "home"),
        "TITANS_DATABASE_URL": trained["db"].url,
        "TITANS_LANDING_DIR": str(trained["root"] / "data" / "raw"),
        "TITANS_API_KEYS": key,
        "TITANS_MODEL_POLL_SECONDS": "0",
    }
    titans = str(Path(sys.executable).with_name("titans"))
    log = tmp_path / "serve.log"
    proc = subprocess.Popen(
        [titans, "serve", "--port", str(port), "--workers", "1", "--no-access-log"],
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        process_group=0,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        assert get_until_up(f"{base}/livez", proc), log.read_text()[-3000:]
        auth = {"Authorization": f"Bearer {key}"}
        r = httpx.post(
            f"{base}/predict/category",
            headers=auth,
            timeout=60,
            json={"description": "STARBUCKS STORE 1045", "amount": -6.40, "date": "2026-07-02"},
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["prediction"] == "Food & Dining", body
        assert {a["category"] for a in body["alternatives"]} <= SHOWN, body
        r = httpx.post(
            f"{base}/predict/category/batch",
            headers=auth,
            timeout=60,
            json={
                "transactions": [
                    {"description": d, "amount": a, "date": "2026-07-02"}
                    for d, a in (("SHELL OIL 1020", -41.0), ("NETFLIX.COM", -15.49))
                ]
            },
        )
        assert r.status_code == 200, r.text
        assert [p["prediction"] for p in r.json()["predictions"]] == ["Auto & Transport", "Entertainment"]
    finally:
        assert not stop_group(proc), "processes left behind"
