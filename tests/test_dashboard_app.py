"""The dashboard for real: generated ledgers -> the loader, dbt and checks into a scratch PostgreSQL
database (runs stored in the Dagster instance the Data health page reads) -> four champions trained on
the marts and promoted in the MLflow registry -> the service's real Starlette app under uvicorn on a
free loopback port. Streamlit's AppTest runs every page against that, and the values shown are held to
SQL computed here, to the service's own answers and to the registry; then an empty database, a
service that is down, a service without champions and a wrong key. One headless-Chromium test runs
`titans dashboard` itself."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import subprocess
import sys
import threading
import uuid
from contextlib import contextmanager

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, TEST_TODAY, child_env, scratch_database, world_env
from support import free_port, get_until_up

from titans_assets import runner
from titans_assets.lib.dashboard import anomalies as A
from titans_assets.lib.dashboard import formatting as fmt
from titans_assets.lib.dashboard import queries as Q
from titans_assets.lib.dashboard.periods import preset_period, previous_period
from titans_assets.lib.db import Database
from titans_assets.lib.generator import generate
from titans_assets.lib.settings import Settings

pytestmark = pytest.mark.integration

APP = str(ROOT / "titans_assets" / "dashboard" / "app.py")
KEY = "dashboard-test-key-" + uuid.uuid4().hex
END = TEST_TODAY
TIMEOUT = 120  # AppTest's per-run limit: the first Data health run imports Dagster and MLflow


# ---------------------------------------------------------------------------------------------- the world
def _sql(db: Database, query: str, params=()):
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(query, params)
        return cur.fetchall()


@contextmanager
def service_in_thread(env: dict[str, str]):
    """The service's Starlette app (lib/serving/app.py) with a real Runtime, under uvicorn on a free port."""
    import uvicorn

    from titans_assets.lib.serving.app import create_app
    from titans_assets.lib.serving.runtime import Runtime

    runtime = Runtime.from_env(
        {
            **env,
            "TITANS_API_KEYS": KEY,
            "TITANS_RATE_LIMIT_IP": "100000/minute",
            "TITANS_RATE_LIMIT_KEY": "100000/minute",
        }
    )
    runtime.start(poll=0)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(runtime), host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, name="titans-test-service", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        assert get_until_up(url + "/health", timeout=30), "the service did not start"
        yield url, runtime
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        runtime.stop()


def _train_and_promote(db: Database, settings: Settings) -> None:
    from titans_assets.lib.ml import amount, anomaly, cashflow, catalog, category, data
    from titans_assets.lib.ml.tracking import Registry

    frame = data.load_transactions(db)
    trained = {
        "category": category.train(frame),
        "amount": amount.train(frame, max_iter=80, oof_folds=2, text_hash_features=2**14),
        "anomaly": anomaly.train(frame, labels=data.anomaly_labels(frame, settings.labels_dir)),
        "cashflow": cashflow.train(
            data.load_daily_series(db),
            candidates=("seasonal_naive_7", "mean_28"),
            n_origins=3,
            make_figures=False,
        ),
    }
    registry = Registry.from_settings(settings, db)
    for spec in catalog.SPECS:
        _, version = registry.log_training(spec.name, trained[spec.key], spec.example_frame())
        registry.promote(spec.name, version, "dashboard tests")


@pytest.fixture(scope="module")
def world(embedded_db: Database, tmp_path_factory):
    """Marts, checks and champions in a scratch database; the service answering from them."""
    root = tmp_path_factory.mktemp("dashboard")
    root.chmod(0o755)
    landing = root / "data" / "raw"
    generate(landing, rows=2500, seed=21, end_date=END, labels_dir=root / "data" / "labels")
    with scratch_database(embedded_db) as db, pytest.MonkeyPatch.context() as mp:
        env = world_env(mp, root, landing, root / "data" / "labels", db)
        settings, _ = runner.prepare_environment()
        summary = runner.materialize("not group:ml", instance=runner.get_instance())
        assert summary.success, summary.error
        _train_and_promote(db, settings)
        with service_in_thread(env) as (url, runtime):
            yield {
                "db": db,
                "env": env,
                "url": url,
                "runtime": runtime,
                "settings": settings,
                "landing": landing,
            }


