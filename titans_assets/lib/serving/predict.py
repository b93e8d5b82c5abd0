"""Model outputs -> response bodies (the shapes of the original guide), computed from the champion.

Input rows are validated dicts (validation.py); they become one DataFrame built column-wise (cheaper
than a list of dicts) and go through the model's own `predict`, i.e. the same `features.prepare`
the training used. Values are converted to plain Python here, so encoding is a single orjson call.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from titans_assets.lib.serving.validation import AMOUNT, ANOMALY, CATEGORY, CashflowRequest, Row, RowSpec

_COLUMNS = {spec.name: [("txn_date" if f == "date" else f) for f in spec.fields if f != "time"]
            for spec in (CATEGORY, AMOUNT, ANOMALY)}


def frame_of(spec: RowSpec, rows: list[Row]) -> pd.DataFrame:
    columns = _COLUMNS[spec.name]
    return pd.DataFrame({c: [r.get(c) for r in rows] for c in columns})


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
    out = model.predict(frame_of(CATEGORY, rows))
    return [{"prediction": str(p), "confidence": _num(c),
             "alternatives": [{"category": str(a["category"]), "confidence": _num(a["confidence"])} for a in alts]}
            for p, c, alts in zip(out["prediction"].tolist(), out["confidence"].tolist(),
                                  out["alternatives"].tolist())]


def amount(model: Any, rows: list[Row]) -> list[dict[str, Any]]:
    out = model.predict(frame_of(AMOUNT, rows))
    return [{"predicted_amount": _num(p), "confidence_interval": {"lower": _num(lo), "upper": _num(hi),
                                                                  "level": _num(lv)},
             "factors": _plain(f) if f is not None else {}}
            for p, lo, hi, lv, f in zip(out["predicted_amount"].tolist(), out["lower"].tolist(),
                                        out["upper"].tolist(), out["level"].tolist(), out["factors"].tolist())]


def anomaly(model: Any, rows: list[Row]) -> list[dict[str, Any]]:
    out = model.predict(frame_of(ANOMALY, rows))
    return [{"is_anomaly": bool(a), "anomaly_score": _num(s), "risk_level": str(r),
             "reasons": [str(x) for x in (reasons or [])]}
            for a, s, r, reasons in zip(out["is_anomaly"].tolist(), out["anomaly_score"].tolist(),
                                        out["risk_level"].tolist(), out["reasons"].tolist())]


def cashflow(model: Any, request: CashflowRequest) -> dict[str, Any]:
    forecast = model.forecast(request.horizon_days, include_seasonality=request.include_seasonality)
    dates = pd.to_datetime(forecast["date"]).dt.strftime("%Y-%m-%d").tolist()
    rows = [{"date": d, "predicted_amount": _num(p), "lower": _num(lo), "upper": _num(hi)}
            for d, p, lo, hi in zip(dates, forecast["predicted_amount"].tolist(), forecast["lower"].tolist(),
                                    forecast["upper"].tolist())]
    return {"forecast": rows, "summary": _plain(model.summary(forecast))}


ROW_PREDICTORS = {"category": category, "amount": amount, "anomaly": anomaly}
