"""Serving logic without a server or a registry: validation, the error shape, API keys, rate limits
(memory and the machine's Redis), the model holder's swap/poll/failure rules, route templates, the
OpenAPI document, the `serve` command's environment, and the Starlette app on stand-in models."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid

import pandas as pd
import pytest
from starlette.testclient import TestClient

from titans_assets.lib.serving import listener, openapi, routes
from titans_assets.lib.serving import validation as V
from titans_assets.lib.serving.app import create_app
from titans_assets.lib.serving.auth import KeyConfigError, KeyRing, bearer_token, hash_key
from titans_assets.lib.serving.errors import ApiError
from titans_assets.lib.serving.holder import Loaded, ModelHolder
from titans_assets.lib.serving.ratelimit import RateLimitConfig, RateLimitConfigError, RateLimiter
from titans_assets.lib.serving.runtime import REGISTRY_NAMES, Runtime, poll_seconds

KEY = "unit-key-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {KEY}"}
CATEGORY_BODY = {
    "amount": -54.99,
    "description": "Adobe Creative Cloud",
    "payment_method": "credit_card",
    "date": "2024-03-01",
    "reference": "Adobe",
}


# ---------------------------------------------------------------------------------------------- stand-ins
class FakeCategory:
    def __init__(self, label: str = "software"):
        self.label = label
        self.seen: list[pd.DataFrame] = []

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        self.seen.append(frame)
        alts = [
            [{"category": self.label, "confidence": 0.8}, {"category": "other", "confidence": 0.2}]
        ] * len(frame)
        return pd.DataFrame(
            {
                "prediction": [self.label] * len(frame),
                "confidence": [0.8] * len(frame),
                "alternatives": pd.Series(alts, dtype=object).to_numpy(),
            },
            index=frame.index,
        )


class FakeAnomaly:
    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        big = frame["amount"].abs() > 1000
        return pd.DataFrame(
            {
                "anomaly_score": big.astype(float) * 0.9,
                "is_anomaly": big,
                "risk_level": big.map({True: "high", False: "low"}),
                "reasons": [["amount far above usual"] if b else [] for b in big],
            },
            index=frame.index,
        )


class FakeSource:
    """Registry stand-in: versions per name; `fail` makes loads (or lookups) raise."""

    def __init__(self, models: dict[str, tuple[str, object]]):
        self.models = dict(models)
        self.fail_load = False
        self.fail_lookup = False
        self.loads = 0

    def current(self, name):
        if self.fail_lookup:
            raise RuntimeError("E002 MLflow registry unreachable: connection refused")
        entry = self.models.get(name)
        return None if entry is None else (entry[0], f"run-{entry[0]}")

    def load(self, name, version):
        self.loads += 1
        if self.fail_load:
            raise RuntimeError(f"E002 MLflow registry: loading {name} v{version} failed: no artifact")
        v, model = self.models[name]
        return Loaded(
            name=name,
            version=v,
            run_id=f"run-{v}",
            model=model,
            metrics={"macro_f1": 0.9},
            tags={"titans.promotion_reason": "test"},
        )


def runtime(source: FakeSource, **env) -> Runtime:
    environ = {"TITANS_API_KEYS": KEY, **env}
    rt = Runtime.from_env(environ, source=source)
    rt.start(poll=0)
    return rt


@pytest.fixture
def source() -> FakeSource:
    return FakeSource({"titans_category": ("3", FakeCategory()), "titans_anomaly": ("1", FakeAnomaly())})


@pytest.fixture
def client(source):
    rt = runtime(source, TITANS_RATE_LIMIT_IP="none", TITANS_RATE_LIMIT_KEY="none")
    with TestClient(create_app(rt)) as c:
        yield c


# ---------------------------------------------------------------------------------------------- validation
def test_a_valid_category_request_becomes_one_model_row():
    row = V.parse_row(V.CATEGORY, CATEGORY_BODY)
    assert row == {
        "amount": -54.99,
        "description": "Adobe Creative Cloud",
        "txn_date": "2024-03-01",
        "payment_method": "credit_card",
        "reference": "Adobe",
    }
    assert V.parse_row(V.AMOUNT, {"category": "software", "date": "2024-03-01"})["payment_method"] is None
    assert V.parse_row(V.ANOMALY, {"amount": 3, "date": "2024-03-01", "time": "23:59:59"})["amount"] == 3.0


@pytest.mark.parametrize(
    "body, field, fragment",
    [
        ({**CATEGORY_BODY, "amount": "12"}, "amount", "expected a number"),
        ({**CATEGORY_BODY, "amount": True}, "amount", "expected a number"),
        ({**CATEGORY_BODY, "amount": 2e9}, "amount", "|amount| <= 1e+09"),
        ({**CATEGORY_BODY, "date": "2024-02-30"}, "date", "not a calendar date"),
        ({**CATEGORY_BODY, "date": "1899-12-31"}, "date", "out of range"),
        ({**CATEGORY_BODY, "date": "2101-01-01"}, "date", "out of range"),
        ({**CATEGORY_BODY, "date": "20240301"}, "date", "YYYY-MM-DD"),
        ({**CATEGORY_BODY, "date": "٢٠٢٤-٠٣-٠١"}, "date", "YYYY-MM-DD"),
        ({k: v for k, v in CATEGORY_BODY.items() if k != "amount"}, "amount", "required"),
        ({**CATEGORY_BODY, "description": 7}, "description", "expected a string"),
        ({**CATEGORY_BODY, "description": "x" * 501}, "description", "longer than 500"),
        ({**CATEGORY_BODY, "reference": 5}, "reference", "expected a string"),
        ({**CATEGORY_BODY, "amout": 1}, "amout", "unknown field"),
    ],
)
def test_invalid_input_is_e003_naming_the_field(body, field, fragment):
    with pytest.raises(ApiError) as err:
        V.parse_row(V.CATEGORY, body)
    e = err.value
    assert (e.status, e.code, e.field) == (422, "E003", field)
    assert fragment in e.message and e.message.startswith(field)


def test_a_category_request_without_a_description_is_valid():
    """A bank line with no description is categorised from its other fields, not refused (issue 16)."""
    without = {k: v for k, v in CATEGORY_BODY.items() if k != "description"}
    assert V.parse_row(V.CATEGORY, without)["description"] is None
    for blank in ("", "   ", None):
        assert V.parse_row(V.CATEGORY, {**CATEGORY_BODY, "description": blank})["description"] == blank
    schema = openapi.spec()["components"]["schemas"]["CategoryRequest"]
    assert schema["required"] == ["amount", "date"]
    assert schema["properties"]["description"].get("nullable") is True
    assert "minLength" not in schema["properties"]["description"]


def test_batches_name_the_item_and_are_bounded():
    rows = V.parse_batch(V.CATEGORY, {"transactions": [CATEGORY_BODY] * 3})
    assert len(rows) == 3
    with pytest.raises(ApiError) as err:
        V.parse_batch(V.CATEGORY, {"transactions": [CATEGORY_BODY, {**CATEGORY_BODY, "amount": None}]})
    assert err.value.field == "transactions[1].amount"
    with pytest.raises(ApiError) as err:
        V.parse_batch(V.CATEGORY, {"transactions": [CATEGORY_BODY] * (V.MAX_BATCH + 1)})
    assert err.value.status == 413 and err.value.field == "transactions"
    for bad in ({"transactions": []}, {"transactions": {}}, {}, [CATEGORY_BODY], {"transactions": [1]}):
        with pytest.raises(ApiError) as err:
            V.parse_batch(V.CATEGORY, bad)
        assert err.value.status in (413, 422) and err.value.code == "E003"


def test_cashflow_requests():
    assert V.parse_cashflow({"horizon_days": 30}) == V.CashflowRequest(30, True)
    assert V.parse_cashflow({"horizon_days": 7.0, "include_seasonality": False}) == V.CashflowRequest(
        7, False
    )
    for bad, field in (
        ({"horizon_days": 0}, "horizon_days"),
        ({"horizon_days": 366}, "horizon_days"),
        ({"horizon_days": 1.5}, "horizon_days"),
        ({"horizon_days": True}, "horizon_days"),
        ({}, "horizon_days"),
        ({"horizon_days": 3, "include_seasonality": "yes"}, "include_seasonality"),
        ({"horizon_days": 3, "level": 0.5}, "level"),
    ):
        with pytest.raises(ApiError) as err:
            V.parse_cashflow(bad)
        assert err.value.field == field and err.value.status == 422


def test_json_and_content_type_errors():
    for body in (b"", b"{", b'{"a": NaN}', b"\xff"):
        with pytest.raises(ApiError) as err:
            V.parse_json(body)
        assert err.value.status == 400 and err.value.field == "body"
    V.check_content_type(None)
    V.check_content_type("application/json; charset=utf-8")
    V.check_content_type("application/problem+json")
    with pytest.raises(ApiError) as err:
        V.check_content_type("text/plain")
    assert err.value.status == 415 and err.value.field == "Content-Type"
    assert (
        V.body_limit({}) == V.DEFAULT_MAX_BODY_BYTES
        and V.body_limit({"TITANS_MAX_BODY_BYTES": "4096"}) == 4096
    )
    with pytest.raises(ValueError):
        V.body_limit({"TITANS_MAX_BODY_BYTES": "lots"})


def test_error_bodies_carry_the_code_once():
    e = ApiError(503, "E002", "E002 MLflow registry unreachable: refused")
    assert e.body() == {
        "error": {"code": "E002", "message": "MLflow registry unreachable: refused", "field": None}
    }


def test_every_error_body_has_a_field_key_null_when_no_field_is_at_fault(source):
    """The documented shape {code, message, field}: 401 names the Authorization header, 429 and 503
    carry field: null (issue 15: the key was missing)."""
    rt = runtime(source, TITANS_RATE_LIMIT_IP="2/minute", TITANS_RATE_LIMIT_KEY="none")
    with TestClient(create_app(rt)) as c:
        r = c.post("/predict/category", json=CATEGORY_BODY)
        assert r.status_code == 401 and r.json() == {
            "error": {
                "code": "E005",
                "message": "authentication required: send Authorization: Bearer <API key>",
                "field": "Authorization",
            }
        }
        r = c.post("/predict/amount", json={"category": "software", "date": "2024-01-01"}, headers=AUTH)
        assert (
            r.status_code == 503
            and r.json()["error"]["field"] is None
            and r.json()["error"]["code"] == "E002"
        )
        r = c.get("/models/status", headers=AUTH)
        assert r.status_code == 429 and set(r.json()["error"]) == {"code", "message", "field"}
        assert r.json()["error"]["field"] is None and r.json()["error"]["code"] == "E004"


@pytest.mark.parametrize(
    "raw, leaked",
    [
        (
            "E001 cannot connect to postgresql://postgres:s3cret@/titans_mlflow?host=/tmp/titans-x/pgdata (embedded): "
            'connection to server on socket "/tmp/titans-x/pgdata/.s.PGSQL.5432" failed: No such file or directory',
            ["postgresql://", "s3cret", "/tmp/titans-x", ".s.PGSQL"],
        ),
        (
            '(psycopg2.OperationalError) connection to server at "db.internal" (10.0.0.5), port 5433 failed: refused',
            ["db.internal", "10.0.0.5", "5433"],
        ),
        ("Error 111 connecting to 127.0.0.1:6390. Connection refused.", ["127.0.0.1", "6390"]),
        ("auth failed: password=hunter2 user=bob", ["hunter2", "bob"]),
        ("No such file or directory: '/srv/mlartifacts/1/abc/artifacts/MLmodel'", ["/srv", "MLmodel"]),
    ],
)
def test_error_messages_never_carry_addresses_paths_or_credentials(raw, leaked):
    body = ApiError(503, "E002", raw).body()["error"]["message"]
    assert not [x for x in leaked if x in body], body
    assert (
        ApiError(422, "E003", "rate limit exceeded (60 per 1 minute per client IP)").message
        == "rate limit exceeded (60 per 1 minute per client IP)"
    )  # ordinary text is left alone


# ---------------------------------------------------------------------------------------------- keys
def test_keys_from_the_environment_and_a_hashed_file(tmp_path):
    other = "second-key-abcdefghijklmnop"
    key_file = tmp_path / "keys.txt"
    key_file.write_text(f"# deploy keys\n{hash_key(other)}\n\n")
    ring = KeyRing.from_env({"TITANS_API_KEYS": f"{KEY}, ", "TITANS_API_KEYS_FILE": str(key_file)})
    assert len(ring.digests) == 2
    assert ring.identify(KEY) == hash_key(KEY)[:16]
    assert ring.identify(other) == hash_key(other)[:16]
    assert ring.identify(KEY + "x") is None and ring.identify("") is None
    assert not KeyRing.from_env({})
    with pytest.raises(KeyConfigError):
        KeyRing.from_env({"TITANS_API_KEYS": "short"})
    key_file.write_text("not-a-digest\n")
    with pytest.raises(KeyConfigError, match="line 1"):
        KeyRing.from_env({"TITANS_API_KEYS_FILE": str(key_file)})
    with pytest.raises(KeyConfigError):
        KeyRing.from_env({"TITANS_API_KEYS_FILE": str(tmp_path / "missing")})


def test_bearer_header_parsing():
    assert bearer_token(f"Bearer {KEY}") == KEY
    assert bearer_token(f"bearer   {KEY} ") == KEY
    for bad in (None, "", "Bearer", "Bearer ", f"Basic {KEY}", KEY):
        assert bearer_token(bad) is None


# ---------------------------------------------------------------------------------------------- rate limits
def test_rate_limit_configuration():
    c = RateLimitConfig.from_env({})
    assert [str(i) for i in c.per_ip] == ["60 per 1 minute"] and [str(i) for i in c.per_key] == [
        "1000 per 1 hour"
    ]
    assert not c.shared and c.storage_uri == "memory://"
    c = RateLimitConfig.from_env(
        {
            "TITANS_RATE_LIMIT_IP": "none",
            "TITANS_RATE_LIMIT_KEY": "5/second;100/day",
            "TITANS_REDIS_URL": "redis://127.0.0.1:6379/0",
        }
    )
    assert c.per_ip == () and len(c.per_key) == 2 and c.shared
    with pytest.raises(RateLimitConfigError):
        RateLimitConfig.from_env({"TITANS_RATE_LIMIT_IP": "lots"})
    with pytest.raises(RateLimitConfigError):
        RateLimitConfig.from_env({"TITANS_REDIS_URL": "http://example"})


def test_memory_limits_reject_with_a_retry_time():
    limiter = RateLimiter(RateLimitConfig.from_env({"TITANS_RATE_LIMIT_IP": "3/minute"}))
    assert [limiter.hit("ip", "10.0.0.1") for _ in range(3)] == [None, None, None]
    rejected = limiter.hit("ip", "10.0.0.1")
    assert rejected.scope == "ip" and 1 <= rejected.retry_after <= 60 and "3 per 1 minute" in rejected.limit
    assert limiter.hit("ip", "10.0.0.2") is None  # per client


def test_local_counters_decide_as_the_limits_memory_storage(monkeypatch):
    """The thread-free in-memory counters give the same accept/reject decisions and retry times as
    `limits`' own MemoryStorage under its SlidingWindowCounter strategy, on one simulated clock that
    crosses window boundaries; expired windows are dropped."""
    from limits import parse
    from limits.storage import MemoryStorage
    from limits.strategies import SlidingWindowCounterRateLimiter

    from titans_assets.lib.serving.ratelimit import LocalCounters

    clock = [1_700_000_000.0]
    monkeypatch.setattr(time, "time", lambda: clock[0])
    reference_storage = MemoryStorage()
    reference, local = SlidingWindowCounterRateLimiter(reference_storage), LocalCounters()
    items = [parse("5/minute"), parse("2/second"), parse("30/hour")]
    steps = [0.05] * 12 + [0.4, 1.1, 7.0, 13.0, 29.0, 0.3, 61.0, 0.2, 0.2, 119.0] + [0.7] * 40
    decisions = 0
    try:
        for step in steps:
            clock[0] += step
            for item in items:
                for who in ("a", "b"):
                    want = reference.hit(item, "ip", who)
                    assert local.hit(item, "ip", who) == want, (clock[0], str(item), who)
                    decisions += not want
                    got_stats, want_stats = (
                        local.get_window_stats(item, "ip", who),
                        reference.get_window_stats(item, "ip", who),
                    )
                    assert got_stats.remaining == want_stats.remaining
                    assert got_stats.reset_time == pytest.approx(want_stats.reset_time, abs=1e-6)
    finally:
        reference_storage.timer.cancel()
    assert decisions > 20  # rejections were compared, not only acceptances
    clock[0] += 7200 + LocalCounters.SWEEP_SECONDS
    assert local.hit(items[0], "ip", "c") and len(local._counts) == 1  # the sweep dropped the old windows


@pytest.fixture
def redis_env():
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url("redis://127.0.0.1:6379/0", socket_connect_timeout=1)
    try:
        client.ping()
    except redis.exceptions.ConnectionError:
        pytest.skip("no Redis on 127.0.0.1:6379")
    prefix = f"titans-test-{uuid.uuid4().hex[:8]}"
    yield {"TITANS_REDIS_URL": "redis://127.0.0.1:6379/0", "TITANS_RATE_LIMIT_PREFIX": prefix}
    for k in client.scan_iter(f"{prefix}:*"):
        client.delete(k)


def test_redis_limits_are_shared_between_limiters(redis_env):
    """Two limiters (two workers) on one Redis prefix count together."""
    env = {**redis_env, "TITANS_RATE_LIMIT_KEY": "4/minute"}
    a, b = RateLimiter(RateLimitConfig.from_env(env)), RateLimiter(RateLimitConfig.from_env(env))
    results = [(a if i % 2 else b).hit("key", "k1") for i in range(6)]
    assert results[:4] == [None] * 4 and all(r is not None for r in results[4:])
    assert results[4].retry_after >= 1


def test_an_unreachable_redis_falls_back_to_per_worker_limits_with_one_log_line(caplog):
    """Redis configured but not answering (nothing listens on port 1): requests are still limited, in
    this worker's memory, and the switch is logged once, not once per request."""
    limiter = RateLimiter(
        RateLimitConfig.from_env(
            {"TITANS_REDIS_URL": "redis://127.0.0.1:1/0", "TITANS_RATE_LIMIT_IP": "2/minute"}
        )
    )
    with caplog.at_level("WARNING", logger="titans.serving"):
        results = [limiter.hit("ip", "x") for _ in range(5)]
    assert results[:2] == [None, None] and all(r is not None and r.retry_after >= 1 for r in results[2:])
    assert limiter.hit("ip", "y") is None  # still per client
    lines = [r.getMessage() for r in caplog.records if "rate limit storage" in r.getMessage()]
    assert len(lines) == 1 and "per worker" in lines[0], lines
    assert limiter.degraded and limiter.describe()["storage"].startswith("memory (per worker")


