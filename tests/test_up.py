"""`titans up`: the supervisor on its own (no orphans, even of grandchildren that leave their group),
then the whole platform for real: after `titans demo`, with `titans up` running, a CSV copied into the
landing folder becomes rows in the marts, passing checks, retrained challengers and the champions the
running service answers with, without any further command; Ctrl-C stops every process. (From an
empty warehouse, the same chain is checked tick by tick in test_automation.py.)"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest
from conftest import TEST_TODAY
from support import free_port, new_home, still_running

from titans_assets.commands.up import plan_services
from titans_assets.lib.db import Database
from titans_assets.lib.generator import generate
from titans_assets.lib.ml.tracking import Registry
from titans_assets.lib.settings import Settings
from titans_assets.lib.supervisor import Service, Supervisor, answers

ROOT = Path(__file__).resolve().parents[1]
TITANS = str(Path(sys.executable).with_name("titans"))


def test_plan_names_every_server_with_its_url():
    ports = {"dagster": 1, "mlflow": 2, "service": 3, "docs": 4, "dashboard": 5}
    services = {s.name: s for s in plan_services("127.0.0.1", ports, 2, with_dashboard=True)}
    assert set(services) == {"dagster", "dagster-daemon", "mlflow", "service", "docs", "dashboard"}
    assert services["service"].argv[1:] == [
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "3",
        "--workers",
        "2",
        "--no-access-log",
    ]
    assert services["dagster"].ready_url == "http://127.0.0.1:1/server_info"
    for s in services.values():
        assert Path(s.argv[0]).exists(), s.argv[0]


SERVER = textwrap.dedent("""
    import http.server, subprocess, sys
    # a grandchild in a session of its own: a process-group signal does not reach it
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
    http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), http.server.SimpleHTTPRequestHandler).serve_forever()
