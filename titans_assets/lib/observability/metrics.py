"""The service's own Prometheus series, beside BentoML's (`bentoml_service_*`) on /metrics.

`service_metrics()` builds the `titans_*` request, error, rate-limit and model-version series on first
use, in the worker; label sets are bounded (route templates, the four models). Metrics are an extra:
a failure to record one never fails a request.

Design notes (every series and its labels): docs/design-notes.md#titans_assetslibobservabilitymetricspy
"""

from __future__ import annotations

import functools
import logging
import os
import time
import uuid
from dataclasses import dataclass
from typing import Any

from titans_assets.lib.observability.logs import fields
from titans_assets.lib.serving.routes import RAW_PATH_KEY, UNMATCHED, template_of

log = logging.getLogger("titans.serving")
access_log = logging.getLogger("titans.serving.access")

# Latency buckets (seconds): a single prediction takes a few ms, a 1,000-row batch or a cash-flow
# forecast up to about a second on a loaded machine.
BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
MODEL_KEYS = ("category", "amount", "anomaly", "cashflow")
REQUEST_ID_HEADER = b"x-request-id"
SCOPE_KEY = "titans.obs"  # a dict shared by every copy of the scope: the app notes the model served there


@dataclass(frozen=True)
class ServiceMetrics:
    requests: Any
    latency: Any
    errors: Any
    rejections: Any
    reloads: Any
    version: Any
    worker_version: Any


@functools.cache
def service_metrics() -> ServiceMetrics:
    from prometheus_client import Counter, Gauge, Histogram

    return ServiceMetrics(
        requests=Counter(
            "titans_http_requests",
            "HTTP requests by route template, method and status",
            ["route", "method", "status"],
        ),
        latency=Histogram(
            "titans_http_request_duration_seconds",
            "time to answer, by route template and model",
            ["route", "model"],
            buckets=BUCKETS,
        ),
        errors=Counter("titans_errors", "error answers by code (E000-E005) and route", ["code", "route"]),
        rejections=Counter(
            "titans_rate_limit_rejections", "requests refused by a rate limit (E004)", ["scope"]
        ),
        reloads=Counter("titans_model_reloads", "champion refreshes by outcome", ["model", "outcome"]),
        version=Gauge(
            "titans_model_version",
            "registry version of the champion served",
            ["model"],
            multiprocess_mode="mostrecent",
        ),
        worker_version=Gauge(
            "titans_worker_model_version",
            "registry version each live worker serves",
            ["model", "kind"],
            multiprocess_mode="liveall",
        ),
    )


def _safe(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            fn(*args, **kwargs)
        except Exception:  # never fail a request for a metric
            log.debug("metric %s failed", fn.__name__, exc_info=True)

    return wrapper


def model_of(route: str) -> str:
    """The model a route template serves ('' for routes that serve none)."""
    if route.startswith("/predict/"):
        key = route.split("/")[2]
        return key if key in MODEL_KEYS else ""
    return ""


@_safe
def count_error(code: str, route: str) -> None:
    service_metrics().errors.labels(code=code, route=route).inc()


@_safe
def count_rejection(scope: str) -> None:
    service_metrics().rejections.labels(scope=scope).inc()


@_safe
def record_refresh(key: str, outcome: str, version: str | None, kind: str | None) -> None:
    """One champion refresh: its outcome, and the version this worker now serves."""
    m = service_metrics()
    m.reloads.labels(model=key, outcome=outcome).inc()
    if version and version.isdigit():
        m.version.labels(model=key).set(int(version))
        m.worker_version.labels(model=key, kind=kind or "model").set(int(version))


def note(scope: dict, **fields: Any) -> None:
    """Let the access line know what answered (model version...); a no-op outside `Instrumented`."""
    notes = scope.get(SCOPE_KEY)
    if notes is not None:
        notes.update(fields)


class Instrumented:
    """Outermost ASGI wrapper: counts and times every HTTP request by route template, gives it a request
    id (the client's X-Request-ID when it is sane, else a new one, echoed in the response) and writes one
    access line (logger `titans.serving.access`: route, status, latency, model and version; never the
    body or the headers)."""

    def __init__(self, app, access_lines: bool | None = None):
        from titans_assets.lib.observability.logs import log_format

        self.app = app
        self.router = getattr(app, "router", None)  # what Starlette's TestClient and BentoML look for
        self.state = getattr(app, "state", None)
        # BentoML writes its own access line in text mode; ours (with the request id, model and version)
        # is the JSON mode's.
        self.access_lines = log_format() == "json" if access_lines is None else access_lines

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        route = template_of(scope.get(RAW_PATH_KEY, scope["path"]))
        request_id = _request_id(scope)
        notes: dict[str, Any] = {}
        scope = dict(scope)
        scope[SCOPE_KEY] = notes
        status = 500

        async def send_wrapper(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER, request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - started
            self._record(route, scope.get("method", "GET"), status, elapsed, request_id, notes)

    def _record(
        self, route: str, method: str, status: int, elapsed: float, request_id: str, notes: dict
    ) -> None:
        model = model_of(route)
        try:
            m = service_metrics()
            m.requests.labels(route=route, method=method, status=str(status)).inc()
            m.latency.labels(route=route, model=model).observe(elapsed)
            if route == UNMATCHED and status == 404:  # answered by RestorePath, before the app's own counting
                m.errors.labels(code="E003", route=route).inc()
        except Exception:
            log.debug("request metrics failed", exc_info=True)
        if self.access_lines and access_log.isEnabledFor(logging.INFO):
            access_log.info(
                "%s %s %s %.1f ms",
                method,
                route,
                status,
                elapsed * 1000,
                extra=fields(
                    request_id=request_id,
                    route=route,
                    method=method,
                    status=status,
                    latency_seconds=round(elapsed, 6),
                    model=model or None,
                    model_version=notes.get("model_version"),
                    model_kind=notes.get("model_kind"),
                    worker_pid=os.getpid(),
                ),
            )


def _request_id(scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == REQUEST_ID_HEADER:
            text = value.decode("latin-1")
            if 0 < len(text) <= 64 and all(c.isalnum() or c in "-_." for c in text):
                return text
            break
    return uuid.uuid4().hex