@pytest.fixture
def app(world, monkeypatch):
    """A fresh AppTest per test, pointed at the world's database and service, with empty caches."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("TITANS_SERVICE_URL", world["url"])
    monkeypatch.setenv("TITANS_API_KEY", KEY)
    st.cache_data.clear()

    def make(page: str | None = None) -> AppTest:
        at = AppTest.from_file(APP, default_timeout=TIMEOUT)
        at.run()
        if page:
            at.switch_page(f"pages/{page}.py")
            at.run()
        assert not at.exception, [e.value for e in at.exception]
        return at

    return make


def _values(v):
    """Plotly 6 writes numeric arrays as {"dtype", "bdata" (base64), "shape"}: back to a list."""
    if isinstance(v, dict) and "bdata" in v:
        arr = np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"]))
        return arr.tolist()
    return list(v) if v is not None else []


def charts(at) -> list[list[dict]]:
    """Every Plotly chart on the page: its traces, x and y decoded."""
    out = []
    for element in at.get("plotly_chart"):
        data = json.loads(element.proto.spec)["data"]
        out.append([{**t, "x": _values(t.get("x")), "y": _values(t.get("y"))} for t in data])
    return out


def metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def texts(at) -> str:
    parts = [
        e.value
        for kind in ("error", "warning", "info", "success", "caption", "markdown")
        for e in getattr(at, kind)
    ]
    return "\n".join(str(p) for p in parts)


def _bounds(db: Database) -> tuple[dt.date, dt.date]:
    return _sql(db, "SELECT min(txn_date), max(txn_date) FROM marts.fct_transactions")[0]


# ---------------------------------------------------------------------------------------------- the pages
def test_overview_shows_the_period_against_the_previous_one(world, app):
    db = world["db"]
    first, last = _bounds(db)
    period = preset_period("Last 30 days", last, first)
    prev = previous_period(period)
    at = app()

    def sums(p):  # straight from fct_transactions, not from the daily mart the page reads
        return _sql(
            db,
            """SELECT coalesce(sum(amount) FILTER (WHERE txn_type = 'Income'), 0),
                                  coalesce(-sum(amount) FILTER (WHERE txn_type = 'Expense'), 0), coalesce(sum(amount), 0)
                           FROM marts.fct_transactions WHERE NOT is_transfer AND txn_date BETWEEN %s AND %s""",
            (p.start, p.end),
        )[0]

    income, expenses, net = sums(period)
    p_income, _, _ = sums(prev)
    # the accounts' balances (no file here states one or a currency: each runs from 0, in USD), not net flow:
    # both sides of a transfer are in the household, so only one still in flight at period end shows
    balance = _sql(db, "SELECT sum(amount) FROM marts.fct_transactions WHERE txn_date <= %s", (period.end,))[
        0
    ][0]
    shown = metrics(at)
    assert shown["Income"] == fmt.money(income) and shown["Expenses"] == fmt.money(expenses)
    assert shown["Net"] == fmt.money(net) and shown["Balance at period end (USD)"] == fmt.money(balance)
    assert "No opening balance for business_checking, business_credit_card, personal_card" in texts(at)
    income_metric = next(m for m in at.metric if m.label == "Income")
    assert income_metric.proto.delta.startswith(fmt.money(float(income - p_income), signed=True))
    # Spending by category: the bar chart's values are the period's expenses per category.
    bar = charts(at)[0][0]
    bars = dict(zip(bar["y"], bar["x"]))
    expected = dict(
        _sql(
            db,
            """SELECT coalesce(category, 'uncategorized'), -sum(amount) FROM marts.fct_transactions
                                WHERE txn_type = 'Expense' AND NOT is_transfer AND txn_date BETWEEN %s AND %s GROUP BY 1
                                ORDER BY 2 DESC LIMIT 15""",
            (period.start, period.end),
        )
    )
    assert bars.keys() == expected.keys()
    assert all(bars[k] == pytest.approx(float(v)) for k, v in expected.items())
    recent = at.dataframe[0].value
    latest = _sql(db, "SELECT description FROM marts.fct_transactions WHERE txn_date = %s", (last,))
    assert (
        len(recent) == 10
        and recent["txn_date"].iloc[0] == last
        and recent["description"].iloc[0] in {d for (d,) in latest}
    )
    # Another period: a whole month against the month before.
    at.sidebar.selectbox(key="overview_preset").set_value("Last month").run()
    month = preset_period("Last month", last, first)
    assert metrics(at)["Income"] == fmt.money(sums(month)[0])
    assert previous_period(month).label() in texts(at)


def test_balances_per_account_and_in_total_and_transfers_as_such(world, app):
    db = world["db"]
    first, last = _bounds(db)
    period = preset_period("Last 12 months", last, first)
    at = app("balances")
    assert not [s for s in at.sidebar.selectbox if s.key == "balances_currency"]  # one currency: no picker
    total = _sql(db, "SELECT sum(amount) FROM marts.fct_transactions WHERE txn_date <= %s", (period.end,))[0][
        0
    ]
    pairs = _sql(
        db,
        """SELECT count(DISTINCT transfer_pair_id) FROM marts.fct_transactions
                        WHERE is_transfer AND txn_date BETWEEN %s AND %s""",
        (period.start, period.end),
    )[0][0]
    shown = metrics(at)
    assert shown["Total balance (USD)"] == fmt.money(total) and shown["Accounts"] == "3"
    assert shown["Transfers between your accounts"] == fmt.count(pairs) and pairs > 0
    table = at.dataframe[0].value
    per_account = dict(
        _sql(
            db,
            "SELECT account, sum(amount) FROM marts.fct_transactions WHERE txn_date <= %s GROUP BY account",
            (period.end,),
        )
    )
    assert dict(zip(table["account"], table["balance"])) == pytest.approx(
        {a: float(v) for a, v in per_account.items()}
    )
    assert set(table["opening balance from"]) == {"unknown (from 0)"}
    # the chart: a line per account and the total, whose last point is the total balance
    lines = {t["name"]: t for t in charts(at)[0]}
    assert set(lines) == {*per_account, "(total)"} and lines["(total)"]["y"][-1] == pytest.approx(
        float(total)
    )
    # transfers listed as such, one row per pair by the day money left, never in spending
    moved = at.dataframe[1].value
    out_rows = _sql(
        db,
        """SELECT txn_date, account, -amount FROM marts.fct_transactions
                           WHERE is_transfer AND amount < 0 AND txn_date BETWEEN %s AND %s
                           ORDER BY txn_date DESC, account LIMIT 200""",
        (period.start, period.end),
    )
    assert len(moved) == min(len(out_rows), 200)
    assert sorted(zip(moved["out_date"], moved["from_account"], moved["amount"])) == sorted(
        (d, a, float(v)) for d, a, v in out_rows
    )
    assert (moved["from_account"] != moved["to_account"]).all()


def test_transactions_filters_charts_and_export(world, app):
    db = world["db"]
    first, last = _bounds(db)
    at = app("transactions")
    at.sidebar.date_input(key="tx_dates").set_value((first, last))
    at.sidebar.multiselect(key="tx_types").set_value(["Expense"])
    at.sidebar.number_input(key="tx_min").set_value(20.0)
    at.run()
    n, spent = _sql(
        db,
        """SELECT count(*), -sum(amount) FROM marts.fct_transactions
                          WHERE txn_type = 'Expense' AND abs(amount) >= 20""",
    )[0]
    shown = metrics(at)
    assert shown["Transactions"] == fmt.count(n) and shown["Expenses"] == fmt.money(spent)
    assert shown["Income"] == fmt.money(0)
    monthly, hist, methods = charts(at)
    assert sum(monthly[1]["y"]) == pytest.approx(float(spent))  # expenses per month add up
    assert sum(hist[0]["y"]) == n  # every row lands in one bin
    by_method = dict(
        _sql(
            db,
            """SELECT coalesce(payment_method, 'unknown'), count(*) FROM marts.fct_transactions
                                 WHERE txn_type = 'Expense' AND abs(amount) >= 20 GROUP BY 1""",
        )
    )
    assert dict(zip(methods[0]["x"], methods[0]["y"])) == by_method
    # Text search and sorting happen in SQL over every filtered row.
    at.sidebar.text_input(key="tx_text").set_value("adobe")
    at.selectbox(key="tx_sort").set_value("amount")
    at.toggle(key="tx_desc").set_value(False)
    at.run()
    rows = _sql(
        db,
        """SELECT transaction_id FROM marts.fct_transactions WHERE txn_type = 'Expense' AND abs(amount) >= 20
                       AND (description ILIKE '%%adobe%%' OR reference ILIKE '%%adobe%%' OR merchant ILIKE '%%adobe%%')
                       ORDER BY amount ASC, transaction_id""",
    )
    table = at.dataframe[0].value
    assert len(rows) > 0 and table["transaction_id"].tolist() == [r for (r,) in rows][: len(table)]
    # The export is every filtered row (here the same filter through the query function the button calls).
    f = Q.TransactionFilter(start=first, end=last, types=("Expense",), min_amount=20.0, text="adobe")
    exported = pd.read_csv(__import__("io").BytesIO(Q.transactions_csv(db, f, "amount", False)))
    assert exported["transaction_id"].tolist() == [r for (r,) in rows]
    assert len(at.get("download_button")) == 1
    # Nothing matches: said so, no charts.
    at.sidebar.text_input(key="tx_text").set_value("no such merchant anywhere").run()
    assert "No transactions match" in texts(at) and not at.get("plotly_chart")


def test_predictions_form_and_csv_upload_show_the_service_answers(world, app):
    rt = world["runtime"]
    at = app("predictions")
    at.text_input(key="p_description").set_value("ADOBE *CREATIVE CLD")
    at.number_input(key="p_amount").set_value(-54.99)
    at.date_input(key="p_date").set_value(dt.date(2026, 3, 2))
    at.button(key="p_submit").click().run()
    assert not at.exception
    method = at.selectbox(key="p_method").value
    base = {"date": "2026-03-02", "payment_method": method, "description": "ADOBE *CREATIVE CLD"}
    cat = rt.predict("category", {**base, "amount": -54.99})
    amt = rt.predict("amount", {**base, "category": cat["prediction"]})
    ano = rt.predict("anomaly", {**base, "amount": -54.99, "category": cat["prediction"]})
    shown = metrics(at)
    assert shown["Predicted category"] == cat["prediction"]
    assert shown[f"Expected amount for {cat['prediction']}"] == fmt.money(amt["predicted_amount"])
    assert shown["Anomaly score"] == fmt.score(ano["anomaly_score"])
    ci = amt["confidence_interval"]
    assert f"Interval: {fmt.interval(ci['lower'], ci['upper'], ci['level'])}" in texts(at)
    alternatives = charts(at)[0][0]
    assert alternatives["y"][::-1] == [a["category"] for a in cat["alternatives"]]
    assert alternatives["x"][::-1] == pytest.approx([a["confidence"] for a in cat["alternatives"]])

    # A CSV of uncategorised rows -> predicted categories, as the batch endpoint answers them.
    csv = (
        "Date,Description,Amount,Reference,Memo\n2026-03-01,ADOBE *CREATIVE CLD,-54.99,Adobe,a\n"
        "2026-03-02,SHELL OIL 0041,-41.20,,b\nnot-a-date,x,1,,c\n2026-03-03,AMZN MKTP US*2K4RT1,-23.10,,d\n"
    )
    at.file_uploader(key="p_upload").set_value(("mine.csv", csv.encode(), "text/csv")).run()
    assert not at.exception
    result = at.dataframe[-1].value
    expected = rt.predict(
        "category",
        {
            "transactions": [
                {
                    "date": "2026-03-01",
                    "description": "ADOBE *CREATIVE CLD",
                    "amount": -54.99,
                    "reference": "Adobe",
                },
                {"date": "2026-03-02", "description": "SHELL OIL 0041", "amount": -41.2},
                {"date": "2026-03-03", "description": "AMZN MKTP US*2K4RT1", "amount": -23.1},
            ]
        },
        batch=True,
    )
    assert result["predicted_category"].tolist() == [p["prediction"] for p in expected["predictions"]]
    assert result["Memo"].tolist() == ["a", "b", "d"]
    assert "1 row(s) could not be read" in texts(at)
    assert len(at.get("download_button")) == 1


def test_anomalies_ranked_with_reasons_and_marks_kept_in_postgres(world, app):
    db, rt = world["db"], world["runtime"]
    first, last = _bounds(db)
    at = app("anomalies")
    period = preset_period("Last 90 days", last, first)
    frame = Q.transactions_to_score(db, period, A.MAX_SCORED)
    direct = [
        p
        for batch in A.requests_in_batches(frame)
        for p in rt.predict("anomaly", {"transactions": batch}, batch=True)["predictions"]
    ]
    flags = sorted((p["anomaly_score"] for p in direct if p["is_anomaly"]), reverse=True)
    assert flags, "the generated period should hold injected anomalies"
    assert metrics(at)["Flagged"] == fmt.count(len(flags))
    assert f"Scored all {len(frame):,} transactions" in texts(at)
    table = at.dataframe[0].value
    assert table["anomaly_score"].tolist() == pytest.approx(flags)
    assert (table["reasons"].str.len() > 0).all() and not table["expected"].any()
    assert sum(len(trace["x"]) for trace in charts(at)[0]) == len(
        frame
    )  # every scored row in the distribution

    # Mark the top flag as expected: stored in app.anomaly_feedback and shown again next time.
    top = at.multiselect(key="an_mark").options[0]
    at.multiselect(key="an_mark").set_value([top]).run()
    at.button(key="an_mark_btn").click().run()
    stored = _sql(db, "SELECT transaction_id, verdict, anomaly_score FROM app.anomaly_feedback")
    assert len(stored) == 1 and stored[0][1] == "expected" and stored[0][2] == pytest.approx(flags[0])
    again = app("anomalies")
    table = again.dataframe[0].value
    assert table["expected"].tolist()[0] and table["expected"].sum() == 1
    again.toggle(key="an_hide").set_value(True).run()
    assert len(again.dataframe[0].value) == len(flags) - 1
    again.toggle(key="an_hide").set_value(False).run()
    again.multiselect(key="an_unmark").set_value([again.multiselect(key="an_unmark").options[0]]).run()
    again.button(key="an_unmark_btn").click().run()
    assert _sql(db, "SELECT count(*) FROM app.anomaly_feedback")[0][0] == 0


def test_cash_flow_forecast_beside_actuals_and_the_champion_backtest(world, app):
    from titans_assets.lib.ml.tracking import Registry

    db, rt = world["db"], world["runtime"]
    at = app("cashflow")
    expected = rt.predict("cashflow", {"horizon_days": 30})
    shown = metrics(at)
    assert shown["Forecast net, next 30 days"] == fmt.money(expected["summary"]["total_predicted"])
    # The version and what it is (a model, or the baseline it lost to), as the service says.
    assert shown["Model version"] == f"{expected['model_version']} ({expected['model_kind']})"
    assert expected["model_version"] == "1" and expected["model_kind"]
    first, last = _bounds(db)
    actual30 = _sql(
        db,
        "SELECT sum(net) FROM marts.fct_daily_metrics WHERE metric_date > %s",
        (last - dt.timedelta(days=30),),
    )[0][0]
    assert shown["Actual net, last 30 days"] == fmt.money(actual30)
    chart = charts(at)[0]
    forecast = next(t for t in chart if t.get("name") == "forecast")
    assert forecast["y"] == pytest.approx([r["predicted_amount"] for r in expected["forecast"]])
    actual = next(t for t in chart if t.get("name") == "actual daily net")
    assert len(actual["y"]) == 90
    champ = Registry.from_settings(world["settings"], db).champion("titans_cashflow", load=False)
    table = at.dataframe[0].value
    assert table["champion"].iloc[0] == fmt.metric_value(champ.metrics["mase"])


def test_data_health_reports_files_quarantine_checks_and_champions(world, app):
    db = world["db"]
    at = app("health")
    files = at.dataframe[0].value
    loaded = _sql(db, "SELECT source_file, rows_loaded, rows_quarantined FROM raw.files ORDER BY 1")
    assert [
        tuple(r) for r in files[["source_file", "rows_loaded", "rows_quarantined"]].itertuples(index=False)
    ] == loaded
    quarantined = _sql(db, "SELECT count(*) FROM raw.quarantine")[0][0]
    assert quarantined > 0 and f"{quarantined:,} row(s) in quarantine" in texts(at)
    reasons = at.dataframe[1].value
    assert len(reasons) == quarantined and reasons["reason"].str.len().min() > 0
    shown = metrics(at)
    assert int(shown["failed"]) == 0 and int(shown["passed"]) > 20
    models = at.dataframe[3].value
    assert models["champion"].tolist() == ["v1"] * 4


# ---------------------------------------------------------------------------------------------- empty and failure states
def test_an_empty_database_shows_empty_states_not_numbers(embedded_db, tmp_path, monkeypatch):
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    with scratch_database(embedded_db) as empty:
        monkeypatch.setenv("TITANS_DATABASE_URL", empty.url)
        monkeypatch.setenv("TITANS_HOME", str(tmp_path))
        monkeypatch.setenv("TITANS_LANDING_DIR", str(tmp_path / "raw"))
        monkeypatch.setenv("TITANS_SERVICE_URL", f"http://127.0.0.1:{free_port()}")
        monkeypatch.setenv("TITANS_API_KEY", KEY)
        for k in (
            "DAGSTER_HOME",
            "TITANS_DAGSTER_PG_URL",
            *empty.dbt_env(),
        ):  # the Data health page sets them
            monkeypatch.setenv(k, os.environ.get(k, ""))
        st.cache_data.clear()
        pages = {}
        for page in (
            "overview",
            "balances",
            "transactions",
            "predictions",
            "anomalies",
            "cashflow",
            "health",
        ):
            at = AppTest.from_file(APP, default_timeout=TIMEOUT)
            at.run()
            if page != "overview":
                at.switch_page(f"pages/{page}.py").run()
            assert not at.exception, (page, [e.value for e in at.exception])
            pages[page] = at
        for page in ("overview", "balances", "transactions", "anomalies", "cashflow"):
            at = pages[page]
            assert "No data yet — drop CSVs into data/raw or run `titans demo`" in texts(at), page
            assert not at.metric and not at.get("plotly_chart"), page
        # Predictions need no data: the form is there; the service is down, and says so when asked.
        at = pages["predictions"]
        at.button(key="p_submit").click().run()
        assert "prediction service is down" in texts(at) and not at.metric
        health = pages["health"]
        assert "No file loaded yet — drop CSVs into data/raw or run `titans demo`" in texts(health)
        assert "No row in quarantine" in texts(health)
        assert set(health.dataframe[-3].value["champion"]) == {fmt.DASH}  # no champions, said as such


def test_a_service_that_is_down_is_shown_as_down(world, app, monkeypatch):
    monkeypatch.setenv("TITANS_SERVICE_URL", f"http://127.0.0.1:{free_port()}")
    at = app("cashflow")
    assert "cash-flow forecast: prediction service is down" in texts(at) and "connection refused" in texts(at)
    assert "Forecast net, next 30 days" not in metrics(at)
    assert [t.get("name") for t in charts(at)[0]] == ["actual daily net"]  # actuals only, no made-up forecast
    at = app("anomalies")
    assert "anomaly model: prediction service is down" in texts(at) and not at.dataframe and not at.metric
    at = app("predictions")
    at.button(key="p_submit").click().run()
    assert texts(at).count("prediction service is down") == 2 and "Predicted category" not in metrics(at)
    assert "Needs a category" in texts(at)


def test_a_service_without_champions_and_a_wrong_key(world, app, embedded_db, tmp_path, monkeypatch):
    at = app("anomalies")  # first with a wrong key
    monkeypatch.setenv("TITANS_API_KEY", "not-the-key-" + uuid.uuid4().hex)
    at = app("anomalies")
    assert "prediction service refused the API key" in texts(at) and "E005" in texts(at)
    monkeypatch.setenv("TITANS_API_KEY", KEY)
    with (
        scratch_database(embedded_db) as empty,
        service_in_thread({"TITANS_HOME": str(tmp_path), "TITANS_DATABASE_URL": empty.url}) as (url, _),
    ):
        monkeypatch.setenv("TITANS_SERVICE_URL", url)
        at = app("cashflow")
        assert "no champion model" in texts(at) and "E002" in texts(at)
        assert "Forecast net, next 30 days" not in metrics(at)
        at = app("anomalies")
        assert "anomaly model: no champion model" in texts(at) and not at.dataframe


# ---------------------------------------------------------------------------------------------- the browser
@pytest.fixture
def dashboard_url(world):
    """`titans dashboard` as a user starts it, on a free port; stopped after the page's screenshot."""
    import signal

    port = free_port()
    env = child_env("TITANS_", "DAGSTER_")
    env |= world["env"] | {"TITANS_SERVICE_URL": world["url"], "TITANS_API_KEY": KEY}
    proc = subprocess.Popen(
        [sys.executable, "-m", "titans_assets.cli", "dashboard", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        up = get_until_up(f"http://127.0.0.1:{port}/_stcore/health", proc, timeout=120)
        assert up == "ok", proc.stdout.read() if proc.poll() is not None else "no answer"
        yield f"http://127.0.0.1:{port}"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # titans passes it on to streamlit and waits for it
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.mark.browser
def test_titans_dashboard_in_headless_chromium(world, dashboard_url, page):
    db = world["db"]
    first, last = _bounds(db)
    period = preset_period("Last 30 days", last, first)
    income = _sql(
        db,
        """SELECT coalesce(sum(amount), 0) FROM marts.fct_transactions
                         WHERE txn_type = 'Income' AND NOT is_transfer AND txn_date BETWEEN %s AND %s""",
        (period.start, period.end),
    )
    page.goto(dashboard_url)
    page.get_by_text("Balance at period end").wait_for()
    page.get_by_text(fmt.money(income[0][0]), exact=True).wait_for()
    page.locator(".js-plotly-plot").first.wait_for()
    page.get_by_role("link", name="Cash flow").click()
    page.get_by_text("Forecast net, next 30 days").wait_for()
    page.locator('[data-testid="stDataFrame"]').first.wait_for()  # a canvas grid: its cells are hidden DOM
    page.get_by_text("MASE (vs seasonal naive 7)").wait_for(state="attached")
    page.locator(".js-plotly-plot").first.wait_for()
