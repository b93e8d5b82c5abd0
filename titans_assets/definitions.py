"""The Dagster code location: the domains under defs/, merged, with the shared resources."""

import dagster as dg

from titans_assets.defs.automation import sensors as automation
from titans_assets.defs.ingest import assets as ingest
from titans_assets.defs.ml import assets as ml
from titans_assets.defs.ml import monitoring, predictions
from titans_assets.defs.quality import checks as quality
from titans_assets.defs.transform import dbt as transform
from titans_assets.defs.transform import enriched
from titans_assets.resources import MlflowResource, WarehouseResource
from titans_assets.resources.dbt import TitansDbtResource

_warehouse = WarehouseResource()  # one instance: the dbt resource's connection is this one

defs = dg.Definitions.merge(
    ingest.defs,
    transform.defs,
    enriched.defs,
    quality.defs,
    ml.defs,
    monitoring.defs,
    predictions.defs,
    automation.defs,
    dg.Definitions(
        resources={
            "warehouse": _warehouse,
            "mlflow": MlflowResource(),
            "dbt": TitansDbtResource(_warehouse),
        }
    ),
)