# ---------------------------------------------------------------------------------------------- holder
def test_refresh_loads_once_and_swaps_only_on_a_new_version(source):
    holder = ModelHolder(REGISTRY_NAMES, source)
    r = holder.refresh("category")
    assert (r.outcome, r.version, r.previous) == ("reloaded", "3", None)
    assert holder.refresh("category").outcome == "unchanged" and source.loads == 1
    source.models["titans_category"] = ("4", FakeCategory("travel"))
    r = holder.refresh("category")
    assert (r.outcome, r.version, r.previous) == ("reloaded", "4", "3")
    assert holder.get("category").loaded.model.label == "travel"
    assert holder.refresh("amount").outcome == "missing"
    assert holder.health()["models"]["amount"]["error"]["code"] == "E002"


def test_a_failed_load_keeps_the_last_good_model_and_says_so(source):
    holder = ModelHolder(REGISTRY_NAMES, source)
    holder.refresh("category")
    source.models["titans_category"] = ("4", FakeCategory("travel"))
    source.fail_load = True
    r = holder.refresh("category")
    assert r.outcome == "failed" and r.version == "3" and "still serving version 3" in r.error
    slot = holder.get("category")
    assert slot.loaded.version == "3" and slot.status == "stale"
    assert holder.status()["category"]["error"].endswith("still serving version 3")
    assert holder.health()["status"] == "degraded"
    source.fail_load = False
    assert holder.refresh("category").outcome == "reloaded" and holder.get("category").status == "ready"
    source.fail_lookup = True
    assert holder.refresh("category").version == "4" and holder.get("category").loaded.version == "4"


