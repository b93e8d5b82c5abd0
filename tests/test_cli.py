"""The `titans` command as a user runs it: separate processes, the Dagster instance from dagster.yaml
(runs stored in PostgreSQL), the embedded server by default and TITANS_DATABASE_URL as the one switch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, TEST_TODAY, TITANS, cli_env, run_titans
from support import free_port, get_until_up, still_running

from titans_assets.lib.db import Database
from titans_assets.lib.generator import generate

pytestmark = pytest.mark.integration


_env, _titans = cli_env, run_titans


@pytest.mark.parametrize("server", ["embedded", pytest.param("external", marks=pytest.mark.external)])
def test_materialize_then_status_json(server, home: Path, request):
    url = request.getfixturevalue("external_db").url if server == "external" else None
    if url:  # start from an empty database: this test owns it for its duration
        with Database(url).connect(autocommit=True) as conn, conn.cursor() as cur:
            for schema in ("raw", "staging", "intermediate", "marts", "seeds", "features"):
                cur.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    landing = home / "data" / "raw"
    gen = generate(
        landing,
        years=2.0,
        seed=42,  # the data of `titans demo`
        end_date=TEST_TODAY,
        labels_dir=home / "data" / "labels",
    )
    env = _env(home, landing, url)

    # The data assets, on both servers. The models are trained through this CLI in test_up.py
    # (`titans demo`) and through the runner on both servers in test_ml_pipeline.py.
    run = _titans("materialize", "--select", "not group:ml", env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "succeeded" in run.stdout and "Traceback" not in run.stdout + run.stderr
    assert "raw_landing started" in run.stdout  # progress while it runs

    status = _titans("status", "--json", env=env)
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert report["database"].endswith("(external)" if url else "(embedded)")
    assert "***" in report["database"] or ":" not in report["database"].split("@")[0].removeprefix(
        "postgresql://"
    )
    assert report["tables"]["raw.transactions"] + report["tables"]["raw.quarantine"] == gen.total_rows
    assert report["tables"]["marts.fct_transactions"] > 0 and report["tables"]["marts.fct_daily_metrics"] > 0
    # Dagster's storage (dagster.yaml -> PostgreSQL) remembers the run across processes.
    assert report["materializations"]["marts/fct_transactions"] is not None
    assert report["checks"]["raw/transactions:gx_raw_transactions"]["status"] == "passed"
    assert report["checks_failed"] == []
    assert {f["source_file"] for f in report["files"]} == {p.name for p in landing.glob("*.csv")}
    # The MLflow registry (on the same server) is reachable and has no champion yet.
    names = {"titans_category", "titans_amount", "titans_anomaly", "titans_cashflow"}
    assert {m["name"]: m["champion"] for m in report["models"].values()} == dict.fromkeys(names)


def test_unreachable_database_is_one_line_with_code(home: Path):
    port = free_port()  # a port nobody listens on
    env = _env(home, home / "raw", f"postgresql://titans:secret@127.0.0.1:{port}/nowhere")
    done = _titans("status", env=env, timeout=60)
    assert done.returncode == 1
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: E001"), done.stderr
    assert "secret" not in done.stderr and "Traceback" not in done.stderr


def test_the_embedded_servers_socket_url_is_reported_as_embedded(tmp_path: Path):
    """`titans up` and `titans serve` pin their children to the embedded server's socket URL."""
    from titans_assets.lib.db import get_database
    from titans_assets.lib.settings import Settings

    home = tmp_path / "home"
    for url, embedded in [
        (f"postgresql://postgres:@/titans?host={home}/pgdata", True),
        (f"postgresql://postgres:@/titans?host={tmp_path}/elsewhere", False),
        ("postgresql://postgres@127.0.0.1:5432/titans", False),
    ]:
        db = get_database(Settings.from_env({"TITANS_HOME": str(home), "TITANS_DATABASE_URL": url}))
        assert db.embedded is embedded and db.redacted().endswith("(embedded)" if embedded else "(external)")


# A child that treats SIGTERM as it treats SIGINT, as Dagster's processes do (dagster._utils.interrupts).
DAGSTER_LIKE = """
import signal, sys, time
signal.signal(signal.SIGTERM, signal.getsignal(signal.SIGINT))
try:  # "ready" inside the try: the SIGTERM may arrive while print returns
    print("ready", flush=True)
    time.sleep(60)
except KeyboardInterrupt:
    sys.exit(3)
sys.exit(4)
"""


