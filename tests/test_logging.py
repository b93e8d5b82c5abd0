"""Structured logs (TITANS_LOG_FORMAT=json): one JSON object per line, never a key or a request body.

The formatter and the run-log pipe on their own; the service's access line through the real ASGI wrapper
(`Instrumented`) around a Starlette app; and a real `titans materialize` whose run log is JSON lines with
the run id. tests/test_prometheus.py checks the log of a real `titans serve` (two workers) in JSON too.
"""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import child_env
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from titans_assets.lib.observability import logs as L
from titans_assets.lib.observability import metrics as M

KEY = "test-key-6f1d2c9a8b7e4d3c"
SECRET_BODY = "SECRET-DESCRIPTION-7731"


def capture(logger: str, formatter: logging.Formatter) -> tuple[io.StringIO, logging.Handler]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    logging.getLogger(logger).addHandler(handler)
    return stream, handler


def test_log_format_defaults_to_text_and_rejects_anything_else():
    assert L.log_format({}) == "text" and L.log_format({"TITANS_LOG_FORMAT": " JSON "}) == "json"
    with pytest.raises(ValueError, match="E003"):
        L.log_format({"TITANS_LOG_FORMAT": "xml"})
    assert L.use_json(environ={}) is False


def test_a_json_line_carries_the_fields_and_no_secret():
    formatter = L.JsonFormatter(secrets=L.env_secrets({"TITANS_API_KEYS": f"{KEY},other-key-0123456789"}))
    stream, handler = capture("titans.test.json", formatter)
    log = logging.getLogger("titans.test.json")
    log.setLevel(logging.INFO)
    try:
        log.info(
            "predicted for key %s via postgresql://u:hunter2@db/x with Authorization: Bearer abc.def",
            KEY,
            extra=L.fields(request_id="r1", model="category", model_version="3", latency_seconds=0.01),
        )
        try:
            raise RuntimeError(f"boom {KEY}")
        except RuntimeError:
            log.exception("failed", extra={"run_id": "run-9"})  # a plain attribute works too
    finally:
        logging.getLogger("titans.test.json").removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2  # the traceback stays inside its line
    first, second = (json.loads(line) for line in lines)
    assert {"timestamp", "level", "component", "message"} <= set(first)
    assert (
        first["level"],
        first["component"],
        first["request_id"],
        first["model"],
        first["model_version"],
        first["latency_seconds"],
    ) == ("info", "titans.test.json", "r1", "category", "3", 0.01)
    assert (
        second["run_id"] == "run-9" and "RuntimeError" in second["exception"] and second["level"] == "error"
    )
    text = stream.getvalue()
    assert KEY not in text and "hunter2" not in text and "abc.def" not in text


def test_the_access_line_and_the_metrics_of_one_request():
    async def predict(request: Request):
        await request.body()
        M.note(request.scope, model_version="7", model_kind="model")
        return JSONResponse({"prediction": "software", "model_version": "7"})

    app = Starlette(routes=[Route("/predict/category", predict, methods=["POST"])])
    stream, handler = capture("titans.serving.access", L.JsonFormatter())
    access = logging.getLogger("titans.serving.access")
    previous = access.level
    access.setLevel(logging.INFO)
    before = (
        M.service_metrics()
        .requests.labels(route="/predict/category", method="POST", status="200")
        ._value.get()
    )
    try:
        with TestClient(M.Instrumented(app, access_lines=True)) as client:
            r = client.post(
                "/predict/category",
                json={"description": SECRET_BODY},
                headers={"Authorization": f"Bearer {KEY}", "X-Request-ID": "abc-123"},
            )
            assert r.status_code == 200 and r.headers["x-request-id"] == "abc-123"
            r = client.post("/predict/category", json={}, headers={"X-Request-ID": "bad id with spaces"})
            assert len(r.headers["x-request-id"]) == 32  # not the client's malformed id: a new one
    finally:
        access.removeHandler(handler)
        access.setLevel(previous)
    after = (
        M.service_metrics()
        .requests.labels(route="/predict/category", method="POST", status="200")
        ._value.get()
    )
    assert after - before == 2
    records = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(records) == 2
    first = records[0]
    assert (
        first["request_id"],
        first["route"],
        first["method"],
        first["status"],
        first["model"],
        first["model_version"],
        first["model_kind"],
    ) == ("abc-123", "/predict/category", "POST", 200, "category", "7", "model")
    assert 0 <= first["latency_seconds"] < 60 and first["worker_pid"] == os.getpid()
    text = stream.getvalue()
    assert SECRET_BODY not in text and KEY not in text and "Authorization" not in text


def test_the_run_log_pipe_turns_every_line_into_json_with_late_fields(tmp_path):
    log = L.JsonLinesFile(tmp_path / "run.log", secrets=(KEY,), command="materialize")
    os.write(log.fileno(), f"plain line from a child with {KEY}\n".encode())
    os.write(log.fileno(), b'{"info": {"msg": "dbt json line"}, "level": "debug"}\n')
    subprocess.run([sys.executable, "-c", "print('from a subprocess')"], stdout=log.fileno(), check=True)
    log.write("written through sys.stdout\n")
    log.flush()
    log.record("asset done", component="titans.run.progress", event="step")
    log.close(run_id="run-42")
    records = [json.loads(line) for line in (tmp_path / "run.log").read_text().splitlines()]
    messages = [r.get("message") for r in records]
    assert (
        "from a subprocess" in messages
        and "written through sys.stdout" in messages
        and "asset done" in messages
    )
    assert any(r.get("info") == {"msg": "dbt json line"} and r["level"] == "debug" for r in records)
    assert all(
        r["run_id"] == "run-42" and r["command"] == "materialize" and "timestamp" in r for r in records
    )
    assert KEY not in (tmp_path / "run.log").read_text()


@pytest.mark.integration
def test_a_real_run_log_is_json_lines_with_the_run_id(embedded_db, tmp_path):
    from conftest import scratch_database

    from titans_assets.lib.generator import generate

    generate(tmp_path / "raw", rows=150, seed=5, end_date=__import__("datetime").date(2026, 6, 30))
    with scratch_database(embedded_db) as db:
        env = {
            **child_env(),
            "TITANS_HOME": str(tmp_path / "home"),
            "TITANS_DATABASE_URL": db.url,
            "TITANS_LANDING_DIR": str(tmp_path / "raw"),
            "TITANS_LOG_FORMAT": "json",
            "TITANS_API_KEYS": KEY,
        }
        proc = subprocess.run(
            [str(Path(sys.executable).with_name("titans")), "materialize", "--select", "key:raw/*"],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (log_path,) = (tmp_path / "home" / "logs").glob("run-*.log")
    lines = log_path.read_text().splitlines()
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    run_id = proc.stdout.split("run ", 1)[1].split()[0]
    assert records and all(
        r["run_id"] == run_id and {"timestamp", "level", "component"} <= set(r) for r in records
    )
    assert any(r["component"] == "titans.run.progress" for r in records)
    summary = [r for r in records if r.get("event") == "run_finished"]
    assert len(summary) == 1 and summary[0]["success"] is True and summary[0]["latency_seconds"] > 0
    assert KEY not in log_path.read_text()
