"""The bounded soak drill of issue 15: a real `titans serve --workers 2` on a free loopback port, serving
the four champions from the MLflow registry on PostgreSQL (test_serving_http's `store`), under two
minutes of mixed traffic at a fixed rate: single and small-batch predictions on all four models,
/models/status, /models/health and a few requests without a valid key. In the middle, two promotions
(a new version registered and the `champion` alias moved to it): one left to the workers' pollers, one
followed by a reload. It asserts

- zero 5xx (and no dropped connection): every answer is the status its request expects;
- the RSS of each worker grows by at most 20% between the end of the first 30 s and the end;
- every worker answers with the new champion's version within the poll interval (plus a small grace),
  and never with the old one again.

Each client thread keeps one keep-alive connection, so a connection stays on one worker; its first
request (and the first after any reconnect) is GET /models/status, whose `worker_pid` names that worker
for every answer on the connection. Predictions therefore count per worker, although their bodies do
not name it.

It runs for more than two minutes, so it is marked `soak` and runs only with TITANS_TEST_SOAK=1
(.ci/run sets it)."""

from __future__ import annotations

import http.client
import itertools
import json
import os
import random
import threading
import time
from dataclasses import dataclass, field

import psutil
import pytest
from test_serving_http import AUTH, KEY, REQUESTS, Server, store  # noqa: F401  (store: a module fixture)

from titans_assets.lib.ml.tracking import Registry

pytestmark = [
    pytest.mark.integration,
    pytest.mark.soak,
    pytest.mark.skipif(
        os.environ.get("TITANS_TEST_SOAK") != "1", reason="the soak drill runs with TITANS_TEST_SOAK=1"
    ),
]

DURATION = 120.0  # seconds of traffic (was 180; the RSS window below is 90 s, was 120 s)
RATE = 30.0  # requests per second, all threads together, on a fixed schedule
THREADS = 8  # keep-alive connections, half on each worker at the start
POLL_SECONDS = 5.0  # TITANS_MODEL_POLL_SECONDS
GRACE = 5.0  # on top of one poll interval: the poller's own round (four aliases, one model load)
RSS_BASELINE_AT = 30.0  # warmed up: 900 requests on every route
RSS_GROWTH = 0.20
PROMOTE_POLLED_AT = 50.0  # titans_category: a new champion, left to the pollers
PROMOTE_RELOADED_AT = 75.0  # titans_anomaly: a new champion, then POST /models/anomaly/reload

# (what, weight): single predictions on each model, small batches, the two model endpoints, and
# requests without a valid key (401).
MIX = [
    ("category", 14),
    ("amount", 14),
    ("anomaly", 14),
    ("cashflow", 8),
    ("category/batch", 7),
    ("amount/batch", 7),
    ("anomaly/batch", 7),
    ("status", 12),
    ("health", 8),
    ("no key", 5),
    ("bad key", 4),
]


@dataclass
class Answer:
    what: str
    expected: int
    conn: int  # the connection it travelled on (one worker each)
    sent: float
    received: float = 0.0
    status: int | None = None
    error: str | None = None
    pid: int | None = None  # from the body (status, health, reload)
    versions: dict[str, str] = field(default_factory=dict)  # model key -> version the answer reports


def request_for(what: str, rng: random.Random) -> tuple[str, str, dict | None, dict[str, str], int]:
    """(method, path, body, headers, expected status) for one request of the mix."""
    headers = {**AUTH, "Content-Type": "application/json"}
    if what == "status":
        return "GET", "/models/status", None, headers, 200
    if what == "health":
        return "GET", "/models/health", None, headers, 200
    if what in ("no key", "bad key"):
        headers = {"Content-Type": "application/json"}
        if what == "bad key":
            headers["Authorization"] = "Bearer not-a-key-" + str(rng.randrange(10**6))
        return "POST", "/predict/category", REQUESTS["category"], headers, 401
    if what == "cashflow":
        return "POST", "/predict/cashflow", {"horizon_days": rng.choice([7, 14, 30, 90])}, headers, 200
    key, _, batch = what.partition("/")
    row = dict(REQUESTS[key])
    if "amount" in row:
        row["amount"] = round(rng.uniform(-900.0, -5.0), 2)
    if batch:
        return "POST", f"/predict/{key}/batch", {"transactions": [row] * rng.randint(2, 8)}, headers, 200
    return "POST", f"/predict/{key}", row, headers, 200


