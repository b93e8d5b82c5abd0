"""Automation: the landing folder's change plan, drift and the retrain rule (pure), the landing and
retrain sensors (`build_sensor_context` on an ephemeral instance, raw.files on a real PostgreSQL) and
the declarative automation of the retrain signal (`evaluate_automation_conditions`)."""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from conftest import scratch_database, warehouse_rows

from titans_assets.definitions import defs
from titans_assets.defs.automation.sensors import landing_sensor, retrain_sensor
from titans_assets.defs.ingest.assets import RAW_TRANSACTIONS, landing_files
from titans_assets.defs.ml.monitoring import REFERENCE_TRAINING, RETRAIN_SIGNAL
from titans_assets.defs.quality.checks import FCT_DAILY_METRICS, FCT_TRANSACTIONS
from titans_assets.lib import landing
from titans_assets.lib.generator import generate
from titans_assets.lib.loader import ensure_raw_schema, load_file, remove_file
from titans_assets.lib.ml import monitoring
from titans_assets.resources import WarehouseResource

END = dt.date(2026, 6, 30)


# ---------------------------------------------------------------------------------------------- the change plan
def _write(path: Path, text: str, age: float = 60) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    past = time.time() - age
    os.utime(path, (past, past))


def test_scan_hashes_settled_files_and_rehashes_only_what_changed(tmp_path: Path, monkeypatch):
    _write(tmp_path / "a.csv", "Date,Amount\n2024-01-01,1\n")
    _write(tmp_path / "checking" / "b.CSV", "Date,Amount\n")
    _write(tmp_path / "copying.csv", "Date,Amo", age=0)  # still being written
    _write(tmp_path / "notes.txt", "not a csv")
    present, settling, cache = landing.scan(tmp_path, {}, settle_seconds=5)
    assert set(present) == {"a.csv", "checking/b.CSV"} and settling == {"copying.csv"}
    assert present["a.csv"] == landing.sha256_of(tmp_path / "a.csv")

    hashed = []
    monkeypatch.setattr(landing, "sha256_of", lambda p: hashed.append(p.name) or "x" * 64)
    again, _, cache = landing.scan(tmp_path, cache, settle_seconds=5)
    assert hashed == [] and again == present  # size and mtime unchanged: the cached digest
    _write(tmp_path / "a.csv", "Date,Amount\n2024-01-01,2\n")
    again, _, _ = landing.scan(tmp_path, cache, settle_seconds=5)
    assert hashed == ["a.csv"] and again["a.csv"] == "x" * 64


def test_plan_requests_each_transition_once():
    a, b = "a" * 64, "b" * 64
    assert landing.plan({}, {}, {}) == []
    new = landing.plan({"x.csv": a}, {}, {})
    assert [(c.key, c.kind, c.sha256) for c in new] == [("x.csv", "new", a)]
    assert landing.plan({"x.csv": a}, {}, {"x.csv": new[0].run_key}) == []  # requested, not loaded yet
    assert landing.plan({"x.csv": a}, {"x.csv": a}, {"x.csv": new[0].run_key}) == []  # loaded
    changed = landing.plan({"x.csv": b}, {"x.csv": a}, {"x.csv": new[0].run_key})
    assert [(c.kind, c.sha256) for c in changed] == [("changed", b)]
    back = landing.plan({"x.csv": a}, {"x.csv": b}, {"x.csv": changed[0].run_key})  # A -> B -> A: a new run
    assert [c.kind for c in back] == ["changed"] and back[0].run_key not in (
        new[0].run_key,
        changed[0].run_key,
    )
    removed = landing.plan({}, {"x.csv": a}, {})
    assert [(c.kind, c.sha256) for c in removed] == [("removed", None)]
    assert landing.plan({}, {"x.csv": a}, {}, settling={"x.csv"}) == []  # being rewritten, not removed


def test_partition_sync_adds_what_a_run_loads_and_drops_a_file_only_once_its_rows_are_gone():
    known = ["a.csv", "gone.csv", "leaving.csv", "copying.csv"]
    # gone.csv left the folder and the warehouse; leaving.csv left the folder but its rows remain (the
    # run that removes them needs its partition); copying.csv is still being copied (kept).
    add, stale = landing.partition_sync(
        known, ["b.csv", "a.csv", "b.csv"], {"a.csv", "b.csv"}, {"a.csv", "leaving.csv"}, keep={"copying.csv"}
    )
    assert add == ["b.csv"] and stale == ["gone.csv"]
    # a file about to be loaded is never deleted, even when nothing else knows it yet
    assert landing.partition_sync(["x.csv"], ["x.csv"], set(), set()) == ([], [])


