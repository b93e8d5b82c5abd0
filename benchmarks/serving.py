"""Serving benchmark (loopback only, bounded): the BentoML service (`titans serve`) beside a plain
FastAPI + uvicorn app serving the same champion models, in the same run.

For /predict/category and /predict/anomaly (and GET /health, the serving overhead without a model):
- sequential latency: one keep-alive connection, p50/p99 over --requests calls;
- concurrent throughput: --connections keep-alive connections for --seconds;
with 1 and 2 workers each; plus the in-process model time (validated request -> response dict, no
HTTP) as the floor. The load generator is a small raw-socket HTTP/1.1 client running in its own
process (httpx would be the bottleneck); on a 2-core machine it shares the cores with the server,
so absolute figures are lower than on a dedicated client, and the ratio is the figure to read.

Champions come from the configured registry (run `titans demo` first, or set TITANS_DATABASE_URL).

    .venv/bin/python benchmarks/serving.py                    # everything (~6 minutes)
    .venv/bin/python benchmarks/serving.py --workers 1 --seconds 5
    .venv/bin/python benchmarks/serving.py --json out.json
"""


import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BODIES = {
    "/predict/category": {"amount": -54.99, "description": "Adobe Creative Cloud", "payment_method": "credit_card",
                          "date": "2024-03-01", "reference": "Adobe"},
    "/predict/anomaly": {"amount": -54.99, "category": "software", "description": "Adobe Creative Cloud",
                         "date": "2024-03-01", "payment_method": "credit_card", "reference": "Adobe"},
    "/health": None,
}


# ---------------------------------------------------------------------------------------------- the baseline
def fastapi_app():
    """Plain FastAPI: pydantic request models, the same champions, the same prediction code, no auth,
    no rate limits, no error shape (uvicorn --factory benchmarks.serving:fastapi_app)."""
    from fastapi import FastAPI
    from pydantic import BaseModel

    from titans_assets.lib.serving import predict
    from titans_assets.lib.serving.holder import RegistrySource
    from titans_assets.lib.settings import Settings

    source = RegistrySource(Settings.from_env())
    champions = {k: source.load(f"titans_{k}", "") for k in ("category", "anomaly")}

    class CategoryIn(BaseModel):
        amount: float
        description: str
        date: str
        payment_method: str | None = None
        reference: str | None = None

    class AnomalyIn(BaseModel):
        amount: float
        date: str
        category: str | None = None
        description: str | None = None
        payment_method: str | None = None
        reference: str | None = None

    app = FastAPI()

    def row(body: BaseModel) -> dict:
        d = body.model_dump()
        d["txn_date"] = d.pop("date")
        return d

    @app.post("/predict/category")
    def category(body: CategoryIn) -> dict:
        c = champions["category"]
        return {**predict.category(c.model, [row(body)])[0], "model_version": c.version}

    @app.post("/predict/anomaly")
    def anomaly(body: AnomalyIn) -> dict:
        c = champions["anomaly"]
        return {**predict.anomaly(c.model, [row(body)])[0], "model_version": c.version}

    @app.get("/health")
    def health() -> dict:
        return {"status": "healthy", "models": {k: "ready" for k in champions}}

    return app


# ---------------------------------------------------------------------------------------------- load generator
def _request_bytes(path: str, body: dict | None, key: str) -> bytes:
    if body is None:
        return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    data = json.dumps(body).encode()
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {key}\r\nContent-Length: {len(data)}\r\n\r\n").encode() + data


async def _connection(port: int, req: bytes, until: float, count: int | None, lat: list, codes: dict) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    n = 0
    try:
        while (count is None or n < count) and time.perf_counter() < until:
            t0 = time.perf_counter()
            writer.write(req)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            lat.append(time.perf_counter() - t0)
            status = head[9:12].decode()
            codes[status] = codes.get(status, 0) + 1
            n += 1
    finally:
        writer.close()


def _load(port: int, path: str, key: str, connections: int, seconds: float, requests: int | None, out) -> None:
    req = _request_bytes(path, BODIES[path], key)

    async def main():
        await _connection(port, req, time.perf_counter() + 30, 20, [], {})  # warm-up
        lat: list[float] = []
        codes: dict[str, int] = {}
        t0 = time.perf_counter()
        await asyncio.gather(*(_connection(port, req, t0 + seconds, requests, lat, codes)
                               for _ in range(connections)))
        return lat, codes, time.perf_counter() - t0

    lat, codes, elapsed = asyncio.run(main())
    out.put((lat, codes, elapsed))


