"""Rate limits per client IP and per API key, on the `limits` package (E004 with Retry-After).

Defaults follow the original guide: 60/minute per IP, 1000/hour per key. TITANS_RATE_LIMIT_IP and
TITANS_RATE_LIMIT_KEY take the `limits` string syntax ("60/minute", "10 per second;1000/day");
"none" switches one off. With TITANS_REDIS_URL (redis://host:port/db) the counters live in Redis and
are shared by every worker and replica; otherwise each worker counts in its own memory.

The strategy is the sliding window counter: one Redis round trip (a Lua script) per limit per
request, a second only to compute Retry-After for a rejected request. If Redis cannot be reached the
request is let through and a warning logged (at most once a minute): limits protect the service,
they must not take it down.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse_many
from limits.storage import storage_from_string
from limits.strategies import SlidingWindowCounterRateLimiter

DEFAULT_IP = "60/minute"
DEFAULT_KEY = "1000/hour"
DEFAULT_PREFIX = "titans-limits"
log = logging.getLogger("titans.serving")


class RateLimitConfigError(ValueError):
    code = "E003"


def _items(raw: str, env_name: str) -> tuple[RateLimitItem, ...]:
    if raw.strip().lower() in ("none", "off", "0", ""):
        return ()
    try:
        return tuple(parse_many(raw))
    except ValueError as exc:
        raise RateLimitConfigError(f"E003 invalid input: {env_name}={raw!r}: {exc}") from None


@dataclass(frozen=True)
class RateLimitConfig:
    per_ip: tuple[RateLimitItem, ...]
    per_key: tuple[RateLimitItem, ...]
    storage_uri: str  # memory:// or redis://...
    prefix: str = DEFAULT_PREFIX

    @classmethod
    def from_env(cls, environ: dict[str, str]) -> RateLimitConfig:
        redis_url = environ.get("TITANS_REDIS_URL") or ""
        if redis_url and not redis_url.startswith(("redis://", "rediss://", "redis+unix://")):
            raise RateLimitConfigError(f"E003 invalid input: TITANS_REDIS_URL must be redis://..., got {redis_url!r}")
        return cls(
            per_ip=_items(environ.get("TITANS_RATE_LIMIT_IP", DEFAULT_IP), "TITANS_RATE_LIMIT_IP"),
            per_key=_items(environ.get("TITANS_RATE_LIMIT_KEY", DEFAULT_KEY), "TITANS_RATE_LIMIT_KEY"),
            storage_uri=redis_url or "memory://",
            prefix=environ.get("TITANS_RATE_LIMIT_PREFIX") or DEFAULT_PREFIX,
        )

    @property
    def shared(self) -> bool:
        return not self.storage_uri.startswith("memory")

    def describe(self) -> dict:
        return {"per_ip": [str(i) for i in self.per_ip], "per_key": [str(i) for i in self.per_key],
                "storage": "redis" if self.shared else "memory (per worker)"}


@dataclass(frozen=True)
class Rejection:
    scope: str  # "ip" | "key"
    limit: str
    retry_after: int  # whole seconds, >= 1


class RateLimiter:
    def __init__(self, config: RateLimitConfig):
        self.config = config
        options: dict = {}
        if config.shared:
            # A stalled Redis must not stall requests: fail fast, then fail open.
            options = {"key_prefix": config.prefix, "socket_timeout": 0.5, "socket_connect_timeout": 0.5}
        self.storage = storage_from_string(config.storage_uri, **options)
        self.strategy = SlidingWindowCounterRateLimiter(self.storage)
        self._warned_at = 0.0

    def hit(self, scope: str, identity: str) -> Rejection | None:
        """Count one request of `identity` under every limit of `scope`; the first limit it exceeds."""
        items = self.config.per_ip if scope == "ip" else self.config.per_key
        for item in items:
            try:
                if self.strategy.hit(item, scope, identity):
                    continue
                reset_at = self.strategy.get_window_stats(item, scope, identity).reset_time
            except Exception as exc:  # redis down: let the request through, say so in the log
                self._warn(exc)
                return None
            retry = max(1, math.ceil(reset_at - time.time()))
            return Rejection(scope, str(item), retry)
        return None

    def _warn(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._warned_at > 60:
            self._warned_at = now
            log.warning("rate limit storage %s unavailable, requests are not limited: %s",
                        self.config.storage_uri.split("@")[-1], str(exc).splitlines()[0][:200])

    def reset(self) -> None:
        """Forget every counter (tests; with Redis only this prefix's keys)."""
        self.storage.reset()
