"""Fault drills on a real `titans serve --workers 2` (issue 15): the MLflow registry on a PostgreSQL of
its own that the drills stop and start, Redis on a port of its own that they kill and restart, and the
per-IP limit against a spoofed X-Forwarded-For. Everything binds 127.0.0.1 on free ports and is
stopped at the end; the machine's own Redis (6379) and the suite's embedded PostgreSQL are not touched.

Each request comes from its own loopback source address (127.1.x.y: Linux routes all of 127/8 to lo),
so the per-IP limit (6/minute here) counts exactly the requests a drill means it to, and the kernel
spreads the fresh connections over both workers (SO_REUSEPORT hashes the source address)."""

from __future__ import annotations

import itertools
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import psutil
import pytest
from support import free_port, new_home
from test_serving_http import AUTH, KEY, REQUESTS, Server, store  # noqa: F401  (store: a module fixture)

from titans_assets.lib.db import Database
from titans_assets.lib.ml import catalog
from titans_assets.lib.ml.tracking import Registry
from titans_assets.lib.serving.ratelimit import RateLimiter
from titans_assets.lib.settings import Settings

pytestmark = pytest.mark.integration

IP_LIMIT = 6
POLL_SECONDS = 24  # long enough that "on the next request" and "after the next poll" differ, even when
# a loaded 2-core machine takes 5 s for the 16 health requests after a kill (seen in CI at 8 s)
_sources = itertools.count(1)


def source_address() -> str:
    n = next(_sources)
    return f"127.1.{n // 250 % 250}.{n % 250 + 1}"


def fresh(method: str, url: str, source: str | None = None, timeout: float = 30, **kw) -> httpx.Response:
    """One request on a new connection from `source` (default: a loopback address of its own)."""
    transport = httpx.HTTPTransport(local_address=source or source_address())
    with httpx.Client(transport=transport, timeout=timeout) as c:
        return c.request(method, url, **kw)


# ---------------------------------------------------------------------------------------------- dependencies
class RegistryPostgres:
    """A PostgreSQL (pgserver, on a Unix socket in its data directory) holding only the MLflow store."""

    def __init__(self, root: Path):
        import pgserver

        self.pgdata = root / "pgdata"
        self.server = pgserver.get_server(self.pgdata, cleanup_mode=None)
        admin = Database(self.server.get_uri("postgres"))
        with admin.connect(autocommit=True) as conn, conn.cursor() as cur:
            cur.execute('CREATE DATABASE "registry"')
        self.db = admin.sibling("registry")
        self.socket_dir = self.db.host
        self.tracking_uri = self.db.sqlalchemy_url()

    def kill(self) -> None:
        """The outage: the postmaster and every backend SIGKILLed at once."""
        pid = self.server.get_pid()
        try:
            procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        for p in procs:
            p.send_signal(signal.SIGKILL)
        psutil.wait_procs(procs, timeout=10)

    def start(self) -> None:
        self.server.ensure_postgres_running()
        self.db.ping()


class RedisServer:
    def __init__(self, port: int, log: Path):
        self.port, self.log, self.proc = port, log, None
        self.url = f"redis://127.0.0.1:{port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=self.log.open("a"),
            stderr=subprocess.STDOUT,
        )
        import redis

        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 15
        while True:
            try:
                client.ping()
                return
            except redis.exceptions.ConnectionError:
                assert time.monotonic() < deadline and self.proc.poll() is None, self.log.read_text()[-2000:]
                time.sleep(0.05)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def keys(self, pattern: str) -> list[str]:
        import redis

        return [k.decode() for k in redis.Redis.from_url(self.url).scan_iter(pattern)]


@pytest.fixture(scope="module")
def registry(store):  # noqa: F811
    """The four champions (version 1) in an MLflow store on its own PostgreSQL, which is then stopped:
    the service starts with its registry unreachable."""
    root = new_home("titans-registry-")
    pg = RegistryPostgres(root)
    try:
        env = {**store["env"], "TITANS_MLFLOW_TRACKING_URI": pg.tracking_uri}
        reg = Registry.from_settings(Settings.from_env(env), store["db"])
        for spec in catalog.SPECS:
            _, version = reg.log_training(spec.name, store["trained"][spec.key], spec.example_frame())
            reg.promote(spec.name, version, "fault drills")
        pg.kill()
        yield pg
    finally:
        pg.kill()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    srv = RedisServer(free_port(), tmp_path_factory.mktemp("redis") / "redis.log")
    srv.start()
    try:
        yield srv
    finally:
        srv.kill()


