"""Serving the champion models over HTTP: plain Python, no BentoML or Dagster imports.

- `errors`     the one error shape `{"error": {"code", "message", "field"?}}` and its codes
- `validation` request bodies -> model input rows, every failure naming its field (E003)
- `auth`       API keys from TITANS_API_KEYS / TITANS_API_KEYS_FILE, compared in constant time (E005)
- `ratelimit`  per client IP and per key, on the `limits` package, shared through Redis when set (E004)
- `holder`     the loaded champions: atomic swap, alias polling, last good model kept on failure (E002)
- `predict`    model outputs -> response bodies
- `routes`     route templates (metrics labels) and the ASGI wrappers that apply them
- `openapi`    the OpenAPI document of the API
- `app`        the Starlette application that ties them together (mounted by bento/service.py)
"""