def test_a_source_that_fails_to_build_is_built_again_later(source):
    attempts = []

    def factory():
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("E001 cannot connect to postgresql://... : refused")
        return source

    holder = ModelHolder(REGISTRY_NAMES, factory)
    r = holder.refresh("category")
    assert r.outcome == "failed" and r.error_code == "E002" and holder.get("category").status == "error"
    assert r.error == "E002 the model registry is unreachable"
    assert holder.refresh("category").outcome == "reloaded" and len(attempts) == 2


def test_the_poller_picks_up_a_new_champion_and_stops(source):
    holder = ModelHolder(REGISTRY_NAMES, source)
    holder.refresh_all()
    holder.start_polling(0.05)
    try:
        source.models["titans_category"] = ("9", FakeCategory("rent"))
        deadline = time.monotonic() + 5
        while holder.get("category").loaded.version != "9" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert holder.get("category").loaded.version == "9"
    finally:
        holder.stop()
    assert not any(t.name == "titans-model-poller" for t in threading.enumerate())


def test_readers_never_see_a_version_paired_with_another_model(source):
    holder = ModelHolder(REGISTRY_NAMES, source)
    holder.refresh("category")
    stop = threading.Event()
    bad = []

    def read():
        while not stop.is_set():
            loaded = holder.get("category").loaded
            if loaded.model.label != f"label-{loaded.version}" and loaded.version != "3":
                bad.append(loaded.version)

    readers = [threading.Thread(target=read) for _ in range(3)]
    for t in readers:
        t.start()
    for v in range(10, 60):
        source.models["titans_category"] = (str(v), FakeCategory(f"label-{v}"))
        holder.refresh("category")
    stop.set()
    for t in readers:
        t.join()
    assert not bad and holder.get("category").loaded.version == "59"


