"""Request bodies -> model input rows. Every failure is an E003 naming the field (4xx, never 5xx).

Hand-written instead of pydantic: the checks are few, the error names the field exactly as the client
wrote it (`transactions[3].amount`), and a single request costs microseconds. The bounds:

- dates are `YYYY-MM-DD` between 1900-01-01 and 2100-12-31; times `HH:MM` or `HH:MM:SS`
- amounts are finite JSON numbers with |amount| <= 1e9 (booleans are not numbers)
- text fields are strings of bounded length; optional fields may be absent or null
- unknown fields are rejected (a typo such as `amout` must not silently become a missing value)
- a batch holds 1..1000 transactions; `horizon_days` is an integer in 1..365
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from titans_assets.lib.serving.errors import ApiError, invalid

MIN_DATE = dt.date(1900, 1, 1)
MAX_DATE = dt.date(2100, 12, 31)
MAX_ABS_AMOUNT = 1e9
MAX_BATCH = 1000
MAX_HORIZON = 365
TEXT_LIMITS = {"description": 500, "reference": 200, "category": 100, "payment_method": 100}
DEFAULT_MAX_BODY_BYTES = 1 << 20  # a 1,000-transaction batch is ~200 KB

_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_TIME = re.compile(r"[0-9]{2}:[0-9]{2}(:[0-9]{2})?")

Row = dict[str, Any]


def parse_json(body: bytes) -> Any:
    """The request body as JSON (E003 400 when it is not)."""
    if not body:
        raise invalid("body", "empty request body: send a JSON object", status=400)
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise invalid("body", f"invalid JSON ({str(exc).splitlines()[0][:120]})", status=400) from None


def _where(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _object(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise invalid(where or "body", f"expected a JSON object, got {_kind(value)}")
    return value


def only_field(payload: Any, name: str) -> Any:
    """The value of `name` in a JSON object body that may hold only that field (E003 naming the field)."""
    obj = _object(payload, "")
    for key in obj:
        if key != name:
            raise invalid(str(key)[:60], f"unknown field (expected: {name})")
    value = obj.get(name)
    if value is None:
        raise invalid(name, "required")
    return value


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _date(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise invalid(where, f"expected a date string YYYY-MM-DD, got {_kind(value)}")
    if not _DATE.fullmatch(value):
        raise invalid(where, f"expected a date YYYY-MM-DD, got {value[:40]!r}")
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        raise invalid(where, f"not a calendar date: {value!r}") from None
    if not MIN_DATE <= day <= MAX_DATE:
        raise invalid(where, f"date out of range {MIN_DATE}..{MAX_DATE}: {value}")
    return value


def _time(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _TIME.fullmatch(value):
        raise invalid(where, f"expected a time HH:MM or HH:MM:SS, got {value!r}"[:120])
    parts = [int(p) for p in value.split(":")]
    if parts[0] > 23 or parts[1] > 59 or (len(parts) == 3 and parts[2] > 59):
        raise invalid(where, f"not a time of day: {value!r}")
    return value


def _amount(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise invalid(where, f"expected a number, got {_kind(value)}")
    amount = float(value)
    if not math.isfinite(amount) or abs(amount) > MAX_ABS_AMOUNT:
        raise invalid(where, f"amount must be finite with |amount| <= {MAX_ABS_AMOUNT:.0e}, got {value}")
    return amount


def _text(value: Any, where: str, name: str, required: bool) -> str | None:
    if value is None:
        if required:
            raise invalid(where, "required")
        return None
    if not isinstance(value, str):
        raise invalid(where, f"expected a string, got {_kind(value)}")
    if len(value) > TEXT_LIMITS[name]:
        raise invalid(where, f"longer than {TEXT_LIMITS[name]} characters")
    if required and not value.strip():
        raise invalid(where, "must not be empty")
    return value


@dataclass(frozen=True)
class RowSpec:
    """Which fields a row-level model takes: required and optional, and the column each feeds."""

    name: str
    required: tuple[str, ...]
    optional: tuple[str, ...]

    @property
    def fields(self) -> tuple[str, ...]:
        return self.required + self.optional

    def parse(self, obj: Any, prefix: str = "") -> Row:
        obj = _object(obj, prefix)
        allowed = _ALLOWED[self.name]
        for key in obj:
            if key not in allowed:
                raise invalid(
                    _where(prefix, str(key)[:60]), f"unknown field (expected: {', '.join(self.fields)})"
                )
        row: Row = {}
        for name in self.fields:
            where = _where(prefix, name)
            value = obj.get(name)
            required = name in self.required
            if value is None and required:
                raise invalid(where, "required")
            if name == "amount":
                row["amount"] = _amount(value, where)
            elif name == "date":
                row["txn_date"] = _date(value, where)
            elif name == "time":
                if value is not None:
                    _time(value, where)  # accepted and checked; the models work at day granularity
            else:
                row[name] = _text(value, where, name, required)
        return row


# The description is optional: a bank line without one is categorised from the amount, date,
# payment method and reference.
CATEGORY = RowSpec("category", ("amount", "date"), ("description", "payment_method", "reference"))
AMOUNT = RowSpec("amount", ("category", "date"), ("payment_method", "description"))
ANOMALY = RowSpec(
    "anomaly", ("amount", "date"), ("category", "description", "time", "payment_method", "reference")
)
ROW_SPECS = {s.name: s for s in (CATEGORY, AMOUNT, ANOMALY)}
_ALLOWED = {s.name: frozenset(s.fields) for s in ROW_SPECS.values()}


def parse_row(spec: RowSpec, payload: Any) -> Row:
    return spec.parse(payload)


def parse_batch(spec: RowSpec, payload: Any, max_batch: int = MAX_BATCH) -> list[Row]:
    """`{"transactions": [row, ...]}` with 1..max_batch rows."""
    items = only_field(payload, "transactions")
    if not isinstance(items, list):
        raise invalid("transactions", f"expected an array, got {_kind(items)}")
    if not 1 <= len(items) <= max_batch:
        raise invalid(
            "transactions",
            f"expected 1..{max_batch} transactions, got {len(items)}",
            status=413 if len(items) > max_batch else 422,
        )
    return [spec.parse(item, f"transactions[{i}]") for i, item in enumerate(items)]


@dataclass(frozen=True)
class CashflowRequest:
    horizon_days: int
    include_seasonality: bool = True


def parse_cashflow(payload: Any) -> CashflowRequest:
    obj = _object(payload, "")
    for key in obj:
        if key not in ("horizon_days", "include_seasonality"):
            raise invalid(str(key)[:60], "unknown field (expected: horizon_days, include_seasonality)")
    h = obj.get("horizon_days")
    if h is None:
        raise invalid("horizon_days", "required")
    if (
        isinstance(h, bool)
        or not isinstance(h, (int, float))
        or (isinstance(h, float) and not h.is_integer())
    ):
        raise invalid(
            "horizon_days", f"expected an integer, got {_kind(h) if not isinstance(h, float) else h}"
        )
    if not 1 <= h <= MAX_HORIZON:
        raise invalid("horizon_days", f"must be in 1..{MAX_HORIZON}, got {h}")
    seasonal = obj.get("include_seasonality")
    if seasonal is None:
        seasonal = True
    elif not isinstance(seasonal, bool):
        raise invalid("include_seasonality", f"expected a boolean, got {_kind(seasonal)}")
    return CashflowRequest(int(h), seasonal)


def check_content_type(value: str | None) -> None:
    """JSON only (no header is taken as JSON: curl -d sends form encoding by default, so say so)."""
    if value is None:
        return
    media = value.split(";", 1)[0].strip().lower()
    if media != "application/json" and not (media.startswith("application/") and media.endswith("+json")):
        raise invalid("Content-Type", f"expected application/json, got {value[:60]!r}", status=415)


def env_number(environ: Mapping[str, str], name: str, default, cast, minimum):
    """A numeric setting from the environment: `default` when unset, E003 when not a number or below
    `minimum`."""
    raw = environ.get(name)
    if not raw:
        return default
    try:
        value = cast(raw)
    except ValueError:
        kind = "an integer" if cast is int else "a number"
        raise ValueError(f"E003 invalid input: {name} must be {kind}, got {raw!r}") from None
    if value < minimum:
        raise ValueError(f"E003 invalid input: {name} must be >= {minimum}, got {raw!r}")
    return value


def body_limit(environ: Mapping[str, str]) -> int:
    return env_number(environ, "TITANS_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES, int, 1024)


Parser = Callable[[Any], Any]
__all__ = [
    "ApiError",
    "CATEGORY",
    "AMOUNT",
    "ANOMALY",
    "ROW_SPECS",
    "RowSpec",
    "parse_json",
    "parse_row",
    "parse_batch",
    "parse_cashflow",
    "CashflowRequest",
    "check_content_type",
    "body_limit",
]
