"""The champions a worker serves: resolved from the registry alias, swapped atomically, kept on failure.

`ModelHolder` keeps one immutable `Loaded` (version + model) per model; a refresh re-resolves
`NAME@champion` and only a successful load replaces it. Failures answer one code and a message that
names the dependency, never its address (`E002 <registry> is unreachable`); `check_registry()` backs
GET /models/health.

Design notes (refresh, polling, failure reporting): docs/design-notes.md#titans_assetslibservingholderpy
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from titans_assets.lib.ml.promotion import kind_of
from titans_assets.lib.serving.errors import scrub

log = logging.getLogger("titans.serving")

DEFAULT_POLL_SECONDS = 30.0


class ChampionSource(Protocol):
    """Where champions come from (the MLflow registry in production, a dict in unit tests)."""

    def current(self, name: str) -> tuple[str, str] | None:
        """(version, run_id) behind NAME@champion, None when there is no champion; raises when the
        registry cannot be read."""

    def load(self, name: str, version: str) -> Loaded:
        """The model object of that version, with its run's metrics and the version's tags."""

    # optional: `ping()` raises when the registry cannot be reached (cheap, bounded in time)


@dataclass(frozen=True)
class Loaded:
    name: str
    version: str
    run_id: str
    model: Any
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    loaded_at: float = field(default_factory=time.time)

    @property
    def kind(self) -> str:
        """ "model", or "baseline:<name>" when no trained model has beaten that baseline."""
        return kind_of(self.tags)


@dataclass(frozen=True)
class Slot:
    key: str
    name: str
    loaded: Loaded | None = None
    error: str | None = None  # the last refresh's failure (the loaded model, if any, keeps serving)
    error_code: str | None = None
    checked_at: float | None = None
    unreachable: bool = False  # the error is the registry being unreachable (cleared when it answers)

    @property
    def status(self) -> str:
        if self.loaded is not None:
            return "ready" if self.error is None else "stale"
        return "error" if self.error else "missing"


@dataclass(frozen=True)
class Refresh:
    key: str
    outcome: str  # reloaded | unchanged | missing | failed
    version: str | None  # what serves now
    previous: str | None
    error: str | None = None
    error_code: str | None = None


# What a failure to reach the registry looks like, anywhere in an exception's chain: the drivers'
# operational errors, sockets refusing or timing out, our own E001 and "unreachable" errors.
_UNREACHABLE_TYPES = frozenset(
    {
        "OperationalError",
        "InterfaceError",
        "ConnectionError",
        "ConnectTimeout",
        "ReadTimeout",
        "TimeoutError",
        "NewConnectionError",
        "MaxRetryError",
    }
)
_UNREACHABLE_TEXT = (
    "unreachable",
    "could not connect",
    "cannot connect",
    "connection refused",
    "connection to server",
    "timed out",
)


def unreachable(exc: BaseException) -> bool:
    """Whether `exc` (or what caused it) says the registry or its database could not be reached."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        first = (str(cur).strip().splitlines() or [""])[0].lower()
        if (
            type(cur).__name__ in _UNREACHABLE_TYPES
            or getattr(cur, "code", None) == "E001"
            or any(t in first for t in _UNREACHABLE_TEXT)
        ):
            return True
        cur = cur.__cause__ or cur.__context__
    return False


def _line(exc: BaseException) -> str:
    """One scrubbed line for a failure that is not the registry being unreachable (a broken artifact)."""
    text = (str(exc).strip().splitlines() or [""])[0][:300]
    if text[:1] == "E" and text[1:4].isdigit():
        return scrub(text[4:].lstrip(": "))
    return scrub(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="seconds")


