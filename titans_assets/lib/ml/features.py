"""The one definition of the row-level features a request can supply.

Training and the BentoML service call the same functions: `prepare` + `row_features` (DataFrames),
`prepare_columns` + `row_values` (plain numpy columns, the fast path for small requests); both give
identical values. Text cleaning ports the dbt macros in dbt_project/macros/text_normalization.sql;
label aliases travel inside the model (`Vocabulary`).

Design notes (parity with dbt, the speed of both paths): docs/model-design.md#titans_assetslibmlfeaturespy
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pandas._libs.missing import checknull

SEEDS_DIR = Path(__file__).resolve().parents[3] / "dbt_project" / "seeds"

SMALL = (
    64  # rows: up to this, values are cleaned one by one through the caches; above, once per distinct value
)
PREPARED_COLUMNS = (
    "txn_date",
    "amount",
    "description",
    "reference",
    "payment_method",
    "category",
    "merchant",
)

_NON_ALNUM = re.compile(r"[\W_]+")
_SPACES = re.compile(r"\s+")
_DESC_PUNCT = re.compile(r"[^\w&']+|_+")
_DIGIT_WORD = re.compile(r"(?<!\w)[0-9]+(?!\w)")
_ISO_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_CACHE = 8192  # distinct values (texts, days) kept per cache


# --------------------------------------------------------------------------- one value
def text_value(value: Any) -> str:
    """A cell as text: '' when missing (None, NaN, NaT, NA), else str(value)."""
    if type(value) is str:
        return value
    return "" if checknull(value) else str(value)


@lru_cache(maxsize=_CACHE)
def normalize_label_text(text: str) -> str | None:
    """dbt `normalize_label` of one text: 'Meals & Entertainment ' -> 'meals_entertainment', '' -> None."""
    out = _NON_ALNUM.sub("_", text.strip().lower()).strip("_")
    return out or None


@lru_cache(maxsize=_CACHE)
def clean_name_text(text: str) -> str | None:
    """dbt `clean_name` of one text: lower, whitespace runs collapsed, trimmed, '' -> None."""
    out = _SPACES.sub(" ", text.lower()).strip()
    return out or None


@lru_cache(maxsize=_CACHE)
def clean_description_text(text: str) -> str | None:
    """dbt `clean_description` of one text: 'STARBUCKS #1234  Seattle*WA' -> 'starbucks seattle wa'."""
    out = _SPACES.sub(" ", _DIGIT_WORD.sub(" ", _DESC_PUNCT.sub(" ", text.lower()))).strip()
    return out or None


# --------------------------------------------------------------------------- columns of values
def per_text(
    values: pd.Series | np.ndarray | None,
    n: int,
    fn: Callable[[str], Any],
    uncached: Callable[[str], Any] | None = None,
) -> np.ndarray:
    """fn(text_value(v)) for every value, as an object array: once per distinct value (pd.factorize's
    notion of distinct; missing values are one value, fn('')). Small inputs go value by value through
    fn's cache; large ones once per distinct value through `uncached` (default: fn without its cache)."""
    out = np.empty(n, dtype=object)
    if values is None:
        out[:] = [fn("")] * n
        return out
    if n <= SMALL:
        seen: dict[Any, Any] = {}
        missing = None
        for i, v in enumerate(values.to_numpy(dtype=object) if isinstance(values, pd.Series) else values):
            if v is None or (type(v) is not str and checknull(v)):
                if missing is None:
                    missing = (fn(""),)
                out[i] = missing[0]
                continue
            r = seen.get(v, seen)
            if r is seen:
                r = seen[v] = fn(text_value(v))
            out[i] = r
        return out
    raw = uncached or getattr(fn, "__wrapped__", fn)
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    table = np.empty(len(uniques) + 1, dtype=object)
    table[:-1] = [raw(text_value(u)) for u in np.asarray(uniques, dtype=object)]
    table[-1] = raw("")  # code -1: missing
    return table[codes]


def _objects(values: pd.Series | np.ndarray) -> np.ndarray:
    """The values of a frame column (a Series) or of a request column (an array) as an object array."""
    return (
        values.to_numpy(dtype=object) if isinstance(values, pd.Series) else np.asarray(values, dtype=object)
    )


def _series(values: pd.Series | np.ndarray) -> pd.Series:
    return values if isinstance(values, pd.Series) else pd.Series(values)