def test_poll_seconds_setting():
    assert poll_seconds({}) == 30.0 and poll_seconds({"TITANS_MODEL_POLL_SECONDS": "0.5"}) == 0.5
    for bad in ("soon", "-1"):
        with pytest.raises(ValueError):
            poll_seconds({"TITANS_MODEL_POLL_SECONDS": bad})


# ---------------------------------------------------------------------------------------------- in-process calls
def test_runtime_predicts_with_the_champion_and_reports_its_version(source):
    rt = runtime(source)
    out = rt.predict("category", CATEGORY_BODY)
    assert out["prediction"] == "software" and out["model_version"] == "3"
    assert out["alternatives"][1] == {"category": "other", "confidence": 0.2}
    frame = source.models["titans_category"][1].seen[-1]
    assert list(frame.columns) == ["amount", "txn_date", "description", "payment_method", "reference"]
    blank = rt.predict("category", {k: v for k, v in CATEGORY_BODY.items() if k != "description"})
    assert blank["prediction"] == "software"
    assert source.models["titans_category"][1].seen[-1]["description"].tolist() == [None]
    batch = rt.predict(
        "anomaly",
        {"transactions": [{"amount": -5000, "date": "2024-01-01"}, {"amount": -5, "date": "2024-01-01"}]},
        batch=True,
    )
    assert batch["count"] == 2 and batch["model_version"] == "1"
    assert [p["is_anomaly"] for p in batch["predictions"]] == [True, False]
    assert batch["predictions"][0]["reasons"] == ["amount far above usual"]
    with pytest.raises(ApiError) as err:
        rt.predict("amount", {"category": "software", "date": "2024-01-01"})
    assert (err.value.status, err.value.code) == (503, "E002") and "titans_amount" in err.value.message


