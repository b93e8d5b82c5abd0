"""Dagster resources: thin wrappers around titans_assets.lib."""

from dataclasses import replace

import dagster as dg

from titans_assets.lib.db import Database, get_database
from titans_assets.lib.settings import Settings


class WarehouseResource(dg.ConfigurableResource):
    """The PostgreSQL that holds raw, staging and marts: embedded unless TITANS_DATABASE_URL is set.

    Settings are read from the environment when a run starts (never at import time), so the same
    definitions serve the laptop default and a team's server.
    """

    def settings(self) -> Settings:
        return Settings.from_env()

    def database(self) -> Database:
        return get_database(self.settings())


class MlflowResource(dg.ConfigurableResource):
    """MLflow tracking and registry through an explicit URI (no global MLflow state, unlike the
    legacy dagster-mlflow resource). Empty fields mean the defaults of lib/ml/tracking.py: a
    `<database>_mlflow` database beside the warehouse and artifacts under $TITANS_HOME."""

    tracking_uri: str | None = None
    artifact_root: str | None = None

    def registry(self):
        from titans_assets.lib.ml.tracking import Registry

        settings = Settings.from_env()
        settings = replace(
            settings,
            mlflow_tracking_uri=self.tracking_uri or settings.mlflow_tracking_uri,
            mlflow_artifacts=self.artifact_root or settings.mlflow_artifacts,
        )
        return Registry.from_settings(settings, get_database(settings))
