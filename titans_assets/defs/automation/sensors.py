"""The platform runs itself: sensors, declarative automation and the nightly schedule.

- `landing_sensor` (running by default): new, changed and removed CSVs in the landing folder -> load
  runs of exactly those files (adjacent partitions in one run), keyed by the change so a duplicate
  run is impossible (lib/landing.py);
- `titans_automation`: evaluates the assets' automation conditions (dbt models, mart checks and
  `ml/retrain_signal` are eager, and never consume data whose blocking checks failed);
- `retrain_sensor`: a new `ml/retrain_signal` that says "retrain" -> train, evaluate and promote
  the four models (a promotion reaches the service through its workers' alias polling);
- `nightly_cashflow_backtest`: the cash-flow model's rolling-origin backtest and metrics, nightly.
"""

from __future__ import annotations

import json

import dagster as dg

from titans_assets.check_records import check_record_state, latest_check_records
from titans_assets.defs.automation.backup import backup_job, scheduled_backup
from titans_assets.defs.ingest.assets import RAW_FILES, RAW_QUARANTINE, RAW_TRANSACTIONS, landing_files
from titans_assets.defs.ml.monitoring import RETRAIN_SIGNAL, last_training
from titans_assets.defs.quality.checks import mart_checks
from titans_assets.lib import landing
from titans_assets.lib.ml.monitoring import should_retrain
from titans_assets.resources import WarehouseResource

RUNNING = dg.DefaultSensorStatus.RUNNING
# A load is one step: run it in the run's process rather than paying for a step subprocess.
IN_PROCESS = {"execution": {"config": {"in_process": {}}}}
MODELS = dg.AssetSelection.groups("ml")
CASHFLOW = dg.AssetSelection.assets(
    *(dg.AssetKey(["ml", f"cashflow_{s}"]) for s in ("challenger", "evaluation", "champion"))
)

retrain_job = dg.define_asset_job(
    "retrain_models", selection=MODELS, description="Train, evaluate and (if better) promote the four models."
)
cashflow_job = dg.define_asset_job(
    "cashflow_backtest",
    selection=CASHFLOW,
    description="The cash-flow model's rolling-origin backtest, evaluation and promotion.",
)


@dg.sensor(
    name="landing_sensor",
    asset_selection=[RAW_TRANSACTIONS, RAW_FILES, RAW_QUARANTINE],
    minimum_interval_seconds=10,
    default_status=RUNNING,
    description="New, changed or removed CSVs in the landing folder -> load runs of exactly those files.",
)
def landing_sensor(context: dg.SensorEvaluationContext, warehouse: WarehouseResource) -> dg.SensorResult:
    settings = warehouse.settings()
    cursor = json.loads(context.cursor) if context.cursor else {}
    present, settling, cache = landing.scan(settings.landing_dir, cursor.get("files", {}))
    loaded = landing.loaded_checksums(warehouse.database())
    requested = cursor.get("requested", {})
    changes = landing.plan(present, loaded, requested, settling)

    known = context.instance.get_dynamic_partitions(landing_files.name)
    add, stale = landing.partition_sync(
        known, sorted(c.key for c in changes), set(present), set(loaded), settling
    )
    requested = {k: v for k, v in requested.items() if k in present or k in loaded or k in settling}
    requested |= {c.key: c.run_key for c in changes}
    runs = []
    for group in landing.batches(changes, [*known, *add]):
        for c in group:
            context.log.info(f"{c.key}: {c.kind}, requesting a load ({c.run_key})")
        tags = {
            "titans/ingest": "landing",
            "titans/trigger": "landing_sensor",
            "titans/change": ",".join(sorted({c.kind for c in group})),
        }
        if len(group) > 1:
            tags |= {
                "dagster/asset_partition_range_start": group[0].key,
                "dagster/asset_partition_range_end": group[-1].key,
            }
        runs.append(
            dg.RunRequest(
                run_key=landing.batch_run_key(group),
                tags=tags,
                run_config=IN_PROCESS,
                partition_key=group[0].key if len(group) == 1 else None,
            )
        )
    return dg.SensorResult(
        run_requests=runs,
        dynamic_partitions_requests=[
            r
            for r in (
                landing_files.build_add_request(add) if add else None,
                landing_files.build_delete_request(stale) if stale else None,
            )
            if r
        ],
        cursor=json.dumps({"files": cache, "requested": requested}, sort_keys=True),
    )


def failed_mart_checks(instance: dg.DagsterInstance) -> list[str]:
    """The blocking Great Expectations checks on the marts whose latest evaluation failed."""
    keys = [key for checks in mart_checks for key in checks.check_keys]
    records = latest_check_records(instance, keys)
    return [key.to_user_string() for key in keys if check_record_state(records.get(key)) == "failed"]


@dg.sensor(
    name="retrain_sensor",
    job=retrain_job,
    minimum_interval_seconds=15,
    default_status=RUNNING,
    description="Retrain the four models when ml/retrain_signal says so (new validated data or drift).",
)
def retrain_sensor(context: dg.SensorEvaluationContext):
    records = context.instance.fetch_materializations(RETRAIN_SIGNAL, limit=1).records
    if not records or str(records[0].storage_id) == context.cursor:
        return dg.SkipReason("no new retrain signal")
    record = records[0]
    meta = record.asset_materialization.metadata
    signal = {
        "retrain": meta["retrain"].value if "retrain" in meta else False,
        "reasons": meta["reasons_list"].value if "reasons_list" in meta else [],
    }
    _, trained_at = last_training(context.instance)
    go, why = should_retrain(signal, record.timestamp, trained_at, failed_mart_checks(context.instance))
    context.update_cursor(str(record.storage_id))
    if not go:
        return dg.SkipReason(why)
    return dg.RunRequest(
        run_key=f"retrain:{record.storage_id}",
        tags={"titans/trigger": "retrain_sensor", "titans/reason": why[:200]},
    )


automation_sensor = dg.AutomationConditionSensorDefinition(
    "titans_automation",
    target=dg.AssetSelection.all(),
    default_status=RUNNING,
    minimum_interval_seconds=15,
    description="Declarative automation: dbt models, mart checks and the retrain signal update eagerly, "
    "never past a failed blocking check.",
)

nightly_cashflow = dg.ScheduleDefinition(
    name="nightly_cashflow_backtest",
    job=cashflow_job,
    cron_schedule="0 2 * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every night: the cash-flow model's rolling-origin backtest on the latest data, its metrics, "
    "and a promotion if it beats the champion.",
)

defs = dg.Definitions(
    jobs=[retrain_job, cashflow_job, backup_job],
    sensors=[landing_sensor, retrain_sensor, automation_sensor],
    schedules=[nightly_cashflow, scheduled_backup],
)
