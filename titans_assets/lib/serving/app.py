"""The HTTP API as a lean Starlette app (mounted into the BentoML service by bento/service.py).

Why not `@bentoml.api` methods: they cannot have path parameters (`/models/{name}/reload`), their 4xx
bodies do not follow our error shape, and their pydantic round trip per request cost more than the
models' own time. This app reads the body once (bounded), validates by hand, runs the champion and
encodes with orjson; everything it decides lives in `Runtime` (runtime.py).

Public: GET /health, /openapi.json, /docs.json (BentoML's own /livez, /readyz, /metrics stay).
Bearer key: POST /predict/{category,amount,anomaly}[/batch], POST /predict/cashflow,
GET /models/status, GET /models/health, POST /models/{name}/reload,
PUT /transactions/{transaction_id}/category (a correction, audited with the key's id: corrections.py).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from titans_assets.lib.observability import metrics as M
from titans_assets.lib.serving import openapi
from titans_assets.lib.serving import validation as V
from titans_assets.lib.serving.errors import INTERNAL, INVALID, ApiError, error_json
from titans_assets.lib.serving.runtime import Runtime

log = logging.getLogger("titans.serving")

# Predictions run in a worker thread (as FastAPI runs `def` endpoints), not on the event loop: the loop
# keeps reading and answering other requests meanwhile, and on a loaded machine (the kernel shares CPU
# per thread) a worker with a prediction thread got about twice the throughput of one predicting inline
# (docs/benchmarks.md, serving). Set above 0 to predict batches of up to that many rows inline.
INLINE_ROWS = 0
_OPT = orjson.OPT_SERIALIZE_NUMPY


def json_response(body, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body, option=_OPT), status_code=status, headers=headers, media_type="application/json"
    )


def error_response(err: ApiError, request: Request | None = None) -> Response:
    M.count_error(err.code, M.template_of(request.url.path) if request is not None else "")
    return Response(
        error_json(err.code, err.message, err.field),
        status_code=err.status,
        headers=err.headers,
        media_type="application/json",
    )


async def read_json(request: Request, limit: int):
    V.check_content_type(request.headers.get("content-type"))
    declared = request.headers.get("content-length")
    if declared is not None:
        if not (declared.isascii() and declared.isdigit()):
            raise ApiError(400, INVALID, "Content-Length: not a number", field="Content-Length")
        if len(declared) > 18 or int(declared) > limit:
            raise ApiError(413, INVALID, f"body: larger than {limit} bytes", field="body")
        body = await request.body()
    else:  # chunked: count as it arrives
        parts, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ApiError(413, INVALID, f"body: larger than {limit} bytes", field="body")
            parts.append(chunk)
        body = b"".join(parts)
    return V.parse_json(body)


def _runtime(request: Request) -> Runtime:
    rt = request.app.state.runtime
    if rt is None:
        raise ApiError(503, "E002", "the service is starting: no models loaded yet")
    return rt


Handler = Callable[[Request, Runtime], Awaitable[Response]]


def protected(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Rate limits and the Bearer key first; the one error shape for everything that goes wrong."""

    async def endpoint(request: Request) -> Response:
        try:
            rt = _runtime(request)
            # The TCP peer, or the client a trusted proxy names (TITANS_TRUSTED_PROXIES; lib/serving/proxies.py).
            client = rt.client_address(
                request.client.host if request.client else None, request.headers.getlist("x-forwarded-for")
            )
            request.state.key_id = rt.admit(client, request.headers.get("authorization"))  # who, for audits
            return await handler(request, rt)
        except ApiError as err:
            return error_response(err, request)
        except Exception:  # a bug, never the client's input: log it, answer E000
            log.exception("unexpected error on %s %s", request.method, M.template_of(request.url.path))
            return error_response(ApiError(500, INTERNAL, "unexpected server error (logged)"), request)

    endpoint.__name__ = handler.__name__
    return endpoint


