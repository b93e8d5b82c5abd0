"""PostgreSQL's binary COPY format, built column-wise from pyarrow arrays (no Python per row).

The server then skips CSV parsing and the text input functions of every typed column: in
benchmarks/pipeline.py's measurement COPY BINARY took about a third less server CPU than COPY CSV for
the same rows. Layout (PostgreSQL docs, "COPY ... Binary Format"): a fixed header, then per row an
int16 field count and, per field, an int32 byte length (-1 for NULL) and the value in the type's
binary send format; an int16 -1 ends the data. All integers are big-endian.

Each field becomes a binary array of `length + value` per row; `pc.binary_join_element_wise` then
glues a row's fields together in C++, and the joined array's data buffer is the COPY payload.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"  # signature, flags, extension
TRAILER = b"\xff\xff"
_DAYS_1970_TO_2000 = (dt.date(2000, 1, 1) - dt.date(1970, 1, 1)).days  # PostgreSQL dates count from 2000
_PLAIN_NUMBER = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)$"


def row_prefix(field_count: int, *constants: str) -> bytes:
    """A row's field count followed by leading text fields that are the same on every row."""
    out = field_count.to_bytes(2, "big")
    for value in constants:
        encoded = value.encode()
        out += len(encoded).to_bytes(4, "big") + encoded
    return out


def rows(prefix: bytes, fields: list[pa.Array]) -> bytes:
    """One COPY payload segment: every row is `prefix` followed by its fields (from the *_field functions)."""
    joined = pc.binary_join_element_wise(prefix, *fields, b"")
    if joined.null_count:
        raise ValueError("a COPY field was null; encode NULL as length -1")
    offsets = np.frombuffer(joined.buffers()[1], dtype=np.int32)[
        joined.offset : joined.offset + len(joined) + 1
    ]
    return joined.buffers()[2].slice(int(offsets[0]), int(offsets[-1] - offsets[0])).to_pybytes()


def text_field(values: pa.Array, null_if_empty: bool = False) -> list[pa.Array]:
    """text: NULL for null (and for "" when null_if_empty), else the UTF-8 bytes."""
    data = values.cast(pa.binary())
    lengths = pc.fill_null(pc.binary_length(data), -1).to_numpy(zero_copy_only=False).astype(np.int32)
    if null_if_empty:
        lengths[lengths == 0] = -1
    return [_fixed(lengths.astype(">i4"), 4), pc.fill_null(data, b"")]


def jsonb_field(values: pa.Array) -> list[pa.Array]:
    """jsonb: NULL for null, else version byte 1 and the JSON text."""
    data = pc.binary_join_element_wise(b"\x01", values.cast(pa.binary()), b"")
    lengths = pc.fill_null(pc.binary_length(data), -1).to_numpy(zero_copy_only=False).astype(">i4")
    return [_fixed(lengths, 4), pc.fill_null(data, b"")]


def int4_field(numbers: np.ndarray) -> list[pa.Array]:
    """integer (NOT NULL)."""
    out = np.empty(len(numbers), dtype=[("len", ">i4"), ("value", ">i4")])
    out["len"], out["value"] = 4, numbers
    return [_fixed(out, 8)]


def float8_field(numbers: np.ndarray) -> list[pa.Array]:
    """double precision (NOT NULL; NaN is a value PostgreSQL keeps)."""
    out = np.empty(len(numbers), dtype=[("len", ">i4"), ("value", ">f8")])
    out["len"], out["value"] = 8, numbers
    return [_fixed(out, 12)]


def bool_field(flags: np.ndarray) -> list[pa.Array]:
    """boolean (NOT NULL)."""
    out = np.empty(len(flags), dtype=[("len", ">i4"), ("value", "u1")])
    out["len"], out["value"] = 1, np.asarray(flags, dtype=bool)
    return [_fixed(out, 5)]


def date_field(dates: pa.Array) -> list[pa.Array]:
    """date (NOT NULL), from `YYYY-M-D` strings the input contract accepted: days since 2000-01-01."""
    days = pc.cast(pc.cast(pc.strptime(dates, format="%Y-%m-%d", unit="s"), pa.date32()), pa.int32())
    out = np.empty(len(dates), dtype=[("len", ">i4"), ("value", ">i4")])
    out["len"], out["value"] = 4, days.to_numpy(zero_copy_only=False) - _DAYS_1970_TO_2000
    return [_fixed(out, 8)]


def numeric_2_field(amounts: pa.Array) -> list[pa.Array]:
    """numeric with 2 decimals (NOT NULL), from decimal strings the input contract accepted.

    Sent as 4 base-10000 digits with weight 2 (up to 999,999,999,999.99); the server strips the
    leading and trailing zero digits itself. A double holds |cents| < 2^53 exactly, so cents
    are rint(value * 100); strings a double cannot parse take Decimal."""
    cents = _cents(pc.utf8_trim_whitespace(amounts))
    magnitude = np.abs(cents)
    whole = magnitude // 100
    out = np.empty(
        len(cents),
        dtype=[
            ("len", ">i4"),
            ("ndigits", ">i2"),
            ("weight", ">i2"),
            ("sign", ">u2"),
            ("dscale", ">i2"),
            ("digits", ">i2", 4),
        ],
    )
    out["len"], out["ndigits"], out["weight"], out["dscale"] = 16, 4, 2, 2
    out["sign"] = np.where(cents < 0, 0x4000, 0)
    out["digits"][:, 0] = whole // 100_000_000
    out["digits"][:, 1] = whole // 10_000 % 10_000
    out["digits"][:, 2] = whole % 10_000
    out["digits"][:, 3] = magnitude % 100 * 100
    return [_fixed(out, 20)]


def nullable_numeric_field(amounts: pa.Array) -> list[pa.Array]:
    """numeric, NULL where null: numeric_2_field's encoding, with the nulls replaced by length -1."""
    valid = pc.is_valid(amounts)
    (encoded,) = numeric_2_field(pc.fill_null(amounts, "0"))
    return [pc.if_else(valid, encoded, pa.scalar(b"\xff\xff\xff\xff", pa.binary()))]


def _cents(amounts: pa.Array) -> np.ndarray:
    try:
        numbers = pc.cast(amounts, pa.float64())  # exponents and `inf` never get this far
        plain = np.ones(len(amounts), dtype=bool)
    except pa.ArrowInvalid:  # rare forms (`1 000`...): Decimal for those
        mask = pc.fill_null(pc.match_substring_regex(amounts, _PLAIN_NUMBER), False)
        numbers = pc.cast(pc.if_else(mask, amounts, "0"), pa.float64())
        plain = mask.to_numpy(zero_copy_only=False)
    cents = np.rint(numbers.to_numpy(zero_copy_only=False) * 100).astype(np.int64)
    odd = np.flatnonzero(~plain)
    for i, text in zip(odd.tolist(), amounts.take(pa.array(odd)).to_pylist()):
        cents[i] = int(Decimal(text).scaleb(2).to_integral_value())
    if len(cents) and np.abs(cents).max() >= 100_000_000_000_000:
        raise ValueError("amount out of range for numeric(14,2)")
    return cents


def _fixed(values: np.ndarray, width: int) -> pa.Array:
    """A numpy array of fixed-size records as a binary array of `width`-byte values."""
    buffer = pa.py_buffer(np.ascontiguousarray(values).tobytes())
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), len(values), [None, buffer]).cast(
        pa.binary()
    )
