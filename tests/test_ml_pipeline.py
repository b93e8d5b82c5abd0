"""The model assets for real: generated ledgers -> dbt features -> four trained, logged, evaluated and
promoted models in an MLflow registry on PostgreSQL; parity of the training and serving feature paths."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from conftest import TEST_TODAY, scratch_database, titans_env

from titans_assets import runner
from titans_assets.lib.db import Database
from titans_assets.lib.generator import generate
from titans_assets.lib.ml import catalog, data
from titans_assets.lib.ml import features as F
from titans_assets.lib.ml.tracking import Registry
from titans_assets.lib.settings import Settings
from titans_assets.lib.status import champion_summary

pytestmark = pytest.mark.integration

TODAY = TEST_TODAY
MODELS = [s.key for s in catalog.SPECS]


@pytest.fixture(scope="session", autouse=True)
def dbt_manifest() -> Path:
    return runner.ensure_dbt_manifest()


def _world(server: Database, root: Path, **generate_args):
    """A scratch database on `server`, generated ledgers in a landing folder, an ephemeral instance."""
    landing = root / "data" / "raw"
    summary = generate(landing, end_date=TODAY, **generate_args)  # ground truth lands in root/data/labels
    with scratch_database(server) as db, pytest.MonkeyPatch.context() as monkeypatch:
        titans_env(monkeypatch, db, root / "home", landing)
        monkeypatch.setenv("TITANS_DATABASE_URL", db.url)  # the scratch database, even on the embedded server
        settings = Settings.from_env()
        yield {
            "db": db,
            "landing": landing,
            "generated": summary,
            "settings": settings,
            "registry": Registry.from_settings(settings, db),
            "instance": dg.DagsterInstance.ephemeral(),
        }


@pytest.fixture(scope="module")
def world(any_db: Database, tmp_path_factory: pytest.TempPathFactory):
    yield from _world(any_db, tmp_path_factory.mktemp("ml"), rows=6000, seed=11)


def test_the_whole_graph_ends_with_four_champions_that_beat_their_baselines(world):
    summary = runner.materialize(None, instance=world["instance"])

    assert summary.success, summary.error
    for key in MODELS:
        assert {f"ml/{key}_challenger", f"ml/{key}_evaluation", f"ml/{key}_champion"} <= set(
            summary.materialized
        )
        assert summary.checks[f"ml/{key}_evaluation:beats_best_baseline"] == "passed"
    registry = world["registry"]
    for spec in catalog.SPECS:
        champ = registry.champion(spec.name)
        assert champ is not None and champ.version == "1" and champ.kind == "model", spec.name
        value = champ.metrics[spec.primary_metric]
        baselines = {
            k: v
            for k, v in champ.metrics.items()
            if k.startswith("baseline.") and k.endswith("." + spec.primary_metric)
        }
        assert baselines, spec.name
        best = max(baselines.values()) if spec.higher_is_better else min(baselines.values())
        assert (value > best) if spec.higher_is_better else (value < best), (spec.name, value, baselines)
        run = registry.client.get_run(champ.run_id)
        assert run.data.tags["titans.decision"].startswith("promoted")
        assert {"data.train_rows", "data.test_rows"} <= set(run.data.params) or spec.key == "cashflow"
        assert any(a.path == "plots" for a in registry.client.list_artifacts(champ.run_id))
        # The loaded champion answers the request-shaped example.
        out = champ.model.predict(spec.example_frame())
        assert len(out) == len(spec.example_frame()) or spec.key == "cashflow"

    listed = champion_summary(registry)
    assert {m["name"]: m["champion"] for m in listed.values()} == {s.name: "1" for s in catalog.SPECS}
    assert all(np.isfinite(m["value"]) for m in listed.values())
    assert all(
        m["model_kind"] == "model" and m["last_decision"].startswith("promoted") for m in listed.values()
    )


def test_a_challenger_that_loses_to_its_baseline_is_an_outcome_and_the_baseline_serves(
    tmp_path_factory, embedded_db, monkeypatch
):
    """A category model fitted on labels rotated to the wrong category (a real model, genuinely bad)
    loses to the description lookup on the real holdout: the run still succeeds, the gate is a
    warning with its numbers, and the best baseline is registered, tagged and served as champion."""
    real_train = catalog.train_model

    def mislabelled(spec, db, settings):
        if spec.key != "category":
            return real_train(spec, db, settings)
        frame = data.load_transactions(db)
        labels = sorted(frame["category"].dropna().unique())
        rotate = dict(zip(labels, labels[1:] + labels[:1]))  # no category keeps its own label
        result = spec.module.train(frame.assign(category=frame["category"].map(rotate)))
        honest = spec.module.train(frame)  # the true holdout and baselines, fitted on the true labels
        return replace(honest, model=result.model, metrics=spec.module.score(result.model, honest.holdout))

    monkeypatch.setattr("titans_assets.defs.ml.assets.train_model", mislabelled)
    for w in _world(embedded_db, tmp_path_factory.mktemp("loses"), rows=2500, seed=3):
        assert runner.materialize("not group:ml", instance=w["instance"]).success
        summary = runner.materialize("key:ml/category_*", instance=w["instance"])
        assert summary.success, summary.error
        assert summary.checks["ml/category_evaluation:beats_best_baseline"] == "warning"
        registry = w["registry"]
        champ = registry.champion("titans_category")
        assert champ.kind == "baseline:description_lookup" and champ.version == "2", (
            champ.kind,
            champ.version,
        )
        assert champ.tags["titans.promotion_reason"].endswith("serving baseline description_lookup")
        run = registry.client.get_run(champ.run_id)
        assert run.data.tags["titans.stage"] == "baseline"
        # the served baseline's metrics are the ones it scored on the challenger's holdout
        challenger = registry.client.get_run(registry.client.get_model_version("titans_category", "1").run_id)
        assert run.data.metrics["macro_f1"] == challenger.data.metrics["baseline.description_lookup.macro_f1"]
        assert run.data.metrics["macro_f1"] > challenger.data.metrics["macro_f1"]
        # it answers like a model: prediction, confidence, alternatives
        out = champ.model.predict_columns(catalog.BY_KEY["category"].example_frame())
        assert (
            len(out["prediction"]) == 1
            and 0 <= float(out["confidence"][0]) <= 1
            and len(out["alternatives"][0])
        )
        listed = champion_summary(registry)["category"]
        assert listed["model_kind"] == "baseline:description_lookup"
        assert "does not beat description_lookup" in listed["last_decision"]


def test_a_worse_challenger_does_not_replace_the_champion(world, monkeypatch):
    """A challenger trained on a fifth of the rows is scored beside the champion on its own holdout;
    the champion (trained on all of them) stays."""
    registry = world["registry"]
    before = registry.champion("titans_category", load=False).version
    real_train = catalog.train_model

    def starved(spec, db, settings):
        if spec.key != "category":
            return real_train(spec, db, settings)
        frame = data.load_transactions(db)
        return spec.module.train(frame.iloc[::5])

    monkeypatch.setattr("titans_assets.defs.ml.assets.train_model", starved)
    summary = runner.materialize("key:ml/category_*", instance=world["instance"])

    assert registry.champion("titans_category", load=False).version == before
    runs = registry.client.search_runs(
        [registry.experiment_id()],
        "tags.`titans.model` = 'titans_category'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    decision = runs[0].data.tags["titans.decision"]
    assert decision.startswith("not promoted"), decision
    if summary.checks["ml/category_evaluation:beats_best_baseline"] == "passed":
        assert "worse than champion" in decision
        assert runs[0].data.metrics["champion.macro_f1"] > runs[0].data.metrics["macro_f1"]


def test_new_validated_rows_raise_the_retrain_signal_and_the_sensor_asks_for_a_retrain(world, monkeypatch):
    """After training nothing is new; a new export loaded and checked makes `ml/retrain_signal` say
    "retrain", and the retrain sensor turns that into one run of the four model chains."""
    from titans_assets.defs.automation.sensors import retrain_sensor
    from titans_assets.defs.ml.monitoring import RETRAIN_SIGNAL

    if not world["db"].embedded:
        pytest.skip("the signal reads the marts the same way on both servers: once is enough")
    instance = world["instance"]

    def signal() -> dict:
        event = instance.get_latest_materialization_event(RETRAIN_SIGNAL)
        return {k: v.value for k, v in event.asset_materialization.metadata.items()}

    assert runner.materialize("key:ml/retrain_signal", instance=instance).success
    quiet = signal()
    assert quiet["retrain"] is False and quiet["new_rows"] == 0, quiet
    assert isinstance(retrain_sensor(dg.build_sensor_context(instance=instance)), dg.SkipReason)

    monkeypatch.setenv("TITANS_RETRAIN_MIN_ROWS", "20")
    drop = world["landing"].parent / "drop"
    generate(
        drop,
        years=0.2,
        seed=99,
        end_date=TODAY,
        labels_dir=drop.parent / "drop-labels",
        accounts=("personal_card",),
    )
    (drop / "personal_card.csv").rename(world["landing"] / "personal_card_2.csv")
    summary = runner.materialize("not group:ml", instance=instance)
    assert summary.success and "ml/retrain_signal" in summary.materialized, summary.error

    loud = signal()
    with world["db"].connect() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM marts.fct_transactions WHERE source_file = %s", ("personal_card_2.csv",)
        )
        assert loud["retrain"] is True and loud["new_rows"] == cur.fetchone()[0] > 20, loud
    assert any("new rows" in r for r in loud["reasons_list"])
    request = retrain_sensor(dg.build_sensor_context(instance=instance))
    assert isinstance(request, dg.RunRequest) and "new rows" in request.tags["titans/reason"]


def test_training_and_serving_compute_the_same_features_on_real_rows(world):
    """Training reads rows from the warehouse; the service receives them as JSON requests. Both go
    through features.prepare + row_features and must agree, and Python's merchant must equal dbt's."""
    frame = data.load_transactions(world["db"])
    vocabulary = F.Vocabulary.from_seeds()
    training = F.prepare(frame, vocabulary)
    requests = [
        {
            "date": d.date().isoformat(),
            "amount": float(a),
            "description": desc,
            "payment_method": pm,
            "reference": ref or None,
        }
        for d, a, desc, pm, ref in zip(
            frame["txn_date"],
            frame["amount"],
            frame["description"],
            frame["payment_method"],
            frame["reference"],
        )
    ]
    serving = F.prepare(pd.DataFrame(requests), vocabulary)

    pd.testing.assert_frame_equal(F.row_features(training), F.row_features(serving))
    assert training["merchant"].tolist() == serving["merchant"].tolist()
    assert training["payment_method"].tolist() == frame["payment_method"].tolist()
    # The Python port of dbt's clean_name/clean_description gives dbt's merchant on every row.
    mismatch = frame[training["merchant"].fillna("") != frame["merchant"].fillna("")]
    assert mismatch.empty, mismatch[["description", "reference", "merchant"]].head()


def test_a_small_ledger_trains_every_model_with_honest_uncertainty(tmp_path_factory, embedded_db):
    """~100 expense rows over four months, like the original ledger: no crash, intervals reported."""
    for w in _world(
        embedded_db,
        tmp_path_factory.mktemp("small"),
        rows=130,
        years=0.34,
        seed=5,
        accounts=("business_credit_card",),
    ):
        summary = runner.materialize(None, instance=w["instance"])
        challengers = {f"ml/{k}_challenger" for k in MODELS}
        assert challengers <= set(summary.materialized), summary.error
        registry = w["registry"]
        runs = registry.client.search_runs([registry.experiment_id()], "tags.`titans.stage` = 'challenger'")
        assert len(runs) == len(MODELS)  # (plus a baseline run for each model that lost to its baseline)
        served = champion_summary(registry)
        assert all(m["champion"] is not None for m in served.values()), served
        amount_run = next(r for r in runs if r.data.tags["titans.model"] == "titans_amount")
        assert "interval_coverage" in amount_run.data.metrics
        assert amount_run.data.metrics["mean_interval_width"] > 0
