"""The dashboard's pure logic (titans_assets/lib/dashboard): periods and comparisons, formatting, filter
SQL, batching and ranking of anomaly scores, the service client's states, CSV uploads, and the
`titans dashboard` command's environment. No server, and a database only for the CSV export's COPY
path (a scratch database): see test_dashboard_app.py for the pages against a real warehouse and a
real service."""

from __future__ import annotations

import datetime as dt
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pandas as pd
import pytest
from support import free_port

from titans_assets.commands.dashboard import APP, dashboard_environment, streamlit_argv
from titans_assets.lib.csv_contract import ContractError
from titans_assets.lib.dashboard import anomalies as A
from titans_assets.lib.dashboard import formatting as fmt
from titans_assets.lib.dashboard import queries as Q
from titans_assets.lib.dashboard import uploads, views
from titans_assets.lib.dashboard.periods import (
    Change,
    Period,
    add_months,
    compare,
    preset_period,
    previous_period,
)
from titans_assets.lib.dashboard.service import Outcome, ServiceClient, chunked, classify, connection_failure
from titans_assets.lib.settings import Settings

D = dt.date


# ---------------------------------------------------------------------------------------------- periods
@pytest.mark.parametrize(
    "name,anchor,expected",
    [
        ("Last 30 days", D(2026, 3, 31), (D(2026, 3, 2), D(2026, 3, 31))),
        ("Last 90 days", D(2026, 3, 31), (D(2026, 1, 1), D(2026, 3, 31))),
        ("Month to date", D(2026, 3, 17), (D(2026, 3, 1), D(2026, 3, 17))),
        ("Last month", D(2026, 3, 17), (D(2026, 2, 1), D(2026, 2, 28))),
        ("Last month", D(2026, 1, 5), (D(2025, 12, 1), D(2025, 12, 31))),
        ("Year to date", D(2026, 3, 17), (D(2026, 1, 1), D(2026, 3, 17))),
        ("Last 12 months", D(2026, 3, 17), (D(2025, 3, 18), D(2026, 3, 17))),
        ("All time", D(2026, 3, 17), (D(2024, 11, 2), D(2026, 3, 17))),
    ],
)
def test_presets_are_anchored_on_the_latest_data(name, anchor, expected):
    p = preset_period(name, anchor, first=D(2024, 11, 2))
    assert (p.start, p.end) == expected


def test_unknown_preset_and_reversed_period_are_invalid_input():
    with pytest.raises(ValueError, match="E003"):
        preset_period("Last fortnight", D(2026, 1, 1))
    with pytest.raises(ValueError, match="E003"):
        Period(D(2026, 1, 2), D(2026, 1, 1))


@pytest.mark.parametrize(
    "period,previous",
    [
        ((D(2026, 3, 2), D(2026, 3, 31)), (D(2026, 1, 31), D(2026, 3, 1))),  # 30 days -> the 30 before
        ((D(2026, 2, 1), D(2026, 2, 28)), (D(2026, 1, 1), D(2026, 1, 31))),  # a month -> the month before
        ((D(2026, 3, 1), D(2026, 3, 31)), (D(2026, 2, 1), D(2026, 2, 28))),  # lengths differ: still a month
        (
            (D(2026, 1, 1), D(2026, 3, 31)),
            (D(2025, 10, 1), D(2025, 12, 31)),
        ),  # a quarter -> the quarter before
        ((D(2026, 3, 1), D(2026, 3, 31)), (D(2026, 2, 1), D(2026, 2, 28))),
        ((D(2026, 3, 1), D(2026, 3, 30)), (D(2026, 2, 1), D(2026, 2, 28))),  # month to date, clamped
        ((D(2026, 3, 1), D(2026, 3, 17)), (D(2026, 2, 1), D(2026, 2, 17))),
        ((D(2028, 1, 1), D(2028, 2, 29)), (D(2027, 11, 1), D(2027, 12, 31))),  # whole months (leap February)
        ((D(2028, 1, 1), D(2028, 2, 20)), (D(2027, 1, 1), D(2027, 2, 20))),  # year to date
        ((D(2028, 1, 1), D(2028, 1, 1)), (D(2027, 12, 1), D(2027, 12, 1))),  # month to date of one day
        ((D(2026, 5, 10), D(2026, 5, 10)), (D(2026, 5, 9), D(2026, 5, 9))),
    ],
)
def test_previous_period_follows_the_shape_of_the_period(period, previous):
    p = previous_period(Period(*period))
    assert (p.start, p.end) == previous


