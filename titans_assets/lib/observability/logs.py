"""Structured logs: with TITANS_LOG_FORMAT=json every log record is one JSON object on one line.

Fields: `timestamp` (UTC, ISO 8601 with milliseconds), `level`, `component` (the logger's name),
`message`, and whatever the record carries among `request_id`, `run_id`, `model`, `model_version`,
`route`, `method`, `status`, `latency_seconds`, `worker_pid`, passed as `extra=fields(...)` (one
`titans_fields` attribute: BentoML's log filters set attributes such as `request_id` on every record
and would overwrite ours). The default (unset or `text`) keeps the human-readable lines.

Nothing secret reaches a line: the message and every field go through `redact`, which removes bearer
tokens, API keys in `key=value` form and URI credentials, and the service never logs request bodies
(the access line carries the route, status and latency only).
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from datetime import UTC, datetime

FIELDS = (
    "request_id",
    "run_id",
    "model",
    "model_version",
    "model_kind",
    "route",
    "method",
    "status",
    "latency_seconds",
    "worker_pid",
    "event",
    "outcome",
    "code",
)
_REDACT = (
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]+"), r"\1 <redacted>"),
    (
        re.compile(r"(?i)\b(api[_-]?keys?|authorization|password|secret|token)(\s*[=:]\s*)[^\s,;&]+"),
        r"\1\2<redacted>",
    ),
    (re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s]*@"), r"\1***@"),
)


def fields(**values) -> dict:
    """`extra=` for a log call: the structured fields of the JSON line."""
    return {"titans_fields": values}


def redact(text: str) -> str:
    """`text` without bearer tokens, `api_key=...`-style secrets and URI passwords."""
    for pattern, replacement in _REDACT:
        text = pattern.sub(replacement, text)
    return text


def log_format(environ: Mapping[str, str] | None = None) -> str:
    """'json' or 'text' from TITANS_LOG_FORMAT (anything else is an error: E003)."""
    value = ((os.environ if environ is None else environ).get("TITANS_LOG_FORMAT") or "text").strip().lower()
    if value not in ("json", "text"):
        raise ValueError(f"E003 invalid input: TITANS_LOG_FORMAT must be json or text, got {value!r}")
    return value


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (tracebacks included as a field)."""

    def __init__(self, component: str | None = None, secrets: tuple[str, ...] = ()):
        super().__init__()
        self.component = component
        self.secrets = tuple(s for s in secrets if s)

    def _clean(self, text: str) -> str:
        for s in self.secrets:
            text = text.replace(s, "<redacted>")
        return redact(text)

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "timestamp": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "component": self.component or record.name,
            "message": self._clean(record.getMessage()),
        }
        if self.component:
            out["logger"] = record.name
        given = dict(record.__dict__.get("titans_fields") or {})
        for name in FIELDS:
            value = given.pop(name, None)
            if value is None:
                value = record.__dict__.get(name)
            if value is not None:
                out[name] = self._clean(value) if isinstance(value, str) else value
        for name, value in given.items():
            if value is not None:
                out[name] = self._clean(value) if isinstance(value, str) else value
        if record.exc_info:
            out["exception"] = self._clean(self.formatException(record.exc_info))
        return json.dumps(out, default=str, ensure_ascii=False)