def test_admission_order_ip_then_key_then_key_limit(source):
    rt = runtime(source, TITANS_RATE_LIMIT_IP="3/minute", TITANS_RATE_LIMIT_KEY="2/minute")
    with pytest.raises(ApiError) as err:
        rt.admit("1.1.1.1", None)
    assert (err.value.status, err.value.code) == (401, "E005") and "WWW-Authenticate" in err.value.headers
    with pytest.raises(ApiError) as err:
        rt.admit("1.1.1.1", "Bearer wrong-key-0123456789")
    assert err.value.message == "invalid API key"
    with pytest.raises(ApiError) as err:  # the IP's third attempt is fine, the fourth is limited
        rt.admit("1.1.1.1", f"Bearer {KEY}")
        rt.admit("1.1.1.1", f"Bearer {KEY}")
    assert (err.value.status, err.value.code) == (429, "E004") and int(err.value.headers["Retry-After"]) >= 1
    assert rt.admit("2.2.2.2", f"Bearer {KEY}")  # another IP, the key's second request
    with pytest.raises(ApiError) as err:
        rt.admit("3.3.3.3", f"Bearer {KEY}")
    assert "per API key" in err.value.message


# ---------------------------------------------------------------------------------------------- HTTP app (no BentoML)
def test_http_shapes_on_stand_in_models(client):
    r = client.post("/predict/category", json=CATEGORY_BODY, headers=AUTH)
    assert r.status_code == 200 and r.json()["model_version"] == "3"
    r = client.post("/predict/category/batch", json={"transactions": [CATEGORY_BODY] * 20}, headers=AUTH)
    assert r.status_code == 200 and r.json()["count"] == 20  # predicted in a thread, like every prediction
    r = client.post("/predict/amount", json={"category": "software", "date": "2024-01-01"}, headers=AUTH)
    assert r.status_code == 503 and r.json()["error"]["code"] == "E002"
    r = client.post("/predict/category", json={**CATEGORY_BODY, "date": "2024-13-01"}, headers=AUTH)
    assert r.status_code == 422 and r.json()["error"]["field"] == "date"
    r = client.post("/predict/category", content=b"{", headers={**AUTH, "content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["field"] == "body"
    r = client.post("/predict/category", json=CATEGORY_BODY)
    assert r.status_code == 401 and r.json()["error"]["code"] == "E005"
    r = client.get("/predict/category", headers=AUTH)
    assert r.status_code == 405 and r.json()["error"]["code"] == "E003"
    r = client.get("/health")
    assert r.json() == {
        "status": "degraded",
        "models": {"category": "ready", "amount": "missing", "anomaly": "ready", "cashflow": "missing"},
    }


def test_body_size_is_limited_before_parsing(source):
    rt = runtime(source, TITANS_MAX_BODY_BYTES="2048")
    with TestClient(create_app(rt)) as c:
        big = {"transactions": [CATEGORY_BODY] * 30}
        r = c.post("/predict/category/batch", json=big, headers=AUTH)
        assert r.status_code == 413 and r.json()["error"]["field"] == "body"

        def chunks():
            yield b'{"transactions": ['
            for _ in range(40):
                yield b'{"amount": 1, "description": "x", "date": "2024-01-01"},'
            yield b"]}"

        r = c.post(
            "/predict/category/batch", content=chunks(), headers={**AUTH, "content-type": "application/json"}
        )
        assert r.status_code == 413


def test_reload_endpoint_reports_the_swap_and_failures(client, source):
    source.models["titans_category"] = ("4", FakeCategory("travel"))
    r = client.post("/models/titans_category/reload", headers=AUTH)
    assert r.status_code == 200
    assert {k: r.json()[k] for k in ("outcome", "model_version", "previous_version")} == {
        "outcome": "reloaded",
        "model_version": "4",
        "previous_version": "3",
    }
    assert client.post("/predict/category", json=CATEGORY_BODY, headers=AUTH).json()["model_version"] == "4"
    assert client.post("/models/category/reload", headers=AUTH).json()["outcome"] == "unchanged"
    source.models["titans_category"] = ("5", FakeCategory("rent"))
    source.fail_load = True
    r = client.post("/models/category/reload", headers=AUTH)
    assert r.status_code == 503 and "still serving version 4" in r.json()["error"]["message"]
    assert client.post("/predict/category", json=CATEGORY_BODY, headers=AUTH).json()["prediction"] == "travel"
    r = client.post("/models/nothing/reload", headers=AUTH)
    assert r.status_code == 404 and r.json()["error"]["field"] == "name"
    assert r.json()["error"]["code"] == "E003"  # invalid input (issue 15: it was E002, "model not found")
    status = client.get("/models/status", headers=AUTH).json()
    assert status["models"]["category"]["status"] == "stale" and status["worker_pid"] == os.getpid()


# ---------------------------------------------------------------------------------------------- routes, OpenAPI
@pytest.mark.parametrize(
    "path, template",
    [
        ("/predict/category", "/predict/category"),
        ("/models/titans_category/reload", "/models/{name}/reload"),
        ("/models/anything-else/reload", "/models/{name}/reload"),
        ("/health/", "/health"),
        ("/metrics", "/metrics"),
        ("/static_content/swagger.css", "/static_content/{path}"),
        ("/wp-admin/setup.php", "/{unmatched}"),
        ("/models/a/b/reload", "/{unmatched}"),
        ("/models/a\nb/reload", "/{unmatched}"),
        ("/static_content/a\x00", "/{unmatched}"),
    ],
)
def test_route_templates(path, template):
    assert routes.template_of(path) == template


def test_every_route_of_the_app_is_in_the_openapi_document_and_the_template_list():
    spec = openapi.spec()
    app_paths = {r.path for r in create_app().routes}
    documented = set(spec["paths"]) | {"/openapi.json", "/docs.json"}
    assert app_paths == documented
    assert app_paths - {routes.RELOAD_TEMPLATE, routes.CORRECTION_TEMPLATE} <= set(routes.API_ROUTES)
    for path, ops in spec["paths"].items():
        for op in ops.values():
            protected = bool(op.get("security"))
            assert protected == (path != "/health"), path
            assert "200" in op["responses"]


# ---------------------------------------------------------------------------------------------- serve command
def test_serve_refuses_to_start_without_keys(monkeypatch):
    from click.testing import CliRunner

    from titans_assets.cli import main

    monkeypatch.delenv("TITANS_API_KEYS", raising=False)
    monkeypatch.delenv("TITANS_API_KEYS_FILE", raising=False)
    result = CliRunner().invoke(main, ["serve"])
    assert result.exit_code == 2 and "no API keys" in result.output and "--dev" in result.output
    result = CliRunner().invoke(main, ["serve", "--hash-key", KEY])
    assert result.exit_code == 0 and result.output.strip() == hash_key(KEY)


def test_serve_environment_is_absolute_and_configures_bentoml(tmp_path):
    from titans_assets.commands.serve import service_environment
    from titans_assets.lib.settings import Settings

    settings = Settings.from_env({"TITANS_HOME": str(tmp_path / "home")})
    env = service_environment(
        {
            "TITANS_API_KEYS": KEY,
            "TITANS_API_KEYS_FILE": "keys.txt",
            "BENTOML_CONFIG_OPTIONS": "api_server.x=1",
        },
        settings,
        "postgresql://u@h/db",
        workers=2,
        access_log=False,
        dev_key="d" * 20,
    )
    assert (
        env["TITANS_HOME"] == str(tmp_path / "home") and env["TITANS_DATABASE_URL"] == "postgresql://u@h/db"
    )
    assert os.path.isabs(env["TITANS_API_KEYS_FILE"])
    assert env["TITANS_API_KEYS"] == f"{KEY},{'d' * 20}"
    assert env["BENTOML_CONFIG_OPTIONS"] == (
        "api_server.x=1 services.titans.workers=2 services.titans.logging.access.enabled=false"
    )


# -- listener: each worker its own SO_REUSEPORT socket -------------------------------------------------------
def test_listener_reads_the_inherited_descriptor_and_the_switch():
    assert listener.inherited_fd(["x", "bento", "--fd", "7", "--worker-id", "2"]) == 7
    assert (
        listener.inherited_fd(["x", "--fd"]) is None and listener.inherited_fd(["x", "--fd", "$(x)"]) is None
    )
    assert listener.enabled({}) and listener.enabled({"TITANS_SERVE_REUSEPORT": "1"})
    assert not listener.enabled({"TITANS_SERVE_REUSEPORT": "0"}) and not listener.enabled(
        {"TITANS_SERVE_REUSEPORT": "off"}
    )


def accepted_per_socket(port: int, listeners: list[socket.socket], n: int) -> list[int]:
    clients = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(n)]
    try:
        counts, deadline = [0] * len(listeners), time.monotonic() + 5
        while sum(counts) < n and time.monotonic() < deadline:
            for i, s in enumerate(listeners):
                try:
                    s.accept()[0].close()
                    counts[i] += 1
                except BlockingIOError:
                    pass
        return counts
    finally:
        for c in clients:
            c.close()


def test_spread_gives_a_second_worker_its_own_listener_on_the_same_port():
    """As in a BentoML worker: the supervisor's socket (no SO_REUSEPORT) is inherited under descriptor
    `fd`; worker 2 replaces it there with its own socket, and the kernel spreads new connections."""
    shared = socket.socket()
    shared.bind(("127.0.0.1", 0))
    shared.listen(64)
    port = shared.getsockname()[1]
    fd = os.dup(shared.fileno())  # worker 2's inherited descriptor
    own = None
    try:
        assert listener.spread(shared.fileno(), 1)  # worker 1 keeps the shared socket
        assert listener.spread(fd, 2)
        own = socket.socket(fileno=fd)
        assert own.getsockname() == ("127.0.0.1", port)
        assert own.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 1
        shared.setblocking(False)
        own.setblocking(False)
        counts = accepted_per_socket(port, [shared, own], 64)
        assert sum(counts) == 64 and min(counts) >= 12, counts  # hashed over both (P(< 12 of 64) ~ 1e-7)
    finally:
        own.close() if own is not None else os.close(fd)
        shared.close()


def test_spread_leaves_a_unix_socket_or_a_non_socket_alone(tmp_path):
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(tmp_path / "s"))
    s.listen(1)
    read, write = os.pipe()
    try:
        assert listener.spread(s.fileno(), 2) is False
        assert s.getsockname() == str(tmp_path / "s")
        assert listener.spread(read, 2) is False  # not a socket: the worker starts anyway
        assert os.write(write, b"x") == 1 and os.read(read, 1) == b"x"
    finally:
        s.close()
        os.close(read)
        os.close(write)


