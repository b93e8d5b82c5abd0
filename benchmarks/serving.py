"""Serving benchmark (loopback only, bounded): the BentoML service (`titans serve`) beside a plain
FastAPI + uvicorn app serving the same champion models, in the same run.

For /predict/category and /predict/anomaly (and GET /health, the serving overhead without a model):
- sequential latency: one keep-alive connection, p50/p99 over --requests calls (the Python client
  below: with one connection its own cost is the same for both servers);
- concurrent throughput: --connections keep-alive connections for --seconds, with the load generator
  of --client: `wrk` (C, Debian package `wrk`; the default when it is installed) or the small
  raw-socket HTTP/1.1 client below, in its own process (httpx would be the bottleneck). Both servers
  are always measured with the same generator in the same run;
- CPU per request: the CPU seconds the server's processes (and the load generator) used during each
  throughput run, divided by the requests answered (Linux /proc). On a shared machine req/s depends
  on what else runs; CPU per request much less, and 2 cores / (server + client CPU per request) is
  the throughput the two cores could give this server (reported as `capacity`, a derived figure);
with 1 and 2 workers each; plus the in-process model time (validated request -> response dict, no
HTTP) as the floor. On a 2-core machine the load generator shares the cores with the server, so
absolute figures are lower than on a dedicated client; the ratio to FastAPI is the figure to read.
Everything is bounded (--seconds per run, timeouts) and on loopback (127.0.0.1) only.

Champions come from the configured registry (run `titans demo` first, or set TITANS_DATABASE_URL).

    .venv/bin/python benchmarks/serving.py                    # everything (~6 minutes)
    .venv/bin/python benchmarks/serving.py --workers 2 --rounds 3 --seconds 5
    .venv/bin/python benchmarks/serving.py --client python    # without wrk
    .venv/bin/python benchmarks/serving.py --json out.json
"""

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import re
import resource
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BODIES = {
    "/predict/category": {
        "amount": -54.99,
        "description": "Adobe Creative Cloud",
        "payment_method": "credit_card",
        "date": "2024-03-01",
        "reference": "Adobe",
    },
    "/predict/anomaly": {
        "amount": -54.99,
        "category": "software",
        "description": "Adobe Creative Cloud",
        "date": "2024-03-01",
        "payment_method": "credit_card",
        "reference": "Adobe",
    },
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
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {key}\r\nContent-Length: {len(data)}\r\n\r\n"
    ).encode() + data


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


def _load(
    port: int, path: str, key: str, connections: int, seconds: float, requests: int | None, out
) -> None:
    req = _request_bytes(path, BODIES[path], key)

    async def main():
        await _connection(port, req, time.perf_counter() + 30, 20, [], {})  # warm-up
        lat: list[float] = []
        codes: dict[str, int] = {}
        t0 = time.perf_counter()
        await asyncio.gather(
            *(_connection(port, req, t0 + seconds, requests, lat, codes) for _ in range(connections))
        )
        return lat, codes, time.perf_counter() - t0

    lat, codes, elapsed = asyncio.run(main())
    out.put((lat, codes, elapsed))


