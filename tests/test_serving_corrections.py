"""PUT /transactions/{transaction_id}/category over HTTP: a real `titans serve` (BentoML, one worker) on a
free loopback port, on a scratch warehouse in the test PostgreSQL holding a small marts.fct_transactions.
The key is required, the audit names the key's id (never the key), the correction lands in
app.category_corrections and its log, an unknown transaction is 404 E003, limits and metrics apply like
on every route, OpenAPI documents it, and a warehouse that is down answers E001 in one line."""

from __future__ import annotations

import datetime as dt
import os
import re

import httpx
import pytest
from conftest import scratch_database
from support import free_port, get_until_up
from test_corrections import make_marts
from test_serving_http import AUTH, KEY, Server, client_ip, fresh

from titans_assets.lib.categories.corrections import ensure_tables
from titans_assets.lib.serving.auth import KeyRing
from titans_assets.lib.serving.errors import ApiError
from titans_assets.lib.serving.runtime import Runtime

pytestmark = pytest.mark.integration

KEY_ID = KeyRing.from_env({"TITANS_API_KEYS": KEY}).identify(KEY)
IP_LIMIT = 8
ROWS = [("t-coffee", "starbucks", "Food & Dining"), ("t-fuel", "shell", None), ("t-rent", "landlord", "Rent")]


@pytest.fixture(scope="module")
def warehouse(embedded_db):
    with scratch_database(embedded_db) as db:
        make_marts(db, ROWS)
        ensure_tables(db)
        yield db


@pytest.fixture(scope="module")
def server(warehouse, tmp_path_factory):
    root = tmp_path_factory.mktemp("corrections")
    env = {
        **os.environ,
        "TITANS_HOME": str(root / "home"),
        "TITANS_LANDING_DIR": str(root / "raw"),
        "TITANS_DATABASE_URL": warehouse.url,
        "TITANS_API_KEYS": KEY,
        "TITANS_MODEL_POLL_SECONDS": "0",
        "TITANS_RATE_LIMIT_IP": f"{IP_LIMIT}/minute",
        "TITANS_RATE_LIMIT_KEY": "100000/hour",
        "TITANS_TRUSTED_PROXIES": "127.0.0.1",
    }  # the tests play a proxy on the host (client_ip())
    for name in ("BENTOML_CONFIG_OPTIONS", "TITANS_REDIS_URL"):
        env.pop(name, None)
    srv = Server(env, workers=1, log=root / "serve.log")
    try:  # no champions here: the service answers once the worker has started (health: unhealthy)
        assert get_until_up(f"{srv.base}/health", srv.proc), srv.log.read_text()[-3000:]
        yield srv
    finally:
        srv.stop()


def put(server, transaction_id: str, body, headers=None) -> httpx.Response:
    return fresh(
        "PUT",
        f"{server.base}/transactions/{transaction_id}/category",
        json=body,
        headers={**AUTH, **client_ip(), **(headers or {})},
    )


def rows(db, sql: str, params=()) -> list[tuple]:
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def test_a_correction_needs_a_key(server, warehouse):
    url = f"{server.base}/transactions/t-fuel/category"
    r = httpx.put(url, json={"category": "Fuel"}, headers=client_ip())
    assert r.status_code == 401 and r.json()["error"]["code"] == "E005" and r.headers["WWW-Authenticate"]
    r = httpx.put(
        url, json={"category": "Fuel"}, headers={**client_ip(), "Authorization": "Bearer not-a-key-at-all"}
    )
    assert r.status_code == 401 and r.json()["error"]["message"] == "invalid API key"
    assert rows(
        warehouse, "SELECT count(*) FROM app.category_correction_log WHERE transaction_id = 't-fuel'"
    ) == [(0,)]


def test_a_correction_is_stored_and_audited_with_the_key_id(server, warehouse):
    before = rows(warehouse, "SELECT now()")[0][0]
    r = put(server, "t-coffee", {"category": "  Coffee   Shops "})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["transaction_id"] == "t-coffee"
    assert (body["old_category"], body["new_category"]) == ("Food & Dining", "Coffee Shops")
    assert body["corrected_by"] == KEY_ID and re.fullmatch(r"[0-9a-f]{16}", KEY_ID) and KEY not in r.text
    at = dt.datetime.fromisoformat(body["corrected_at"])
    assert before <= at <= rows(warehouse, "SELECT now()")[0][0]
    assert rows(
        warehouse,
        "SELECT category, previous_category, corrected_by, corrected_at"
        " FROM app.category_corrections WHERE transaction_id = 't-coffee'",
    ) == [("Coffee Shops", "Food & Dining", KEY_ID, at)]
    # corrected again: the latest wins, the log keeps both, the old value is the first correction
    r = put(server, "t-coffee", {"category": "Dining"})
    assert r.status_code == 200 and (r.json()["old_category"], r.json()["new_category"]) == (
        "Coffee Shops",
        "Dining",
    )
    assert rows(
        warehouse, "SELECT category FROM app.category_corrections WHERE transaction_id = 't-coffee'"
    ) == [("Dining",)]
    assert rows(
        warehouse,
        "SELECT old_category, new_category, corrected_by FROM app.category_correction_log"
        " WHERE transaction_id = 't-coffee' ORDER BY id",
    ) == [("Food & Dining", "Coffee Shops", KEY_ID), ("Coffee Shops", "Dining", KEY_ID)]
    # a transaction the export left without a category starts from null
    r = put(server, "t-fuel", {"category": "Fuel"})
    assert r.status_code == 200 and r.json()["old_category"] is None