def test_adjacent_partitions_load_in_one_run_and_each_batch_has_its_own_key():
    a = "a" * 64
    changes = landing.plan({k: a for k in ("n1.csv", "n2.csv", "old.csv")}, {"old.csv": "b" * 64}, {})
    groups = landing.batches(changes, ["old.csv", "x.csv", "n1.csv", "n2.csv"])
    assert [[c.key for c in g] for g in groups] == [["old.csv"], ["n1.csv", "n2.csv"]]  # x.csv unchanged
    assert landing.batch_run_key(groups[0]) == groups[0][0].run_key
    key = landing.batch_run_key(groups[1])
    assert key.startswith("landing:n1.csv..n2.csv#2:") and key != landing.batch_run_key(groups[1][:1])


# ---------------------------------------------------------------------------------------------- drift
def test_psi_is_zero_for_the_same_distribution_and_large_for_a_shift():
    rng = np.random.default_rng(0)
    ref = rng.lognormal(3, 0.5, 5000)
    assert monitoring.psi(ref, rng.lognormal(3, 0.5, 2000)) < 0.02
    assert monitoring.psi(ref, rng.lognormal(3.8, 0.5, 2000)) > 1.0
    assert monitoring.counts_psi([50, 50], [50, 50]) == 0
    mix, floor = monitoring.category_mix_psi(
        pd.Series(["a"] * 50 + ["b"] * 50), pd.Series(["a"] * 90 + ["c"] * 10)
    )
    assert mix > 0.25 and mix > floor
    # the noise floor: what two samples of one distribution reach 1% of the time
    small = [monitoring.psi(rng.lognormal(3, 0.5, 5000), rng.lognormal(3, 0.5, 30)) for _ in range(200)]
    floor = monitoring.psi_noise_floor(5000, 30, 10)
    assert np.mean(np.array(small) > 0.25) > 0.1  # a bare 0.25 threshold would cry wolf on 30 rows
    assert np.mean(np.array(small) > floor) <= 0.05
    assert np.isnan(monitoring.psi([], [1.0]))


def _ledger(root: Path, seed: int, end: dt.date, years: float, amount_scale: float = 1.0) -> pd.DataFrame:
    """Generated ledgers as the marts would hold them; `amount_scale` shifts every expense amount."""
    landing_dir = root / f"raw-{seed}"
    generate(landing_dir, years=years, seed=seed, end_date=end, labels_dir=root / f"labels-{seed}")
    rows = warehouse_rows(landing_dir)
    rows["amount"] = np.where(rows["txn_type"].eq("Expense"), rows["amount"] * amount_scale, rows["amount"])
    return rows


def _daily(rows: pd.DataFrame) -> pd.DataFrame:
    net = rows.groupby(pd.to_datetime(rows["txn_date"]).dt.date)["amount"].sum()
    return pd.DataFrame({"metric_date": net.index, "net": net.to_numpy()})


@pytest.fixture(scope="module")
def history(tmp_path_factory) -> pd.DataFrame:
    """One year of generated ledgers: the last training's window."""
    rows = _ledger(tmp_path_factory.mktemp("history"), seed=1, end=END, years=1.0)
    rows["loaded_at"] = 1_000.0
    return rows


WINDOW = {"train_start": (END - dt.timedelta(days=364)).isoformat(), "test_end": END.isoformat()}


@pytest.mark.parametrize("scale, drifts", [(1.0, False), (2.5, True)])
def test_a_shifted_generated_ledger_is_detected_and_an_unshifted_one_is_not(history, tmp_path, scale, drifts):
    later = _ledger(tmp_path, seed=2, end=END + dt.timedelta(days=120), years=0.33, amount_scale=scale)
    later = later[pd.to_datetime(later["txn_date"]).dt.date > END].assign(loaded_at=3_000.0)
    rows = pd.concat([history, later], ignore_index=True)
    strict = monitoring.Thresholds(min_new_rows=10**9, min_new_days=10**9)  # drift alone decides
    result = monitoring.assess(rows, _daily(rows), WINDOW, 2_000.0, strict)

    assert result.new_rows == len(later) and result.new_days > 90 and result.current_rows == len(later)
    assert result.amount_psi, "categories with enough rows on both sides are compared"
    if drifts:
        assert result.retrain and result.drift["max_amount_psi"] > 0.25
        assert any(r.startswith("amount drift") for r in result.reasons) and result.drifted_categories
        assert result.drift["flow_level_sd"] < -1.0  # expenses 2.5x: the daily net flow falls
    else:
        assert not result.retrain, result.reasons
        assert result.drifted_categories == []
    # thresholds on new data alone
    by_rows = monitoring.assess(
        rows, _daily(rows), WINDOW, 2_000.0, monitoring.Thresholds(min_new_rows=len(later))
    )
    assert by_rows.retrain and any("new rows" in r for r in by_rows.reasons)
    nothing_new = monitoring.assess(history, _daily(history), WINDOW, 2_000.0, monitoring.Thresholds())
    assert not nothing_new.retrain and nothing_new.new_rows == 0 and nothing_new.new_days == 0