def _texts(values: pd.Series | np.ndarray | None, n: int) -> np.ndarray:
    """Text of each value ('' when missing): what description and reference hold after `prepare`."""
    out = np.empty(n, dtype=object)
    if values is None:
        out[:] = [""] * n
        return out
    raw = _objects(values)
    if n > SMALL and pd.api.types.infer_dtype(raw, skipna=False) == "string":  # all str already
        out[:] = raw
    else:
        out[:] = [v if type(v) is str else text_value(v) for v in raw]
    return out


def _canonical(values: pd.Series | np.ndarray | None, n: int, aliases: Mapping[str, str]) -> np.ndarray:
    """Normalized label mapped through the aliases (None when missing or blank)."""

    def canonical(label: str | None) -> str | None:
        return aliases.get(label, label) if label is not None else None

    return per_text(
        values,
        n,
        lambda t: canonical(normalize_label_text(t)),
        lambda t: canonical(normalize_label_text.__wrapped__(t)),
    )


def _merchants(reference: np.ndarray, description: np.ndarray) -> np.ndarray:
    """The counterparty: the cleaned reference, else a guess from the description (as in dbt)."""
    name = per_text(reference, len(reference), clean_name_text)
    desc = per_text(description, len(description), clean_description_text)
    missing = pd.isna(name)
    name[missing] = desc[missing]
    return name


@lru_cache(maxsize=_CACHE)
def _iso_day(text: str) -> np.datetime64 | None:
    """'YYYY-MM-DD' -> midnight of that day (datetime64[ns]); None for anything else (left to pandas)."""
    if not _ISO_DAY.fullmatch(text) or not 1678 <= int(text[:4]) <= 2261:
        return None
    try:
        return np.datetime64(text, "D").astype("datetime64[ns]")
    except ValueError:  # not a calendar day: pandas raises its own error
        return None


def _dates(values: pd.Series | np.ndarray | None, n: int) -> np.ndarray:
    """Dates as datetime64[ns] at midnight (NaT when missing): `pd.to_datetime(...).dt.normalize()`."""
    if values is None:
        return np.full(n, np.datetime64("NaT", "ns"))
    if values.dtype == np.dtype("datetime64[ns]"):
        return np.asarray(values).astype("datetime64[D]").astype("datetime64[ns]")  # floor to the day
    if n <= SMALL:  # a request: ISO day strings, parsed once per distinct string
        out = np.empty(n, dtype="datetime64[ns]")
        for i, v in enumerate(_objects(values)):
            if type(v) is str:
                day = _iso_day(v)
                if day is None:
                    break
                out[i] = day
            elif v is None or (isinstance(v, float) and v != v):
                out[i] = np.datetime64("NaT")
            else:
                break
        else:
            return out
    return pd.to_datetime(_series(values)).dt.normalize().astype("datetime64[ns]").to_numpy()


def _amounts(values: pd.Series | np.ndarray | None, n: int) -> np.ndarray:
    """Amounts as float (NaN when missing or not a number): `pd.to_numeric(..., errors='coerce')`."""
    if values is None:
        return np.full(n, np.nan)
    if isinstance(values.dtype, np.dtype) and values.dtype.kind in "fiub":
        return np.array(np.asarray(values), dtype=float)
    if n <= SMALL:
        raw = _objects(values)
        if all(v is None or type(v) is float for v in raw):
            return np.array([np.nan if v is None else v for v in raw], dtype=float)
    return pd.to_numeric(_series(values), errors="coerce").astype(float).to_numpy()


# --------------------------------------------------------------------------- Series API
def normalize_label(s: pd.Series) -> pd.Series:
    """dbt `normalize_label`: 'Meals & Entertainment ' -> 'meals_entertainment', '' -> None."""
    return pd.Series(per_text(s, len(s), normalize_label_text), index=s.index, dtype=object)


def clean_name(s: pd.Series) -> pd.Series:
    """dbt `clean_name`: lower, whitespace runs collapsed, trimmed, '' -> None."""
    return pd.Series(per_text(s, len(s), clean_name_text), index=s.index, dtype=object)


def clean_description(s: pd.Series) -> pd.Series:
    """dbt `clean_description`: 'STARBUCKS #1234  Seattle*WA' -> 'starbucks seattle wa'."""
    return pd.Series(per_text(s, len(s), clean_description_text), index=s.index, dtype=object)


