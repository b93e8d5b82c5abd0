"""A small client for the prediction service (`titans serve`) that never invents an answer.

`ServiceClient` calls return an `Outcome`: `ok` with the JSON body, or an explicit state the page
shows (down, unauthorized, no_model, rate_limited, invalid, error). Configuration: TITANS_SERVICE_URL
(default http://127.0.0.1:3000) and TITANS_API_KEY. Standard library only.

Design notes (what each state means): docs/design-notes.md#titans_assetslibdashboardservicepy
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

DEFAULT_URL = "http://127.0.0.1:3000"
MAX_BATCH = 1000  # the service's limit per batch request (lib/serving/validation.py)
HEADLINES = {
    "down": "prediction service is down",
    "unauthorized": "prediction service refused the API key",
    "no_model": "no champion model",
    "rate_limited": "prediction service rate limit reached",
    "invalid": "the service rejected the input",
    "error": "prediction service error",
}


@dataclass(frozen=True)
class Outcome:
    state: str
    body: Any = None
    status: int | None = None
    code: str | None = None
    message: str = ""
    field: str | None = None
    retry_after: int | None = None

    @property
    def ok(self) -> bool:
        return self.state == "ok"

    @property
    def headline(self) -> str:
        return "ok" if self.ok else HEADLINES.get(self.state, self.state)

    def line(self) -> str:
        """One readable line with the error code, e.g. 'E002 no champion for titans_anomaly yet: ...'."""
        if self.ok:
            return "ok"
        message = self.message or self.headline
        if self.code and not message.startswith(self.code):
            message = f"{self.code} {message}"
        return message


def classify(status: int, body: bytes, headers: Mapping[str, str] | None = None) -> Outcome:
    """An HTTP response as an Outcome (pure: the service's error shape is {error: {code, message, field}})."""
    headers = {k.lower(): v for k, v in (headers or {}).items()}
    try:
        payload = json.loads(body) if body else None
    except ValueError:
        payload = None
    if 200 <= status < 300:
        if payload is None:
            return Outcome("error", status=status, code="E000", message=f"HTTP {status} without a JSON body")
        return Outcome("ok", body=payload, status=status)
    err = payload.get("error") if isinstance(payload, dict) and isinstance(payload.get("error"), dict) else {}
    code = err.get("code")
    message = str(err.get("message") or f"HTTP {status}")
    fld = err.get("field")
    if status == 401 or code == "E005":
        return Outcome(
            "unauthorized",
            status=status,
            code="E005",
            message=f"{message} (set TITANS_API_KEY to a key in the service's TITANS_API_KEYS)",
            field=fld,
        )
    if status == 429 or code == "E004":
        retry = headers.get("retry-after")
        return Outcome(
            "rate_limited",
            status=status,
            code="E004",
            message=message,
            field=fld,
            retry_after=int(retry) if retry and retry.isdigit() else None,
        )
    if status == 503 or code == "E002":
        return Outcome("no_model", status=status, code=code or "E002", message=message, field=fld)
    if 400 <= status < 500 and code == "E003":
        return Outcome("invalid", status=status, code="E003", message=message, field=fld)
    return Outcome("error", status=status, code=code or "E000", message=message, field=fld)


def connection_failure(url: str, exc: BaseException) -> Outcome:
    reason = getattr(exc, "reason", exc)
    if isinstance(reason, ConnectionRefusedError):
        why = "connection refused"
    elif isinstance(reason, TimeoutError):
        why = "timed out"
    elif isinstance(reason, socket.gaierror):
        why = "unknown host"
    else:
        why = (str(reason).strip().splitlines() or [type(reason).__name__])[0][:160]
    return Outcome(
        "down",
        code="E002",
        message=f"E002 the prediction service at {url} is not reachable ({why}): start it with "
        f"`titans serve` or set TITANS_SERVICE_URL",
    )


def chunked(rows: list, size: int = MAX_BATCH) -> list[list]:
    if size < 1:
        raise ValueError("chunk size must be >= 1")
    return [rows[i : i + size] for i in range(0, len(rows), size)]


@dataclass
class ServiceClient:
    base_url: str = DEFAULT_URL
    api_key: str | None = None
    timeout: float = 30.0
    calls: int = field(default=0, compare=False)  # requests sent (for the rate-limit budget and tests)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ServiceClient:
        return cls(
            (environ.get("TITANS_SERVICE_URL") or DEFAULT_URL).rstrip("/"),
            environ.get("TITANS_API_KEY") or None,
        )

    def request(self, method: str, path: str, payload: Any = None, auth: bool = True) -> Outcome:
        if auth and not self.api_key:
            return Outcome(
                "unauthorized",
                code="E005",
                message="E005 TITANS_API_KEY is not set: set it to one of the keys the service "
                "accepts (TITANS_API_KEYS)",
            )
        data = None if payload is None else json.dumps(payload).encode()
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if auth:
            headers["Authorization"] = f"Bearer {self.api_key}"
        req = urllib.request.Request(self.base_url + path, data=data, method=method, headers=headers)
        self.calls += 1
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return classify(resp.status, resp.read(), dict(resp.headers))
        except urllib.error.HTTPError as exc:
            with exc:
                return classify(exc.code, exc.read(), dict(exc.headers or {}))
        except (urllib.error.URLError, OSError) as exc:
            return connection_failure(self.base_url, exc)

    # -- endpoints ------------------------------------------------------------------------------
    def health(self) -> Outcome:
        """Public: whether each model can answer (no key needed)."""
        return self.request("GET", "/health", auth=False)

    def models_status(self) -> Outcome:
        return self.request("GET", "/models/status")

    def predict(self, kind: str, payload: dict) -> Outcome:
        return self.request("POST", f"/predict/{kind}", payload)

    def cashflow(self, horizon_days: int = 30) -> Outcome:
        return self.request("POST", "/predict/cashflow", {"horizon_days": int(horizon_days)})

    def predict_batches(self, kind: str, batches: Iterable[list[dict]]) -> Outcome:
        """Each batch (<= 1,000 rows) to /predict/{kind}/batch, in order; the first failure is the answer.
        The body: {"predictions": [...all rows...], "model_versions": [...], "requests": n}."""
        predictions: list = []
        versions: list[str] = []
        n = 0
        for batch in batches:
            if not batch:
                continue
            if len(batch) > MAX_BATCH:
                raise ValueError(f"a batch holds at most {MAX_BATCH} rows, got {len(batch)}")
            out = self.request("POST", f"/predict/{kind}/batch", {"transactions": batch})
            n += 1
            if not out.ok:
                return out
            predictions.extend(out.body["predictions"])
            if out.body.get("model_version") not in versions:
                versions.append(out.body.get("model_version"))
        return Outcome(
            "ok", body={"predictions": predictions, "model_versions": versions, "requests": n}, status=200
        )
