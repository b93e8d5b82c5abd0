"""The OpenAPI 3.0 document of the API, built from the same field lists and bounds the validators use
(served at /openapi.json and /docs.json; a schemathesis test holds the service to it)."""

from __future__ import annotations

from typing import Any

from titans_assets.lib.serving import corrections as C
from titans_assets.lib.serving import validation as V

TITLE = "Titans Finance prediction API"
ERROR_CODES = ["E000", "E001", "E002", "E003", "E004", "E005"]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _num(nullable: bool = True, **extra) -> dict[str, Any]:
    return {"type": "number", "nullable": nullable, **extra} if nullable else {"type": "number", **extra}


# The date range as a schema constraint, not only prose: `format: date` (a calendar date) and a pattern
# whose years run from MIN_DATE's to MAX_DATE's (1900-01-01..2100-12-31, the validator's bounds).
assert (V.MIN_DATE.isoformat(), V.MAX_DATE.isoformat()) == ("1900-01-01", "2100-12-31")
DATE_PATTERN = r"^(19[0-9]{2}|20[0-9]{2}|2100)-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"
_DATE = {
    "type": "string",
    "format": "date",
    "pattern": DATE_PATTERN,
    "minLength": 10,
    "maxLength": 10,
    "description": f"YYYY-MM-DD between {V.MIN_DATE} and {V.MAX_DATE}",
    "example": "2024-03-01",
}
_FIELD_SCHEMAS: dict[str, dict[str, Any]] = {
    "amount": {
        "type": "number",
        "minimum": -V.MAX_ABS_AMOUNT,
        "maximum": V.MAX_ABS_AMOUNT,
        "description": "signed: expenses negative",
        "example": -54.99,
    },
    "date": _DATE,
    "time": {
        "type": "string",
        "pattern": r"^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?$",
        "nullable": True,
        "description": "HH:MM[:SS]; accepted and checked, the models work per day",
        "example": "14:30",
    },
}


def _text(name: str, required: bool) -> dict[str, Any]:
    s: dict[str, Any] = {"type": "string", "maxLength": V.TEXT_LIMITS[name]}
    if required:
        s.update(minLength=1, pattern=r"\S")
    else:
        s["nullable"] = True
    return s


_EXAMPLES = {
    "description": "Adobe Creative Cloud",
    "reference": "Adobe",
    "payment_method": "credit_card",
    "category": "software",
}


def _request(spec: V.RowSpec) -> dict[str, Any]:
    props = {}
    for f in spec.fields:
        if f in _FIELD_SCHEMAS:
            props[f] = dict(_FIELD_SCHEMAS[f])
        else:
            props[f] = {**_text(f, f in spec.required), "example": _EXAMPLES[f]}
    return {
        "type": "object",
        "required": list(spec.required),
        "properties": props,
        "additionalProperties": False,
    }


# What answered: a trained model, or the best baseline when no trained model has beaten it.
_KIND = {"type": "string", "pattern": "^(model|baseline:[a-z0-9_]+)$", "example": "model"}


def _with_version(name: str) -> dict[str, Any]:
    return {
        "allOf": [
            _ref(name),
            {
                "type": "object",
                "required": ["model_version", "model_kind"],
                "properties": {"model_version": {"type": "string"}, "model_kind": _KIND},
            },
        ]
    }


def _batch_request(spec_name: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["transactions"],
        "additionalProperties": False,
        "properties": {
            "transactions": {
                "type": "array",
                "minItems": 1,
                "maxItems": V.MAX_BATCH,
                "items": _ref(spec_name),
            }
        },
    }


def _batch_response(item: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["predictions", "count", "model_version", "model_kind"],
        "properties": {
            "predictions": {"type": "array", "items": _ref(item)},
            "count": {"type": "integer", "minimum": 1},
            "model_version": {"type": "string"},
            "model_kind": _KIND,
        },
    }


def _error_body() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "properties": {
                    "code": {"type": "string", "enum": ERROR_CODES},
                    "message": {"type": "string"},
                    "field": {
                        "type": "string",
                        "nullable": True,
                        "description": "the offending field, as sent (null when no single field is at fault)",
                    },
                },
                "required": ["code", "message", "field"],
            }
        },
    }


