"""One JSON error shape everywhere: `{"error": {"code": ..., "message": ..., "field": ...}}`; `field` is
always there (null when no single field is at fault: 401, 429, 503...).

Codes from the original guide: E001 database, E002 model not found (no champion, or the registry is
unreachable), E003 invalid input (the field is named), E004 rate limit (Retry-After says when),
E005 authentication. E000 is an unexpected server error (never caused by input).

An error body names the dependency that failed, never its address: every message goes through
`scrub`, which replaces URIs, absolute paths, IP addresses, ports and credentials (a driver's
"connection to server on socket /tmp/.../.s.PGSQL.5432 failed" must not reach a client).
"""

from __future__ import annotations

import re
from typing import Any

import orjson

_CODE_PREFIX = re.compile(r"^E\d{3}:? ")

# What `scrub` removes, in order. URIs first (they hold credentials, hosts and socket paths at once).
_SCRUB = (
    (re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]*"), "<uri>"),
    (
        re.compile(r"(?i)\b(password|passwd|pwd|secret|token|api[_-]?key)(\s*[=:]\s*)[^\s,;]+"),
        r"\1\2<redacted>",
    ),
    (re.compile(r"(?i)\b(host|hostaddr|port|user|dbname)=[^\s&,;]+"), r"\1=<redacted>"),
    (re.compile(r"(?<![\w.~/:-])~?/[^\s'\"<>(),;]+"), "<path>"),
    (re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b"), "<address>"),
    (re.compile(r"\[?(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}\]?(?=[\s),\]]|$)"), "<address>"),
    (re.compile(r'(?i)\b(server at|connecting to|host) "?[^\s",;)]+"?'), r"\1 <address>"),
    (re.compile(r"(?i)\bport \d+"), "port <redacted>"),
)


def scrub(text: str) -> str:
    """`text` without the addresses and secrets of what failed (URIs, paths, IPs, ports, passwords)."""
    for pattern, replacement in _SCRUB:
        text = pattern.sub(replacement, text)
    return text


INTERNAL = "E000"
DATABASE = "E001"
MODEL = "E002"
INVALID = "E003"
RATE_LIMIT = "E004"
AUTH = "E005"


class ApiError(Exception):
    """An answer other than success: HTTP status, code, one-line message, optionally the field."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        message = scrub(_CODE_PREFIX.sub("", message, count=1))  # the code has its own key
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return error_body(self.code, self.message, self.field)

    def __repr__(self) -> str:
        return f"ApiError({self.status}, {self.code}, {self.message!r}, field={self.field!r})"


def error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "field": field}}


def error_json(code: str, message: str, field: str | None = None) -> bytes:
    return orjson.dumps(error_body(code, message, field))


def invalid(field: str, message: str, status: int = 422) -> ApiError:
    """E003: the message starts with the field so a log line alone says what was wrong."""
    return ApiError(status, INVALID, f"{field}: {message}", field=field)


def unauthorized(message: str) -> ApiError:
    return ApiError(
        401, AUTH, message, field="Authorization", headers={"WWW-Authenticate": 'Bearer realm="titans"'}
    )


def rate_limited(scope: str, limit: str, retry_after: int) -> ApiError:
    return ApiError(
        429,
        RATE_LIMIT,
        f"rate limit exceeded ({limit} per {scope}); retry after {retry_after} s",
        headers={"Retry-After": str(retry_after)},
    )


def model_unavailable(message: str, status: int = 503) -> ApiError:
    return ApiError(status, MODEL, message)
