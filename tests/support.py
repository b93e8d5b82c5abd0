"""Small helpers shared by the tests: fresh homes, free loopback ports, waiting for a URL, stopping servers."""

from __future__ import annotations

import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path


def new_home(prefix: str = "titans-home-") -> Path:
    """An empty directory for a TITANS_HOME (or a pgserver root): readable by the embedded PostgreSQL,
    which runs as its own user when we are root. The caller removes it."""
    home = Path(tempfile.mkdtemp(prefix=prefix))
    home.chmod(0o755)
    return home


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_until_up(url: str, proc: subprocess.Popen | None = None, timeout: float = 180) -> str:
    """The body of `url` once a server answers it ('' if it never did, or if `proc` exited first)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and (proc is None or proc.poll() is None):
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                return resp.read().decode()
        except OSError:
            time.sleep(1)
    return ""


def stop_group(proc: subprocess.Popen, tree: list | None = None, grace: float = 60) -> list:
    """SIGTERM a server started in its own process group (SIGKILL after `grace` seconds), then wait for
    every process of its tree (`tree`, or the tree as it is now); returns those still running, killed."""
    import os
    import signal

    import psutil

    if tree is None:
        try:
            parent = psutil.Process(proc.pid)
            tree = [parent, *parent.children(recursive=True)]
        except psutil.NoSuchProcess:
            tree = []
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    _, alive = psutil.wait_procs(tree, timeout=20)
    alive = still_running(alive)
    for p in alive:
        p.kill()
    return alive


def still_running(processes: list) -> list:
    """The psutil processes that still run: a zombie has exited, only its parent (often init, for an
    orphan) has not collected its exit status yet."""
    import psutil

    def running(p) -> bool:
        try:
            return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    return [p for p in processes if running(p)]


def row_chunks(frame, sizes):
    """Consecutive slices of a DataFrame whose lengths cycle through `sizes` (request-sized pieces)."""
    start, i = 0, 0
    while start < len(frame):
        yield frame.iloc[start : start + sizes[i % len(sizes)]]
        start += sizes[i % len(sizes)]
        i += 1


def built_once(name: str, build, base: Path | None = None):
    """`build()`'s (picklable) result, computed once per test run however many pytest-xdist workers ask
    for it: the first worker builds it under a lock and pickles it to `base` (a folder every worker of
    the run shares, named by xdist's run id); the others wait for the lock and unpickle it. Outside
    xdist (or without `base`) it is simply built. For costly, deterministic inputs that several test
    files only read (e.g. the trained models of the serving tests), never for mutable state."""
    import fcntl
    import os
    import pickle

    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if base is None or not run:
        return build()
    folder = base / f"built-once-{run}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.pickle"
    with (folder / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, even if build() raised
        if path.exists():
            return pickle.loads(path.read_bytes())
        value = build()
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
        tmp.replace(path)
        return value


def dbt_command(args: list[str], project: Path, target: Path) -> list[str]:
    """The dbt CLI of this venv on `project` (its own profiles.yml), writing its target and logs under
    `target`: for tests that run dbt as a user would, in a subprocess."""
    import sys

    paths = {"--project-dir": project, "--profiles-dir": project, "--target-path": target}
    paths["--log-path"] = target / "logs"
    cmd = [sys.executable, "-c", "import sys; from dbt.cli.main import cli; sys.exit(cli())", *args]
    return cmd + [part for flag, path in paths.items() for part in (flag, str(path))]