class ModelHolder:
    def __init__(
        self,
        names: dict[str, str],
        source: ChampionSource | Callable[[], ChampionSource],
        registry_label: str = "the model registry",
    ):
        """`names`: model key (category, ...) -> registry name. `source` or a factory of it (called on
        first use and again after a failure, so a registry that was down at start-up is picked up).
        `registry_label` names the dependency in error messages ("the MLflow registry (PostgreSQL)")."""
        self.names = dict(names)
        self.registry_label = registry_label
        self._source_factory = source if callable(source) and not hasattr(source, "current") else None
        self._source: ChampionSource | None = None if self._source_factory else source  # type: ignore[assignment]
        self._slots: dict[str, Slot] = {k: Slot(k, n) for k, n in self.names.items()}
        self._locks = {k: threading.Lock() for k in self.names}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.poll_seconds: float = 0.0
        self.on_change: Callable[[Refresh], None] | None = None  # after a swap
        self.on_refresh: Callable[[Refresh], None] | None = None  # after every refresh (metrics)

    # -- reads (lock-free: one dict lookup of an immutable slot) -----------------------------------
    def get(self, key: str) -> Slot:
        return self._slots[key]

    def kind_of(self, key: str) -> str | None:
        """The kind of what serves `key` now (None when nothing is loaded)."""
        loaded = self._slots[key].loaded
        return loaded.kind if loaded else None

    def key_of(self, name: str) -> str | None:
        """`category` or `titans_category` -> `category`."""
        if name in self.names:
            return name
        for key, registered in self.names.items():
            if registered == name:
                return key
        return None

    # -- refresh --------------------------------------------------------------------------------
    def source(self) -> ChampionSource:
        if self._source is None:
            assert self._source_factory is not None
            self._source = self._source_factory()
        return self._source

    def refresh(self, key: str) -> Refresh:
        with self._locks[key]:
            result = self._refresh_locked(key)
        hooks = [self.on_refresh, self.on_change if result.outcome == "reloaded" else None]
        for hook in hooks:
            if hook is None:
                continue
            try:
                hook(result)
            except Exception:  # a metrics hook must never break a reload
                log.exception("refresh hook failed")
        return result

    def _refresh_locked(self, key: str) -> Refresh:
        slot = self._slots[key]
        now = time.time()
        previous = slot.loaded.version if slot.loaded else None
        try:
            current = self.source().current(slot.name)
        except Exception as exc:  # building the client or resolving the alias: the registry itself failed
            if self._source_factory is not None:
                self._source = None  # build it again next time (the database may come back)
            return self._failed(slot, now, previous, exc, lookup=True)
        if current is None:
            if slot.loaded is None:
                self._slots[key] = replace(
                    slot, error=None, error_code=None, checked_at=now, unreachable=False
                )
                return Refresh(key, "missing", None, None)
            message = f"E002 {slot.name}@champion no longer exists; still serving version {previous}"
            self._slots[key] = replace(
                slot, error=message, error_code="E002", checked_at=now, unreachable=False
            )
            return Refresh(key, "failed", previous, previous, message, "E002")
        version, _run_id = current
        if slot.loaded is not None and slot.loaded.version == version:
            self._slots[key] = replace(slot, error=None, error_code=None, checked_at=now, unreachable=False)
            return Refresh(key, "unchanged", version, previous)
        try:
            loaded = self.source().load(slot.name, version)
        except Exception as exc:
            return self._failed(slot, now, previous, exc, version=version)
        self._slots[key] = Slot(key, slot.name, loaded, None, None, now)  # the atomic swap
        log.info("serving %s version %s (was %s)", slot.name, loaded.version, previous or "none")
        return Refresh(key, "reloaded", loaded.version, previous)

    def failure_message(
        self, name: str, exc: BaseException, lookup: bool = False, version: str | None = None
    ) -> tuple[str, bool]:
        """(message with its code, whether the registry was unreachable): one code (E002) for every
        failure, and while the registry is down the same words whichever step met it."""
        if lookup or unreachable(exc):
            return f"E002 {self.registry_label} is unreachable", True
        return f"E002 loading {name} version {version} failed: {_line(exc)}", False

    def _failed(
        self,
        slot: Slot,
        now: float,
        previous: str | None,
        exc: BaseException,
        lookup: bool = False,
        version: str | None = None,
    ) -> Refresh:
        message, down = self.failure_message(slot.name, exc, lookup, version)
        if previous:
            message = f"{message}; still serving version {previous}"
        self._slots[slot.key] = replace(
            slot, error=message, error_code="E002", checked_at=now, unreachable=down
        )
        if message != slot.error:  # once per outage, not once per poll; the cause (addresses included) is
            log.warning(
                "refreshing %s failed: %s (%s: %s)",
                slot.name,
                message,  # for the operator's log only
                type(exc).__name__,
                (str(exc).strip().splitlines() or [""])[0][:300],
            )
        return Refresh(slot.key, "failed", previous, previous, message, "E002")

    def check_registry(self) -> bool:
        """Ask the registry now (GET /models/health): when it cannot be reached, every slot says so at
        once (E002, its last good model keeps serving); when it answers again, the slots that failed
        for that reason are refreshed. True when the registry answered."""
        try:
            source = self.source()
            ping = getattr(source, "ping", None)
            if ping is not None:
                ping()
        except Exception as exc:
            if self._source_factory is not None:
                self._source = None
            now = time.time()
            for key in self.names:
                with self._locks[key]:
                    slot = self._slots[key]
                    previous = slot.loaded.version if slot.loaded else None
                    self._failed(slot, now, previous, exc, lookup=True)
            return False
        for key, slot in self._slots.items():
            if slot.unreachable:
                self.refresh(key)
        return True

    def refresh_all(self) -> list[Refresh]:
        return [self.refresh(k) for k in self.names]

    # -- polling --------------------------------------------------------------------------------
    def start_polling(self, seconds: float) -> None:
        """Re-resolve every alias every `seconds` in a daemon thread (0: never)."""
        self.poll_seconds = seconds
        if seconds <= 0 or self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._poll, name="titans-model-poller", daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            for key in self.names:
                if self._stop.is_set():
                    return
                try:
                    self.refresh(key)
                except Exception:  # never let the poller die
                    log.exception("polling %s failed", key)

    def stop(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=5)

    # -- reports --------------------------------------------------------------------------------
    def status(self) -> dict[str, dict[str, Any]]:
        out = {}
        for key, slot in self._slots.items():
            m = slot.loaded
            out[key] = {
                "name": slot.name,
                "status": slot.status,
                "model_version": m.version if m else None,
                "model_kind": m.kind if m else None,
                "run_id": m.run_id if m else None,
                "loaded_at": _iso(m.loaded_at) if m else None,
                "checked_at": _iso(slot.checked_at),
                "metrics": dict(m.metrics) if m else {},
                "promotion_reason": m.tags.get("titans.promotion_reason") if m else None,
                "error": scrub(slot.error) if slot.error else None,
                "error_code": slot.error_code,
            }
        return out

    def health(self) -> dict[str, Any]:
        models = {}
        for key, slot in self._slots.items():
            entry: dict[str, Any] = {
                "name": slot.name,
                "status": slot.status,
                "model_version": slot.loaded.version if slot.loaded else None,
                "model_kind": slot.loaded.kind if slot.loaded else None,
            }
            if slot.error:
                entry["error"] = {"code": slot.error_code or "E002", "message": scrub(slot.error)}
            elif slot.loaded is None:
                entry["error"] = {
                    "code": "E002",
                    "message": f"E002 no champion for {slot.name} yet: "
                    "train and promote one (titans materialize)",
                }
            models[key] = entry
        serving = sum(1 for s in self._slots.values() if s.loaded is not None)
        clean = sum(1 for s in self._slots.values() if s.status == "ready")
        overall = "healthy" if clean == len(self._slots) else ("degraded" if serving else "unhealthy")
        return {"status": overall, "models": models, "worker_pid": os.getpid()}


