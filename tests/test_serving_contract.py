"""The API contract against a real `titans serve` (one worker, the models of test_serving_http's `store`):
schemathesis with `--checks all` finds nothing, every status the service answers is declared in its
OpenAPI document for that operation, the date range is a schema constraint the service agrees with,
and every error body has the documented {code, message, field} (issue 15, defect 7).

The server runs without rate limits (TITANS_RATE_LIMIT_IP/KEY=none): with a limit, schemathesis'
`missing_required_header` check counts the 429 a throttled unauthenticated request gets (the IP limit
applies before the key, on purpose: guessing keys is limited too) as a missing 401. The 429 body and
header are checked in test_serving_unit.py and test_serving_faults.py."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from test_serving_http import (  # noqa: F401  (store: a module fixture)
    AUTH,
    KEY,
    REQUESTS,
    SCHEMATHESIS_CONFIG,
    Server,
    store,
)

from titans_assets.lib.serving import openapi

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(store, tmp_path_factory):  # noqa: F811
    env = {
        **os.environ,
        **store["env"],
        "TITANS_API_KEYS": KEY,
        "TITANS_MODEL_POLL_SECONDS": "0",
        "TITANS_RATE_LIMIT_IP": "none",
        "TITANS_RATE_LIMIT_KEY": "none",
    }
    for name in ("BENTOML_CONFIG_OPTIONS", "TITANS_REDIS_URL", "TITANS_TRUSTED_PROXIES"):
        env.pop(name, None)
    srv = Server(env, workers=1, log=tmp_path_factory.mktemp("contract") / "serve.log")
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.stop()


def test_schemathesis_with_all_checks_finds_nothing(server, tmp_path):
    """`schemathesis run --checks all` (its CLI, as a tester runs it): examples, coverage and fuzzing
    phases over every operation (the correction route: in test_serving_corrections.py), bounded (30 examples per operation, a fixed seed, 4 minutes at most)."""
    config = tmp_path / "schemathesis.toml"
    config.write_text(SCHEMATHESIS_CONFIG)
    st = str(Path(sys.executable).with_name("schemathesis"))
    proc = subprocess.run(
        [
            st,
            "--config-file",
            str(config),
            "--no-color",
            "run",
            f"{server.base}/openapi.json",
            "--checks",
            "all",
            "-H",
            f"Authorization: Bearer {KEY}",
            "--max-examples",
            "30",
            "--seed",
            "15",
            "--generation-database",
            "none",
            "--request-timeout",
            "30",
            # no warehouse here: every transaction id is unknown (404); tests/test_serving_corrections.py
            # runs every check on this operation against real transactions
            "--exclude-path",
            "/transactions/{transaction_id}/category",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=tmp_path,
    )
    out = proc.stdout + proc.stderr
    summary = "\n".join(
        line[:300]
        for line in out.splitlines()
        if re.match(r"^(_{5,}|- ST|\s+Expected|\s+Invalid component|\[\d{3}\]|\s+`\{)", line)
    )
    assert proc.returncode == 0 and "No issues found" in out, summary or out[-3000:]
    generated = re.search(r"(\d+) generated", out)
    assert generated and int(generated.group(1)) > 500, out[-1500:]  # it really exercised the API


def _declared(spec: dict, method: str, path: str) -> set[int]:
    return {int(s) for s in spec["paths"][path][method.lower()]["responses"]}


def test_every_status_the_service_answers_is_declared_for_its_operation(server):
    """Each (operation, status) met here is in /openapi.json, with the error shape it declares: the
    413 of a 1,001-row batch, 400, 415, 422, 401 and the reload of an unknown model (E003, 404)."""
    spec = httpx.get(f"{server.base}/openapi.json").json()
    big = {"transactions": [REQUESTS["category"]] * 1001}
    calls = [
        (
            "POST",
            "/predict/category/batch",
            "/predict/category/batch",
            {"json": big, "headers": AUTH},
            413,
            "E003",
        ),
        (
            "POST",
            "/predict/category",
            "/predict/category",
            {"content": b"{", "headers": {**AUTH, "content-type": "application/json"}},
            400,
            "E003",
        ),
        (
            "POST",
            "/predict/amount",
            "/predict/amount",
            {"content": b"x=1", "headers": {**AUTH, "content-type": "application/x-www-form-urlencoded"}},
            415,
            "E003",
        ),
        (
            "POST",
            "/predict/anomaly",
            "/predict/anomaly",
            {"json": {**REQUESTS["anomaly"], "date": "1899-12-31"}, "headers": AUTH},
            422,
            "E003",
        ),
        ("POST", "/predict/cashflow", "/predict/cashflow", {"json": {"horizon_days": 3}}, 401, "E005"),
        (
            "GET",
            "/models/status",
            "/models/status",
            {"headers": {"Authorization": "Bearer wrong-key-0123456789"}},
            401,
            "E005",
        ),
        ("POST", "/models/no_such_model/reload", "/models/{name}/reload", {"headers": AUTH}, 404, "E003"),
        ("POST", "/models/category/reload", "/models/{name}/reload", {"headers": AUTH}, 200, None),
        ("GET", "/models/health", "/models/health", {"headers": AUTH}, 200, None),
        ("GET", "/health", "/health", {}, 200, None),
    ]
    error_keys = set(spec["components"]["schemas"]["Error"]["properties"]["error"]["required"])
    assert error_keys == {"code", "message", "field"}
    with httpx.Client(base_url=server.base, timeout=30) as c:
        for method, url, template, kwargs, status, code in calls:
            r = c.request(method, url, **kwargs)
            assert r.status_code == status, (url, r.status_code, r.text[:300])
            assert status in _declared(spec, method, template), (method, template, status)
            if code is not None:
                body = r.json()["error"]
                assert set(body) == error_keys and body["code"] == code, (url, body)
    unknown = httpx.post(f"{server.base}/models/no_such_model/reload", headers=AUTH).json()["error"]
    assert unknown["field"] == "name" and "unknown model" in unknown["message"]
    r = httpx.post(f"{server.base}/predict/cashflow", json={"horizon_days": 3})
    assert r.json()["error"]["field"] == "Authorization" and r.headers["WWW-Authenticate"]
    for path, ops in spec["paths"].items():  # what every protected operation can answer besides success
        for method, op in ops.items():
            if op.get("security"):
                assert {401, 429, 500, 503} <= _declared(spec, method, path), (method, path)
            if "requestBody" in op:
                assert {400, 413, 415, 422} <= _declared(spec, method, path), (method, path)


def test_the_date_range_is_a_schema_constraint_the_service_agrees_with(server):
    """The document's date pattern (with format: date) admits exactly the years the validator does:
    the bounds are accepted by both, the days just outside rejected by both."""
    spec = httpx.get(f"{server.base}/openapi.json").json()
    for name in ("CategoryRequest", "AmountRequest", "AnomalyRequest"):
        date = spec["components"]["schemas"][name]["properties"]["date"]
        assert date["format"] == "date" and date["pattern"] == openapi.DATE_PATTERN, date
    pattern = re.compile(openapi.DATE_PATTERN)
    with httpx.Client(base_url=server.base, headers=AUTH, timeout=30) as c:
        for day, ok in (
            ("1900-01-01", True),
            ("2100-12-31", True),
            ("1899-12-31", False),
            ("2101-01-01", False),
            ("0130-03-05", False),
            ("9999-12-31", False),
        ):
            assert bool(pattern.match(day)) is ok, day
            r = c.post("/predict/category", json={**REQUESTS["category"], "date": day})
            assert (r.status_code == 200) is ok, (day, r.status_code, r.text[:200])
            if not ok:
                assert r.status_code == 422 and r.json()["error"]["field"] == "date"