def public(handler: Callable[[Request], Awaitable[Response]]):
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except ApiError as err:
            return error_response(err, request)

    endpoint.__name__ = handler.__name__
    return endpoint


def _row_endpoint(key: str, batch: bool) -> Handler:
    async def handler(request: Request, rt: Runtime) -> Response:
        payload = await read_json(request, rt.max_body_bytes)
        rows = rt.parse_rows(key, payload, batch)
        if rt.holder.get(key).loaded is None:  # 503 before any work; the reason may ask the warehouse
            await run_in_threadpool(rt.champion, key)
        if len(rows) > INLINE_ROWS:
            body = await run_in_threadpool(rt.predict_rows, key, rows, batch)
        else:
            body = rt.predict_rows(key, rows, batch)
        M.note(request.scope, model_version=body.get("model_version"), model_kind=body.get("model_kind"))
        return json_response(body)

    handler.__name__ = f"predict_{key}{'_batch' if batch else ''}"
    return handler


async def predict_cashflow(request: Request, rt: Runtime) -> Response:
    payload = await read_json(request, rt.max_body_bytes)
    body = rt.predict_cashflow(payload)
    M.note(request.scope, model_version=body.get("model_version"), model_kind=body.get("model_kind"))
    return json_response(body)


async def correct_category(request: Request, rt: Runtime) -> Response:
    transaction_id = request.path_params["transaction_id"]
    payload = await read_json(request, rt.max_body_bytes)
    body = await run_in_threadpool(rt.correct_category, transaction_id, payload, request.state.key_id)
    return json_response(body)


async def models_status(request: Request, rt: Runtime) -> Response:
    return json_response(rt.models_status())


async def models_health(request: Request, rt: Runtime) -> Response:
    return json_response(await run_in_threadpool(rt.models_health))  # it asks the registry: off the loop


async def reload_model(request: Request, rt: Runtime) -> Response:
    name = request.path_params["name"]
    return json_response(await run_in_threadpool(rt.reload, name))


async def health(request: Request) -> Response:
    return json_response(_runtime(request).health())


_SPEC: bytes | None = None


async def openapi_json(request: Request) -> Response:
    global _SPEC
    if _SPEC is None:
        _SPEC = orjson.dumps(openapi.spec())
    return Response(_SPEC, media_type="application/json")


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        message = f"method {request.method} not allowed on {request.url.path}"
    elif exc.status_code == 404:
        message = f"no such route: {request.method} {request.url.path[:200]}"
    else:
        message = str(exc.detail)
    M.count_error(INVALID, M.template_of(request.url.path))
    return Response(
        error_json(INVALID, message, "path" if exc.status_code == 404 else "method"),
        status_code=exc.status_code,
        headers=exc.headers,
        media_type="application/json",
    )


def create_app(runtime: Runtime | None = None) -> Starlette:
    # Starlette tries routes in order: the prediction routes, the busiest, first.
    routes = []
    for key in ("category", "amount", "anomaly"):
        routes.append(Route(f"/predict/{key}", protected(_row_endpoint(key, False)), methods=["POST"]))
        routes.append(Route(f"/predict/{key}/batch", protected(_row_endpoint(key, True)), methods=["POST"]))
    routes += [
        Route("/health", public(health), methods=["GET"]),
        Route("/openapi.json", openapi_json, methods=["GET"]),
        Route("/docs.json", openapi_json, methods=["GET"]),  # what BentoML's Swagger UI at / reads
        Route("/predict/cashflow", protected(predict_cashflow), methods=["POST"]),
        Route("/models/status", protected(models_status), methods=["GET"]),
        Route("/models/health", protected(models_health), methods=["GET"]),
        Route("/models/{name}/reload", protected(reload_model), methods=["POST"]),
        Route("/transactions/{transaction_id}/category", protected(correct_category), methods=["PUT"]),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: _http_error})
    app.state.runtime = runtime
    return app