""")


def test_supervisor_stops_children_and_their_stray_grandchildren(tmp_path: Path):
    supervisor = Supervisor(tmp_path / "logs", cwd=tmp_path)
    ports = [free_port(), free_port()]
    for i, port in enumerate(ports):
        url = f"http://127.0.0.1:{port}/"
        supervisor.start(Service(f"s{i}", [sys.executable, "-c", SERVER, str(port)], url, url))
    deadline = time.monotonic() + 30
    while not all(r.ready for r in supervisor.running) and time.monotonic() < deadline:
        supervisor.poll()
        time.sleep(0.2)
    assert all(r.ready for r in supervisor.running)
    tree = supervisor.descendants()
    assert len(tree) == 4  # two servers, two grandchildren
    supervisor.stop(grace=5)
    assert not still_running(tree)
    assert not any(answers(f"http://127.0.0.1:{p}/", timeout=1) for p in ports)

    # a child that dies is reported with the last line of its log
    supervisor = Supervisor(tmp_path / "logs2")
    supervisor.start(
        Service("bad", [sys.executable, "-c", "print('cannot bind'); raise SystemExit(3)"], "", "")
    )
    deadline = time.monotonic() + 10
    exited = None
    while exited is None and time.monotonic() < deadline:
        _, exited = supervisor.poll()
        time.sleep(0.1)
    assert exited is not None and exited.proc.returncode == 3
    supervisor.stop()


# ---------------------------------------------------------------------------------------------- the platform
def _json(url: str, key: str | None = None, body: dict | None = None, timeout: float = 10) -> dict:
    import urllib.request

    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url,
        data=data,
        headers={"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})},
    )
    with urllib.request.urlopen(request, timeout=timeout) as resp:
        return json.loads(resp.read())


def _wait(what: str, probe, timeout: float, proc: subprocess.Popen, log: Path):
    started = time.monotonic()
    deadline = started + timeout
    last = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(
                f"titans up exited {proc.returncode} while waiting for {what}:\n" + log.read_text()[-3000:]
            )
        try:
            last = probe()
            if last:
                print(
                    f"{what}: {time.monotonic() - started:.0f} s"
                )  # where the test's minutes go (pytest -s)
                return last
        except Exception as exc:  # noqa: BLE001 - servers come up and runs land over time
            last = exc
        time.sleep(3)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})\n" + log.read_text()[-3000:])


def _count(db: Database, sql: str, *params) -> int:
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchone()[0]


@pytest.mark.integration
@pytest.mark.slow
def test_titans_up_turns_a_dropped_csv_into_checked_marts_and_a_retrained_champion_it_serves():
    """The issue's "done when": after `titans demo`, nothing but `titans up` and a file copy."""
    home = new_home("titans-up-")
    landing, labels = home / "data" / "raw", home / "data" / "labels"
    today = TEST_TODAY  # the platform's clock in every child (TITANS_AS_OF), and the new export's last day
    generate(landing, years=2.0, seed=42, end_date=today - dt.timedelta(days=45), labels_dir=labels)
    env = {
        **os.environ,
        "TITANS_HOME": str(home / ".titans"),
        "TITANS_LANDING_DIR": str(landing),
        "TITANS_LABELS_DIR": str(labels),
        "TITANS_MODEL_POLL_SECONDS": "5",
        "TITANS_RETRAIN_MIN_ROWS": "50",
        "TITANS_AS_OF": today.isoformat(),
    }
    for var in (
        "TITANS_DATABASE_URL",
        "TITANS_API_KEYS",
        "TITANS_API_KEYS_FILE",
        "TITANS_API_KEY",
        "TITANS_MLFLOW_TRACKING_URI",
        "TITANS_MLFLOW_ARTIFACTS",
        "TITANS_REDIS_URL",
        "DAGSTER_HOME",
    ):
        env.pop(var, None)
    started = time.monotonic()
    demo = subprocess.run([TITANS, "demo"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=900)
    print(f"titans demo: {time.monotonic() - started:.0f} s")
    assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr[-2000:]
    for name in ("titans_category", "titans_amount", "titans_anomaly", "titans_cashflow"):
        line = next(ln for ln in demo.stdout.splitlines() if ln.strip().startswith(name))  # the run's summary
        assert " v" in line and ("model" in line or "baseline:" in line) and "promoted" in line, line

    ports = {name: free_port() for name in ("dagster", "mlflow", "service", "docs", "dashboard")}
    log = home / "up.log"
    proc = subprocess.Popen(
        [TITANS, "up", "--dev", *(a for name, port in ports.items() for a in (f"--{name}-port", str(port)))],
        env=env,
        cwd=ROOT,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        process_group=0,
    )
    tree: list[psutil.Process] = []
    try:
        _wait("every server", lambda: "all up" in log.read_text(), 420, proc, log)
        key = next(ln.split(": ", 1)[1].strip() for ln in log.read_text().splitlines() if "dev API key" in ln)
        service = f"http://127.0.0.1:{ports['service']}"

        def served():
            return {
                k: m["model_version"] for k, m in _json(f"{service}/models/status", key)["models"].items()
            }

        registry = Registry.from_settings(
            Settings.from_env(env),
            Database(
                next(ln for ln in log.read_text().splitlines() if ln.startswith("database: ")).split(" ")[1]
            ),
        )
        names = {
            "category": "titans_category",
            "amount": "titans_amount",
            "anomaly": "titans_anomaly",
            "cashflow": "titans_cashflow",
        }
        # the champions `titans demo` left: a trained model, or the best baseline where none beat it
        assert served() == {k: registry.champion(n, load=False).version for k, n in names.items()}
        tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]

        # A new export lands (written elsewhere, then copied in): the 45 days since the last one.
        drop = home / "drop"
        generate(
            drop,
            years=0.12,
            seed=9,
            end_date=today,
            labels_dir=home / "drop-labels",
            accounts=("personal_card",),
        )
        # A wall-clock instant, compared with the materializations' times:
        dropped_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")  # date-free
        shutil.copyfile(drop / "personal_card.csv", landing / "personal_card_recent.csv")

        # Progress is read straight from the warehouse and the registry (cheap, whatever the machine's load).
        db = Database(
            next(ln for ln in log.read_text().splitlines() if ln.startswith("database: ")).split(" ")[1]
        )
        new_rows = _wait(
            "the new export in the marts",
            lambda: _count(
                db,
                "SELECT count(*) FROM marts.fct_transactions WHERE source_file = %s",
                "personal_card_recent.csv",
            ),
            600,
            proc,
            log,
        )
        assert new_rows > 50

        def decided(name: str) -> bool:  # a second challenger trained, evaluated, and its promotion decided
            runs = registry.client.search_runs(
                [registry.experiment_id()],
                f"tags.`titans.model` = '{name}' and tags.`titans.stage` = 'challenger'",
            )
            return len(runs) >= 2 and all("titans.promoted" in r.data.tags for r in runs)

        _wait(
            "the retrained models' promotion decisions",
            lambda: all(map(decided, names.values())),
            900,
            proc,
            log,
        )
        report = json.loads(
            subprocess.run(
                [TITANS, "status", "--json"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=600
            ).stdout
        )
        assert report["materializations"]["marts/fct_transactions"] > dropped_at
        assert report["materializations"]["ml/retrain_signal"] > dropped_at
        assert not report["checks_failed"], report["checks_failed"]
        for m in report["models"].values():  # each champion with its metrics and best baseline
            assert m["metrics"][m["primary_metric"]] == m["value"] and m["best_baseline"], m
        champions = {k: registry.champion(name, load=False).version for k, name in names.items()}
        # the service answers with whatever the registry's champion now is (polled every 5 s)
        champions = {k: str(m["champion"]) for k, m in report["models"].items()}
        _wait("the service on the current champions", lambda: served() == champions, 120, proc, log)
        answer = _json(
            f"{service}/predict/category",
            key,
            {"amount": -4.5, "description": "STARBUCKS 1234", "date": today.isoformat()},
        )
        assert answer["model_version"] == champions["category"] and answer["prediction"]
    finally:
        proc.send_signal(signal.SIGINT)  # what Ctrl-C does
        try:
            proc.wait(timeout=90)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        print(log.read_text()[-4000:])
    assert proc.returncode == 0, log.read_text()[-3000:]
    survivors = still_running(tree)
    assert not survivors, [(p.pid, p.cmdline()[:3]) for p in survivors]
    assert not any(answers(f"http://127.0.0.1:{port}/", timeout=1) for port in ports.values())
    shutil.rmtree(home, ignore_errors=True)