def merchant_of(reference: pd.Series, description: pd.Series) -> pd.Series:
    """The counterparty: the cleaned reference, else a guess from the description (as in dbt)."""
    if not reference.index.equals(description.index):
        return clean_name(reference).combine_first(clean_description(description))
    return pd.Series(
        _merchants(reference.to_numpy(dtype=object), description.to_numpy(dtype=object)),
        index=reference.index,
        dtype=object,
    )


def _read_aliases(path: Path, column: str) -> dict[str, str]:
    if not path.exists():
        return {}
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    keys = normalize_label(pd.Series([r["alias"] for r in rows], dtype=object))
    return {k: r[column] for k, r in zip(keys, rows) if k}


@dataclass(frozen=True)
class Vocabulary:
    """Label aliases (from the dbt seeds), fitted at training time and stored in every model."""

    payment_methods: dict[str, str] = field(default_factory=dict)
    categories: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_seeds(cls, seeds_dir: Path = SEEDS_DIR) -> Vocabulary:
        return cls(
            payment_methods=_read_aliases(seeds_dir / "payment_method_aliases.csv", "payment_method"),
            categories=_read_aliases(seeds_dir / "category_aliases.csv", "category"),
        )

    def payment_method(self, s: pd.Series) -> pd.Series:
        return pd.Series(_canonical(s, len(s), self.payment_methods), index=s.index, dtype=object)

    def category(self, s: pd.Series) -> pd.Series:
        return pd.Series(_canonical(s, len(s), self.categories), index=s.index, dtype=object)


# --------------------------------------------------------------------------- prepared rows
Rows = pd.DataFrame | Mapping[str, np.ndarray]
"""What the models predict on: a DataFrame, or a request's columns (name -> one 1-d array per column,
all of one length: object arrays of str/None for text and dates, float arrays for amounts), which the
service passes instead of building a DataFrame for a few rows."""


def input_rows(rows: Rows) -> int:
    """How many rows a DataFrame or a mapping of columns holds."""
    if isinstance(rows, pd.DataFrame):
        return len(rows)
    for values in rows.values():
        return len(values)
    return 0


def input_column(rows: Rows, name: str) -> np.ndarray | None:
    """One input column as an object array (None when absent)."""
    if name not in rows:
        return None
    return _objects(rows[name])


def prepare_columns(frame: Rows, vocabulary: Vocabulary) -> dict[str, np.ndarray]:
    """`prepare` as plain numpy columns (PREPARED_COLUMNS, in the frame's row order): what the models
    read on their small-request path, without building a DataFrame. `frame` may also be a mapping of
    columns (`Rows`): the values are the same as for a DataFrame of those columns."""
    n = input_rows(frame)

    def col(name: str) -> pd.Series | np.ndarray | None:
        return frame[name] if name in frame else None

    description = _texts(col("description"), n)
    reference = _texts(col("reference"), n)
    return {
        "txn_date": _dates(col("txn_date" if "txn_date" in frame else "date"), n),
        "amount": _amounts(col("amount"), n),
        "description": description,
        "reference": reference,
        "payment_method": _canonical(col("payment_method"), n, vocabulary.payment_methods),
        "category": _canonical(col("category"), n, vocabulary.categories),
        "merchant": _merchants(reference, description),
    }


def prepare(frame: pd.DataFrame, vocabulary: Vocabulary) -> pd.DataFrame:
    """Canonical request/row columns: txn_date (datetime64), amount (float or NaN), description,
    reference (str, '' when missing), payment_method, category (normalized or None), merchant.

    Accepts warehouse rows (fct_transactions / ml_transaction_features) and service requests alike;
    `date` is accepted for `txn_date`."""
    cols = prepare_columns(frame, vocabulary)
    index = frame.index
    return pd.DataFrame(
        {k: pd.Series(v, index=index, dtype=v.dtype, copy=False) for k, v in cols.items()}, copy=False
    )


def column(rows: pd.DataFrame | Mapping[str, np.ndarray], name: str) -> np.ndarray:
    """One column of prepared rows (a DataFrame from `prepare` or the dict from `prepare_columns`)."""
    values = rows[name]
    return values if isinstance(values, np.ndarray) else values.to_numpy()