def test_a_wrapped_child_stops_on_sigterm_even_when_we_were_started_with_sigint_ignored():
    """`titans dagster ... &` from a script starts us with SIGINT ignored; the child must not inherit
    that (it would then ignore SIGTERM too, and outlive us: seen with the Dagster code server)."""
    import signal

    harness = (
        f"from titans_assets.lib.supervisor import run_until_child_exits; import sys; "
        f"sys.exit(run_until_child_exits([sys.executable, '-c', {DAGSTER_LIKE!r}]))"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", harness],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 3  # the child's KeyboardInterrupt exit, passed through
    finally:
        if proc.poll() is None:
            proc.kill()


def test_generate_rejects_bad_input_with_code(home: Path):
    done = _titans(
        "generate", "--out", str(home / "raw"), "--rows", "-5", env=_env(home, home / "raw"), timeout=60
    )
    assert done.returncode == 2
    assert "E003 invalid input" in done.stderr and "--rows" in done.stderr and "Traceback" not in done.stderr


def test_dagster_definitions_validate(home: Path):
    """What `dagster dev` / the daemon load: the code location from workspace.yaml."""
    done = _titans("dagster", "definitions", "validate", "-w", "workspace.yaml", env=_env(home, home / "raw"))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Validation successful" in done.stdout + done.stderr


def test_docs_site_is_generated_and_served(home: Path):
    port = free_port()
    env = _env(home, home / "raw")
    proc = subprocess.Popen(
        [*TITANS, "docs", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        body = get_until_up(f"http://127.0.0.1:{port}/", proc)
        assert "dbt" in body.lower() and "<html" in body.lower(), (
            proc.stdout.read() if proc.poll() is not None else body
        )
        assert (home / "dbt-docs" / "catalog.json").exists() and (
            home / "dbt-docs" / "manifest.json"
        ).exists()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_dagster_dev_serves_the_graph_and_ctrl_c_leaves_no_process(home: Path):
    """`titans dagster dev`: the UI on the project's instance lists our assets; one Ctrl-C stops the
    webserver, the daemon, the code servers and the embedded PostgreSQL."""
    import signal
    import time
    import urllib.request

    import psutil

    port = free_port()
    proc = subprocess.Popen(
        [*TITANS, "dagster", "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        env=_env(home, home / "raw"),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as in a terminal
    )
    try:
        query = json.dumps({"query": "{ assetNodes { assetKey { path } } }"}).encode()
        deadline, keys = time.monotonic() + 180, set()
        while time.monotonic() < deadline and not keys:
            try:
                req = urllib.request.Request(
                    f"http://127.0.0.1:{port}/graphql",
                    data=query,
                    headers={"Content-Type": "application/json"},
                )
                with urllib.request.urlopen(req, timeout=5) as resp:
                    nodes = json.loads(resp.read())["data"]["assetNodes"]
                keys = {"/".join(n["assetKey"]["path"]) for n in nodes}
            except (OSError, KeyError, TypeError, ValueError):
                time.sleep(2)
        assert {"raw/transactions", "marts/fct_transactions", "marts/fct_daily_metrics"} <= keys
        started = psutil.Process(proc.pid).children(recursive=True)  # dagster dev and its servers
    finally:
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(timeout=120)
    assert rc == 0
    assert len(started) >= 3
    # `dagster dev` has returned; its servers and the embedded PostgreSQL stop on their own, within a bound
    # (a loaded machine took more than 2 s for the last code server).
    psutil.wait_procs(still_running(started), timeout=30)
    assert still_running(started) == []
    deadline, postgres = time.monotonic() + 30, [None]
    while postgres and time.monotonic() < deadline:
        postgres = [
            p for p in psutil.process_iter(["cmdline"]) if str(home) in " ".join(p.info["cmdline"] or [])
        ]
        time.sleep(0.5 if postgres else 0)
    assert postgres == []  # the embedded server stopped with its last user


def test_mlflow_ui_serves_the_project_store_and_ctrl_c_stops_it(home: Path):
    import signal

    import psutil

    port = free_port()
    proc = subprocess.Popen(
        [*TITANS, "mlflow", "--port", str(port)],
        env=_env(home, home / "raw"),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        body = get_until_up(f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search?max_results=5", proc)
        assert "experiments" in json.loads(body or "{}"), body
        started = psutil.Process(proc.pid).children(recursive=True)
    finally:
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(timeout=60)
    assert rc in (0, -signal.SIGINT, 130)
    assert still_running(started) == []
