"""Scoring the amount model (or a baseline) on held-out rows: its metrics on the rows as given, and
with the description only and bare (category + date), as the service's requests may come."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from titans_assets.lib.ml import features as F
from titans_assets.lib.ml.amount.model import AmountModel
from titans_assets.lib.ml.amount.rows import _enrich, _strip, expense_rows
from titans_assets.lib.ml.common import TrainingDataError

MAX_VARIANT_ROWS = 50_000  # test rows re-scored as description-only and bare requests


def _metrics(
    actual: np.ndarray,
    predicted: np.ndarray,
    lower: np.ndarray | None = None,
    upper: np.ndarray | None = None,
) -> dict[str, float]:
    a = np.asarray(actual, dtype=float)
    p = np.asarray(predicted, dtype=float)
    err = p - a
    ss_tot = float(np.sum((a - a.mean()) ** 2))
    out = {
        "mae": float(np.mean(np.abs(err))),
        "median_ae": float(np.median(np.abs(err))),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "r2": float(1 - np.sum(err**2) / ss_tot) if ss_tot > 0 else float("nan"),
        "smape": float(np.mean(2 * np.abs(err) / np.maximum(np.abs(p) + np.abs(a), 1e-9))),
        "median_ape": float(np.median(np.abs(err) / np.maximum(np.abs(a), 1e-9))),
    }
    if lower is not None and upper is not None:
        lo, hi = np.asarray(lower, dtype=float), np.asarray(upper, dtype=float)
        out["interval_coverage"] = float(np.mean((a >= lo) & (a <= hi)))
        out["mean_interval_width"] = float(np.mean(hi - lo))
        out["median_relative_width"] = float(np.median((hi - lo) / np.maximum(p, 0.01)))
    out["n_test"] = float(len(a))
    return out


def score(model: AmountModel, holdout: pd.DataFrame) -> dict[str, float]:
    """Metrics of `model` on the expense rows of `holdout` (the names of TrainResult.metrics): the rows as
    given, plus MAE and coverage when the same rows are asked with a description only
    (`description_only_*`) and with category + date only (`bare_*`)."""
    return _score_detail(model, holdout)[0]


_VARIANTS = {"as_given": (False, False), "description_only": (True, False), "bare": (True, True)}


def _score_detail(
    model, holdout: pd.DataFrame, prepared: pd.DataFrame | None = None
) -> tuple[dict[str, float], np.ndarray, tuple[np.ndarray, ...]]:
    """Metrics plus (actual, (predicted, lower, upper)) of the rows as given. The description-only and
    bare variants are scored on an even sample of at most MAX_VARIANT_ROWS rows."""
    rows = expense_rows(holdout)
    if rows.empty:
        raise TrainingDataError("the holdout has no expense rows to score")
    actual = np.abs(pd.to_numeric(rows["amount"]).to_numpy(dtype=float))
    sample = np.unique(np.linspace(0, len(rows) - 1, min(len(rows), MAX_VARIANT_ROWS)).round().astype(int))
    preds: dict[str, tuple[np.ndarray, ...]] = {}
    if isinstance(model, AmountModel):  # prepare once, then blank fields on the prepared rows
        if prepared is None or not prepared.index.equals(rows.index):
            prepared = F.prepare(rows, model.vocabulary)
        enriched = _enrich(prepared)
        text = model._encoder().text_matrix(enriched)
        for name, (ref, desc) in _VARIANTS.items():
            part = enriched if name == "as_given" else _strip(enriched.iloc[sample], ref, desc, desc)
            r = model._predict_rows(part, text, model.level)
            preds[name] = (r["predicted"], r["lower"], r["upper"])
    else:  # any object with predict(frame) -> predicted_amount, lower, upper
        for name, (ref, desc) in _VARIANTS.items():
            blank: dict[str, Any] = {"reference": ""} if ref else {}
            if desc:
                blank |= {"description": "", "payment_method": None}
            out = model.predict(
                rows.assign(**blank) if name == "as_given" else rows.iloc[sample].assign(**blank)
            )
            preds[name] = tuple(out[c].to_numpy(dtype=float) for c in ("predicted_amount", "lower", "upper"))
    metrics = _metrics(actual, *preds["as_given"])
    for name in ("description_only", "bare"):
        m = _metrics(actual[sample], *preds[name])
        metrics[f"{name}_mae"] = m["mae"]
        metrics[f"{name}_interval_coverage"] = m["interval_coverage"]
    metrics["n_train"] = float(getattr(model, "n_train", float("nan")))
    return metrics, actual, preds["as_given"]
