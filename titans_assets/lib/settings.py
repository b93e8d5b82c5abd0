"""Where things live. Every setting comes from the environment, read when asked (never at import time)."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MAX_ABS_AMOUNT = 1_000_000  # TITANS_MAX_ABS_AMOUNT: larger amounts fail the blocking checks


@dataclass(frozen=True)
class Settings:
    home: Path  # all local state: embedded PostgreSQL, Dagster home, dbt logs
    landing_dir: Path  # where users drop CSV exports
    database_url: str | None  # external PostgreSQL; None means the embedded server under `home`
    labels_dir: Path  # ground truth written by the generator (anomalies.csv), when there is one
    mlflow_tracking_uri: str | None  # None: a `<database>_mlflow` database on the same PostgreSQL
    mlflow_artifacts: str | None  # artifact root URI; None: file:// under `home`/mlartifacts
    as_of: dt.date | None = None  # the platform's "today" (freshness, date bounds); None: the real date
    profiles_dir: Path | None = (
        None  # TITANS_PROFILES_DIR; None: `profiles/` in the landing folder (profiles_in)
    )
    rules_path: Path | None = None  # TITANS_RULES_FILE; None: `rules.yaml` in the landing folder (rules_file)
    retrain_min_corrections: int = (
        20  # TITANS_RETRAIN_MIN_CORRECTIONS: corrections since training that retrain
    )
    # TITANS_ANOMALY_EXPECTED_AFTER: one merchant's flags for one reason marked "expected" this many times
    # and the anomaly model stops flagging that merchant for that reason
    anomaly_expected_after: int = 3
    # TITANS_MAX_ABS_AMOUNT: the largest |amount| the blocking checks accept (raw rows and marts)
    max_abs_amount: int = DEFAULT_MAX_ABS_AMOUNT

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
            as_of=_date(env, "TITANS_AS_OF"),
            profiles_dir=Path(env["TITANS_PROFILES_DIR"]).resolve()
            if env.get("TITANS_PROFILES_DIR")
            else None,
            rules_path=Path(env["TITANS_RULES_FILE"]).resolve() if env.get("TITANS_RULES_FILE") else None,
            retrain_min_corrections=_count(env, "TITANS_RETRAIN_MIN_CORRECTIONS", 20),
            anomaly_expected_after=_count(env, "TITANS_ANOMALY_EXPECTED_AFTER", 3, minimum=1),
            max_abs_amount=_count(env, "TITANS_MAX_ABS_AMOUNT", DEFAULT_MAX_ABS_AMOUNT, minimum=1),
        )

    def profiles_in(self, landing_dir: Path | None = None) -> Path:
        """The user's CSV profiles (*.yaml): TITANS_PROFILES_DIR, else `profiles/` in the landing folder."""
        return self.profiles_dir or (landing_dir or self.landing_dir) / "profiles"

    @property
    def rules_file(self) -> Path:
        """The user's category rules: TITANS_RULES_FILE, else `rules.yaml` in the landing folder."""
        return self.rules_path or self.landing_dir / "rules.yaml"

    def child_env(self, environ: dict[str, str], database_url: str) -> dict[str, str]:
        """`environ` for a child process (a server, a worker) pinned to this configuration: absolute
        home, landing and labels folders, the resolved database URL (the embedded server's socket URL
        too, so children share one server) and the project on PYTHONPATH."""
        from titans_assets.lib.paths import PROJECT_ROOT

        env = dict(environ)
        env |= {
            "TITANS_HOME": str(self.home),
            "TITANS_LANDING_DIR": str(self.landing_dir),
            "TITANS_LABELS_DIR": str(self.labels_dir),
            "TITANS_DATABASE_URL": database_url,
        }
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH")) if p)
        return env

    def check_params(self) -> dict[str, int]:
        """The Great Expectations suites' run-time parameters this configuration sets."""
        return {"max_abs_amount": self.max_abs_amount}

    def today(self) -> dt.date:
        """The date checks judge freshness against: TITANS_AS_OF when set, else the calendar's."""
        return self.as_of or dt.date.today()

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

    @property
    def pgdata(self) -> Path:
        return self.home / "pgdata"


class SettingsError(ValueError):
    code = "E003"


def _date(env, name: str) -> dt.date | None:
    value = (env.get(name) or "").strip()
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise SettingsError(f"E003 invalid input: {name}={value!r} is not a date (YYYY-MM-DD)") from None


def _count(env, name: str, default: int, minimum: int = 0) -> int:
    value = (env.get(name) or "").strip()
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        number = minimum - 1
    if number < minimum:
        raise SettingsError(f"E003 invalid input: {name}={value!r} is not a whole number >= {minimum}")
    return number