def test_an_unknown_transaction_is_404_e003(server, warehouse):
    r = put(server, "no-such-transaction", {"category": "Fuel"})
    assert r.status_code == 404, r.text
    error = r.json()["error"]
    assert (
        error["code"] == "E003"
        and error["field"] == "transaction_id"
        and "not a known transaction" in error["message"]
    )
    assert rows(
        warehouse,
        "SELECT count(*) FROM app.category_correction_log WHERE transaction_id = 'no-such-transaction'",
    ) == [(0,)]


@pytest.mark.parametrize(
    ("body", "field", "status"),
    [
        ({"category": "   "}, "category", 422),
        ({"category": "x" * 65}, "category", 422),
        ({"category": 7}, "category", 422),
        ({}, "category", 422),
        ({"category": "Fuel", "note": "x"}, "note", 422),
        (["Fuel"], "body", 422),
    ],
)
def test_a_bad_body_is_e003_naming_the_field_and_stores_nothing(server, warehouse, body, field, status):
    r = put(server, "t-rent", body)
    assert r.status_code == status and r.json()["error"]["code"] == "E003", r.text
    assert r.json()["error"]["field"] == field
    assert rows(
        warehouse, "SELECT count(*) FROM app.category_correction_log WHERE transaction_id = 't-rent'"
    ) == [(0,)]


def test_limits_metrics_and_openapi_cover_the_route(server):
    ip = client_ip()
    statuses = [
        fresh(
            "PUT",
            f"{server.base}/transactions/t-rent/category",
            json={"category": "Rent"},
            headers={**AUTH, **ip},
        ).status_code
        for _ in range(IP_LIMIT + 2)
    ]
    assert statuses[:IP_LIMIT] == [200] * IP_LIMIT and statuses[IP_LIMIT:] == [429, 429], statuses
    text = httpx.get(f"{server.base}/metrics").text
    assert 'route="/transactions/{transaction_id}/category"' in text
    assert "t-rent" not in text and "no-such-transaction" not in text  # one label, whatever the id
    assert re.search(
        r'titans_errors_total\{code="E004",route="/transactions/\{transaction_id\}/category"\} \d', text
    )
    spec = httpx.get(f"{server.base}/openapi.json").json()
    op = spec["paths"]["/transactions/{transaction_id}/category"]["put"]
    assert op["security"] == [{"bearer": []}]
    assert {"200", "400", "401", "404", "413", "415", "422", "429", "500", "503"} <= set(op["responses"])
    request = spec["components"]["schemas"]["CorrectionRequest"]
    assert request["required"] == ["category"] and request["properties"]["category"]["maxLength"] == 64
    assert set(spec["components"]["schemas"]["Correction"]["required"]) == {
        "transaction_id",
        "old_category",
        "new_category",
        "corrected_by",
        "corrected_at",
    }


def test_a_warehouse_that_is_down_is_one_e001_line(tmp_path):
    """Nothing listens on the warehouse's port: E001 naming the warehouse, never its address."""
    port = free_port()
    rt = Runtime.from_env(
        {
            "TITANS_HOME": str(tmp_path),
            "TITANS_API_KEYS": KEY,
            "TITANS_DATABASE_URL": f"postgresql://postgres:s3cret@127.0.0.1:{port}/titans",
        }
    )
    with pytest.raises(ApiError) as err:
        rt.correct_category("t-coffee", {"category": "Fuel"}, KEY_ID)
    e = err.value
    assert (e.status, e.code) == (503, "E001") and "\n" not in e.message
    assert e.message.startswith("the warehouse database is unreachable"), e.message
    for leak in ("s3cret", str(port), "127.0.0.1", "postgresql://"):
        assert leak not in e.message, (leak, e.message)


@pytest.mark.parametrize(
    ("path", "template"),
    [
        (
            "/transactions/3fe6ed640d5f9416e4218d1f447576d8/category",
            "/transactions/{transaction_id}/category",
        ),
        ("/transactions/a b/category", "/transactions/{transaction_id}/category"),
        ("/transactions/a/b/category", "/{unmatched}"),
        ("/transactions//category", "/{unmatched}"),
        ("/transactions/a\x00/category", "/{unmatched}"),
        ("/transactions/a/category/", "/{unmatched}"),
    ],
)
def test_the_route_is_one_metrics_label_whatever_the_id(path, template):
    from titans_assets.lib.serving.routes import template_of

    assert template_of(path) == template


def test_openapi_fuzz_of_the_correction_route(server):
    """schemathesis, every check, on this operation (positive and negative cases, 25 examples each):
    schema-valid bodies are accepted (200, or 404 for an id that is no transaction), the rest rejected
    with a declared 4xx, every answer as documented."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import CHECKS
    from schemathesis.config import SchemathesisConfig
    from schemathesis.generation import GenerationMode
    from test_serving_http import SCHEMATHESIS_CONFIG

    schema = schemathesis.openapi.from_url(
        f"{server.base}/openapi.json", config=SchemathesisConfig.from_str(SCHEMATHESIS_CONFIG)
    )
    operation = schema["/transactions/{transaction_id}/category"]["PUT"]
    checks = CHECKS.get_all()
    calls = 0
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=25,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        def run(case):
            nonlocal calls
            calls += 1
            case.call_and_validate(base_url=server.base, headers={**AUTH, **client_ip()}, checks=checks)

        run()
    assert calls >= 40