class RegistrySource:
    """The MLflow registry of `Settings` (tracking URI explicit; same database as the warehouse by default)."""

    def __init__(self, settings, database=None):
        from titans_assets.lib.db import get_database
        from titans_assets.lib.ml.tracking import Registry

        db = database or get_database(settings)
        self.registry = Registry.from_settings(settings, db)
        _ = self.registry.client  # reach the store now: E002 at once when it is down

    def ping(self, timeout: float = 2.0) -> None:
        """Raise unless the registry's store answers within `timeout` seconds (a database: one
        connection and SELECT 1; a tracking server: its /health)."""
        uri = self.registry.tracking_uri
        if uri.startswith(("postgresql", "postgres")):
            import psycopg2

            from titans_assets.lib.db import Database

            params = Database(uri.replace("+psycopg2", "", 1)).connect_kwargs()
            with (
                psycopg2.connect(
                    connect_timeout=max(1, round(timeout)), application_name="titans-health", **params
                ) as conn,
                conn.cursor() as cur,
            ):
                cur.execute("SELECT 1")
            conn.close()
        elif uri.startswith(("http://", "https://")):
            import urllib.request

            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout) as resp:
                resp.read()

    def current(self, name: str) -> tuple[str, str] | None:
        mv = self.registry.champion_version(name)
        return None if mv is None else (str(mv.version), mv.run_id)

    def load(self, name: str, version: str) -> Loaded:
        from titans_assets.lib.ml.tracking import RegistryError

        champ = self.registry.champion(name)  # resolves again: the version loaded is the one reported
        if champ is None:
            raise RegistryError(f"E002 {name}@champion disappeared while loading version {version}")
        return Loaded(
            name=name,
            version=champ.version,
            run_id=champ.run_id,
            model=champ.model,
            metrics=champ.metrics,
            tags=champ.tags,
        )