# -- trusted proxies: X-Forwarded-For only from TITANS_TRUSTED_PROXIES ----------------------------------------
def test_trusted_proxies_configuration_and_client_address():
    from titans_assets.lib.serving.proxies import ProxyConfigError, TrustedProxies

    none = TrustedProxies.from_env({})
    assert not none and none.client("127.0.0.1", ["203.0.113.9"]) == "127.0.0.1"  # default: nobody is trusted
    proxies = TrustedProxies.from_env({"TITANS_TRUSTED_PROXIES": " 10.0.0.0/8, 127.0.0.1 ,::1"})
    assert proxies.describe() == ["10.0.0.0/8", "127.0.0.1/32", "::1/128"]
    assert (
        proxies.client("198.51.100.7", ["203.0.113.9"]) == "198.51.100.7"
    )  # an untrusted peer's header is ignored
    assert proxies.client("127.0.0.1", ["203.0.113.9"]) == "203.0.113.9"
    # read from the right: what the client wrote itself (the left) cannot hide its address
    assert proxies.client("127.0.0.1", ["6.6.6.6, 203.0.113.9, 10.1.2.3"]) == "203.0.113.9"
    assert proxies.client("127.0.0.1", ["6.6.6.6", "203.0.113.9:5555"]) == "203.0.113.9"
    assert proxies.client("::1", ["[2001:db8::1]:80"]) == "2001:db8::1"
    assert proxies.client("127.0.0.1", ["10.0.0.2, 10.0.0.3"]) == "10.0.0.2"  # all trusted: the leftmost
    assert proxies.client("127.0.0.1", [" , "]) == "127.0.0.1" and proxies.client(None) == "unknown"
    for bad in ("10.0.0.0/33", "localhost", "127.0.0.1;10.0.0.1"):
        with pytest.raises(ProxyConfigError):
            TrustedProxies.from_env({"TITANS_TRUSTED_PROXIES": bad})


