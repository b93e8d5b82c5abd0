"""Operating the platform: Prometheus metrics of the service and of the pipeline, structured logs.

- `metrics`   the service's own series (beside BentoML's on /metrics) and the ASGI wrapper that counts
              requests; names follow Prometheus conventions (`_total`, `_seconds`, base units)
- `pipeline`  the pipeline's state as metrics, read from the warehouse (raw.files, raw.transactions,
              Dagster's check and event tables, the MLflow registry) by `titans metrics`
- `logs`      TITANS_LOG_FORMAT=json: one JSON object per line, never a key or a request body

Plain Python: no Dagster or BentoML imports.
"""
