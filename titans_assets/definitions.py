"""The Dagster code location: the domains under defs/, merged, with the shared resources."""

import dagster as dg
from dagster_dbt import DbtCliResource

from titans_assets.defs.automation import sensors as automation
from titans_assets.defs.ingest import assets as ingest
from titans_assets.defs.ml import assets as ml
from titans_assets.defs.ml import monitoring
from titans_assets.defs.quality import checks as quality
from titans_assets.defs.transform import dbt as transform
from titans_assets.defs.transform.project import DBT_EXECUTABLE, titans_dbt_project
from titans_assets.resources import MlflowResource, WarehouseResource

defs = dg.Definitions.merge(
    ingest.defs,
    transform.defs,
    quality.defs,
    ml.defs,
    monitoring.defs,
    automation.defs,
    dg.Definitions(
        resources={
            "warehouse": WarehouseResource(),
            "mlflow": MlflowResource(),
            "dbt": DbtCliResource(project_dir=titans_dbt_project, dbt_executable=DBT_EXECUTABLE),
        }
    ),
)
