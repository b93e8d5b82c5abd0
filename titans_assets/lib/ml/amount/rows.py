"""The rows the amount model reads: which warehouse rows it learns from, the lookup keys added to
prepared rows, a request's input tier, and copies of rows with fields left out (as partial requests)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from titans_assets.lib.ml import features as F
from titans_assets.lib.ml.common import TrainingDataError

_SEP = "\x1f"
_TIER_REF, _TIER_DESC, _TIER_BARE = "reference", "description", "bare"


def expense_rows(data: pd.DataFrame) -> pd.DataFrame:
    """The rows this model learns from: expenses with a date and a non-zero amount."""
    if "amount" not in data:
        raise TrainingDataError("no amount column")
    if "txn_type" in data:
        is_expense = data["txn_type"].astype(str).str.strip().str.lower().eq("expense")
    else:
        is_expense = pd.to_numeric(data["amount"], errors="coerce") < 0
    amount = pd.to_numeric(data["amount"], errors="coerce")
    date_col = "txn_date" if "txn_date" in data else "date"
    dates = (
        pd.to_datetime(data[date_col], errors="coerce") if date_col in data else pd.Series(pd.NaT, data.index)
    )
    keep = (
        is_expense.to_numpy()
        & amount.notna().to_numpy()
        & (amount != 0).to_numpy()
        & dates.notna().to_numpy()
    )
    out = data[keep]
    if date_col != "txn_date":
        out = out.rename(columns={date_col: "txn_date"})
    return out


def _enrich(prepared: pd.DataFrame | dict[str, np.ndarray]) -> pd.DataFrame | dict[str, np.ndarray]:
    """Prepared rows plus the counterparty lookup keys (cleaned reference and cleaned description,
    None when absent) and whether a description was given, computed once per frame (once per distinct
    text). A DataFrame gives a DataFrame, the columns of `features.prepare_columns` (a request) a dict."""
    reference, description = F.column(prepared, "reference"), F.column(prepared, "description")
    n = len(reference)
    extra = {
        "_ref": F.per_text(reference, n, F.clean_name_text),
        "_desc": F.per_text(description, n, F.clean_description_text),
        "_has_desc": np.array([len(d.strip()) > 0 for d in description], dtype=bool),
        "_has_ref": np.array([len(r.strip()) > 0 for r in reference], dtype=bool),
        "_row": np.arange(n),
    }
    if not isinstance(prepared, pd.DataFrame):
        return {**prepared, **extra}
    out = prepared.copy()
    for name, values in extra.items():
        out[name] = pd.Series(values, index=out.index, dtype=values.dtype)
    return out


def _strip(rows: pd.DataFrame, reference: bool, description: bool, payment: bool) -> pd.DataFrame:
    """A copy of enriched rows as if the request had left out some fields."""
    out = rows.copy()
    if reference:
        out["reference"], out["_ref"], out["_has_ref"] = "", None, False
    if description:
        out["description"], out["_desc"], out["_has_desc"] = "", None, False
    if payment:
        out["payment_method"] = None
    if reference:  # what features.merchant_of gives without a reference: the cleaned description
        out["merchant"] = out["_desc"]
    return out


def _tiers(rows) -> np.ndarray:
    """Input tier of each request: reference given, description only, or bare (category + date)."""
    has_desc = F.column(rows, "_has_desc")
    return np.where(F.column(rows, "_has_ref"), _TIER_REF, np.where(has_desc, _TIER_DESC, _TIER_BARE))
