"""Why the amount model predicted what it did: the `factors` of each row (category statistics,
seasonal adjustment, the matched merchant's median)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from titans_assets.lib.ml import features as F
from titans_assets.lib.ml.amount.encoder import _positions, _values

_MATCH_NAMES = {
    4: "reference+category",
    3: "reference",
    2: "description+category",
    1: "description",
    0.5: "first word+category",
}


def factors(
    rows: F.Rows,
    r: dict[str, Any],
    report: pd.DataFrame,
    memo: dict[Any, Any],
    g_mean: float,
    g_med: float,
) -> list[dict[str, Any]]:
    """The `factors` dict of each predicted row: the category's training-period average, median and
    history count, the seasonal adjustment, and the merchant median with its match when one matched;
    global statistics for an unknown or missing category. `r` is `AmountModel._predict_rows`' output,
    `report` the model's category_report, `memo` its index dicts, `g_mean`/`g_med` its global mean and
    median |amount|."""
    X = r["X"]
    pos = _positions(report.index, np.asarray(F.column(rows, "category"), dtype=object), memo, "report")
    mean_a, med_a, n_a = (
        np.where(
            pos >= 0,
            _values(report, c, memo, "report").astype(float)[np.maximum(pos, 0)],
            np.nan,
        )
        for c in ("mean_amount", "median_amount", "n")
    )
    seasonal = np.exp(X["cat_month"] + X["cat_dow"])
    _, m_raw, m_n, _, m_src = r["merchant"]
    out = []
    for i, known in enumerate(r["known"].tolist()):
        if known:
            f: dict[str, Any] = {
                "category_average": round(float(mean_a[i]), 2),
                "category_median": round(float(med_a[i]), 2),
                "seasonal_adjustment": round(float(seasonal[i]), 4),
                "n_history": int(n_a[i]),
                "unknown_category": False,
            }
            if m_n[i] > 0:
                f.update(
                    merchant_median=round(float(np.expm1(m_raw[i])), 2),
                    merchant_n=int(m_n[i]),
                    merchant_match=_MATCH_NAMES[float(m_src[i])],
                )
        else:
            f = {
                "category_average": round(float(g_mean), 2),
                "category_median": round(float(g_med), 2),
                "seasonal_adjustment": 1.0,
                "n_history": 0,
                "unknown_category": True,
                "basis": "global statistics: the category is missing or unknown to the model",
            }
        out.append(f)
    return out
