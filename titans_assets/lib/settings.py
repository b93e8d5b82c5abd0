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

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        return cls(
            home=Path(env.get("TITANS_HOME") or ".titans").resolve(),
            landing_dir=Path(env.get("TITANS_LANDING_DIR") or "data/raw").resolve(),
            database_url=env.get("TITANS_DATABASE_URL") or None,
        )

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

    @property
    def pgdata(self) -> Path:
        return self.home / "pgdata"
