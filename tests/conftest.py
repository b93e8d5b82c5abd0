"""Shared fixtures: a real PostgreSQL for integration tests, embedded by default and, when
TITANS_TEST_EXTERNAL_URL is set (CI sets it to the machine's server), also an external one over TCP.

pgserver runs postgres as its own OS user when we are root, so the embedded server's home must not sit
under pytest's tmp_path (0700): it gets a world-readable temporary folder of its own.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest
from support import new_home

from titans_assets.lib.db import Database, get_database, stop_embedded
from titans_assets.lib.settings import Settings

EXTERNAL_URL_ENV = "TITANS_TEST_EXTERNAL_URL"
ROOT = Path(__file__).resolve().parents[1]
# Screenshots of the browser tests land here (gitignored); CI keeps them as artifacts.
ARTIFACTS = Path(os.environ.get("TITANS_TEST_ARTIFACTS") or ROOT / "test-artifacts")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


# `make test` runs the suite on 2 pytest-xdist workers, one test file per worker at a time (--dist
# loadfile keeps module fixtures whole). The longest files start first, so neither worker is left
# alone with a 5-minute file at the end (longest-first scheduling); the rest keep their order.
LONGEST_FIRST = (
    "test_up.py",
    "test_model_sweep.py",
    "test_backup.py",
    "test_cold_start.py",
    "test_serving_soak.py",
    "test_prometheus.py",
    "test_cli_errors.py",
    "test_real_shaped.py",
    "test_dashboard_review.py",
    "test_celery.py",
    "test_ml_pipeline.py",
    "test_enriched.py",
    "test_dashboard_models.py",
    "test_serving_faults.py",
    "test_incremental.py",
    "test_browser_ui.py",
    "test_cli.py",
    "test_pipeline.py",
    "test_predictions.py",
    "test_transfers.py",
    "test_balances.py",
    "test_category_spelling.py",
    "test_logging.py",
    "test_dashboard_app.py",
    "test_serving_http.py",
    "test_serving_corrections.py",
    "test_serving_contract.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: file order kept otherwise


# The suite's frozen clock: every generated ledger ends on a date the test names, and the platform's
# own "today" (freshness and date-bound checks, TITANS_AS_OF) is this date, so no outcome depends on
# the day the suite runs.
TEST_TODAY = dt.date(2026, 6, 30)


@pytest.fixture(scope="session", autouse=True)
def frozen_platform_clock() -> Iterator[dt.date]:
    previous = os.environ.get("TITANS_AS_OF")
    os.environ["TITANS_AS_OF"] = TEST_TODAY.isoformat()
    yield TEST_TODAY
    if previous is None:
        os.environ.pop("TITANS_AS_OF", None)
    else:
        os.environ["TITANS_AS_OF"] = previous


def child_env(*drop: str) -> dict[str, str]:
    """This process's environment for a child process, without variables starting with `drop`, but
    always with the frozen clock: a child that lost TITANS_AS_OF would judge freshness by today."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env["TITANS_AS_OF"] = TEST_TODAY.isoformat()
    return env


TITANS = [sys.executable, "-m", "titans_assets.cli"]


def cli_env(home: Path, landing: Path, database_url: str | None = None) -> dict[str, str]:
    """The environment of a `titans` child process on this home and landing folder (and database)."""
    env = child_env("TITANS_", "DAGSTER_", "DBT_")
    env |= {"TITANS_HOME": str(home), "TITANS_LANDING_DIR": str(landing)}
    if database_url:
        env["TITANS_DATABASE_URL"] = database_url
    return env


