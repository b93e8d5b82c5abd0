"""Route templates, so metrics (and traces, access logs) label `/models/{name}/reload` once, not per name,
and a scanner's random paths all count as one `/{unmatched}` label instead of one series each.

BentoML's metrics middleware labels requests by the raw `scope["path"]` it sees first. `TemplatePaths`
wraps the whole BentoML app and shows it the template (keeping the real path in the scope);
`RestorePath`, installed inside BentoML's middleware stack, puts the real path back before routing
and answers unmatched paths itself, with the JSON error shape.
"""

from __future__ import annotations

import re

from titans_assets.lib.serving.errors import INVALID, error_json

RAW_PATH_KEY = "titans.raw_path"
UNMATCHED = "/{unmatched}"

# Routes of the Titans API (app.py) and of BentoML itself.
API_ROUTES = (
    "/health",
    "/openapi.json",
    "/docs.json",
    "/predict/category",
    "/predict/category/batch",
    "/predict/amount",
    "/predict/amount/batch",
    "/predict/anomaly",
    "/predict/anomaly/batch",
    "/predict/cashflow",
    "/models/status",
    "/models/health",
)
RELOAD_TEMPLATE = "/models/{name}/reload"
CORRECTION_TEMPLATE = "/transactions/{transaction_id}/category"
BENTOML_ROUTES = ("/", "/livez", "/healthz", "/readyz", "/metrics", "/schema.json")
_EXACT = frozenset(API_ROUTES + BENTOML_ROUTES)
_RELOAD = re.compile(r"/models/[^/]+/reload")
_CORRECTION = re.compile(r"/transactions/[^/]+/category")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # Starlette's mounts match `.*`, which stops at a newline
_STATIC = ("/static_content/", "/assets/")


def template_of(path: str) -> str:
    """The route template a raw path belongs to (UNMATCHED when no route serves it)."""
    if path in _EXACT:
        return path
    if _CONTROL.search(path):
        return UNMATCHED
    if len(path) > 1 and path.endswith("/") and path[:-1] in _EXACT:
        return path[:-1]
    if _RELOAD.fullmatch(path):
        return RELOAD_TEMPLATE
    if _CORRECTION.fullmatch(path):
        return CORRECTION_TEMPLATE
    for prefix in _STATIC:
        if path.startswith(prefix):
            return prefix + "{path}"
    return UNMATCHED


class TemplatePaths:
    """Outermost ASGI wrapper: `scope["path"]` becomes the route template for the layers outside routing."""

    def __init__(self, app):
        self.app = app
        # Starlette's TestClient and BentoML look for these on the app they are given.
        self.router = getattr(app, "router", None)
        self.state = getattr(app, "state", None)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            path = scope["path"]
            template = template_of(path)
            if template != path:
                scope = dict(scope)
                scope[RAW_PATH_KEY] = path
                scope["path"] = template
        await self.app(scope, receive, send)


class RestorePath:
    """Inside BentoML's middleware stack: the real path back for routing; unmatched paths -> JSON 404."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and RAW_PATH_KEY in scope:
            raw = scope[RAW_PATH_KEY]
            if scope["path"] == UNMATCHED:
                body = error_json(INVALID, f"no such route: {scope.get('method', 'GET')} {raw[:200]}", "path")
                await send(
                    {
                        "type": "http.response.start",
                        "status": 404,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})  # counted as E003 by Instrumented
                return
            scope["path"] = raw
        await self.app(scope, receive, send)