def test_never_trained_means_retrain_and_thresholds_come_from_the_environment(history):
    first = monitoring.assess(history, _daily(history), None, None, monitoring.Thresholds())
    assert first.retrain and first.reasons == ["no model has been trained yet"]
    t = monitoring.Thresholds.from_env({"TITANS_RETRAIN_MIN_ROWS": "50", "TITANS_DRIFT_PSI": "0.1"})
    assert (t.min_new_rows, t.psi, t.min_new_days) == (50, 0.1, 30)
    with pytest.raises(ValueError, match="E003.*TITANS_RETRAIN_MIN_DAYS"):
        monitoring.Thresholds.from_env({"TITANS_RETRAIN_MIN_DAYS": "soon"})


def test_the_retrain_rule():
    yes = {"retrain": True, "reasons": ["600 new rows"]}
    assert monitoring.should_retrain(yes, 10.0, 5.0, []) == (True, "600 new rows")
    assert monitoring.should_retrain(yes, 10.0, None, [])[0]
    assert not monitoring.should_retrain(None, None, None, [])[0]
    assert not monitoring.should_retrain({"retrain": False}, 10.0, 5.0, [])[0]
    assert monitoring.should_retrain(yes, 10.0, 11.0, [])[1] == "a training ran after the signal was computed"
    go, why = monitoring.should_retrain(yes, 10.0, 5.0, ["marts/fct_transactions:gx_fct_transactions"])
    assert not go and "gx_fct_transactions" in why


# ---------------------------------------------------------------------------------------------- the sensors
@pytest.fixture()
def warehouse(embedded_db, tmp_path: Path, monkeypatch):
    """An empty warehouse (a scratch database on the embedded server) and an empty landing folder."""
    landing_dir = tmp_path / "raw"
    landing_dir.mkdir()
    with scratch_database(embedded_db) as db:
        monkeypatch.setenv("TITANS_HOME", str(tmp_path / "home"))
        monkeypatch.setenv("TITANS_LANDING_DIR", str(landing_dir))
        monkeypatch.setenv("TITANS_DATABASE_URL", db.url)
        ensure_raw_schema(db)
        yield db, landing_dir


def _tick(instance: dg.DagsterInstance, cursor: str | None) -> dg.SensorResult:
    """One evaluation of the landing sensor, with its partition requests applied as the daemon would."""
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"warehouse": WarehouseResource()}
    )
    result = landing_sensor(context)
    for request in result.dynamic_partitions_requests:
        if isinstance(request, dg.AddDynamicPartitionsRequest):
            instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        else:
            for key in request.partition_keys:
                instance.delete_dynamic_partition(request.partitions_def_name, key)
    return result


def test_landing_sensor_requests_one_load_per_new_changed_or_removed_file(warehouse):
    db, landing_dir = warehouse
    fixture = Path(__file__).parent / "fixtures"
    source = sorted(fixture.glob("*.csv"))[0]
    instance = dg.DagsterInstance.ephemeral()

    empty = _tick(instance, None)
    assert empty.run_requests == []
    _write(landing_dir / "checking.csv", source.read_text())
    first = _tick(instance, empty.cursor)
    assert [(r.partition_key, r.tags["titans/change"]) for r in first.run_requests] == [
        ("checking.csv", "new")
    ]
    assert instance.get_dynamic_partitions(landing_files.name) == ["checking.csv"]
    assert _tick(instance, first.cursor).run_requests == []  # same file again: nothing

    load_file(db, landing_dir, landing_dir / "checking.csv")  # what the requested run does
    loaded = _tick(instance, first.cursor)
    assert loaded.run_requests == []

    _write(landing_dir / "checking.csv", source.read_text() + "\n")  # new bytes
    changed = _tick(instance, loaded.cursor)
    assert [r.tags["titans/change"] for r in changed.run_requests] == ["changed"]
    assert changed.run_requests[0].run_key != first.run_requests[0].run_key
    load_file(db, landing_dir, landing_dir / "checking.csv")

    (landing_dir / "checking.csv").unlink()
    removed = _tick(instance, changed.cursor)
    assert [(r.partition_key, r.tags["titans/change"]) for r in removed.run_requests] == [
        ("checking.csv", "removed")
    ]
    assert remove_file(db, "checking.csv")  # what that run does
    gone = _tick(instance, removed.cursor)
    assert gone.run_requests == [] and instance.get_dynamic_partitions(landing_files.name) == []
    assert json.loads(gone.cursor) == {"files": {}, "requested": {}}

    # several exports at once: one run over exactly their (adjacent, new) partitions
    for name in ("a.csv", "b.csv"):
        _write(landing_dir / name, source.read_text())
    batch = _tick(instance, gone.cursor)
    (run,) = batch.run_requests
    assert run.partition_key is None and run.tags["titans/change"] == "new"
    assert (
        run.tags["dagster/asset_partition_range_start"],
        run.tags["dagster/asset_partition_range_end"],
    ) == ("a.csv", "b.csv")
    assert run.run_config == {"execution": {"config": {"in_process": {}}}}
    assert _tick(instance, batch.cursor).run_requests == []