def env_secrets(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The configured API keys, so a formatter can remove them wherever they would appear."""
    env = os.environ if environ is None else environ
    keys = [k.strip() for k in (env.get("TITANS_API_KEYS") or "").split(",")]
    keys.append((env.get("TITANS_API_KEY") or "").strip())
    return tuple(k for k in keys if len(k) >= 8)


def use_json(
    loggers: tuple[str, ...] = ("", "titans", "bentoml", "uvicorn", "uvicorn.error", "uvicorn.access"),
    environ: Mapping[str, str] | None = None,
) -> bool:
    """When TITANS_LOG_FORMAT=json: every handler of `loggers` formats JSON, and the `titans` loggers
    write to stderr if nothing would print them. Returns whether JSON is on."""
    env = os.environ if environ is None else environ
    if log_format(env) != "json":
        return False
    formatter = JsonFormatter(secrets=env_secrets(env))
    seen = False
    for name in loggers:
        for handler in logging.getLogger(name).handlers:
            handler.setFormatter(formatter)
            seen = True
    titans = logging.getLogger("titans")
    if not titans.handlers and not (seen and titans.propagate):
        handler = logging.StreamHandler()
        handler.setFormatter(formatter)
        titans.addHandler(handler)
        titans.propagate = False
    if titans.level == logging.NOTSET or titans.level > logging.INFO:
        titans.setLevel(logging.INFO)
    return True


class JsonLinesFile:
    """A run log in JSON: everything written to `fileno()` (a pipe: the run's own file descriptors 1 and 2,
    which child processes such as dbt inherit) or to `write()` becomes one JSON object per line in `path`,
    `{"timestamp", "level", "component", "message", ...fields}`. Lines that are JSON objects already (dbt
    with --log-format json) are kept as they are, with the fields added. `close(**fields)` adds late fields
    (the run id, known when the run ends) to every line written."""

    def __init__(self, path, component: str = "titans.run", secrets: tuple[str, ...] = (), **fields):
        import threading

        self.path = path
        self.component = component
        self.fields = dict(fields)
        self.late: dict = {}  # fields added to every line at close() (the run id)
        self.secrets = tuple(s for s in secrets if s)
        self._read, self._write = os.pipe()
        self._out = open(path, "w", encoding="utf-8")  # noqa: SIM115 (closed in close())
        self._lock = threading.Lock()
        self._writer = os.fdopen(os.dup(self._write), "w", buffering=1, encoding="utf-8", errors="replace")
        self._thread = threading.Thread(target=self._copy, name="titans-json-log", daemon=True)
        self._thread.start()

    def fileno(self) -> int:
        return self._write

    def write(self, text: str) -> int:
        return self._writer.write(text)

    def flush(self) -> None:
        self._writer.flush()

    def record(self, message: str, level: str = "info", component: str | None = None, **fields) -> None:
        """One record written directly (progress events, the summary)."""
        self._emit(message, level, component, fields)

    def _clean(self, text: str) -> str:
        for s in self.secrets:
            text = text.replace(s, "<redacted>")
        return redact(text)

    def _emit(self, message: str, level: str, component: str | None, fields: dict) -> None:
        out = None
        stripped = message.strip()
        if stripped.startswith("{") and stripped.endswith("}"):
            try:
                parsed = json.loads(stripped)
                out = parsed if isinstance(parsed, dict) else None
            except ValueError:
                out = None
        if out is None:
            out = {
                "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "level": level,
                "component": component or self.component,
                "message": self._clean(message.rstrip("\n")),
            }
        else:
            out = {k: (self._clean(v) if isinstance(v, str) else v) for k, v in out.items()}
            out.setdefault("timestamp", datetime.now(UTC).isoformat(timespec="milliseconds"))
            out.setdefault("level", level)
            out.setdefault("component", component or self.component)
        for k, v in {**self.fields, **fields}.items():
            out.setdefault(k, v)
        with self._lock:
            self._out.write(json.dumps(out, default=str, ensure_ascii=False) + "\n")
            self._out.flush()

    def _copy(self) -> None:
        with os.fdopen(self._read, "rb") as pipe:
            for raw in pipe:
                line = raw.decode("utf-8", errors="replace")
                if line.strip():
                    level = "error" if line.lstrip().lower().startswith(("error", "traceback")) else "info"
                    self._emit(line, level, None, {})

    def close(self, **late_fields) -> None:
        """Stop copying (every writer of the pipe must have closed it or exited), then add `late_fields`
        to every line."""
        self._writer.close()
        os.close(self._write)
        self._thread.join(timeout=10)
        with self._lock:
            self._out.close()
        late_fields = {**self.late, **late_fields}
        if late_fields:
            with open(self.path, encoding="utf-8") as f:
                lines = [json.loads(line) for line in f if line.strip()]
            with open(self.path, "w", encoding="utf-8") as f:
                for obj in lines:
                    for k, v in late_fields.items():
                        obj.setdefault(k, v)
                    f.write(json.dumps(obj, default=str, ensure_ascii=False) + "\n")
