"""Rate limits per client IP and per API key, on the `limits` package (E004 with Retry-After).

`RateLimiter` applies TITANS_RATE_LIMIT_IP (default 60/minute) and TITANS_RATE_LIMIT_KEY (default
1000/hour), in `limits` syntax, "none" to switch one off; with TITANS_REDIS_URL the counters are
shared in Redis, else (or while Redis is away) per worker in memory (`LocalCounters`).

Design notes (the strategy, the Redis fallback, why LocalCounters): docs/design-notes.md#titans_assetslibservingratelimitpy
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass

from limits import RateLimitItem, WindowStats, parse_many
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
            raise RateLimitConfigError(
                f"E003 invalid input: TITANS_REDIS_URL must be redis://..., got {redis_url!r}"
            )
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
        return {
            "per_ip": [str(i) for i in self.per_ip],
            "per_key": [str(i) for i in self.per_key],
            "storage": "redis" if self.shared else "memory (per worker)",
        }


@dataclass(frozen=True)
class Rejection:
    scope: str  # "ip" | "key"
    limit: str
    retry_after: int  # whole seconds, >= 1


class LocalCounters:
    """`limits`' sliding window counter strategy (`hit`, `get_window_stats`) on counters in this
    worker's memory, without threads: a window's counter is dropped when read after it expired, and
    every key is swept at most once per `SWEEP_SECONDS` (so clients never seen again do not pile up).

    The same arithmetic as `SlidingWindowCounterRateLimiter` on `limits`' storages: windows of `expiry`
    seconds numbered int(now / expiry); the previous window's count weighs by the share of it still
    inside the sliding window."""

    SWEEP_SECONDS = 10.0

    def __init__(self) -> None:
        self._counts: dict[str, tuple[int, float]] = {}  # window key -> (count, expires at)
        self._lock = threading.Lock()
        self._next_sweep = time.time() + self.SWEEP_SECONDS

    def _get(self, key: str, now: float) -> int:
        entry = self._counts.get(key)
        if entry is None:
            return 0
        if entry[1] <= now:
            del self._counts[key]
            return 0
        return entry[0]

    def _window(self, key: str, expiry: int, now: float) -> tuple[int, float, int, float, str]:
        current_key = f"{key}/{int(now / expiry)}"
        previous_count = self._get(f"{key}/{int((now - expiry) / expiry)}", now)
        current_count = self._get(current_key, now)
        previous_ttl = 0.0 if previous_count == 0 else (1 - (((now - expiry) / expiry) % 1)) * expiry
        current_ttl = (1 - ((now / expiry) % 1)) * expiry + expiry
        return previous_count, previous_ttl, current_count, current_ttl, current_key

    def acquire_sliding_window_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        if amount > limit:
            return False
        now = time.time()
        with self._lock:
            if now >= self._next_sweep:
                self._sweep(now)
            previous_count, previous_ttl, current_count, _, current_key = self._window(key, expiry, now)
            if math.floor(previous_count * previous_ttl / expiry + current_count) + amount > limit:
                return False
            expires = self._counts.get(current_key, (0, now + 2 * expiry))[1]
            self._counts[current_key] = (current_count + amount, expires)
            return True

    def get_sliding_window(self, key: str, expiry: int) -> tuple[int, float, int, float]:
        now = time.time()
        with self._lock:
            return self._window(key, expiry, now)[:4]

    # -- the strategy's interface ------------------------------------------------------------------
    def hit(self, item: RateLimitItem, *identifiers: str, cost: int = 1) -> bool:
        return self.acquire_sliding_window_entry(
            item.key_for(*identifiers), item.amount, item.get_expiry(), cost
        )

    def get_window_stats(self, item: RateLimitItem, *identifiers: str) -> WindowStats:
        expiry = item.get_expiry()
        previous_count, previous_ttl, current_count, current_ttl = self.get_sliding_window(
            item.key_for(*identifiers), expiry
        )
        remaining = max(0, item.amount - math.floor(previous_count * previous_ttl / expiry + current_count))
        now = time.time()
        if not (previous_count or current_count):
            return WindowStats(now, remaining)
        previous_reset_in = previous_ttl % (expiry / previous_count) if previous_count else math.inf
        current_reset_in = current_ttl % expiry if current_count else math.inf
        return WindowStats(now + min(previous_reset_in, current_reset_in), remaining)

    def _sweep(self, now: float) -> None:
        self._counts = {k: v for k, v in self._counts.items() if v[1] > now}
        self._next_sweep = now + self.SWEEP_SECONDS

    def check(self) -> bool:
        return True

    def reset(self) -> int:
        with self._lock:
            n = len(self._counts)
            self._counts.clear()
            return n


class RateLimiter:
    RETRY_SECONDS = 5.0  # while Redis is down, how often one request tries it again

    def __init__(self, config: RateLimitConfig):
        self.config = config
        self.local = LocalCounters()  # the counters without Redis, or while it is unreachable
        if config.shared:
            # A stalled Redis must not stall requests: fail fast, then count locally.
            options = {"key_prefix": config.prefix, "socket_timeout": 0.5, "socket_connect_timeout": 0.5}
            self.storage = storage_from_string(config.storage_uri, **options)
            self.strategy = SlidingWindowCounterRateLimiter(self.storage)
        else:
            self.storage = self.strategy = self.local
        self._state = threading.Lock()
        self.degraded = False  # Redis configured but unreachable: counting in this worker's memory
        self._retry_at = 0.0  # monotonic time of the next attempt at Redis while degraded

    def _where(self) -> str:
        return self.config.storage_uri.split("@")[-1].split("?")[0]  # no credentials in the log

    def _choose(self):
        if not self.degraded:
            return self.strategy
        now = time.monotonic()
        with self._state:
            if now < self._retry_at:
                return self.local
            self._retry_at = now + self.RETRY_SECONDS  # this request is the one that tries Redis
        return self.strategy

    def _count(self, strategy, items, scope: str, identity: str) -> Rejection | None:
        for item in items:
            if strategy.hit(item, scope, identity):
                continue
            reset_at = strategy.get_window_stats(item, scope, identity).reset_time
            return Rejection(scope, str(item), max(1, math.ceil(reset_at - time.time())))
        return None

    def hit(self, scope: str, identity: str) -> Rejection | None:
        """Count one request of `identity` under every limit of `scope`; the first limit it exceeds."""
        items = self.config.per_ip if scope == "ip" else self.config.per_key
        if not items:
            return None
        strategy = self._choose()
        if strategy is self.local:
            return self._count(self.local, items, scope, identity)
        try:
            rejected = self._count(strategy, items, scope, identity)
        except Exception as exc:  # Redis down or stalled: this worker counts on its own until it is back
            self._fall_back(exc)
            return self._count(self.local, items, scope, identity)
        if self.degraded:
            self._recovered()
        return rejected

    def _fall_back(self, exc: Exception) -> None:
        with self._state:
            self._retry_at = time.monotonic() + self.RETRY_SECONDS
            if self.degraded:
                return
            self.degraded = True
        log.warning(
            "rate limit storage %s unavailable (%s): limits are counted per worker in memory until it "
            "answers again (retried every %.0f s)",
            self._where(),
            (str(exc).splitlines() or [type(exc).__name__])[0][:200],
            self.RETRY_SECONDS,
        )

    def _recovered(self) -> None:
        with self._state:
            if not self.degraded:
                return
            self.degraded = False
        self.local.reset()  # the next outage starts from zero, not from counts of the last one
        log.warning("rate limit storage %s is back: limits are shared again", self._where())

    def describe(self) -> dict:
        out = self.config.describe()
        if self.degraded:
            out["storage"] = "memory (per worker: redis unreachable)"
        return out

    def reset(self) -> None:
        """Forget every counter (tests; with Redis only this prefix's keys)."""
        self.local.reset()
        if self.storage is not self.local:
            self.storage.reset()