def measure(port: int, path: str, key: str, connections: int, seconds: float, requests: int | None) -> dict:
    """In a separate process, so the client's event loop does not share the GIL with this one."""
    q: mp.Queue = mp.get_context("spawn").Queue()
    p = mp.get_context("spawn").Process(
        target=_load, args=(port, path, key, connections, seconds, requests, q)
    )
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    p.start()
    lat, codes, elapsed = q.get(timeout=seconds + 120)
    p.join()
    client_cpu = _rusage_seconds(resource.getrusage(resource.RUSAGE_CHILDREN)) - _rusage_seconds(before)
    lat.sort()
    ok = codes.get("200", 0)
    return {
        "requests": len(lat),
        "ok": ok,
        "codes": codes,
        "rps": round(len(lat) / elapsed, 1),
        "p50_ms": round(lat[len(lat) // 2] * 1000, 2),
        "p99_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000, 2),
        "client_cpu_s": round(client_cpu, 3),
    }


def _rusage_seconds(r) -> float:
    return r.ru_utime + r.ru_stime


# ---------------------------------------------------------------------------------------------- wrk
_WRK_SCRIPT = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {key}"
wrk.body = [==[{body}]==]
"""


def _wrk_duration_ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def parse_wrk(text: str) -> dict:
    """Requests, req/s, latency percentiles and non-2xx count of `wrk --latency` output."""
    done = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", text)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if done is None or rps is None:
        raise RuntimeError(f"unexpected wrk output: {text[:500]!r}")
    pct = {
        m.group(1): _wrk_duration_ms(m.group(2), m.group(3))
        for m in re.finditer(r"^\s+(50|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M)
    }
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    n = int(done.group(1))
    non_2xx = int(bad.group(1)) if bad else 0
    return {
        "requests": n,
        "ok": n - non_2xx,
        "codes": {"2xx": n - non_2xx, "other": non_2xx},
        "rps": round(float(rps.group(1)), 1),
        "p50_ms": round(pct.get("50", float("nan")), 2),
        "p99_ms": round(pct.get("99", float("nan")), 2),
        "socket_errors": sum(int(x) for x in errors.groups()) if errors else 0,
    }


def measure_wrk(
    port: int, path: str, key: str, connections: int, seconds: float, started=lambda: None
) -> dict:
    """`wrk -t1` (one thread: the server needs the cores) for `seconds` on loopback, after a 1-second
    warm-up run; `started()` is called between the two (where the server's CPU count starts)."""
    body = BODIES[path]
    with tempfile.TemporaryDirectory() as tmp:
        argv = [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--latency",
            "--timeout",
            "10s",
        ]
        if body is not None:
            script = Path(tmp) / "post.lua"
            script.write_text(_WRK_SCRIPT.format(key=key, body=json.dumps(body)))
            argv += ["-s", str(script)]
        subprocess.run(
            argv[:3] + ["-d1s", *argv[4:], f"http://127.0.0.1:{port}{path}"],
            capture_output=True,
            timeout=60,
            check=True,
        )  # warm-up
        started()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        done = subprocess.run(
            argv + [f"http://127.0.0.1:{port}{path}"],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
            check=True,
        )
        client_cpu = _rusage_seconds(resource.getrusage(resource.RUSAGE_CHILDREN)) - _rusage_seconds(before)
    out = parse_wrk(done.stdout)
    out["client_cpu_s"] = round(client_cpu, 3)
    return out


def tree_cpu_seconds(pid: int) -> float | None:
    """CPU seconds (user + system) used so far by `pid` and its descendants (None without /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    try:
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    text = Path(f"/proc/{entry}/stat").read_text()
                except OSError:
                    continue
                fields = text[text.rindex(")") + 2 :].split()
                stats[int(entry)] = fields
                children.setdefault(int(fields[1]), []).append(int(entry))
    except OSError:
        return None
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        if p in stats:
            total += (int(stats[p][11]) + int(stats[p][12])) / tick
        todo.extend(children.get(p, []))
    return total


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
    env = {
        **os.environ,
        "TITANS_API_KEYS": key,
        "TITANS_RATE_LIMIT_IP": "100000000/minute",
        "TITANS_RATE_LIMIT_KEY": "100000000/hour",
        "TITANS_MODEL_POLL_SECONDS": "30",
    }
    env.pop("TITANS_REDIS_URL", None)
    bin_dir = Path(sys.executable).parent
    if kind == "bentoml":
        argv = [
            str(bin_dir / "titans"),
            "serve",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--no-access-log",
        ]
    else:
        argv = [
            str(bin_dir / "uvicorn"),
            "--factory",
            "benchmarks.serving:fastapi_app",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--no-access-log",
            "--log-level",
            "warning",
        ]
    proc = subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, process_group=0
    )
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
        out[path] = {
            "p50_ms": round(statistics.median(lat) * 1000, 2),
            "p99_ms": round(lat[int(len(lat) * 0.99)] * 1000, 2),
            "model_version": rt.holder.get(key).loaded.version,
        }
    rt.stop()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--requests", type=int, default=100, help="sequential requests per endpoint and round")
    ap.add_argument("--seconds", type=float, default=4.0, help="duration of each throughput run")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument(
        "--rounds", type=int, default=3, help="interleaved rounds per endpoint (medians reported)"
    )
    ap.add_argument(
        "--client",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="load generator of the throughput runs (auto: wrk when installed)",
    )
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    client = ("wrk" if shutil.which("wrk") else "python") if args.client == "auto" else args.client
    if client == "wrk" and not shutil.which("wrk"):
        ap.error("--client wrk: wrk is not installed (apt-get install wrk)")
    key = secrets.token_urlsafe(24)
    logs = ROOT / ".titans" / "benchmarks"
    logs.mkdir(parents=True, exist_ok=True)
    results: dict = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_avg_start": os.getloadavg(),
        },
        "client": client,
        "in_process": in_process(args.requests),
        "servers": {},
    }
    print("in-process floor:", json.dumps(results["in_process"]), flush=True)
    for workers in args.workers:
        servers = {}
        try:
            for kind in ("fastapi", "bentoml"):  # both up at once; idle while the other is measured
                servers[kind] = start(kind, workers, key, logs / f"{kind}-{workers}.log")
            for path in BODIES:
                rounds: dict[str, list] = {"fastapi": [], "bentoml": []}
                for _ in range(args.rounds):  # interleaved, so drifting background load hits both alike
                    for kind, (proc, port) in servers.items():
                        seq = measure(port, path, key, 1, 600, args.requests)
                        began: dict = {}

                        def started(pid=proc.pid, began=began):
                            began["cpu"], began["load"] = tree_cpu_seconds(pid), os.getloadavg()[0]

                        if client == "wrk":
                            conc = measure_wrk(port, path, key, args.connections, args.seconds, started)
                        else:  # its 20 warm-up requests are counted in the CPU: negligible
                            started()
                            conc = measure(port, path, key, args.connections, args.seconds, None)
                        cpu1 = tree_cpu_seconds(proc.pid)
                        cpu0, load0 = began["cpu"], began["load"]
                        conc["load_avg"] = round((load0 + os.getloadavg()[0]) / 2, 2)
                        if cpu0 is not None and cpu1 is not None and conc["requests"]:
                            conc["server_cpu_ms"] = round((cpu1 - cpu0) / conc["requests"] * 1000, 3)
                            conc["client_cpu_ms"] = round(conc["client_cpu_s"] / conc["requests"] * 1000, 3)
                            conc["capacity"] = round(
                                (os.cpu_count() or 1)
                                * 1000
                                / (conc["server_cpu_ms"] + conc["client_cpu_ms"]),
                                1,
                            )
                        rounds[kind].append({"sequential": seq, "concurrent": conc})
                for kind, runs in rounds.items():
                    summary = {
                        "sequential": {
                            m: statistics.median(r["sequential"][m] for r in runs)
                            for m in ("p50_ms", "p99_ms")
                        },
                        "concurrent": {
                            m: statistics.median(r["concurrent"][m] for r in runs)
                            for m in (
                                "rps",
                                "p50_ms",
                                "p99_ms",
                                "server_cpu_ms",
                                "client_cpu_ms",
                                "capacity",
                                "load_avg",
                            )
                            if all(m in r["concurrent"] for r in runs)
                        },
                        "codes": [r["concurrent"]["codes"] for r in runs],
                        "rounds": runs,
                    }
                    results["servers"].setdefault(f"{kind}-{workers}", {})[path] = summary
                    seq, conc = summary["sequential"], summary["concurrent"]
                    cpu = (
                        f" | server {conc['server_cpu_ms']:.3f} + client {conc['client_cpu_ms']:.3f} CPU-ms/req, "
                        f"capacity {conc['capacity']:.0f} req/s"
                        if "capacity" in conc
                        else ""
                    )
                    print(
                        f"{kind:8} workers={workers} {path:18} seq p50 {seq['p50_ms']:7.2f} ms p99 "
                        f"{seq['p99_ms']:7.2f} ms | {args.connections} conns ({client}) {conc['rps']:8.1f} req/s "
                        f"p99 {conc['p99_ms']:7.1f} ms codes {summary['codes']}{cpu} | load {conc['load_avg']}",
                        flush=True,
                    )
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
            entry = {"throughput": round(ratio, 2), "sequential": round(seq, 2)}
            line = f"  workers={workers} {path:18} throughput {ratio:.2f}x  sequential {seq:.2f}x"
            if "capacity" in b["concurrent"] and "capacity" in f["concurrent"]:
                entry["capacity"] = round(b["concurrent"]["capacity"] / f["concurrent"]["capacity"], 2)
                line += f"  capacity {entry['capacity']:.2f}x"
            results.setdefault("ratios", {})[f"{workers}:{path}"] = entry
            print(line)
    results["machine"]["load_avg_end"] = os.getloadavg()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