@pytest.fixture(scope="module")
def service(store, registry, redis_server, tmp_path_factory):  # noqa: F811
    prefix = f"titans-drill-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        **store["env"],
        "TITANS_API_KEYS": KEY,
        "TITANS_MLFLOW_TRACKING_URI": registry.tracking_uri,
        "TITANS_MODEL_POLL_SECONDS": str(POLL_SECONDS),
        "TITANS_RATE_LIMIT_IP": f"{IP_LIMIT}/minute",
        "TITANS_RATE_LIMIT_KEY": "none",
        "TITANS_REDIS_URL": redis_server.url,
        "TITANS_RATE_LIMIT_PREFIX": prefix,
    }
    for name in ("BENTOML_CONFIG_OPTIONS", "TITANS_TRUSTED_PROXIES"):
        env.pop(name, None)
    srv = Server(env, workers=2, log=tmp_path_factory.mktemp("drills") / "serve.log")
    srv.prefix = prefix
    try:
        deadline = time.monotonic() + 180  # up once both workers answer (their models cannot load yet)
        while len(srv.ready_pids) < 2:
            assert srv.proc.poll() is None and time.monotonic() < deadline, srv.log.read_text()[-3000:]
            try:
                r = fresh("GET", f"{srv.base}/models/status", headers=AUTH, timeout=5)
                if r.status_code == 200:
                    srv.ready_pids.add(r.json()["worker_pid"])
            except httpx.HTTPError:
                time.sleep(0.2)
        srv.tree = [psutil.Process(srv.proc.pid), *psutil.Process(srv.proc.pid).children(recursive=True)]
        yield srv
    finally:
        srv.stop()


def both_workers(srv, check, timeout: float) -> dict[int, object]:
    """Fresh GET /models/status until both workers' answers pass `check` (the last answer per worker)."""
    seen: dict[int, object] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = fresh("GET", f"{srv.base}/models/status", headers=AUTH).json()
        seen[status["worker_pid"]] = status
        if len(seen) == 2 and all(check(s) for s in seen.values()):
            return seen
        time.sleep(0.2)
    raise AssertionError(f"not on both workers within {timeout}s: {seen}")


def assert_no_address(text: str, registry: RegistryPostgres) -> None:
    for leak in (registry.socket_dir, str(registry.pgdata), "postgresql", ".s.PGSQL", "psycopg2", "/tmp/"):
        assert leak not in text, (leak, text[:1500])


# ---------------------------------------------------------------------------------------------- drills
def test_registry_unreachable_at_start_degrades_then_loads_without_a_restart(service, registry):
    srv = service
    status = both_workers(srv, lambda s: all(m["status"] == "error" for m in s["models"].values()), 30)
    for s in status.values():
        assert {m["error_code"] for m in s["models"].values()} == {"E002"}, s
    bodies = []
    for key, body in REQUESTS.items():
        r = fresh("POST", f"{srv.base}/predict/{key}", json=body, headers=AUTH)
        assert r.status_code == 503, r.text
        bodies.append(r.json()["error"])
    r = fresh("POST", f"{srv.base}/predict/cashflow", json={"horizon_days": 7}, headers=AUTH)
    assert r.status_code == 503
    bodies.append(r.json()["error"])
    assert all(b["code"] == "E002" and b["field"] is None for b in bodies), bodies
    assert all("MLflow registry" in b["message"] and "unreachable" in b["message"] for b in bodies), bodies
    assert_no_address(repr(bodies), registry)
    health = fresh("GET", f"{srv.base}/models/health", headers=AUTH).json()
    assert health["status"] == "unhealthy"

    registry.start()  # the registry is back: each worker's poller loads the champions, no restart
    started = time.monotonic()
    status = both_workers(
        srv,
        lambda s: (
            {m["model_version"] for m in s["models"].values()} == {"1"}
            and {m["status"] for m in s["models"].values()} == {"ready"}
        ),
        POLL_SECONDS + 40,
    )
    assert set(status) == srv.ready_pids and srv.proc.poll() is None  # the same two worker processes
    print(f"champions loaded on both workers {time.monotonic() - started:.1f}s after the registry came back")
    r = fresh("POST", f"{srv.base}/predict/category", json=REQUESTS["category"], headers=AUTH)
    assert r.status_code == 200 and r.json()["model_version"] == "1"