class Soak:
    def __init__(self, srv: Server, seed: int = 15):
        self.srv = srv
        self.rng = random.Random(seed)
        self.plan = self.rng.choices([w for w, _ in MIX], weights=[n for _, n in MIX], k=int(DURATION * RATE))
        self.answers: list[Answer] = []
        self.pid_of_conn: dict[int, int] = {}
        self.conn_ids = itertools.count(1)
        self.slots = itertools.count()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.t0 = 0.0

    # -- connections --------------------------------------------------------------------------------
    def connect(self) -> tuple[http.client.HTTPConnection, int]:
        conn = http.client.HTTPConnection("127.0.0.1", self.srv.port, timeout=30)
        conn.connect()
        return conn, next(self.conn_ids)

    def balanced_connections(self) -> list[tuple[http.client.HTTPConnection, int]]:
        """THREADS connections, half held by each worker (asked with GET /models/status on each)."""
        kept: dict[int, list] = {pid: [] for pid in self.srv.ready_pids}
        for _ in range(200):
            if all(len(v) >= THREADS // 2 for v in kept.values()):
                return [c for v in kept.values() for c in v]
            conn, cid = self.connect()
            answer = self.send(conn, cid, "status", rng=self.rng)
            assert answer.status == 200, answer
            if len(kept[answer.pid]) < THREADS // 2:
                kept[answer.pid].append((conn, cid))
            else:
                conn.close()
        raise AssertionError(f"could not open {THREADS // 2} connections on each worker: {kept}")

    # -- one request ---------------------------------------------------------------------------------
    def send(
        self,
        conn: http.client.HTTPConnection,
        cid: int,
        what: str,
        rng: random.Random,
        request: tuple | None = None,
    ) -> Answer:
        method, path, body, headers, expected = request or request_for(what, rng)
        answer = Answer(what, expected, cid, time.monotonic())
        try:
            conn.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            answer.received, answer.status = time.monotonic(), resp.status
            if resp.will_close:
                conn.close()
        except (OSError, http.client.HTTPException) as exc:
            answer.received, answer.error = time.monotonic(), f"{type(exc).__name__}: {exc}"
            conn.close()
            self.answers.append(answer)
            return answer
        try:
            doc = json.loads(data)
        except ValueError:
            doc = {}
        if isinstance(doc, dict):
            answer.pid = doc.get("worker_pid")
            if doc.get("model_version"):  # a prediction or a reload: /predict/KEY[/batch], /models/KEY/reload
                answer.versions[path.split("/")[2]] = doc["model_version"]
            for key, m in (doc.get("models") or {}).items():
                if isinstance(m, dict) and m.get("model_version"):
                    answer.versions[key] = m["model_version"]
        if answer.pid is not None:
            with self.lock:
                known = self.pid_of_conn.setdefault(cid, answer.pid)
            if known != answer.pid:
                answer.error = f"connection {cid} answered by worker {known}, then by {answer.pid}"
        if answer.status >= 500:  # keep the body for the report
            answer.error = data[:300].decode(errors="replace")
        self.answers.append(answer)
        return answer

    # -- the load --------------------------------------------------------------------------------------
    def client(self, conn: http.client.HTTPConnection | None, cid: int, seed: int) -> None:
        rng = random.Random(seed)
        while not self.stop.is_set():
            with self.lock:
                i = next(self.slots)
            if i >= len(self.plan):
                break
            delay = self.t0 + i / RATE - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            what = self.plan[i]
            if conn is None or conn.sock is None:  # a new connection: learn its worker first
                conn, cid = self.connect()
                what = "status"
            self.send(conn, cid, what, rng)
        if conn is not None:
            conn.close()

    def worker_of(self, answer: Answer) -> int | None:
        return answer.pid or self.pid_of_conn.get(answer.conn)


def rss(pids) -> dict[int, int]:
    return {pid: psutil.Process(pid).memory_info().rss for pid in pids}


def promote_new_version(registry: Registry, name: str) -> tuple[str, str, float]:
    """A new version of `name`'s champion artifacts, made champion: (old, new, when the alias moved
    at the latest, i.e. when promote returned; the switch is timed from before the call)."""
    current = registry.champion_version(name)
    new = str(registry.client.create_model_version(name, current.source, current.run_id).version)
    before = time.monotonic()
    registry.promote(name, new, "soak drill")
    return str(current.version), new, before


@pytest.fixture(scope="module")
def soak_server(store, tmp_path_factory):  # noqa: F811
    env = {
        **os.environ,
        **store["env"],
        "TITANS_API_KEYS": KEY,
        "TITANS_MODEL_POLL_SECONDS": str(POLL_SECONDS),
        "TITANS_RATE_LIMIT_IP": "1000000/minute",
        "TITANS_RATE_LIMIT_KEY": "1000000/hour",
    }
    for name in (
        "BENTOML_CONFIG_OPTIONS",
        "TITANS_REDIS_URL",
        "TITANS_RATE_LIMIT_PREFIX",
        "TITANS_TRUSTED_PROXIES",
    ):
        env.pop(name, None)  # per-worker in-memory limits, high enough never to answer 429 here
    srv = Server(env, workers=2, log=tmp_path_factory.mktemp("soak") / "serve.log")
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.stop()


def test_a_two_minute_soak_with_promotions_keeps_serving(soak_server, store):  # noqa: F811
    srv, registry = soak_server, store["registry"]
    assert len(srv.ready_pids) == 2
    workers = sorted(srv.ready_pids)
    soak = Soak(srv)
    conns = soak.balanced_connections()
    soak.answers.clear()  # the balancing requests are not part of the timed load
    threads = [
        threading.Thread(target=soak.client, args=(conn, cid, 1000 + n), name=f"soak-{n}", daemon=True)
        for n, (conn, cid) in enumerate(conns)
    ]
    samples: list[tuple[float, dict[int, int]]] = []
    events: dict[str, tuple[str, str, float]] = {}
    reload_answer: Answer | None = None

    def at(offset: float) -> None:
        """Wait until `offset` seconds into the load, sampling the workers' RSS every 10 s."""
        while (left := soak.t0 + offset - time.monotonic()) > 0:
            time.sleep(min(10.0, left))
            if time.monotonic() < soak.t0 + offset - 1:
                samples.append((time.monotonic() - soak.t0, rss(workers)))

    soak.t0 = time.monotonic() + 0.5
    for t in threads:
        t.start()
    try:
        samples.append((0.0, rss(workers)))
        at(RSS_BASELINE_AT)
        samples.append((time.monotonic() - soak.t0, rss(workers)))
        baseline = samples[-1][1]
        at(PROMOTE_POLLED_AT)
        events["category"] = promote_new_version(registry, "titans_category")
        at(PROMOTE_RELOADED_AT)
        events["anomaly"] = promote_new_version(registry, "titans_anomaly")
        conn, cid = soak.connect()
        try:
            reload_answer = soak.send(
                conn, cid, "reload", soak.rng, ("POST", "/models/anomaly/reload", None, AUTH, 200)
            )
        finally:
            conn.close()
        at(DURATION)
        while any(t.is_alive() for t in threads) and time.monotonic() < soak.t0 + DURATION + 120:
            time.sleep(0.5)
        assert not any(t.is_alive() for t in threads), (
            "the load did not finish within two minutes of its schedule"
        )
    finally:
        soak.stop.set()
        for t in threads:
            t.join(timeout=60)
    samples.append((time.monotonic() - soak.t0, rss(workers)))  # the end
    end = samples[-1][1]
    answers = soak.answers
    elapsed = max(a.received for a in answers) - soak.t0

    # -- what happened -----------------------------------------------------------------------------------
    by_what: dict[str, int] = {}
    for a in answers:
        by_what[a.what] = by_what.get(a.what, 0) + 1
    per_worker = {pid: sum(1 for a in answers if soak.worker_of(a) == pid) for pid in workers}
    latencies = sorted(a.received - a.sent for a in answers)
    growth = {pid: end[pid] / baseline[pid] - 1 for pid in workers}
    report = [
        f"{len(answers)} requests in {elapsed:.1f}s ({len(answers) / elapsed:.1f}/s, planned {RATE:.0f}/s), "
        f"{len({a.conn for a in answers})} connections, per worker {per_worker}",
        f"mix {by_what}",
        f"latency p50 {latencies[len(latencies) // 2] * 1000:.0f} ms, "
        f"p99 {latencies[int(len(latencies) * 0.99)] * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms",
        "RSS MiB "
        + ", ".join(
            f"{pid}: " + " ".join(f"{s[1][pid] / 2**20:.0f}@{s[0]:.0f}s" for s in samples) for pid in workers
        ),
        "RSS growth since the warm-up " + ", ".join(f"{pid}: {g:+.1%}" for pid, g in growth.items()),
    ]

    # -- no 5xx, no dropped connection, every answer the one expected ---------------------------------------
    server_errors = [a for a in answers if a.status is not None and a.status >= 500]
    broken = [a for a in answers if a.error is not None or a.status != a.expected]
    report.append(f"5xx: {len(server_errors)}, unexpected answers: {len(broken)}")
    assert reload_answer is not None and reload_answer.status == 200, reload_answer
    assert len(answers) == len(soak.plan) + 1, (len(answers), len(soak.plan))  # + the reload
    assert not server_errors, "\n".join(report + [repr(a) for a in server_errors[:10]])
    assert not broken, "\n".join(report + [repr(a) for a in broken[:10]])
    assert all(soak.worker_of(a) in workers for a in answers), "an answer from an unknown worker"
    assert all(n > len(answers) / 5 for n in per_worker.values()), per_worker  # both workers carried the load

    # -- the champions: every worker on the new version within the poll interval, never back --------------------
    assert reload_answer.versions == {"anomaly": events["anomaly"][1]}, reload_answer
    for key, (old, new, promoted) in events.items():
        for pid in workers:
            seen = [a for a in answers if soak.worker_of(a) == pid and key in a.versions]
            olds = [a for a in seen if a.versions[key] == old]
            news = [a for a in seen if a.versions[key] == new]
            assert len(olds) + len(news) == len(seen), (key, pid, {a.versions[key] for a in seen})
            assert news, f"worker {pid} never answered {key} version {new}"
            first_new = min(a.received for a in news)
            last_old = max((a.sent for a in olds), default=0.0)
            reloaded = " (the reload's worker)" if key == "anomaly" and reload_answer.pid == pid else ""
            report.append(
                f"{key} v{old} -> v{new}: worker {pid}{reloaded} on v{new} {first_new - promoted:.1f}s "
                f"after the promotion, last v{old} request sent {last_old - promoted:+.1f}s, "
                f"{len(news)} answers on v{new}"
            )
            assert last_old < first_new, f"worker {pid} answered {key} v{old} after v{new}\n" + "\n".join(
                report
            )
            assert last_old - promoted <= POLL_SECONDS + GRACE, "\n".join(report)
            assert first_new - promoted <= POLL_SECONDS + GRACE, "\n".join(report)
            assert (
                max(a.sent for a in news) > promoted + POLL_SECONDS + GRACE
            )  # still asked after the deadline

    # -- memory -------------------------------------------------------------------------------------------------
    assert set(rss(workers)) == set(workers) and srv.proc.poll() is None  # the same two workers, still up
    assert all(g <= RSS_GROWTH for g in growth.values()), "\n".join(report)
    print("\n" + "\n".join(report))
