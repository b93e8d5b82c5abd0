"""`titans materialize` on small ledgers shaped like real ones (tests/real_shaped.py): the run succeeds
and every model ends with a served predictor, a trained model or the best baseline, named as such.
A model that loses to its baseline is an outcome; the data-quality checks still all pass and block."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
from conftest import TEST_TODAY, scratch_database, titans_env
from real_shaped import write_ledger

from titans_assets import runner
from titans_assets.lib.db import Database
from titans_assets.lib.ml import catalog
from titans_assets.lib.ml.tracking import Registry
from titans_assets.lib.settings import Settings
from titans_assets.lib.status import champion_summary

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", autouse=True)
def dbt_manifest() -> Path:
    return runner.ensure_dbt_manifest()


@pytest.mark.parametrize(("rows", "n_categories", "seed"), [(100, 20, 1), (400, 35, 2), (2000, 50, 3)])
def test_materialize_succeeds_and_serves_every_model_on_a_real_shaped_ledger(
    rows, n_categories, seed, tmp_path, embedded_db: Database, monkeypatch
):
    landing = tmp_path / "data" / "raw"
    write_ledger(landing / "checking.csv", rows=rows, n_categories=n_categories, seed=seed, end=TEST_TODAY)
    with scratch_database(embedded_db) as db:
        titans_env(monkeypatch, db, tmp_path / "home", landing)
        monkeypatch.setenv("TITANS_DATABASE_URL", db.url)
        summary = runner.materialize(None, instance=dg.DagsterInstance.ephemeral())

        assert summary.success, summary.error
        assert not summary.checks_failed, summary.checks_failed  # every blocking data check passed
        gates = {k: v for k, v in summary.checks.items() if k.endswith(":beats_best_baseline")}
        assert len(gates) == len(catalog.SPECS) and set(gates.values()) <= {"passed", "warning"}, gates
        models = champion_summary(Registry.from_settings(Settings.from_env(), db))
        for key, m in models.items():
            assert m["champion"] is not None, (key, m)
            won = gates[f"ml/{key}_evaluation:beats_best_baseline"] == "passed"
            assert m["model_kind"] == "model" if won else m["model_kind"].startswith("baseline:"), (key, m)
            assert m["last_decision"].startswith("promoted" if won else "not promoted"), (key, m)