def test_the_app_counts_a_spoofing_peer_under_its_own_address(source):
    """Through the app (BentoML's uvicorn is told to trust no one, bento/service.py): without trusted
    proxies a rotating X-Forwarded-For from 127.0.0.1 shares one budget; with 127.0.0.1 trusted, each
    forwarded client has its own."""
    rt = runtime(source, TITANS_RATE_LIMIT_IP="2/minute", TITANS_RATE_LIMIT_KEY="none")
    with TestClient(create_app(rt), client=("127.0.0.1", 4321)) as c:
        codes = [
            c.get("/models/status", headers={**AUTH, "X-Forwarded-For": f"203.0.113.{i}"}).status_code
            for i in range(4)
        ]
    assert codes == [200, 200, 429, 429]
    rt = runtime(
        source,
        TITANS_RATE_LIMIT_IP="2/minute",
        TITANS_RATE_LIMIT_KEY="none",
        TITANS_TRUSTED_PROXIES="127.0.0.1",
    )
    with TestClient(create_app(rt), client=("127.0.0.1", 4321)) as c:
        codes = [
            c.get("/models/status", headers={**AUTH, "X-Forwarded-For": f"203.0.113.{i}"}).status_code
            for i in range(4)
        ]
        assert codes == [200] * 4
        assert c.get("/models/status", headers=AUTH).json()["trusted_proxies"] == ["127.0.0.1/32"]


def test_bento_workers_leave_x_forwarded_for_to_the_app(monkeypatch):
    """uvicorn (built by BentoML after `to_asgi`) reads FORWARDED_ALLOW_IPS; its default trusts 127.0.0.1."""
    from uvicorn.middleware.proxy_headers import _TrustedHosts

    from titans_assets.lib.serving.proxies import UVICORN_FORWARDED_ALLOW_IPS

    trusted = _TrustedHosts(UVICORN_FORWARDED_ALLOW_IPS)
    assert "127.0.0.1" not in trusted and "::1" not in trusted and "10.0.0.1" not in trusted