def _request_schemas() -> dict[str, Any]:
    return {
        "CategoryRequest": _request(V.CATEGORY),
        "AmountRequest": _request(V.AMOUNT),
        "AnomalyRequest": _request(V.ANOMALY),
        "CashflowRequest": {
            "type": "object",
            "required": ["horizon_days"],
            "additionalProperties": False,
            "properties": {
                "horizon_days": {"type": "integer", "minimum": 1, "maximum": V.MAX_HORIZON, "example": 30},
                "include_seasonality": {"type": "boolean", "nullable": True, "default": True},
            },
        },
        "CategoryBatchRequest": _batch_request("CategoryRequest"),
        "AmountBatchRequest": _batch_request("AmountRequest"),
        "AnomalyBatchRequest": _batch_request("AnomalyRequest"),
    }


def _category() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["prediction", "confidence", "alternatives"],
        "properties": {
            "prediction": {"type": "string"},
            "confidence": _num(minimum=0, maximum=1),
            "alternatives": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["category", "confidence"],
                    "properties": {
                        "category": {"type": "string"},
                        "confidence": _num(minimum=0, maximum=1),
                    },
                },
            },
        },
    }


def _amount() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["predicted_amount", "confidence_interval", "factors"],
        "properties": {
            "predicted_amount": _num(),
            "confidence_interval": {
                "type": "object",
                "required": ["lower", "upper", "level"],
                "properties": {"lower": _num(), "upper": _num(), "level": _num(minimum=0, maximum=1)},
            },
            "factors": {
                "type": "object",
                "additionalProperties": True,
                "description": "category_average, category_median, seasonal_adjustment, "
                "n_history, merchant_median (when known), ...",
            },
        },
    }


def _anomaly() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["is_anomaly", "anomaly_score", "risk_level", "reasons"],
        "properties": {
            "is_anomaly": {"type": "boolean"},
            "anomaly_score": _num(minimum=0, maximum=1),
            "risk_level": {"type": "string", "enum": ["low", "medium", "high"]},
            "reasons": {"type": "array", "items": {"type": "string"}},
        },
    }


def _cashflow_forecast() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["forecast", "summary", "model_version", "model_kind"],
        "properties": {
            "forecast": {
                "type": "array",
                "minItems": 1,
                "maxItems": V.MAX_HORIZON,
                "items": {
                    "type": "object",
                    "required": ["date", "predicted_amount", "lower", "upper"],
                    "properties": {
                        "date": {"type": "string", "format": "date"},
                        "predicted_amount": _num(),
                        "lower": _num(),
                        "upper": _num(),
                    },
                },
            },
            "summary": {
                "type": "object",
                "required": ["total_predicted", "trend", "volatility", "as_of"],
                "additionalProperties": True,
                "properties": {
                    "total_predicted": _num(),
                    "trend": {"type": "string", "enum": ["increasing", "decreasing", "stable"]},
                    "volatility": _num(),
                    "as_of": {"type": "string", "format": "date"},
                },
            },
            "model_version": {"type": "string"},
            "model_kind": _KIND,
        },
    }


def _prediction_schemas() -> dict[str, Any]:
    return {
        "Category": _category(),
        "Amount": _amount(),
        "Anomaly": _anomaly(),
        "CategoryPrediction": _with_version("Category"),
        "AmountPrediction": _with_version("Amount"),
        "AnomalyPrediction": _with_version("Anomaly"),
        "CategoryBatch": _batch_response("Category"),
        "AmountBatch": _batch_response("Amount"),
        "AnomalyBatch": _batch_response("Anomaly"),
        "CashflowForecast": _cashflow_forecast(),
    }


def _models(**properties: dict[str, Any]) -> dict[str, Any]:
    """A map of model key -> one model's state: name, status, version and kind, then `properties`."""
    return {
        "type": "object",
        "additionalProperties": {
            "type": "object",
            "required": ["name", "status", "model_version"],
            "properties": {
                "name": {"type": "string"},
                "status": {"type": "string", "enum": ["ready", "stale", "missing", "error"]},
                "model_version": {"type": "string", "nullable": True},
                "model_kind": {**_KIND, "nullable": True},
                **properties,
            },
        },
    }


def _nullable_string() -> dict[str, Any]:
    return {"type": "string", "nullable": True}


