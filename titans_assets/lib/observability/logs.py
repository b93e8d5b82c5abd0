"""Structured logs: with TITANS_LOG_FORMAT=json every log record is one JSON object on one line.

Fields: `timestamp` (UTC, ISO 8601 with milliseconds), `level`, `component` (the logger's name),
`message`, and whatever the record carries among `request_id`, `run_id`, `model`, `model_version`,
`route`, `method`, `status`, `latency_seconds`, `worker_pid` (passed with `extra=`). The default
(unset or `text`) keeps the human-readable lines.

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

FIELDS = ("request_id", "run_id", "model", "model_version", "model_kind", "route", "method", "status",
          "latency_seconds", "worker_pid", "event", "outcome", "code")
_REDACT = (
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]+"), r"\1 <redacted>"),
    (re.compile(r"(?i)\b(api[_-]?keys?|authorization|password|secret|token)(\s*[=:]\s*)[^\s,;&]+"),
     r"\1\2<redacted>"),
    (re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s]*@"), r"\1***@"),
)


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
        for name in FIELDS:
            value = record.__dict__.get(name)
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


def use_json(loggers: tuple[str, ...] = ("", "titans", "bentoml", "uvicorn", "uvicorn.error", "uvicorn.access"),
             environ: Mapping[str, str] | None = None) -> bool:
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
