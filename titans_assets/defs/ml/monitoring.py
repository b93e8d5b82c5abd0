"""`ml/retrain_signal`: new validated data, drift and the user's category corrections since the last
training, as an asset.

It updates eagerly whenever the clean marts do (and never on top of data whose blocking checks
failed); its metadata carries the figures (new rows and days, PSI of amount per category and of the
category mix, the daily flow level) and the decision, which the retrain sensor acts on.
"""

import datetime as dt
from dataclasses import replace

import dagster as dg

from titans_assets.defs.quality.checks import FCT_DAILY_METRICS, FCT_TRANSACTIONS
from titans_assets.defs.transform.dbt import AUTOMATION
from titans_assets.lib.categories.corrections import corrections_since, retrain_reason
from titans_assets.lib.ml.monitoring import Thresholds, assess, read_marts
from titans_assets.resources import WarehouseResource

RETRAIN_SIGNAL = dg.AssetKey(["ml", "retrain_signal"])
# The category model's last training defines "the training window" (all four train on the same data).
REFERENCE_TRAINING = dg.AssetKey(["ml", "category_challenger"])


def last_training(instance: dg.DagsterInstance) -> tuple[dict | None, float | None]:
    """The data window and time of the reference challenger's latest materialization."""
    event = instance.get_latest_materialization_event(REFERENCE_TRAINING)
    if event is None or event.asset_materialization is None:
        return None, None
    meta = event.asset_materialization.metadata
    window = {k: meta[k].value for k in ("train_start", "test_end") if k in meta}
    return window, event.timestamp


@dg.asset(
    key=RETRAIN_SIGNAL,
    deps=[FCT_TRANSACTIONS, FCT_DAILY_METRICS],
    group_name="monitoring",
    kinds={"python"},
    automation_condition=AUTOMATION,
    description="New validated data and drift since the last training (PSI of amount per category and of "
    "the category mix, daily flow level); says whether the models should retrain.",
)
def retrain_signal(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    window, trained_at = last_training(context.instance)
    transactions, daily = read_marts(warehouse.database())
    result = assess(transactions, daily, window, trained_at, Thresholds.from_env())
    # Corrections are training labels: enough of them since the last training ask for one.
    since = dt.datetime.fromtimestamp(trained_at, tz=dt.UTC) if trained_at is not None else None
    corrected = corrections_since(warehouse.database(), since)
    threshold = warehouse.settings().retrain_min_corrections
    reason = retrain_reason(corrected, threshold)
    if reason:
        result = replace(result, retrain=True, reasons=[*result.reasons, reason])
    context.log.info(("retrain: " + "; ".join(result.reasons)) if result.retrain else "no retraining needed")
    return dg.MaterializeResult(
        metadata={
            "retrain": result.retrain,
            "reasons": dg.MetadataValue.md("\n".join(f"- {r}" for r in result.reasons) or "none"),
            "reasons_list": dg.MetadataValue.json(result.reasons),
            "last_trained_at": result.last_trained_at or "never",
            "window": f"{result.window_start} .. {result.window_end}" if result.window_start else "none",
            "corrections_since_training": corrected,
            "retrain_min_corrections": threshold,
            "new_rows": result.new_rows,
            "new_days": result.new_days,
            "rows_after_window": result.current_rows,
            **{k: (v if v is not None else "n/a") for k, v in result.drift.items()},
            "amount_psi_by_category": dg.MetadataValue.json(result.amount_psi),
        }
    )


defs = dg.Definitions(assets=[retrain_signal])
