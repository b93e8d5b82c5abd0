"""Model outputs -> response bodies (the shapes of the original guide), computed from the champion.

Input rows are validated dicts (validation.py). Up to `features.SMALL` of them (a single request or a
small batch) go to the model as plain columns (`features.Rows`: one array per column), above that as
one DataFrame built column-wise; either way through the model's own `predict_columns`, i.e. the same
`features.prepare` the training used, and the values are the same (tests compare them). Outputs are
converted to plain Python here, so encoding is a single orjson call.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from titans_assets.lib.ml import features as F
from titans_assets.lib.serving.validation import AMOUNT, ANOMALY, CATEGORY, CashflowRequest, Row, RowSpec

_COLUMNS = {
    spec.name: [("txn_date" if f == "date" else f) for f in spec.fields if f != "time"]
    for spec in (CATEGORY, AMOUNT, ANOMALY)
}


def frame_of(spec: RowSpec, rows: list[Row]) -> pd.DataFrame:
    columns = _COLUMNS[spec.name]
    return pd.DataFrame({c: [r.get(c) for r in rows] for c in columns})


def columns_of(spec: RowSpec, rows: list[Row]) -> dict[str, np.ndarray]:
    """The rows as plain columns (`features.Rows`): amounts as floats (validated: always a float when
    present), text and dates as object arrays of str/None, holding what `frame_of`'s DataFrame holds."""
    out: dict[str, np.ndarray] = {}
    for c in _COLUMNS[spec.name]:
        values = [r.get(c) for r in rows]
        if c == "amount":
            out[c] = np.array([np.nan if v is None else v for v in values], dtype=float)
        else:
            column = np.empty(len(values), dtype=object)
            column[:] = values
            out[c] = column
    return out


def predict_columns(model: Any, spec: RowSpec, rows: list[Row]) -> Any:
    """The model's output columns for the rows: plain input columns for a few rows, a DataFrame for a
    batch (a model object without `predict_columns` gets the DataFrame and `predict`)."""
    own = getattr(model, "predict_columns", None)
    if own is None:
        return model.predict(frame_of(spec, rows))
    return own(columns_of(spec, rows) if len(rows) <= F.SMALL else frame_of(spec, rows))


def _list(values: Any) -> list:
    return values.tolist() if hasattr(values, "tolist") else list(values)


def _num(x: Any) -> float | None:
    if x is None:
        return None
    f = float(x)
    return f if math.isfinite(f) else None


def _plain(value: Any) -> Any:
    """numpy scalars, NaN and nested containers -> JSON-ready Python."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (bool, str)) or value is None:
        return value
    if hasattr(value, "item"):  # numpy scalar
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return value


def category(model: Any, rows: list[Row]) -> list[dict[str, Any]]:
    out = predict_columns(model, CATEGORY, rows)
    return [
        {
            "prediction": str(p),
            "confidence": _num(c),
            "alternatives": [
                {"category": str(a["category"]), "confidence": _num(a["confidence"])} for a in alts
            ],
        }
        for p, c, alts in zip(_list(out["prediction"]), _list(out["confidence"]), _list(out["alternatives"]))
    ]


def amount(model: Any, rows: list[Row]) -> list[dict[str, Any]]:
    out = predict_columns(model, AMOUNT, rows)
    level = out["level"]
    levels = _list(level) if hasattr(level, "__len__") else [level] * len(rows)
    return [
        {
            "predicted_amount": _num(p),
            "confidence_interval": {"lower": _num(lo), "upper": _num(hi), "level": _num(lv)},
            "factors": _plain(f) if f is not None else {},
        }
        for p, lo, hi, lv, f in zip(
            _list(out["predicted_amount"]),
            _list(out["lower"]),
            _list(out["upper"]),
            levels,
            _list(out["factors"]),
        )
    ]


def anomaly(model: Any, rows: list[Row]) -> list[dict[str, Any]]:
    out = predict_columns(model, ANOMALY, rows)
    return [
        {
            "is_anomaly": bool(a),
            "anomaly_score": _num(s),
            "risk_level": str(r),
            "reasons": [str(x) for x in (reasons or [])],
        }
        for a, s, r, reasons in zip(
            _list(out["is_anomaly"]),
            _list(out["anomaly_score"]),
            _list(out["risk_level"]),
            _list(out["reasons"]),
        )
    ]


def cashflow(model: Any, request: CashflowRequest) -> dict[str, Any]:
    forecast = model.forecast(request.horizon_days, include_seasonality=request.include_seasonality)
    dates = pd.to_datetime(forecast["date"]).dt.strftime("%Y-%m-%d").tolist()
    rows = [
        {"date": d, "predicted_amount": _num(p), "lower": _num(lo), "upper": _num(hi)}
        for d, p, lo, hi in zip(
            dates,
            forecast["predicted_amount"].tolist(),
            forecast["lower"].tolist(),
            forecast["upper"].tolist(),
        )
    ]
    return {"forecast": rows, "summary": _plain(model.summary(forecast))}


ROW_PREDICTORS = {"category": category, "amount": amount, "anomaly": anomaly}