def _model_schemas() -> dict[str, Any]:
    return {
        "ModelHealth": {
            "type": "object",
            "required": ["status", "models"],
            "properties": {
                "status": {"type": "string", "enum": ["healthy", "degraded", "unhealthy"]},
                "worker_pid": {"type": "integer"},
                "models": _models(
                    error={
                        "type": "object",
                        "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
                    }
                ),
            },
        },
        "ModelStatus": {
            "type": "object",
            "required": ["worker_pid", "models"],
            "properties": {
                "worker_pid": {"type": "integer"},
                "poll_seconds": {"type": "number"},
                "rate_limits": {"type": "object"},
                "models": _models(
                    run_id=_nullable_string(),
                    loaded_at=_nullable_string(),
                    checked_at=_nullable_string(),
                    metrics={"type": "object", "additionalProperties": {"type": "number"}},
                    promotion_reason=_nullable_string(),
                    error=_nullable_string(),
                    error_code=_nullable_string(),
                ),
            },
        },
        "Reload": {
            "type": "object",
            "required": ["model", "name", "outcome", "model_version"],
            "properties": {
                "model": {"type": "string"},
                "name": {"type": "string"},
                "outcome": {"type": "string", "enum": ["reloaded", "unchanged"]},
                "model_version": {"type": "string"},
                "model_kind": {**_KIND, "nullable": True},
                "previous_version": _nullable_string(),
                "worker_pid": {"type": "integer"},
            },
        },
    }


def _correction_schemas() -> dict[str, Any]:
    return {
        "CorrectionRequest": {
            "type": "object",
            "required": ["category"],
            "additionalProperties": False,
            "properties": {
                "category": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": C.max_category_length(),
                    "pattern": C.CATEGORY_PATTERN,
                    "example": "Groceries",
                    "description": "the category as you write it (trimmed; inner whitespace runs "
                    "become one space)",
                }
            },
        },
        "Correction": {
            "type": "object",
            "required": ["transaction_id", "old_category", "new_category", "corrected_by", "corrected_at"],
            "properties": {
                "transaction_id": {"type": "string"},
                "old_category": {
                    "type": "string",
                    "nullable": True,
                    "description": "what the transaction showed before: the last correction, else the "
                    "marts' category (null when it had none)",
                },
                "new_category": {"type": "string"},
                "corrected_by": {
                    "type": "string",
                    "description": "the id of the API key used (16 hex digits of its SHA-256), never the key",
                },
                "corrected_at": {"type": "string", "format": "date-time"},
            },
        },
    }


def _schemas() -> dict[str, Any]:
    return {
        "Error": _error_body(),
        **_request_schemas(),
        **_prediction_schemas(),
        **_model_schemas(),
        **_correction_schemas(),
        "Health": {
            "type": "object",
            "required": ["status", "models"],
            "properties": {
                "status": {"type": "string", "enum": ["healthy", "degraded", "unhealthy"]},
                "models": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
    }


def _error(description: str, retry_after: bool = False, authenticate: bool = False) -> dict[str, Any]:
    r: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": _ref("Error")}},
    }
    if retry_after:
        r["headers"] = {
            "Retry-After": {
                "description": "seconds until a request may succeed",
                "required": True,
                "schema": {"type": "integer", "minimum": 1},
            }
        }
    if authenticate:
        r["headers"] = {
            "WWW-Authenticate": {
                "description": "the scheme to use",
                "required": True,
                "schema": {"type": "string"},
            }
        }
    return r


# Every status an operation can answer is declared (the fuzz tests hold the service to that).
_STARTING = "E002: the service is starting (no models loaded yet)"
_PROTECTED_ERRORS = {
    "401": _error("E005: missing or invalid API key (`field`: Authorization)", authenticate=True),
    "429": _error(
        "E004: rate limit exceeded (per client IP or per API key); Retry-After says when", retry_after=True
    ),
    "500": _error("E000: unexpected server error (logged; never caused by input)"),
}
_BODY_ERRORS = {
    "400": _error("E003: the body is empty or not JSON"),
    "413": _error(
        f"E003: body larger than TITANS_MAX_BODY_BYTES (default {V.DEFAULT_MAX_BODY_BYTES} bytes), or "
        f"a batch of more than {V.MAX_BATCH} transactions"
    ),
    "415": _error("E003: Content-Type is not application/json"),
    "422": _error("E003: invalid input; `field` names it"),
}


def _ok(schema: str, description: str = "OK") -> dict[str, Any]:
    return {"200": {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}}


def _post(summary: str, request: str, response: str, tag: str) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "tags": [tag],
            "security": [{"bearer": []}],
            "requestBody": {"required": True, "content": {"application/json": {"schema": _ref(request)}}},
            "responses": {
                **_ok(response),
                **_BODY_ERRORS,
                **_PROTECTED_ERRORS,
                "503": _error(
                    "E002: no champion for this model (a category model in cold start says how "
                    "many labels it still needs), the registry is unreachable, or the service "
                    "is starting"
                ),
            },
        }
    }


