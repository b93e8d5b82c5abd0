"""Spread new connections over BentoML's workers with SO_REUSEPORT (works around bentoml/BentoML#5426).

BentoML 1.4's workers all accept from one listening socket inherited from its supervisor (circus).
A worker woken for a pending connection accepts every connection waiting, so when a client opens its
connections in a burst (a connection pool, a proxy, a load generator) one worker can get all of them
and the other idles: three identical 4-second runs of a 2-worker server gave 886, 2,561 and 979
req/s (docs/benchmarks.md, "Serving", run E).

With SO_REUSEPORT the kernel hashes each new connection (by its addresses and ports) to one of the
listening sockets bound to the same address, as gunicorn's `--reuse-port` and nginx's `reuseport`
do. Here, once a worker has loaded its models (so nothing is routed to a worker that cannot answer
yet), it marks the inherited socket SO_REUSEPORT and, unless it is worker 1, binds a socket of its
own to the same address and puts it in place of the inherited one under the same descriptor number,
which uvicorn then serves. Worker 1 keeps accepting from the inherited socket, which stays in the
group. Where the kernel refuses, the worker keeps the inherited socket, as before, and logs why.
`TITANS_SERVE_REUSEPORT=0` turns this off.

SO_REUSEPORT's known cost: connections still waiting in a worker's own queue when that worker exits
are reset (BentoML then restarts the worker, which binds again).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping, Sequence

log = logging.getLogger("titans.serving")


def inherited_fd(argv: Sequence[str]) -> int | None:
    """The listening descriptor BentoML's worker was started with (`--fd N`), if any."""
    for i, arg in enumerate(argv[:-1]):
        if arg == "--fd" and argv[i + 1].isdigit():
            return int(argv[i + 1])
    return None


def enabled(environ: Mapping[str, str]) -> bool:
    return environ.get("TITANS_SERVE_REUSEPORT", "1").strip().lower() not in ("0", "false", "no", "off")


def spread(fd: int, worker_index: int) -> bool:
    """Make descriptor `fd` this worker's own SO_REUSEPORT listener (see the module docstring).
    True when the worker now takes its share of new connections; False when it keeps the shared socket."""
    try:
        shared = socket.socket(fileno=os.dup(fd))
    except OSError as exc:
        log.warning("worker %s: descriptor %s is not a listening socket (%s)", worker_index, fd, exc)
        return False
    try:
        if shared.family not in (socket.AF_INET, socket.AF_INET6) or shared.type != socket.SOCK_STREAM:
            return False
        shared.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if worker_index <= 1:
            return True
        own = socket.socket(shared.family, socket.SOCK_STREAM)
        try:
            own.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            own.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if shared.family == socket.AF_INET6:
                v6only = shared.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)
                own.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, v6only)
            own.bind(shared.getsockname())
            own.listen(socket.SOMAXCONN)  # uvicorn sets its own backlog when it starts serving
            os.dup2(own.fileno(), fd, inheritable=os.get_inheritable(fd))
        finally:
            own.close()
        return True
    except OSError as exc:
        log.warning("worker %s keeps the shared listening socket (SO_REUSEPORT: %s)", worker_index, exc)
        return False
    finally:
        shared.close()


def spread_this_worker(argv: Sequence[str], environ: Mapping[str, str]) -> bool:
    """`spread` in a BentoML worker process (one started with `--fd` and a worker index); nothing elsewhere."""
    from bentoml._internal.context import server_context

    fd, index = inherited_fd(argv), server_context.worker_index
    if fd is None or index is None or not enabled(environ):
        return False
    return spread(fd, index)