def test_add_months_clamps_to_the_month_length():
    assert add_months(D(2026, 3, 31), -1) == D(2026, 2, 28)
    assert add_months(D(2024, 3, 31), -1) == D(2024, 2, 29)
    assert add_months(D(2026, 1, 15), -13) == D(2024, 12, 15)
    assert add_months(D(2026, 11, 30), 3) == D(2027, 2, 28)


def test_comparisons_and_their_deltas():
    changes = compare({"income": 110.0, "expenses": 0.0}, {"income": 100.0, "expenses": 0.0})
    assert changes["income"].delta == pytest.approx(10.0) and changes["income"].pct == pytest.approx(0.10)
    assert changes["expenses"].pct is None  # no relative change from 0
    alone = compare({"income": 5.0}, None)["income"]
    assert alone.delta is None and alone.pct is None
    assert Change(-50.0, -100.0).pct == pytest.approx(0.5)  # relative to |previous|


# ---------------------------------------------------------------------------------------------- formatting
def test_money_and_percent_formatting():
    assert fmt.money(1234.5) == "1,234.50"
    assert (
        fmt.money(-0.001) == "0.00"
        and fmt.money(-0.0) == "0.00"
        and fmt.money(-0.005, signed=True) == "-0.01"
    )
    assert fmt.money(-1234.5, signed=True) == "-1,234.50" and fmt.money(3, signed=True) == "+3.00"
    assert fmt.money(None) == fmt.DASH and fmt.money(float("nan")) == fmt.DASH
    assert fmt.percent(0.1234) == "12.3%" and fmt.percent(-0.05, signed=True) == "-5.0%"
    assert fmt.count(1234567) == "1,234,567" and fmt.count(None) == fmt.DASH
    assert fmt.metric_delta(Change(110.0, 100.0)) == "+10.00 (+10.0%)"
    assert fmt.metric_delta(Change(5.0, 0.0)) == "+5.00"
    assert fmt.metric_delta(Change(5.0, None)) is None
    assert fmt.delta_color(True) == "normal" and fmt.delta_color(False) == "inverse"
    assert fmt.interval(-61.2, -48.8, 0.9) == "-61.20 .. -48.80 (90%)"
    assert fmt.reasons([]) == fmt.DASH and fmt.reasons(["a", "b"]) == "a; b"


# ---------------------------------------------------------------------------------------------- SQL
def test_filter_where_binds_every_value_as_a_parameter():
    f = Q.TransactionFilter(
        start=D(2026, 1, 1),
        end=D(2026, 1, 31),
        accounts=("a'; DROP TABLE x; --",),
        categories=("food", "income"),
        types=("Expense",),
        min_amount=5.0,
        max_amount=100.0,
        text="50%_off",
    )
    where, params = Q.filter_where(f)
    assert "DROP" not in where and "food" not in where and "50" not in where
    assert where.count("%s") == len(params) == 10
    assert params[:2] == [D(2026, 1, 1), D(2026, 1, 31)] and params[2] == ["a'; DROP TABLE x; --"]
    assert params[-3:] == ["%50\\%\\_off%"] * 3
    assert Q.filter_where(Q.TransactionFilter()) == ("TRUE", [])
    assert Q.filter_where(Q.TransactionFilter(text="   ")) == ("TRUE", [])


def test_like_pattern_takes_wildcards_literally():
    assert Q.like_pattern("a_b%c\\d") == "%a\\_b\\%c\\\\d%"


def test_sort_columns_come_from_a_fixed_list():
    with pytest.raises(ValueError, match="E003"):
        Q._order_by("amount; DROP TABLE marts.fct_transactions", True)


def test_histogram_from_log_buckets_fills_the_gaps():
    h = Q.histogram_from_buckets([2, 5, 3], [4, 1, 2], per_decade=2)
    assert h["transactions"].tolist() == [4, 2, 0, 1]
    assert h["lower"].tolist() == pytest.approx([10.0, 10**1.5, 100.0, 10**2.5])
    assert h["upper"].iloc[:-1].to_numpy() == pytest.approx(h["lower"].iloc[1:].to_numpy())
    assert Q.histogram_from_buckets([], []).empty