def _get(summary: str, response: str, tag: str, protected: bool = True) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "tags": [tag],
        "responses": {**_ok(response), "503": _error(_STARTING)},
    }
    if protected:
        op["security"] = [{"bearer": []}]
        op["responses"].update(_PROTECTED_ERRORS)
    else:
        op["security"] = []
    return {"get": op}


def _predict_paths() -> dict[str, Any]:
    return {
        "/health": _get(
            "Service health (public): whether each model can answer", "Health", "health", protected=False
        ),
        "/predict/category": _post(
            "Category of a transaction, calibrated, with alternatives",
            "CategoryRequest",
            "CategoryPrediction",
            "predict",
        ),
        "/predict/category/batch": _post(
            "Categories of up to 1,000 transactions", "CategoryBatchRequest", "CategoryBatch", "predict"
        ),
        "/predict/amount": _post(
            "Expected amount of an expense, with an interval and its factors",
            "AmountRequest",
            "AmountPrediction",
            "predict",
        ),
        "/predict/amount/batch": _post(
            "Expected amounts of up to 1,000 expenses", "AmountBatchRequest", "AmountBatch", "predict"
        ),
        "/predict/anomaly": _post(
            "How unusual a transaction is, with reasons", "AnomalyRequest", "AnomalyPrediction", "predict"
        ),
        "/predict/anomaly/batch": _post(
            "Anomaly scores of up to 1,000 transactions", "AnomalyBatchRequest", "AnomalyBatch", "predict"
        ),
        "/predict/cashflow": _post(
            "Daily net cash-flow forecast with intervals and a summary",
            "CashflowRequest",
            "CashflowForecast",
            "predict",
        ),
        "/models/status": _get(
            "The champions this worker serves, their metrics and last checks", "ModelStatus", "models"
        ),
        "/models/health": _get("Per-model health of this worker", "ModelHealth", "models"),
    }


def _reload_path() -> dict[str, Any]:
    return {
        "post": {
            "summary": "Re-resolve NAME@champion and swap the model atomically (a failed load keeps the last "
            "good model)",
            "tags": ["models"],
            "security": [{"bearer": []}],
            "parameters": [
                {
                    "name": "name",
                    "in": "path",
                    "required": True,
                    "description": "category, amount, anomaly, cashflow or the registry name "
                    "(titans_category, ...)",
                    "schema": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": 60,
                        "pattern": r"^[^/]+$",
                        "example": "category",
                    },
                }
            ],
            "responses": {
                **_ok("Reload"),
                **_PROTECTED_ERRORS,
                "404": _error("E003: unknown model name (`field`: name)"),
                "503": _error(
                    "E002: no champion, the registry is unreachable or the load failed "
                    "(the last good model keeps serving), or the service is starting"
                ),
            },
        }
    }


def _correction_path() -> dict[str, Any]:
    return {
        "put": {
            "summary": "Correct a transaction's category (audited: who, when, old -> new); it wins over the "
            "export's label in the marts and is a training label at the next retrain",
            "tags": ["corrections"],
            "security": [{"bearer": []}],
            "parameters": [
                {
                    "name": "transaction_id",
                    "in": "path",
                    "required": True,
                    "description": "marts.fct_transactions.transaction_id",
                    "schema": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": C.MAX_TRANSACTION_ID,
                        "pattern": C.TRANSACTION_ID_PATTERN,
                        "example": "3fe6ed640d5f9416e4218d1f447576d8",
                    },
                }
            ],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _ref("CorrectionRequest")}},
            },
            "responses": {
                **_ok("Correction"),
                **_BODY_ERRORS,
                **_PROTECTED_ERRORS,
                "404": _error("E003: no such transaction (`field`: transaction_id)"),
                "503": _error(
                    "E001: the warehouse database is unreachable; or E002: the service is starting"
                ),
            },
        }
    }


def spec() -> dict[str, Any]:
    paths: dict[str, Any] = {
        **_predict_paths(),
        "/models/{name}/reload": _reload_path(),
        "/transactions/{transaction_id}/category": _correction_path(),
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": TITLE,
            "version": "1",
            "description": "Serves the MLflow champions (models:/NAME@champion). Errors always have the "
            "shape {error: {code, message, field}} (field null when no single field is "
            "at fault); messages name a failing dependency, never its address.",
        },
        "paths": paths,
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "a key from TITANS_API_KEYS"}
            },
        },
    }