def measure(port: int, path: str, key: str, connections: int, seconds: float, requests: int | None) -> dict:
    """In a separate process, so the client's event loop does not share the GIL with this one."""
    q: mp.Queue = mp.get_context("spawn").Queue()
    p = mp.get_context("spawn").Process(target=_load, args=(port, path, key, connections, seconds, requests, q))
    p.start()
    lat, codes, elapsed = q.get(timeout=seconds + 120)
    p.join()
    lat.sort()
    ok = codes.get("200", 0)
    return {"requests": len(lat), "ok": ok, "codes": codes, "rps": round(len(lat) / elapsed, 1),
            "p50_ms": round(lat[len(lat) // 2] * 1000, 2), "p99_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000, 2)}


# ---------------------------------------------------------------------------------------------- servers
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(port: int, proc: subprocess.Popen, timeout: float = 240) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if json.loads(r.read())["status"] == "healthy":
                    return
        except Exception:
            time.sleep(0.5)
    raise RuntimeError("server not ready")


def start(kind: str, workers: int, key: str, log: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = {**os.environ, "TITANS_API_KEYS": key, "TITANS_RATE_LIMIT_IP": "100000000/minute",
           "TITANS_RATE_LIMIT_KEY": "100000000/hour", "TITANS_MODEL_POLL_SECONDS": "30"}
    env.pop("TITANS_REDIS_URL", None)
    bin_dir = Path(sys.executable).parent
    if kind == "bentoml":
        argv = [str(bin_dir / "titans"), "serve", "--port", str(port), "--workers", str(workers), "--no-access-log"]
    else:
        argv = [str(bin_dir / "uvicorn"), "--factory", "benchmarks.serving:fastapi_app", "--port", str(port),
                "--workers", str(workers), "--no-access-log", "--log-level", "warning"]
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            process_group=0)
    try:
        wait_http(port, proc)
    except BaseException:
        stop(proc)
        raise
    # With several workers the first may answer while the others still load: give them time.
    time.sleep(3 * (workers - 1))
    return proc, port


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=45)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def in_process(requests: int) -> dict:
    """The floor: the same champions, validation + prediction + response dict, no HTTP."""
    from titans_assets.lib.serving.runtime import Runtime

    rt = Runtime.from_env({**os.environ, "TITANS_API_KEYS": "x" * 16})
    rt.start(poll=0)
    out = {}
    for path in ("/predict/category", "/predict/anomaly"):
        key = path.rsplit("/", 1)[1]
        for _ in range(20):
            rt.predict(key, BODIES[path])
        lat = []
        for _ in range(requests):
            t0 = time.perf_counter()
            rt.predict(key, BODIES[path])
            lat.append(time.perf_counter() - t0)
        lat.sort()
        out[path] = {"p50_ms": round(statistics.median(lat) * 1000, 2),
                     "p99_ms": round(lat[int(len(lat) * 0.99)] * 1000, 2),
                     "model_version": rt.holder.get(key).loaded.version}
    rt.stop()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--requests", type=int, default=100, help="sequential requests per endpoint and round")
    ap.add_argument("--seconds", type=float, default=4.0, help="duration of each throughput run")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds per endpoint (medians reported)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    key = secrets.token_urlsafe(24)
    logs = ROOT / ".titans" / "benchmarks"
    logs.mkdir(parents=True, exist_ok=True)
    results: dict = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                 "load_avg_start": os.getloadavg()},
                     "in_process": in_process(args.requests), "servers": {}}
    print("in-process floor:", json.dumps(results["in_process"]), flush=True)
    for workers in args.workers:
        servers = {}
        try:
            for kind in ("fastapi", "bentoml"):  # both up at once; idle while the other is measured
                servers[kind] = start(kind, workers, key, logs / f"{kind}-{workers}.log")
            for path in BODIES:
                rounds: dict[str, list] = {"fastapi": [], "bentoml": []}
                for _ in range(args.rounds):  # interleaved, so drifting background load hits both alike
                    for kind, (_, port) in servers.items():
                        seq = measure(port, path, key, 1, 600, args.requests)
                        conc = measure(port, path, key, args.connections, args.seconds, None)
                        rounds[kind].append({"sequential": seq, "concurrent": conc})
                for kind, runs in rounds.items():
                    summary = {
                        "sequential": {m: statistics.median(r["sequential"][m] for r in runs)
                                       for m in ("p50_ms", "p99_ms")},
                        "concurrent": {m: statistics.median(r["concurrent"][m] for r in runs)
                                       for m in ("rps", "p50_ms", "p99_ms")},
                        "codes": [r["concurrent"]["codes"] for r in runs], "rounds": runs}
                    results["servers"].setdefault(f"{kind}-{workers}", {})[path] = summary
                    seq, conc = summary["sequential"], summary["concurrent"]
                    print(f"{kind:8} workers={workers} {path:18} seq p50 {seq['p50_ms']:7.2f} ms p99 "
                          f"{seq['p99_ms']:7.2f} ms | {args.connections} conns {conc['rps']:8.1f} req/s "
                          f"p99 {conc['p99_ms']:7.1f} ms codes {summary['codes']}", flush=True)
        finally:
            for proc, _ in servers.values():
                stop(proc)
    print("\nratio BentoML / FastAPI (throughput; sequential p50 speed):")
    for workers in args.workers:
        for path in BODIES:
            b = results["servers"][f"bentoml-{workers}"][path]
            f = results["servers"][f"fastapi-{workers}"][path]
            ratio = b["concurrent"]["rps"] / f["concurrent"]["rps"]
            seq = f["sequential"]["p50_ms"] / b["sequential"]["p50_ms"]
            results.setdefault("ratios", {})[f"{workers}:{path}"] = {"throughput": round(ratio, 2),
                                                                     "sequential": round(seq, 2)}
            print(f"  workers={workers} {path:18} throughput {ratio:.2f}x  sequential {seq:.2f}x")
    results["machine"]["load_avg_end"] = os.getloadavg()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