# ---------------------------------------------------------------------------------------------- anomalies
def test_day_batches_never_split_a_day_unless_it_is_larger_than_a_batch():
    days = ["a"] * 3 + ["b"] * 2 + ["c"] * 9 + ["d"]
    batches = A.day_batches(days, max_rows=4)
    assert batches == [(0, 3), (3, 5), (5, 9), (9, 13), (13, 15)]
    covered = [i for a, b in batches for i in range(a, b)]
    assert covered == list(range(len(days)))
    assert A.day_batches([], 4) == []
    assert A.day_batches(["a", "a", "b"], 1000) == [(0, 3)]


def test_request_rows_leave_out_missing_values_and_respect_text_limits():
    row = {
        "txn_date": D(2026, 2, 3),
        "amount": -12.345,
        "category": None,
        "description": "x" * 600,
        "payment_method": float("nan"),
        "reference": "  ",
        "account": "acct",
    }
    assert A.request_row(row) == {"amount": -12.35, "date": "2026-02-03", "description": "x" * 500}
    frame = pd.DataFrame([{**row, "txn_date": D(2026, 2, d)} for d in (1, 1, 2)])
    assert [len(b) for b in A.requests_in_batches(frame, max_rows=2)] == [2, 1]


def test_scores_are_ranked_and_marks_shown():
    frame = pd.DataFrame(
        {
            "transaction_id": ["t1", "t2", "t3"],
            "txn_date": [D(2026, 1, 1)] * 3,
            "amount": [-1.0, -2.0, -3.0],
            "description": ["a", "b", "c"],
        }
    )
    preds = [
        {"anomaly_score": 0.2, "risk_level": "low", "is_anomaly": False, "reasons": []},
        {"anomaly_score": 0.9, "risk_level": "high", "is_anomaly": True, "reasons": ["12x usual"]},
        {"anomaly_score": 0.5, "risk_level": "medium", "is_anomaly": False, "reasons": ["new merchant"]},
    ]
    marked = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
    ranked = A.scored(frame, preds, {"t2": marked})
    assert ranked["transaction_id"].tolist() == ["t2", "t3", "t1"]
    assert (
        ranked.loc[0, "expected"]
        and ranked.loc[0, "marked_at"] == marked
        and ranked.loc[0, "reasons"] == "12x usual"
    )
    assert A.flagged(ranked)["transaction_id"].tolist() == ["t2"]
    assert A.flagged(ranked, include_medium=True)["transaction_id"].tolist() == ["t2", "t3"]
    assert A.flagged(ranked, hide_expected=True).empty
    with pytest.raises(ValueError):
        A.scored(frame, preds[:2])


# ---------------------------------------------------------------------------------------------- the service client
def test_http_answers_become_explicit_states():
    ok = classify(200, b'{"prediction": "software"}')
    assert ok.ok and ok.body == {"prediction": "software"}
    no_model = classify(
        503, b'{"error": {"code": "E002", "message": "E002 no champion for titans_anomaly yet"}}'
    )
    assert no_model.state == "no_model" and no_model.line() == "E002 no champion for titans_anomaly yet"
    auth = classify(401, b'{"error": {"code": "E005", "message": "E005 invalid API key"}}')
    assert auth.state == "unauthorized" and auth.line().startswith("E005 invalid API key")
    limited = classify(429, b'{"error": {"code": "E004", "message": "rate limit"}}', {"Retry-After": "12"})
    assert (
        limited.state == "rate_limited" and limited.retry_after == 12 and limited.line() == "E004 rate limit"
    )
    bad = classify(
        422, b'{"error": {"code": "E003", "field": "amount", "message": "amount: expected a number"}}'
    )
    assert bad.state == "invalid" and bad.field == "amount"
    assert classify(500, b"<html>").state == "error"
    assert classify(200, b"not json").state == "error"


def test_connection_failures_are_down_not_numbers():
    import urllib.error

    out = connection_failure(
        "http://127.0.0.1:9", urllib.error.URLError(ConnectionRefusedError(111, "refused"))
    )
    assert out.state == "down" and out.body is None and "connection refused" in out.line()
    assert out.line().startswith("E002") and "titans serve" in out.line()
    assert (
        connection_failure("http://x", urllib.error.URLError(TimeoutError("timed out")))
        .line()
        .count("timed out")
    )


def test_a_missing_key_sends_nothing():
    c = ServiceClient("http://127.0.0.1:9", None)
    out = c.predict("category", {"amount": 1})
    assert out.state == "unauthorized" and out.code == "E005" and c.calls == 0
    assert ServiceClient.from_env({}).base_url == "http://127.0.0.1:3000"
    assert ServiceClient.from_env(
        {"TITANS_SERVICE_URL": "http://h:1/", "TITANS_API_KEY": "k"}
    ) == ServiceClient("http://h:1", "k")


