"""What one worker holds (keys, limiter, champions) and the API's operations as plain method calls.

The HTTP layer (app.py) only reads bodies, picks a thread and encodes JSON; everything an endpoint
decides happens here, so tests (and other callers) can call the service logic in-process. Errors
are `ApiError`s with the code, status and field of the one error shape.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from titans_assets.lib.ml import catalog
from titans_assets.lib.ml.cold_start import HOW_TO_LABEL, ColdStart, LabelGate
from titans_assets.lib.observability.metrics import count_rejection
from titans_assets.lib.serving import corrections, predict
from titans_assets.lib.serving import validation as V
from titans_assets.lib.serving.auth import KeyRing, bearer_token
from titans_assets.lib.serving.errors import (
    ApiError,
    invalid,
    model_unavailable,
    rate_limited,
    scrub,
    unauthorized,
)
from titans_assets.lib.serving.holder import DEFAULT_POLL_SECONDS, ChampionSource, ModelHolder
from titans_assets.lib.serving.proxies import TrustedProxies
from titans_assets.lib.serving.ratelimit import RateLimitConfig, RateLimiter

log = logging.getLogger("titans.serving")

REGISTRY_NAMES = {spec.key: spec.name for spec in catalog.SPECS}  # model key -> registered name


def poll_seconds(environ: Mapping[str, str]) -> float:
    return V.env_number(environ, "TITANS_MODEL_POLL_SECONDS", DEFAULT_POLL_SECONDS, float, 0)


def _database(settings):
    from titans_assets.lib.db import get_database

    return get_database(settings)


def registry_label(settings) -> str:
    """How error messages name the registry: what it is, never where it is."""
    uri = settings.mlflow_tracking_uri or "postgresql"  # default: a database beside the warehouse
    if uri.startswith(("postgresql", "postgres")):
        return "the MLflow registry (its PostgreSQL database)"
    if uri.startswith(("http://", "https://")):
        return "the MLflow registry (tracking server)"
    return "the MLflow registry"


@dataclass
class Runtime:
    keys: KeyRing
    limiter: RateLimiter
    holder: ModelHolder
    max_body_bytes: int = V.DEFAULT_MAX_BODY_BYTES
    proxies: TrustedProxies = TrustedProxies()
    warehouse: corrections.Warehouse | None = None  # for corrections and the cold-start count
    gate: LabelGate = LabelGate()
    _cold_start: tuple[float, ColdStart | None] | None = field(default=None, repr=False)

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        source: ChampionSource | Callable[[], ChampionSource] | None = None,
    ) -> Runtime:
        """Configuration from the environment; champions from `source` (default: the MLflow registry of
        `Settings.from_env`). Nothing is loaded until `start()`."""
        env = dict(os.environ if environ is None else environ)
        keys = KeyRing.from_env(env)
        from titans_assets.lib.settings import Settings

        settings = Settings.from_env(env)
        if not keys:
            log.warning(
                "no API keys configured (TITANS_API_KEYS / TITANS_API_KEYS_FILE): "
                "every prediction and management route answers 401"
            )
        label = "the model registry"
        if source is None:
            from titans_assets.lib.serving.holder import RegistrySource

            label = registry_label(settings)

            def source():  # built lazily, and again after a failure (the database may come back)
                return RegistrySource(settings)

        return cls(
            keys=keys,
            limiter=RateLimiter(RateLimitConfig.from_env(env)),
            holder=ModelHolder(REGISTRY_NAMES, source, registry_label=label),
            max_body_bytes=V.body_limit(env),
            proxies=TrustedProxies.from_env(env),
            warehouse=corrections.Warehouse(lambda: _database(settings)),
            gate=LabelGate.from_env(env),
        )

    def start(self, poll: float = DEFAULT_POLL_SECONDS) -> None:
        """Resolve and load every champion (a missing one is reported, not fatal), then poll."""
        for r in self.holder.refresh_all():
            if r.outcome in ("missing", "failed"):
                log.warning("%s: %s", self.holder.names[r.key], r.error or "no champion yet")
        self.holder.start_polling(poll)

    def stop(self) -> None:
        self.holder.stop()

    # -- admission: IP limit, then the key, then the key's limit ---------------------------------
    def client_address(self, peer: str | None, forwarded_for: list[str] | tuple[str, ...] = ()) -> str:
        """The address the per-IP limit counts: the TCP peer, or what a trusted proxy forwarded."""
        return self.proxies.client(peer, forwarded_for)

    def admit(self, client_ip: str, authorization: str | None) -> str:
        """The caller's key id, or ApiError 429 (E004) / 401 (E005). Unauthenticated attempts count
        against the IP's limit, so guessing keys is rate limited too."""
        rejected = self.limiter.hit("ip", client_ip)
        if rejected:
            count_rejection("ip")
            raise rate_limited("client IP", rejected.limit, rejected.retry_after)
        token = bearer_token(authorization)
        if token is None:
            raise unauthorized("E005 authentication required: send Authorization: Bearer <API key>")
        key_id = self.keys.identify(token)
        if key_id is None:
            raise unauthorized("E005 invalid API key")
        rejected = self.limiter.hit("key", key_id)
        if rejected:
            count_rejection("key")
            raise rate_limited("API key", rejected.limit, rejected.retry_after)
        return key_id

    # -- predictions ----------------------------------------------------------------------------
    def champion(self, key: str):
        slot = self.holder.get(key)
        if slot.loaded is None:
            reason = slot.error or self._why_no_champion(key, slot.name)
            raise model_unavailable(reason if reason.startswith("E00") else f"E002 {reason}")
        return slot.loaded

    def _why_no_champion(self, key: str, name: str) -> str:
        """Why there is no champion: for the category model, the cold start's label count when the
        warehouse can tell (it may ask the warehouse: call it off the event loop)."""
        status = self.cold_start_status() if key == "category" else None
        if status is not None and not status.ready:
            return f"no champion for {name} yet: {status.reason()}; {HOW_TO_LABEL}"
        if status is not None:
            return (
                f"no champion for {name} yet: {status.reason()}; it trains at the next materialization "
                "(titans materialize)"
            )
        return f"no champion for {name} yet: train and promote one (titans materialize)"

    COLD_START_TTL = 5.0  # seconds a worker reuses its label count (a correction here refreshes it)

    def cold_start_status(self) -> ColdStart | None:
        """The cold-start gate on the warehouse's labels (cached briefly), None when it cannot tell."""
        now = time.monotonic()
        cached = self._cold_start
        if cached is not None and now - cached[0] < self.COLD_START_TTL:
            return cached[1]
        status = None
        if self.warehouse is not None:
            from titans_assets.lib.ml.cold_start import warehouse_status

            try:
                status = warehouse_status(self.warehouse.database(), self.gate)
            except Exception as exc:  # noqa: BLE001 - the generic answer instead; the cause goes to the log
                log.warning(
                    "cold-start label count unavailable: %s",
                    scrub(str(exc).splitlines()[0] if str(exc) else type(exc).__name__),
                )
        self._cold_start = (now, status)
        return status

    # -- corrections ----------------------------------------------------------------------------
    def correct_category(self, transaction_id: str, payload: Any, key_id: str) -> dict[str, Any]:
        """PUT /transactions/{transaction_id}/category (lib/serving/corrections.py)."""
        category = corrections.parse_body(payload)
        if self.warehouse is None:
            raise ApiError(503, "E001", "no warehouse database is configured for this service")
        body = corrections.correct(
            self.warehouse, corrections.parse_transaction_id(transaction_id), category, key_id
        )
        self._cold_start = None  # the label count changed
        return body

    def parse_rows(self, key: str, payload: Any, batch: bool) -> list[V.Row]:
        spec = V.ROW_SPECS[key]
        return V.parse_batch(spec, payload) if batch else [V.parse_row(spec, payload)]

    def predict_rows(self, key: str, rows: list[V.Row], batch: bool) -> dict[str, Any]:
        loaded = self.champion(key)
        results = predict.ROW_PREDICTORS[key](loaded.model, rows)
        if batch:
            return {
                "predictions": results,
                "count": len(results),
                "model_version": loaded.version,
                "model_kind": loaded.kind,
            }
        body = results[0]
        body["model_version"] = loaded.version
        body["model_kind"] = loaded.kind
        return body

    def predict(self, key: str, payload: Any, batch: bool = False) -> dict[str, Any]:
        """One call: validate, predict, shape (what the HTTP endpoints do, minus HTTP)."""
        if key == "cashflow":
            if batch:
                raise invalid("path", "cashflow has no batch form", status=404)
            return self.predict_cashflow(payload)
        return self.predict_rows(key, self.parse_rows(key, payload, batch), batch)

    def predict_cashflow(self, payload: Any) -> dict[str, Any]:
        request = V.parse_cashflow(payload)
        loaded = self.champion("cashflow")
        body = predict.cashflow(loaded.model, request)
        body["model_version"] = loaded.version
        body["model_kind"] = loaded.kind
        return body

    # -- management -----------------------------------------------------------------------------
    def reload(self, name: str) -> dict[str, Any]:
        key = self.holder.key_of(name)
        if (
            key is None
        ):  # the client named something that does not exist: invalid input, not a missing champion
            raise ApiError(
                404,
                "E003",
                f"name: unknown model {name[:60]!r} (known: {', '.join(self.holder.names)} "
                f"or {', '.join(self.holder.names.values())})",
                field="name",
            )
        r = self.holder.refresh(key)
        if r.outcome == "failed":
            reason = (r.error or "").removeprefix("E002 ")
            raise model_unavailable(f"E002 reload of {self.holder.names[key]} failed: {reason}")
        if r.outcome == "missing":
            raise model_unavailable(f"E002 no champion for {self.holder.names[key]} in the registry")
        return {
            "model": key,
            "name": self.holder.names[key],
            "outcome": r.outcome,
            "model_version": r.version,
            "model_kind": self.holder.kind_of(key),
            "previous_version": r.previous,
            "worker_pid": os.getpid(),
        }

    def models_status(self) -> dict[str, Any]:
        return {
            "worker_pid": os.getpid(),
            "poll_seconds": self.holder.poll_seconds,
            "rate_limits": self.limiter.describe(),
            "trusted_proxies": self.proxies.describe(),
            "models": self.holder.status(),
        }

    def models_health(self) -> dict[str, Any]:
        """Per-model health, with the registry asked now (a dead registry shows on this request)."""
        self.holder.check_registry()
        return self.holder.health()

    def health(self) -> dict[str, Any]:
        """Public: no versions or errors, just whether each model can answer."""
        h = self.holder.health()
        return {"status": h["status"], "models": {k: m["status"] for k, m in h["models"].items()}}