def n_rows(rows: pd.DataFrame | Mapping[str, np.ndarray]) -> int:
    return len(rows) if isinstance(rows, pd.DataFrame) else len(rows["txn_date"])


def text_values(description: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """What the text models read, per row: 'description | reference', lower case."""
    out = np.empty(len(description), dtype=object)
    out[:] = [(d + " | " + r).lower() for d, r in zip(description, reference)]
    return out


def text_of(prepared: pd.DataFrame) -> pd.Series:
    """What the text models read: the description and the reference."""
    return pd.Series(
        text_values(column(prepared, "description"), column(prepared, "reference")),
        index=prepared.index,
        dtype=object,
    )


# --------------------------------------------------------------------------- calendar and amount
TIME_COLUMNS = (
    "day_of_week",
    "day_of_month",
    "month",
    "quarter",
    "day_of_year",
    "dow_sin",
    "dow_cos",
    "dom_sin",
    "dom_cos",
    "month_sin",
    "month_cos",
    "is_weekend",
    "is_holiday",
    "is_business_day",
    "is_month_start",
    "is_month_end",
    "days_since_payday",
    "days_until_payday",
)
AMOUNT_COLUMNS = ("log_abs_amount", "is_expense", "is_round_10", "has_cents")
ROW_COLUMNS = TIME_COLUMNS + AMOUNT_COLUMNS


@lru_cache(maxsize=1)
def _holidays() -> pd.DatetimeIndex:
    from pandas.tseries.holiday import USFederalHolidayCalendar

    return USFederalHolidayCalendar().holidays(start="1990-01-01", end="2100-12-31")


@lru_cache(maxsize=1)
def _holiday_days() -> np.ndarray:
    return np.sort(_holidays().to_numpy().astype("datetime64[D]").astype(np.int64))


def _cyclic(values: np.ndarray, period: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    angle = 2 * np.pi * values / period
    return np.sin(angle), np.cos(angle)


def _calendar(day: np.ndarray, holiday: np.ndarray) -> np.ndarray:
    """TIME_COLUMNS (one row per value, one array per column: shape (18, n)) of days since 1970-01-01
    as float (NaN = no date) and whether each is a US federal holiday (at midnight)."""
    nat = np.isnan(day)
    d = np.where(nat, 0, day).astype(np.int64).astype("datetime64[D]")
    month_start = d.astype("datetime64[M]")
    first = month_start.astype("datetime64[D]")

    def fill(x: np.ndarray) -> np.ndarray:
        x = x.astype(float)
        x[nat] = np.nan
        return x

    dow = fill((d.astype(np.int64) + 3) % 7)  # 1970-01-01 was a Thursday; Monday = 0
    dom = fill((d - first).astype(np.int64) + 1)
    m = month_start.astype(np.int64) % 12
    month = fill(m + 1)
    quarter = fill(m // 3 + 1)
    day_of_year = fill((d - d.astype("datetime64[Y]").astype("datetime64[D]")).astype(np.int64) + 1)
    days_in_month = fill(((month_start + 1).astype("datetime64[D]") - first).astype(np.int64))
    weekend = dow >= 5
    # Paydays on the 1st and the 15th: days since the last one and until the next one.
    since = np.where(dom >= 15, dom - 15, dom - 1)
    until = np.where(dom < 15, 15 - dom, days_in_month - dom + 1)
    return np.stack(
        [
            dow,
            dom,
            month,
            quarter,
            day_of_year,
            *_cyclic(dow, 7),
            *_cyclic(dom - 1, days_in_month),
            *_cyclic(month - 1, 12),
            weekend.astype(float),
            holiday.astype(float),
            (~weekend & ~holiday).astype(float),
            (dom <= 3).astype(float),
            (dom > days_in_month - 3).astype(float),
            since,
            until,
        ]
    )


_DAYS: dict[
    int, np.ndarray
] = {}  # TIME_COLUMNS of the days requests asked for, by day number (at most _CACHE)


def _calendar_of_days(days: list[int]) -> list[np.ndarray]:
    """TIME_COLUMNS of days at midnight (days since 1970-01-01), through `_DAYS`: a request's dates.
    The days not seen yet are computed together by `_calendar`."""
    rows = [_DAYS.get(d) for d in days]
    new = sorted({d for d, row in zip(days, rows) if row is None})
    if new:
        values = np.array(new, dtype=np.int64)
        calendar = _calendar(values.astype(float), np.isin(values, _holiday_days()))
        calendar.flags.writeable = False
        fresh = {d: calendar[:, j] for j, d in enumerate(new)}
        if len(_DAYS) + len(new) > _CACHE:
            _DAYS.clear()
        _DAYS.update(fresh)
        # read from `fresh`, not `_DAYS`: another thread (the service predicts in a thread pool) may
        # clear the cache in between
        rows = [fresh[d] if row is None else row for d, row in zip(days, rows)]
    return rows


def time_values(dates: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """TIME_COLUMNS of naive datetime64 values, shape (18, n) (written into `out` when given): per day
    through a cache for a few rows at midnight (a request's dates), else once per distinct value."""
    dates = np.asarray(dates)
    days = dates.astype("datetime64[D]")
    midnight = days == dates  # False for NaT; a holiday is a holiday at midnight only (as `Series.isin`)
    n = len(dates)
    if out is None:
        out = np.empty((len(TIME_COLUMNS), n))
    if n <= SMALL and midnight.all():
        for i, row in enumerate(_calendar_of_days(days.astype(np.int64).tolist())):
            out[:, i] = row
        return out
    codes, uniques = pd.factorize(np.ascontiguousarray(dates).view(np.int64))
    distinct = uniques.view(dates.dtype)
    day = distinct.astype("datetime64[D]")
    nat = np.isnat(distinct)
    holiday = (day == distinct) & np.isin(day.astype(np.int64), _holiday_days())
    calendar = _calendar(np.where(nat, np.nan, day.astype(np.int64).astype(float)), holiday)
    return np.take(calendar, codes, axis=1, out=out)


def amount_values(amount: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """AMOUNT_COLUMNS of float amounts, shape (4, n) (written into `out` when given): size on a log
    scale, sign, roundness."""
    a = np.asarray(amount, dtype=float)
    if out is None:
        out = np.empty((len(AMOUNT_COLUMNS), len(a)))
    absolute = np.abs(a)
    cents = np.round(absolute * 100) % 100
    np.log1p(absolute, out=out[0])
    out[1] = a < 0
    out[2] = (cents == 0) & (np.round(absolute) % 10 == 0)
    out[3] = cents != 0
    return out


def row_values(prepared: pd.DataFrame | Mapping[str, np.ndarray], include_amount: bool = True) -> np.ndarray:
    """`row_features` as a (columns x rows) float array: TIME_COLUMNS, then AMOUNT_COLUMNS if asked."""
    dates = column(prepared, "txn_date")
    k = len(TIME_COLUMNS)
    out = np.empty((k + (len(AMOUNT_COLUMNS) if include_amount else 0), len(dates)))
    time_values(dates, out[:k])
    if include_amount:
        amount_values(column(prepared, "amount"), out[k:])
    return out


def _naive_values(dates: pd.Series) -> np.ndarray:
    d = dates if isinstance(dates.dtype, np.dtype) and dates.dtype.kind == "M" else pd.to_datetime(dates)
    if isinstance(d.dtype, pd.DatetimeTZDtype):
        d = d.dt.tz_localize(None)  # wall-clock dates
    return d.to_numpy()


def time_features(dates: pd.Series) -> pd.DataFrame:
    """Calendar features of a date: cyclical encodings, weekends, US federal holidays, paydays (1st, 15th)."""
    return pd.DataFrame(
        time_values(_naive_values(dates)).T, columns=list(TIME_COLUMNS), index=dates.index, copy=False
    )


def amount_features(amount: pd.Series) -> pd.DataFrame:
    """Shape of an amount: size on a log scale, sign, roundness."""
    return pd.DataFrame(
        amount_values(amount.to_numpy(dtype=float)).T,
        columns=list(AMOUNT_COLUMNS),
        index=amount.index,
        copy=False,
    )


def row_features(prepared: pd.DataFrame, include_amount: bool = True) -> pd.DataFrame:
    """The numeric row-level features of prepared rows (training and serving alike)."""
    columns = list(ROW_COLUMNS if include_amount else TIME_COLUMNS)
    return pd.DataFrame(
        row_values(prepared, include_amount).T, columns=columns, index=prepared.index, copy=False
    )