def test_chunks_of_at_most_a_batch():
    assert [len(c) for c in chunked(list(range(2500)))] == [1000, 1000, 500]
    assert chunked([], 10) == []


class _Recorder(BaseHTTPRequestHandler):
    """A real HTTP server answering /predict/x/batch with one prediction per row, failing on demand."""

    fail_after = 99
    seen: list = []

    def do_POST(self):  # noqa: N802
        import json

        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append((self.path, self.headers.get("Authorization"), len(body["transactions"])))
        if len(type(self).seen) > type(self).fail_after:
            payload, status = {"error": {"code": "E002", "message": "E002 no champion"}}, 503
        else:
            payload, status = (
                {
                    "predictions": [{"i": r["amount"]} for r in body["transactions"]],
                    "count": len(body["transactions"]),
                    "model_version": "3",
                },
                200,
            )
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def recorder():
    _Recorder.seen = []
    _Recorder.fail_after = 99
    server = HTTPServer(("127.0.0.1", free_port()), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_batches_go_in_order_with_the_key_and_the_first_failure_wins(recorder):
    c = ServiceClient(recorder, "secret-key")
    out = c.predict_batches("anomaly", [[{"amount": i} for i in range(3)], [], [{"amount": 3}]])
    assert out.ok and [p["i"] for p in out.body["predictions"]] == [0, 1, 2, 3]
    assert out.body["model_versions"] == ["3"] and out.body["requests"] == 2
    assert _Recorder.seen == [
        ("/predict/anomaly/batch", "Bearer secret-key", 3),
        ("/predict/anomaly/batch", "Bearer secret-key", 1),
    ]
    _Recorder.fail_after = 3
    out = c.predict_batches("anomaly", [[{"amount": 1}], [{"amount": 2}]])
    assert out.state == "no_model" and out.body is None
    with pytest.raises(ValueError):
        c.predict_batches("anomaly", [[{"amount": 1}] * 1001])


def test_nothing_listening_is_down():
    out = ServiceClient(f"http://127.0.0.1:{free_port()}", "k" * 20, timeout=5).cashflow(30)
    assert out.state == "down" and "connection refused" in out.message


# ---------------------------------------------------------------------------------------------- uploads
def test_an_uncategorised_csv_becomes_category_requests():
    data = (
        "\ufefftransaction date;Memo;Amount;Vendor;Notes\r\n"
        "2026-03-01;ADOBE *CREATIVE CLD;$-54.99;Adobe;x\r\n"
        "03/01/2026;Ambiguous date;-1;;y\r\n"
        "2026-03-02;SHELL 0041;(41.20);;z\r\n"
        ";;;;\r\n"
        "2026-03-03;;-5;;w\r\n"
        "2026-03-04;Rent;abc;;v"
    ).encode()
    up = uploads.read_uncategorised(data)
    assert up.requests == [
        {"amount": -54.99, "description": "ADOBE *CREATIVE CLD", "date": "2026-03-01", "reference": "Adobe"},
        {"amount": -41.2, "description": "SHELL 0041", "date": "2026-03-02"},
    ]
    assert up.rows["line_number"].tolist() == [2, 4] and up.rows["Notes"].tolist() == ["x", "z"]
    assert up.rejected["line_number"].tolist() == [3, 6, 7]
    assert "YYYY-MM-DD" in up.rejected["reason"].iloc[0] and "Description" in up.rejected["reason"].iloc[1]
    assert "not a number" in up.rejected["reason"].iloc[2]
    preds = [
        {
            "prediction": "software",
            "confidence": 0.91234,
            "alternatives": [
                {"category": "software", "confidence": 0.91},
                {"category": "other", "confidence": 0.05},
            ],
        },
        {"prediction": "fuel", "confidence": 0.6, "alternatives": []},
    ]
    out = uploads.with_predictions(up.rows, preds)
    assert out["predicted_category"].tolist() == ["software", "fuel"] and out["confidence"].tolist() == [
        0.9123,
        0.6,
    ]
    assert out["alternatives"].tolist() == ["other (0.05)", ""]
    assert uploads.to_csv(out).decode().splitlines()[0].endswith("predicted_category,confidence,alternatives")


FORMULAS = [
    '=HYPERLINK("http://x","y")',
    "+1+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(A1:A2)",
    "\tTAB",
    "\rCR",
]


def test_csv_exports_neutralise_spreadsheet_formulas_and_keep_numbers():
    """OWASP CSV injection: a text cell starting with = + - @ tab or CR gets a leading quote."""
    for cell in FORMULAS:
        assert uploads.neutralise_formula(cell) == "'" + cell
    for cell in [
        "ADOBE *CREATIVE CLD",
        "-54.99",
        "+12",
        "-1,234.50",
        "1e3",
        "",
        "a=b",
        "'quoted",
        None,
        -54.99,
        3,
    ]:
        assert uploads.neutralise_formula(cell) == cell
    frame = pd.DataFrame(
        {
            "line_number": [2, 3],
            "Description": [FORMULAS[0], FORMULAS[5]],
            "Amount": ["-54.99", "@1"],
            "confidence": [-0.5, 0.9],
            "=evil header": ["x", "-y"],
        }
    )
    back = pd.read_csv(__import__("io").BytesIO(uploads.to_csv(frame)), dtype=str, keep_default_na=False)
    assert back.columns.tolist() == ["line_number", "Description", "Amount", "confidence", "'=evil header"]
    assert back["Description"].tolist() == ["'" + FORMULAS[0], "'" + FORMULAS[5]]
    assert back["Amount"].tolist() == ["-54.99", "'@1"] and back["confidence"].tolist() == ["-0.5", "0.9"]
    assert back["'=evil header"].tolist() == ["x", "'-y"]


@pytest.mark.integration
def test_the_transactions_csv_download_neutralises_formulas_in_text_columns_only(embedded_db):
    import io

    from conftest import scratch_database

    with scratch_database(embedded_db) as db:
        with db.connect() as conn, conn.cursor() as cur:
            cur.execute("""CREATE SCHEMA marts;
                CREATE TABLE marts.fct_transactions (txn_date date, account text, txn_type text, description text,
                    amount numeric(14,2), abs_amount numeric(14,2), category text, payment_method text,
                    status text, reference text, merchant text, transaction_id text)""")
            rows = [
                (
                    dt.date(2026, 3, i + 1),
                    "checking",
                    "Expense",
                    cell,
                    -10.5 - i,
                    10.5 + i,
                    "software",
                    "credit_card",
                    "paid",
                    "-ref" if i == 0 else "ACME",
                    "m",
                    f"t{i}",
                )
                for i, cell in enumerate(FORMULAS)
            ]
            rows.append(
                (
                    dt.date(2026, 3, 9),
                    "checking",
                    "Income",
                    "PAYROLL",
                    1200,
                    1200,
                    None,
                    "bank_transfer",
                    "received",
                    "ACME",
                    "m",
                    "t9",
                )
            )
            cur.executemany(
                "INSERT INTO marts.fct_transactions VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)", rows
            )
        data = Q.transactions_csv(db, Q.TransactionFilter(), "date", False)
    back = pd.read_csv(io.BytesIO(data), keep_default_na=False)
    assert back["description"].tolist() == ["'" + c for c in FORMULAS] + ["PAYROLL"]
    assert back["reference"].tolist()[:2] == ["'-ref", "ACME"]
    assert back["amount"].dtype.kind == "f" and back["amount"].tolist() == [
        -10.5,
        -11.5,
        -12.5,
        -13.5,
        -14.5,
        -15.5,
        1200.0,
    ]
    assert back["txn_date"].tolist()[0] == "2026-03-01" and back.columns.tolist() == list(Q.TABLE_COLUMNS)


def test_an_upload_without_the_required_columns_is_one_e003_line():
    with pytest.raises(ContractError, match="E003 .*missing column.*Amount"):
        uploads.read_uncategorised(b"Date,Description\n2026-01-01,x\n")
    with pytest.raises(ContractError, match="E003 .*empty"):
        uploads.read_uncategorised(b"  \n")
    with pytest.raises(ContractError, match="more than 2 rows"):
        uploads.read_uncategorised(b"Date,Description,Amount\n" + b"2026-01-01,x,1\n" * 3, max_rows=2)


# ---------------------------------------------------------------------------------------------- views
def test_backtest_rows_show_the_champion_beside_its_best_baseline():
    entry = {
        "champion": "2",
        "best_baseline": "seasonal_naive_7",
        "metrics": {
            "mase": 0.81234,
            "mae": 120.5,
            "interval_coverage": 0.88,
            "total_error_30d_pct": 12.34,
            "baseline.seasonal_naive_7.mase": 1.0,
            "baseline.seasonal_naive_7.mae": 150.0,
        },
    }
    rows = views.backtest_rows(entry)
    col = "best baseline (seasonal_naive_7)"
    assert rows[0] == {"metric": "MASE (vs seasonal naive 7)", "champion": "0.8123", col: "1"}
    assert rows[1][col] == "150" and rows[2]["champion"] == "12.3%" and rows[3]["champion"] == "88%"
    assert rows[3][col] == fmt.DASH


def test_champion_rows_and_check_rows():
    models = {
        "category": {
            "name": "titans_category",
            "champion": "4",
            "primary_metric": "macro_f1",
            "value": 0.9,
            "best_baseline": "lookup",
            "best_baseline_value": 0.7,
            "higher_is_better": True,
            "metrics": {"macro_f1": 0.9},
        },
        "amount": {"name": "titans_amount", "champion": None, "error": "E002 MLflow registry unreachable"},
    }
    rows = views.champion_rows(models)
    assert rows[0]["champion"] == "v4" and rows[0]["best baseline"] == "lookup: 0.7"
    assert rows[1]["note"] == "E002 MLflow registry unreachable"
    assert views.metric_table(models).to_dict("records") == [
        {"model": "titans_category", "metric": "macro_f1", "value": 0.9}
    ]
    checks = views.check_rows(
        {
            "b": {"status": "passed"},
            "a": {"status": "failed"},
            "c": {"status": "not run"},
            "d": {"status": "skipped"},
        }
    )
    assert checks["check"].tolist() == ["a", "d", "c", "b"]
    forecast = views.forecast_frame(
        {"forecast": [{"date": "2026-01-02", "predicted_amount": 1.0, "lower": 0.0, "upper": 2.0}]}
    )
    assert forecast["date"].iloc[0] == pd.Timestamp("2026-01-02")


# ---------------------------------------------------------------------------------------------- the command
def test_the_dashboard_command_pins_the_environment_and_runs_streamlit_headless(tmp_path):
    s = Settings.from_env({"TITANS_HOME": str(tmp_path / "h"), "TITANS_LANDING_DIR": str(tmp_path / "raw")})
    env = dashboard_environment({"PYTHONPATH": "/x", "TITANS_API_KEY": "k"}, s, "postgresql://u@/db?host=/s")
    assert env["TITANS_DATABASE_URL"] == "postgresql://u@/db?host=/s" and env["TITANS_HOME"] == str(
        tmp_path / "h"
    )
    assert env["PYTHONPATH"].endswith(":/x") and env["STREAMLIT_BROWSER_GATHER_USAGE_STATS"] == "false"
    assert env["TITANS_API_KEY"] == "k"
    argv = streamlit_argv("127.0.0.1", 8502)
    assert argv[1:5] == ["-m", "streamlit", "run", str(APP)] and APP.exists()
    flags = dict(zip(argv[5::2], argv[6::2]))
    assert flags == {
        "--server.headless": "true",
        "--browser.gatherUsageStats": "false",
        "--server.address": "127.0.0.1",
        "--server.port": "8502",
        "--server.fileWatcherType": "none",
        "--client.toolbarMode": "minimal",
    }


def test_outcome_line_keeps_a_code_once():
    assert Outcome("no_model", code="E002", message="E002 x").line() == "E002 x"
    assert Outcome("no_model", code="E002", message="x").line() == "E002 x"
    assert Outcome("ok").line() == "ok"


def test_balance_notes_name_the_accounts_without_an_opening_balance_or_a_stated_currency():
    accounts = pd.DataFrame(
        {
            "account": ["checking", "card", "eur_card"],
            "currency": ["USD", None, None],
            "balance": [10.0, -5.0, 1.0],
            "balance_date": [D(2026, 1, 31)] * 3,
            "balance_source": ["statement", "none", "user"],
            "balance_known": [True, False, True],
        }
    )
    notes = views.balance_notes(accounts, "USD", "USD")
    assert len(notes) == 2
    assert notes[0].startswith("No opening balance for card:") and "set-balance" in notes[0]
    assert "card, eur_card state no currency: taken to be USD" in notes[1]
    # in another currency than the reporting one, an unstated currency is not this one's business
    assert views.balance_notes(accounts[accounts["balance_known"]], "EUR", "USD") == []
    assert views.balance_notes(accounts.iloc[:0], "USD", "USD") == []
    rows = views.account_balance_rows(accounts)
    assert list(rows["opening balance from"]) == ["bank statement", "unknown (from 0)", "set by you"]
    assert list(rows.columns) == ["account", "balance", "as of", "opening balance from"]