def test_a_file_already_loaded_by_the_cli_asks_for_nothing(warehouse):
    db, landing_dir = warehouse
    generate(landing_dir, rows=300, seed=3, end_date=END, labels_dir=landing_dir.parent / "labels")
    for path in sorted(landing_dir.glob("*.csv")):
        os.utime(path, (time.time() - 60, time.time() - 60))
        load_file(db, landing_dir, path)
    assert _tick(dg.DagsterInstance.ephemeral(), None).run_requests == []


def _retrain_tick(instance: dg.DagsterInstance, cursor: str | None):
    context = dg.build_sensor_context(instance=instance, cursor=cursor)
    return retrain_sensor(context), context.cursor


def _report_signal(instance: dg.DagsterInstance, retrain: bool) -> None:
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            asset_key=RETRAIN_SIGNAL,
            metadata={"retrain": retrain, "reasons_list": dg.MetadataValue.json(["drift"])},
        )
    )


def _report_gx(instance: dg.DagsterInstance, passed: bool) -> None:
    instance.report_runless_asset_event(
        dg.AssetCheckEvaluation(
            asset_key=FCT_TRANSACTIONS,
            check_name="gx_fct_transactions",
            passed=passed,
            severity=dg.AssetCheckSeverity.ERROR,
        )
    )


def test_retrain_sensor_follows_the_signal_once_and_never_past_a_failed_check():
    instance = dg.DagsterInstance.ephemeral()
    result, cursor = _retrain_tick(instance, None)
    assert isinstance(result, dg.SkipReason)

    _report_signal(instance, retrain=True)
    result, cursor = _retrain_tick(instance, cursor)
    assert isinstance(result, dg.RunRequest) and result.tags["titans/reason"] == "drift"
    assert result.run_key.startswith("retrain:")
    again, cursor = _retrain_tick(instance, cursor)
    assert isinstance(again, dg.SkipReason)  # the same signal: nothing more

    _report_signal(instance, retrain=False)
    result, cursor = _retrain_tick(instance, cursor)
    assert isinstance(result, dg.SkipReason) and "no retraining" in result.skip_message

    _report_gx(instance, passed=False)
    _report_signal(instance, retrain=True)
    result, cursor = _retrain_tick(instance, cursor)
    assert isinstance(result, dg.SkipReason) and "gx_fct_transactions" in result.skip_message

    _report_gx(instance, passed=True)
    _report_signal(instance, retrain=True)
    instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=REFERENCE_TRAINING))
    result, cursor = _retrain_tick(instance, cursor)
    assert isinstance(result, dg.SkipReason) and "training ran after" in result.skip_message


# ---------------------------------------------------------------------------------------------- automation
def _blocking_checks(keys) -> list[dg.AssetCheckKey]:
    graph = defs.resolve_asset_graph()
    return [c for c in graph.asset_check_keys if c.asset_key in keys and graph.get_check_spec(c).blocking]


def _marts_updated(instance: dg.DagsterInstance, passed: bool) -> None:
    """A dbt build of the marts followed by their checks (dbt tests and the GX suites)."""
    marts = (FCT_TRANSACTIONS, FCT_DAILY_METRICS)
    for key in marts:
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=key))
    for check in _blocking_checks(marts):
        ok = passed or check.name != "gx_fct_transactions"
        instance.report_runless_asset_event(
            dg.AssetCheckEvaluation(
                asset_key=check.asset_key,
                check_name=check.name,
                passed=ok,
                severity=dg.AssetCheckSeverity.ERROR,
            )
        )


