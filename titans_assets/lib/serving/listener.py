"""Spread new connections over BentoML's workers with SO_REUSEPORT (works around bentoml/BentoML#5426).

`spread_this_worker` (called once a worker has loaded its models) gives every worker but worker 1 a
socket of its own bound with SO_REUSEPORT in place of the inherited one; where the kernel refuses,
the worker keeps the inherited socket and logs why. `TITANS_SERVE_REUSEPORT=0` turns this off.

Design notes (the imbalance measured, how, the cost): docs/design-notes.md#titans_assetslibservinglistenerpy
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