def run_titans(*args: str, env: dict[str, str], timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*TITANS, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture
def home() -> Iterator[Path]:
    """A fresh TITANS_HOME for one test, removed after it."""
    path = new_home()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def embedded_home() -> Iterator[Path]:
    home = new_home("titans-test-")
    yield home
    stop_embedded()
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def embedded_db(embedded_home: Path) -> Database:
    return get_database(
        Settings.from_env(
            {"TITANS_HOME": str(embedded_home), "TITANS_LANDING_DIR": str(embedded_home / "raw")}
        )
    )


@pytest.fixture(scope="session")
def external_db() -> Iterator[Database]:
    """A fresh database on the external server, dropped afterwards."""
    url = os.environ.get(EXTERNAL_URL_ENV)
    if not url:
        pytest.skip(f"{EXTERNAL_URL_ENV} is not set")
    with scratch_database(Database(url)) as db:
        yield db


@pytest.fixture(
    scope="session",
    params=["embedded", pytest.param("external", marks=pytest.mark.external)],
)
def any_db(request) -> Database:
    """Both servers: integration tests that take this fixture run once per server."""
    return request.getfixturevalue(f"{request.param}_db")


@contextmanager
def scratch_database(server: Database, on_exit: Callable[[], None] | None = None) -> Iterator[Database]:
    """A uniquely named database on `server`'s PostgreSQL, dropped afterwards, for tests that create
    and truncate tables which must not touch the database other test modules share. `on_exit` runs
    before the drop (e.g. to close pooled connections)."""
    name = f"titans_scratch_{uuid.uuid4().hex[:10]}"
    with server.connect(autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield server.sibling(name)
    finally:
        if on_exit:
            on_exit()
        with server.connect(autocommit=True) as conn, conn.cursor() as cur:
            # and the MLflow store that lives beside it (lib/ml/tracking.py)
            for db_name in (name, name + "_mlflow"):
                cur.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')


def titans_env(monkeypatch: pytest.MonkeyPatch, db: Database, home: Path, landing: Path) -> None:
    """Point the process (resources, dbt, runner) at `db` the way a user's environment would."""
    monkeypatch.setenv("TITANS_HOME", str(home))
    monkeypatch.setenv("TITANS_LANDING_DIR", str(landing))
    if db.embedded:
        monkeypatch.delenv("TITANS_DATABASE_URL", raising=False)
    else:
        monkeypatch.setenv("TITANS_DATABASE_URL", db.url)
    for key, value in db.dbt_env().items():
        monkeypatch.setenv(key, value)


def world_env(
    mp: pytest.MonkeyPatch, root: Path, landing: Path, labels: Path, db: Database
) -> dict[str, str]:
    """A test world's titans environment for `db`, set in `mp` (undone when it closes). What
    runner.prepare_environment writes into os.environ is registered first, so it is undone too."""
    env = {
        "TITANS_HOME": str(root / "home"),
        "TITANS_LANDING_DIR": str(landing),
        "TITANS_DATABASE_URL": db.url,
        "TITANS_LABELS_DIR": str(labels),
    }
    for k, v in env.items():
        mp.setenv(k, v)
    for k in ("DAGSTER_HOME", "TITANS_DAGSTER_PG_URL", *db.dbt_env()):
        mp.setenv(k, os.environ.get(k, ""))
    return env


def warehouse_rows(landing: Path) -> pd.DataFrame:
    """Generated CSVs read with pandas, invalid rows dropped, in the warehouse's column names (for the
    model tests). Payment methods keep their typos and case (`credit_car`, ` Credit Card `): the
    models normalise them."""
    from titans_assets.lib.generator import read_export

    df = pd.concat([read_export(p) for p in sorted(landing.glob("*.csv"))], ignore_index=True)
    category = df["Category"].where(df["Category"].ne("") & df["Type"].eq("Expense"), None)
    return pd.DataFrame(
        {
            "txn_date": df["Date"],
            "txn_type": df["Type"],
            "description": df["Description"],
            "amount": pd.to_numeric(df["Amount"], errors="coerce"),
            "category": category,
            "payment_method": df["Payment Method"],
            "reference": df["Reference"],
        }
    ).dropna(subset=["txn_date", "amount"])


# ---------------------------------------------------------------------------------------------- browser tests
@pytest.fixture(scope="module")
def browser():
    """Headless Chromium (Debian's package, driven by Playwright); skipped where it is not installed.
    Per module: Playwright's sync API keeps an event loop running in the main thread while it is
    open, and code that calls asyncio.run() (Dagster's automation evaluation) fails beside it."""
    if not CHROMIUM:
        pytest.skip("chromium is not installed (apt-get install chromium); .ci/run installs it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture()
def page(browser, request):
    """A fresh page; a screenshot of where it ended goes to test-artifacts/<test name>.png."""
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    page.set_default_timeout(60_000)
    yield page
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in request.node.name)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    context.close()