@pytest.mark.parametrize("passed", [True, False])
def test_the_retrain_signal_updates_after_checked_marts_and_never_past_a_failed_check(passed):
    instance = dg.DagsterInstance.ephemeral()
    selection = dg.AssetSelection.assets(RETRAIN_SIGNAL)
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=selection)
    assert result.total_requested == 0
    _marts_updated(instance, passed)
    requested = []
    for _ in range(3):
        result = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, asset_selection=selection, cursor=result.cursor
        )
        requested.append(result.get_num_requested(RETRAIN_SIGNAL))
        if result.get_num_requested(RETRAIN_SIGNAL):  # the daemon's run materializes it
            instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=RETRAIN_SIGNAL))
    assert requested == ([1, 0, 0] if passed else [0, 0, 0])


def test_from_an_empty_warehouse_automation_builds_every_model_up_to_the_retrain_signal():
    """Each tick's requests are "run" (materialized, checks passed) before the next tick, as the daemon
    would; starting with no data at all, the seeds first, then everything downstream of a loaded file."""
    graph = defs.resolve_asset_graph()
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(landing_files.name, ["a.csv"])

    def run(keys) -> None:
        for key in keys:
            partition = "a.csv" if graph.get(key).partitions_def is not None else None
            instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=key, partition=partition))
        for check in graph.asset_check_keys:
            if check.asset_key in keys:
                instance.report_runless_asset_event(
                    dg.AssetCheckEvaluation(asset_key=check.asset_key, check_name=check.name, passed=True)
                )

    result = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    built = {r.key for r in result.results if isinstance(r.key, dg.AssetKey) and r.true_subset.size}
    assert built and all(k.path[0] == "seeds" for k in built)  # nothing but seeds before a file loads
    run(built)
    run(defs.resolve_assets_def(RAW_TRANSACTIONS).keys)  # the landing sensor's load run
    for _ in range(10):
        result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=result.cursor)
        keys = {r.key for r in result.results if isinstance(r.key, dg.AssetKey) and r.true_subset.size}
        run(keys)
        built |= keys
    # what scores with a champion (predictions, the enriched mart) waits for the first training
    after_training = dg.AssetSelection.groups("ml").downstream().resolve(graph)
    dbt_and_signal = {k for k in graph.get_all_asset_keys() if graph.get(k).automation_condition is not None}
    assert built == dbt_and_signal - after_training and RETRAIN_SIGNAL in built
    assert not any(k.path[0] == "ml" and k != RETRAIN_SIGNAL for k in built)  # training is the sensor's call


def test_the_platform_runs_itself_by_default():
    sensors = {s.name: s for s in defs.sensors}
    assert {"landing_sensor", "retrain_sensor", "titans_automation"} <= set(sensors)
    assert all(s.default_status == dg.DefaultSensorStatus.RUNNING for s in sensors.values())
    schedules = {s.name: s for s in defs.schedules}
    assert (
        schedules["scheduled_backup"].default_status == dg.DefaultScheduleStatus.STOPPED
    )  # needs a destination
    nightly = schedules["nightly_cashflow_backtest"]
    assert nightly.default_status == dg.DefaultScheduleStatus.RUNNING and nightly.cron_schedule == "0 2 * * *"
    graph = defs.resolve_asset_graph()
    dbt_models = [k for k in graph.get_all_asset_keys() if k.path[0] in ("staging", "intermediate", "marts")]
    assert dbt_models and all(graph.get(k).automation_condition is not None for k in dbt_models)


def test_every_model_is_a_direct_dependent_of_the_marts_whose_blocking_suites_gate_it():
    """A blocking check stops only its asset's direct dependents in the run. The feature tables are built in
    the same dbt step as the marts, before the marts' GX suites run, so each challenger must depend on those
    marts itself, or a failing suite (e.g. a label the format check rejects) would still train and promote."""
    graph = defs.resolve_asset_graph()
    gated = {
        key.asset_key
        for key in graph.asset_check_keys
        if key.name.startswith("gx_")
        and key.asset_key.path[0] == "marts"
        and graph.get_check_spec(key).blocking
    }
    assert gated == {FCT_TRANSACTIONS, FCT_DAILY_METRICS}
    challengers = [
        key
        for key in graph.get_all_asset_keys()
        if key.path[0] == "ml" and key.path[-1].endswith("_challenger")
    ]
    assert len(challengers) == 4
    for key in challengers:
        assert gated <= graph.get(key).parent_keys, key