def test_a_registry_outage_shows_on_the_next_health_request_with_one_code_and_no_address(service, registry):
    srv = service
    both_workers(srv, lambda s: {m["status"] for m in s["models"].values()} == {"ready"}, POLL_SECONDS + 40)
    registry.kill()
    killed = time.monotonic()
    answers: dict[int, dict] = {}
    for _ in range(16):  # the first health requests after the kill, on both workers, well inside a poll
        h = fresh("GET", f"{srv.base}/models/health", headers=AUTH).json()
        assert h["status"] == "degraded", h
        assert {m["status"] for m in h["models"].values()} == {"stale"}, h
        assert {m["error"]["code"] for m in h["models"].values()} == {"E002"}, h
        answers[h["worker_pid"]] = h
    assert len(answers) == 2 and time.monotonic() - killed < POLL_SECONDS / 2, (
        len(answers),
        time.monotonic() - killed,
    )
    r = fresh("POST", f"{srv.base}/predict/amount", json=REQUESTS["amount"], headers=AUTH)
    assert r.status_code == 200 and r.json()["model_version"] == "1"  # the loaded model keeps serving
    names = ("category", "titans_category", "anomaly", "category", "cashflow", "category")
    reloads = [fresh("POST", f"{srv.base}/models/{name}/reload", headers=AUTH) for name in names]
    assert {r.status_code for r in reloads} == {503}, [r.text for r in reloads]
    errors = [r.json()["error"] for r in reloads]
    assert {e["code"] for e in errors} == {"E002"}, errors  # one outage, one code
    category = {e["message"] for e, name in zip(errors, names) if name.endswith("category")}
    assert len(category) == 1, category  # and the same words on every call
    message = category.pop()
    assert "MLflow registry" in message and "unreachable" in message and "still serving version 1" in message
    assert_no_address(repr(errors) + repr(list(answers.values())), registry)

    registry.start()
    deadline = time.monotonic() + 20  # back on the next health requests, not after a poll
    healthy: set[int] = set()
    while len(healthy) < 2 and time.monotonic() < deadline:
        h = fresh("GET", f"{srv.base}/models/health", headers=AUTH).json()
        if h["status"] == "healthy":
            healthy.add(h["worker_pid"])
    assert len(healthy) == 2


def _status_from(srv, source: str, n: int) -> list[httpx.Response]:
    return [fresh("GET", f"{srv.base}/models/status", source=source, headers=AUTH) for _ in range(n)]


def test_redis_down_limits_fall_back_per_worker_and_recover_when_it_returns(service, redis_server):
    srv = service
    shared = _status_from(srv, "127.0.3.1", IP_LIMIT + 3)
    assert [r.status_code for r in shared] == [200] * IP_LIMIT + [429] * 3  # one budget for both workers
    assert any("127.0.3.1" in k for k in redis_server.keys(f"{srv.prefix}:*"))

    redis_server.kill()
    down = _status_from(srv, "127.0.3.2", 2 * IP_LIMIT + 6)
    assert {r.status_code for r in down} <= {200, 429}, [r.text for r in down]
    per_worker: dict[int, int] = {}
    for r in down:
        if r.status_code == 200:
            per_worker[r.json()["worker_pid"]] = per_worker.get(r.json()["worker_pid"], 0) + 1
            assert r.json()["rate_limits"]["storage"].startswith("memory (per worker")
        else:
            assert r.json()["error"]["code"] == "E004" and r.json()["error"]["field"] is None
            assert int(r.headers["Retry-After"]) >= 1
    # Still limited, each worker on its own budget: 18 fresh connections reach both workers (all on one:
    # p = 2^-17), neither lets more than the limit through, together more than one budget.
    assert len(per_worker) == 2 and all(n <= IP_LIMIT for n in per_worker.values()), per_worker
    assert sum(per_worker.values()) > IP_LIMIT and any(r.status_code == 429 for r in down), per_worker
    log = srv.log.read_text()
    fell_back = re.findall(r"rate limit storage \S+ unavailable", log)
    assert 1 <= len(fell_back) <= 2 and len(fell_back) >= len(per_worker), fell_back  # one line per worker

    redis_server.start()  # same port, empty: the workers find it again on their next try
    time.sleep(RateLimiter.RETRY_SECONDS + 0.5)
    back = _status_from(srv, "127.0.3.3", IP_LIMIT + 3)
    assert [r.status_code for r in back] == [200] * IP_LIMIT + [429] * 3, [r.status_code for r in back]
    assert all(r.json()["rate_limits"]["storage"] == "redis" for r in back[:IP_LIMIT])
    assert any("127.0.3.3" in k for k in redis_server.keys(f"{srv.prefix}:*"))
    log = srv.log.read_text()
    assert len(re.findall(r"rate limit storage \S+ unavailable", log)) == len(fell_back)
    assert len(re.findall(r"rate limit storage \S+ is back", log)) == len(fell_back)


def test_a_spoofed_x_forwarded_for_does_not_escape_the_ip_limit(service, redis_server):
    """From 127.0.0.1 (where uvicorn trusted X-Forwarded-For by default) with a new address in the header
    each time: no TITANS_TRUSTED_PROXIES, so the header is ignored and the one peer hits its limit."""
    srv = service
    answers = [
        fresh(
            "GET",
            f"{srv.base}/models/status",
            source="127.0.0.1",
            headers={**AUTH, "X-Forwarded-For": f"203.0.113.{i + 1}"},
        )
        for i in range(IP_LIMIT + 3)
    ]
    assert [r.status_code for r in answers] == [200] * IP_LIMIT + [429] * 3
    assert answers[0].json()["trusted_proxies"] == []
    keys = redis_server.keys(f"{srv.prefix}:*")
    assert any("127.0.0.1" in k for k in keys) and not any("203.0.113." in k for k in keys), keys
