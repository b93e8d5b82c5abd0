"""Canonical rows: what every component reads of a transaction (keys of the fitted statistics, in-frame
grouping codes, the isolation forest's row features), of a DataFrame or a request's columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
from pandas._libs.missing import checknull

from titans_assets.lib.ml import features as F
from titans_assets.lib.ml.anomaly.constants import _IF_COLUMNS, _INCOME_CAT, _NO_CAT, _SEP
from titans_assets.lib.ml.features import (
    AMOUNT_COLUMNS,
    TIME_COLUMNS,
    Rows,
    Vocabulary,
    amount_values,
    input_column,
    input_rows,
    prepare_columns,
    time_values,
)

_OBJECT_COLUMNS = ("dir", "merchant", "category", "ckey", "mkey", "mckey")


def _canon(frame: pd.DataFrame, vocabulary: Vocabulary) -> pd.DataFrame:
    """Prepared rows with what every component needs, on a positional index: the keys of the
    statistics (`mkey` merchant, `ckey` category, `mckey` both, `dir` direction; merchant keys carry
    the direction so a client's income and a vendor's charges never mix), integer codes for the
    in-frame groupings, and the row features the isolation forest reads (`rf_*`)."""
    cols = _canon_columns(frame, vocabulary)
    index = pd.RangeIndex(len(frame))
    return pd.DataFrame(
        {k: pd.Series(v, index=index, dtype=v.dtype, copy=False) for k, v in cols.items()}, copy=False
    )


def _as_frame_column(values: np.ndarray) -> np.ndarray:
    """An object array of strings and None as a DataFrame column built from it gives it back: pandas
    stores strings as `str` (None -> NaN) unless every value is missing. Kept so that a request's
    canonical columns equal the batch frame's, reasons included."""
    if any(v is not None for v in values):
        out = values.copy()
        if len(values) <= F.SMALL:
            for i, v in enumerate(values):
                if checknull(v):
                    out[i] = np.nan
        else:
            out[pd.isna(values)] = np.nan
        return out
    return values


def _canon_columns(frame: Rows, vocabulary: Vocabulary) -> dict[str, np.ndarray]:
    """`_canon` as plain columns (what a request is scored on, without building DataFrames), of a
    DataFrame or a request's columns (`features.Rows`)."""
    p = prepare_columns(frame, vocabulary)
    n = input_rows(frame)
    amount = p["amount"]
    category = p["category"]
    has_cat = pd.notna(category)
    if "txn_type" in frame:
        ttype = _per_distinct(
            input_column(frame, "txn_type"),
            lambda u: [str(x).strip().lower() if pd.notna(x) else "" for x in u],
        )
        expense = np.where(
            ttype == "income", False, np.where(ttype == "expense", True, (amount < 0) | has_cat)
        )
    else:
        expense = (amount < 0) | has_cat
    merchant = p["merchant"]
    has_m = pd.notna(merchant)
    direction = np.where(expense, "e", "i").astype(object)
    ckey = np.where(expense, np.where(has_cat, category, _NO_CAT), _INCOME_CAT).astype(object)
    mcode = _codes(direction, merchant)
    mkey = _per_code(
        mcode, lambda f: [d + ":" + m if m is not None else None for d, m in zip(direction[f], merchant[f])]
    )
    mckey = _per_code(
        _codes(mcode, ckey),
        lambda f: [m + _SEP + k if m is not None else None for m, k in zip(mkey[f], ckey[f])],
    )
    acct = (
        _per_distinct(input_column(frame, "account"), lambda u: ["" if pd.isna(x) else str(x) for x in u])
        if "account" in frame
        else np.full(n, "", dtype=object)
    )
    absolute = np.abs(amount)
    day = p["txn_date"].astype("datetime64[D]")
    has_date = ~np.isnat(day)
    tf = time_values(day)  # calendar features per distinct day, amount features per row (row_values' parts)
    af = amount_values(amount)
    rf = dict(zip(TIME_COLUMNS + AMOUNT_COLUMNS, [*tf, *af]))
    out = {
        "date": p["txn_date"],
        "day": np.where(has_date, day.astype(np.int64), 0),
        "has_date": has_date,
        "amount": amount,
        "abs": absolute,
        "log_abs": np.log(np.maximum(absolute, 0.01)),
        "expense": expense,
        "dir": direction,
        "merchant": merchant,
        "has_merchant": has_m,
        "category": category,
        "ckey": ckey,
        "mkey": mkey,
        "mckey": mckey,
        "bday": rf["is_business_day"] > 0,
        "holiday": rf["is_holiday"] > 0,
        # who and what, as integer codes: account + merchant, and the repeated-charge identity
        "g_am": _codes(acct, mcode),
        "g_dup": _codes(
            acct, mcode, p["description"], np.round(np.nan_to_num(amount) * 100).astype(np.int64)
        ),
    }
    for col in _OBJECT_COLUMNS:
        out[col] = _as_frame_column(np.asarray(out[col], dtype=object))
    for col in _IF_COLUMNS:
        out[f"rf_{col}"] = rf[col]
    return out


def _per_distinct(values: np.ndarray, build) -> np.ndarray:
    """build(distinct values) -> one result per distinct value, spread back to the rows (a few rows:
    per row; `build` works value by value)."""
    if len(values) <= F.SMALL:
        out = np.empty(len(values), dtype=object)
        out[:] = build(values)
        return out
    codes, uniques = pd.factorize(values, use_na_sentinel=False)
    return np.asarray(build(uniques), dtype=object)[codes] if len(codes) else np.zeros(0, dtype=object)


def _per_code(codes: np.ndarray, build) -> np.ndarray:
    """build(first row of each code) -> one result per code (codes are 0..k-1), spread back to the rows."""
    if len(codes) == 0:
        return np.zeros(0, dtype=object)
    first = np.unique(codes, return_index=True)[1]
    out = np.empty(len(first), dtype=object)
    out[:] = build(first)
    return out[codes]


def _codes(*arrays) -> np.ndarray:
    """One integer code per distinct combination of the arrays' values (missing values are a value),
    numbered in order of first appearance (as `pd.factorize`)."""
    if len(arrays[0]) <= F.SMALL:  # a few rows: a dict of the combinations
        seen: dict[tuple, int] = {}
        keys = zip(
            *[
                [_NA if (v is None or (type(v) is float and v != v)) else v for v in np.asarray(a).tolist()]
                for a in arrays
            ]
        )
        return np.array([seen.setdefault(k, len(seen)) for k in keys], dtype=np.int64)
    combined = np.zeros(len(arrays[0]), dtype=np.int64)
    for arr in arrays:
        codes, uniques = pd.factorize(np.asarray(arr), use_na_sentinel=False)
        combined = combined * (len(uniques) + 1) + codes
        combined = pd.factorize(combined)[0].astype(np.int64)
    return combined


_NA = object()  # the one missing value of `_codes`' small path (None and NaN alike, as pd.factorize)


def _col(c, name: str) -> np.ndarray:
    """A column of canonical rows: a DataFrame (`_canon`) or a request's dict (`_canon_columns`)."""
    values = c[name]
    return values if isinstance(values, np.ndarray) else values.to_numpy()


def _n(c) -> int:
    return len(c) if isinstance(c, pd.DataFrame) else len(c["amount"])
