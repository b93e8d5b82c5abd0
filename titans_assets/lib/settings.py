"""Where things live. Every setting comes from the environment, read when asked (never at import time)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    home: Path  # all local state: embedded PostgreSQL, Dagster home, dbt logs
    landing_dir: Path  # where users drop CSV exports
    database_url: str | None  # external PostgreSQL; None means the embedded server under `home`
    labels_dir: Path  # ground truth written by the generator (anomalies.csv), when there is one
    mlflow_tracking_uri: str | None  # None: a `<database>_mlflow` database on the same PostgreSQL
    mlflow_artifacts: str | None  # artifact root URI; None: file:// under `home`/mlartifacts

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        landing = Path(env.get("TITANS_LANDING_DIR") or "data/raw").resolve()
        return cls(
            home=Path(env.get("TITANS_HOME") or ".titans").resolve(),
            landing_dir=landing,
            database_url=env.get("TITANS_DATABASE_URL") or None,
            labels_dir=Path(env.get("TITANS_LABELS_DIR") or landing.parent / "labels").resolve(),
            mlflow_tracking_uri=env.get("TITANS_MLFLOW_TRACKING_URI") or None,
            mlflow_artifacts=env.get("TITANS_MLFLOW_ARTIFACTS") or None,
        )

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

    @property
    def pgdata(self) -> Path:
        return self.home / "pgdata"
