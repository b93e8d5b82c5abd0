"""The BentoML service: the MLflow champions over HTTP (`titans serve`, `bentoml serve bento.service:TitansService`).

The API itself is the Starlette app of `titans_assets.lib.serving.app`, mounted at `/` (BentoML's
`@asgi_app`): BentoML supplies the server, the workers, `/livez`, `/readyz`, `/metrics` and `bentoml
build`; the app supplies routing with path parameters, the one error shape, auth, rate limits and a
lean request path. Each worker, when BentoML creates the service instance, resolves
`models:/NAME@champion` for the four models through the project's Registry (explicit tracking URI
from Settings), starts its alias poller, and hands the runtime to the app. No Dagster import here.

Three adjustments to BentoML 1.4's HTTP stack, all done through its public extension points (and,
in each worker, its listening socket: titans_assets/lib/serving/listener.py):
- metrics: our own series (titans_*, lib/observability/metrics.py) come from `Instrumented`, the outermost
  wrapper; BentoML labels requests by raw path, so `TitansBentoService.to_asgi` shows its middleware
  the route template (`/models/{name}/reload`, `/{unmatched}`) and `RestorePath` restores the real
  path before routing (titans_assets/lib/serving/routes.py);
- client addresses: uvicorn would believe X-Forwarded-For from 127.0.0.1; `to_asgi` makes it believe
  no one, so only TITANS_TRUSTED_PROXIES decides (titans_assets/lib/serving/proxies.py);
- tracing: with no trace exporter configured, OpenTelemetry's ASGI middleware only costs time
  (~0.5 ms per request here, sampling rate 0), so its URLs are excluded unless an exporter is set.
"""

from __future__ import annotations

import logging
import os
import sys

import bentoml
from _bentoml_sdk.service.factory import Service

from titans_assets.lib.observability.logs import use_json
from titans_assets.lib.observability.metrics import Instrumented, record_refresh
from titans_assets.lib.serving.app import create_app
from titans_assets.lib.serving.listener import spread_this_worker
from titans_assets.lib.serving.proxies import UVICORN_FORWARDED_ALLOW_IPS
from titans_assets.lib.serving.routes import RestorePath, TemplatePaths
from titans_assets.lib.serving.runtime import Runtime, poll_seconds

log = logging.getLogger("titans.serving")
use_json()  # TITANS_LOG_FORMAT=json: BentoML's handlers as configured so far write JSON too (again per worker)

app = create_app()  # the runtime is attached per worker, in TitansService.__init__


class TitansBentoService(Service):
    """BentoML's Service with the two adjustments above."""

    __slots__ = ()

    def inject_config(self) -> None:
        super().inject_config()
        from bentoml._internal.configuration.containers import BentoMLContainer

        if BentoMLContainer.config.tracing.exporter_type.get() is None:
            BentoMLContainer.config.tracing.excluded_urls.set([".*"])

    def to_asgi(self, is_main: bool = True):
        # Called in each worker just before BentoML builds its uvicorn config, which reads
        # FORWARDED_ALLOW_IPS (default 127.0.0.1: anyone on the host could set X-Forwarded-For): uvicorn
        # trusts no peer, and the app applies TITANS_TRUSTED_PROXIES itself (lib/serving/proxies.py).
        os.environ["FORWARDED_ALLOW_IPS"] = UVICORN_FORWARDED_ALLOW_IPS
        # Our request counters, latency per route and model, and the request id (lib/observability/metrics.py).
        return Instrumented(TemplatePaths(super().to_asgi(is_main=is_main)))


@bentoml.service(name="titans", service_class=TitansBentoService, workers=1, traffic={"timeout": 60})
@bentoml.asgi_app(app, path="/")
class TitansService:
    def __init__(self) -> None:
        use_json()  # TITANS_LOG_FORMAT=json: this worker's log records as JSON lines (lib/observability/logs.py)
        self.runtime = Runtime.from_env()
        holder = self.runtime.holder
        # Metrics of every refresh (outcome, and the version this worker serves): titans_model_reloads_total,
        # titans_model_version, titans_worker_model_version (lib/observability/metrics.py).
        holder.on_refresh = lambda r: record_refresh(r.key, r.outcome, r.version, holder.kind_of(r.key))
        self.runtime.start(poll_seconds(os.environ))
        app.state.runtime = self.runtime
        # Models loaded: from now on this worker takes its share of new connections (bentoml/BentoML#5426).
        spread_this_worker(sys.argv, os.environ)

    @bentoml.on_shutdown
    def shutdown(self) -> None:
        self.runtime.stop()


TitansService.add_asgi_middleware(RestorePath)
