"""`PUT /transactions/{transaction_id}/category`: a person corrects one transaction's category.

The body is `{"category": "..."}`. The correction is stored through lib/categories/corrections.py
(`record_correction`: the latest per transaction in app.category_corrections, every one in
app.category_correction_log), with `corrected_by` = the caller's API key id (`KeyRing.identify`:
the first 16 hex digits of the key's SHA-256, never the key). The answer is the audit record:
old -> new, when, who. The warehouse is the one of `Settings` (TITANS_DATABASE_URL, else the
embedded server), reached when the first correction arrives.

Errors: an unknown transaction is 404 E003 (`field`: transaction_id); a bad category 422 E003; a
warehouse that does not answer 503 E001, one line naming the warehouse, never its address.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from typing import Any

from titans_assets.lib.serving.errors import DATABASE, ApiError, invalid
from titans_assets.lib.serving.validation import only_field

MAX_TRANSACTION_ID = 128  # ids are 32 hex digits (md5 of the natural key); anything far longer is not one
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# The schema's constraints (openapi.py uses the same patterns): printable text, not all whitespace.
CATEGORY_PATTERN = r"^[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x1f\x7f]*$"
TRANSACTION_ID_PATTERN = r"^[^/\x00-\x1f\x7f]+$"


def max_category_length() -> int:
    from titans_assets.lib.categories.corrections import MAX_CATEGORY_LENGTH

    return MAX_CATEGORY_LENGTH


def parse_transaction_id(value: Any) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_TRANSACTION_ID or _CONTROL.search(value):
        raise invalid("transaction_id", f"expected 1..{MAX_TRANSACTION_ID} printable characters")
    return value


def parse_body(payload: Any) -> str:
    """The category of a `{"category": "..."}` body, as the client wrote it (E003 naming the field)."""
    from titans_assets.lib.categories.corrections import CorrectionError, clean_category

    value = only_field(payload, "category")
    if not isinstance(value, str):
        raise invalid("category", "expected a string")
    limit = max_category_length()
    if len(value) > limit:  # before trimming: the schema's maxLength counts what was sent
        raise invalid("category", f"longer than {limit} characters")
    if _CONTROL.search(value):
        raise invalid("category", "control characters are not allowed")
    try:
        clean_category(value)
    except CorrectionError as exc:
        raise invalid("category", str(exc).split(":", 1)[-1].strip()) from None
    return value


def warehouse_unavailable(exc: BaseException) -> ApiError:
    detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return ApiError(503, DATABASE, f"the warehouse database is unreachable: {detail}")


def is_database_down(exc: BaseException) -> bool:
    """The database did not answer (E001), as opposed to a bug in what was asked of it."""
    from titans_assets.lib.errors import from_exception

    return from_exception(exc).code == "E001"


class Warehouse:
    """The warehouse `Database` of the service's Settings, resolved on first use (and again after a
    failure: the server may come back)."""

    def __init__(self, resolve: Callable[[], Any]):
        self._resolve = resolve
        self._db = None
        self._lock = threading.Lock()

    def database(self):
        with self._lock:
            if self._db is None:
                self._db = self._resolve()
            return self._db


def correct(warehouse: Warehouse, transaction_id: str, category: str, key_id: str) -> dict[str, Any]:
    """Store the correction; the audit record as the response body."""
    from titans_assets.lib.categories.corrections import CorrectionError, record_correction

    try:
        done = record_correction(warehouse.database(), transaction_id, category, key_id)
    except CorrectionError as exc:  # the body was checked first: what is left is the transaction
        message = str(exc).removeprefix("E003 ").removeprefix("invalid input: ")
        raise ApiError(404, "E003", message, field="transaction_id") from None
    except Exception as exc:
        if is_database_down(exc):
            raise warehouse_unavailable(exc) from None
        raise
    return {
        "transaction_id": done.transaction_id,
        "old_category": done.old,
        "new_category": done.new,
        "corrected_by": done.actor,
        "corrected_at": done.at.isoformat(),
    }
