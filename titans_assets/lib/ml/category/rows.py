"""The rows the category model learns from: categorised, non-income rows, oldest first, prepared by
`features.prepare`, and the user's spelling of each normalized label."""

from __future__ import annotations

import pandas as pd

from titans_assets.lib.ml import features as F


def _labelled_raw(data: pd.DataFrame) -> pd.DataFrame:
    """Rows that may carry a category, before `prepare` (cheap: a 1M-row frame is prepared only where
    it is used), oldest first, with their parsed date in `_date`."""
    date_col = "txn_date" if "txn_date" in data else "date"
    if "category" not in data or date_col not in data:
        return data.iloc[:0].assign(_date=pd.Series(dtype="datetime64[ns]"))
    category = data["category"]
    keep = category.notna().to_numpy() & (category.astype(str).str.strip().str.len() > 0).to_numpy()
    if "txn_type" in data:
        keep &= ~data["txn_type"].astype(str).str.strip().str.lower().eq("income").to_numpy()
    rows = data[keep]
    rows = rows.assign(_date=pd.to_datetime(rows[date_col], errors="coerce"))
    return rows[rows["_date"].notna()].sort_values("_date", kind="stable")


def display_spellings(raw: pd.DataFrame, prepared: pd.DataFrame) -> dict[str, str]:
    """Normalized label -> its most frequent original spelling in the training rows (trimmed; ties: the
    spelling seen first). The original is `category_raw` where the rows carry it (the warehouse's
    label before normalization), else `category` as given. `prepared` are `raw`'s labelled rows after
    `prepare` (same index)."""
    if prepared.empty:
        return {}
    original = raw.loc[prepared.index, "category"].astype(object)
    if "category_raw" in raw:
        given = raw.loc[prepared.index, "category_raw"].astype(object)
        original = given.where(given.notna() & (given.astype(str).str.strip() != ""), original)
    pairs = pd.DataFrame(
        {
            "label": prepared["category"].to_numpy(dtype=object),
            "spelling": original.astype(str).str.strip().to_numpy(dtype=object),
        }
    )
    counts = pairs.groupby(["label", "spelling"], sort=False).size().reset_index(name="n")
    best = counts.loc[counts.groupby("label", sort=False)["n"].idxmax()]  # idxmax: the first of a tie
    return dict(zip(best["label"], best["spelling"]))


def _prepare_labelled(raw: pd.DataFrame, vocabulary: F.Vocabulary) -> pd.DataFrame:
    prepared = F.prepare(raw, vocabulary)
    return prepared[prepared["category"].notna().to_numpy() & prepared["txn_date"].notna().to_numpy()]


def labelled_rows(data: pd.DataFrame, vocabulary: F.Vocabulary) -> pd.DataFrame:
    """Prepared rows that carry a category (income and uncategorised rows dropped), oldest first."""
    return _prepare_labelled(_labelled_raw(data), vocabulary)
