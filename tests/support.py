"""Small helpers shared by the tests that start servers: free loopback ports, waiting for a URL."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request


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
