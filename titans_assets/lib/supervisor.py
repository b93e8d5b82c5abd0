"""Child processes of the CLI: one long-lived child that stops itself on Ctrl-C (`run_until_child_exits`),
or several servers watched and stopped together (`Supervisor`, for `titans up`).

Each child runs in its own process group, so a Ctrl-C in the terminal reaches only us; we then send
SIGTERM to every group (the servers shut down their own children: code servers, workers), wait, and
SIGKILL whatever is left, including descendants that moved to a group of their own. Nothing outlives
`stop()`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psutil


@dataclass(frozen=True)
class Service:
    name: str
    argv: list[str]
    url: str  # what a person opens
    ready_url: str  # answers 2xx once the server is up
    env: dict[str, str] = field(default_factory=dict)  # on top of the parent's environment


@dataclass
class Running:
    service: Service
    proc: subprocess.Popen
    log: Path
    ready: bool = False


def tail(path: Path, lines: int = 1) -> str:
    """The last non-empty lines of a log (for a one-line reason when a server dies)."""
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return " | ".join([ln.strip() for ln in text if ln.strip()][-lines:])


def answers(url: str, timeout: float = 3.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return 200 <= resp.status < 400
    except OSError:
        return False


class Supervisor:
    def __init__(self, log_dir: Path, cwd: Path | None = None):
        self.log_dir = log_dir
        self.cwd = cwd
        self.running: list[Running] = []
        log_dir.mkdir(parents=True, exist_ok=True)

    def start(self, service: Service) -> Running:
        log = self.log_dir / f"{service.name}.log"
        with log.open("w") as out:
            proc = subprocess.Popen(
                service.argv,
                env={**os.environ, **service.env},
                cwd=self.cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                process_group=0,
            )
        running = Running(service, proc, log)
        self.running.append(running)
        return running

    def poll(self) -> tuple[list[Running], Running | None]:
        """(services that just became ready, a service that exited — or None)."""
        became = []
        for r in self.running:
            if r.proc.poll() is not None:
                return became, r
            if not r.ready and r.service.ready_url and answers(r.service.ready_url):
                r.ready = True
                became.append(r)
        return became, None

    def descendants(self) -> list[psutil.Process]:
        found = []
        for r in self.running:
            try:
                parent = psutil.Process(r.proc.pid)
                found += [parent, *parent.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
        return found

    def stop(self, grace: float = 20.0) -> list[str]:
        """SIGTERM every group, wait up to `grace` seconds, SIGKILL the rest; returns the names of
        services that had to be killed."""
        tree = self.descendants()
        for r in self.running:
            if r.proc.poll() is None:
                _signal_group(r.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for r in self.running:
            try:
                r.proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                pass
        killed = []
        for r in self.running:
            if r.proc.poll() is None:
                killed.append(r.service.name)
                _signal_group(r.proc.pid, signal.SIGKILL)
                r.proc.wait(timeout=10)
        # Grandchildren that left their group (or lingered after their parent exited).
        _, alive = psutil.wait_procs(
            [p for p in tree if p.is_running()], timeout=max(deadline - time.monotonic(), 2)
        )
        for p in alive:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(alive, timeout=5)
        return killed


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def run_until_child_exits(argv: list[str]) -> int:
    """Run a long-lived child (e.g. `dagster dev`) and let it shut down its own children on Ctrl-C or
    SIGTERM: the signal is passed on and we wait, instead of killing it and orphaning its servers.
    Our exit handlers (which release the embedded PostgreSQL) run after the child is gone.

    The handlers are installed before the child starts: a handled signal is reset to the default in
    the child, while an ignored one would stay ignored. That matters when we were started with SIGINT
    ignored (a background job of a script: `titans dagster ... &`): Dagster handles SIGTERM as it
    handles SIGINT, so a child inheriting the ignored SIGINT would ignore SIGTERM as well."""
    started: list[subprocess.Popen] = []
    early: list[int] = []  # a signal that came before the child existed

    def forward(signum, frame):
        if not started:
            early.append(signum)
        elif started[0].poll() is None:
            started[0].send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        # Its own process group: a Ctrl-C reaches it once, through us, not twice.
        started.append(subprocess.Popen(argv, process_group=0))
        for signum in early:
            started[0].send_signal(signum)
        return started[0].wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
