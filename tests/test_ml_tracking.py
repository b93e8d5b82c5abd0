"""MLflow with a PostgreSQL backend store, for real: runs, registered versions, the champion alias."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from conftest import scratch_database

from titans_assets.lib.db import Database
from titans_assets.lib.ml.common import TrainResult
from titans_assets.lib.ml.tracking import Registry, RegistryError
from titans_assets.lib.settings import Settings

pytestmark = pytest.mark.integration


@dataclass
class Scaler:
    """A stand-in model object with the contract's predict(frame) -> DataFrame."""

    factor: float

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"y": frame["x"] * self.factor}, index=frame.index)


def _result(factor: float) -> TrainResult:
    from matplotlib.figure import Figure

    fig = Figure()
    fig.add_subplot().plot([1, 2, 3])
    return TrainResult(
        model=Scaler(factor),
        metrics={"mae": factor, "nan_metric": float("nan")},
        baselines={"median": {"mae": 9.0}},
        params={"alpha": 0.1, "nested": {"k": 3}},
        data_window={"train_rows": 10, "test_rows": 5},
        holdout=None,
        figures={"residuals.png": fig},
        notes=["small data"],
    )


@pytest.fixture(scope="module")
def registry(any_db: Database, tmp_path_factory) -> Registry:
    home = tmp_path_factory.mktemp("home")
    with scratch_database(any_db) as db:
        settings = Settings.from_env({"TITANS_HOME": str(home)})
        yield Registry.from_settings(settings, db)


def test_a_training_run_logs_everything_and_registers_a_version(registry: Registry):
    example = pd.DataFrame({"x": [1.0, 2.0]})
    run_id, version = registry.log_training(
        "titans_test", _result(2.0), example, tags={"dagster.run_id": "r1"}
    )
    assert version == "1"
    run = registry.client.get_run(run_id)
    assert run.data.metrics["mae"] == 2.0 and run.data.metrics["baseline.median.mae"] == 9.0
    assert "nan_metric" not in run.data.metrics
    assert run.data.params["nested.k"] == "3" and run.data.params["data.train_rows"] == "10"
    assert run.data.tags["mlflow.source.git.commit"] and run.data.tags["dagster.run_id"] == "r1"
    artifacts = {a.path for a in registry.client.list_artifacts(run_id)}
    assert {"model", "plots", "training_summary.json"} <= artifacts
    assert Path(registry.artifact_root.removeprefix("file://")).exists()
    assert registry.champion("titans_test") is None  # registered, not promoted


def test_promotion_moves_the_alias_and_the_champion_loads_and_predicts(registry: Registry):
    registry.promote("titans_test", "1", "first")
    champ = registry.champion("titans_test")
    assert (
        champ.version == "1"
        and champ.metrics["mae"] == 2.0
        and champ.tags["titans.promotion_reason"] == "first"
    )
    assert champ.model.predict(pd.DataFrame({"x": [3.0]}))["y"].tolist() == [6.0]
    _, v2 = registry.log_training("titans_test", _result(3.0), pd.DataFrame({"x": [1.0]}))
    assert v2 == "2" and registry.champion("titans_test", load=False).version == "1"
    registry.promote("titans_test", v2, "better")
    assert registry.champion("titans_test").model.factor == 3.0


def test_an_unreachable_registry_is_one_line_with_e002(tmp_path: Path):
    dead = Registry(
        tracking_uri="postgresql+psycopg2://postgres@127.0.0.1:1/nothing", artifact_root=tmp_path.as_uri()
    )
    with pytest.raises(RegistryError) as err:
        dead.champion("titans_test")
    assert str(err.value).startswith("E002") and "\n" not in str(err.value)


def test_two_workers_creating_the_store_at_once_both_get_it(embedded_db: Database):
    """The default store `<database>_mlflow` is created by the first model step that needs it; on two
    Celery workers two steps ask at once, and both must get it (one CREATE DATABASE, no collision)."""
    from concurrent.futures import ThreadPoolExecutor

    with scratch_database(embedded_db) as db:
        store = db.sibling(f"{db.dbname}_mlflow")
        with ThreadPoolExecutor(max_workers=6) as pool:
            done = list(pool.map(lambda _: store.ensure_exists(), range(6)))
        assert done == [None] * 6
        with embedded_db.connect() as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (store.dbname,))
            assert cur.fetchone()[0] == 1
