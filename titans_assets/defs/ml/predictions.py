"""The champions' predictions written back to the warehouse (schema `predictions`), as assets.

  predictions/transaction_categories  the category champion on every expense row
  predictions/transaction_anomalies   the anomaly champion's score, flag and reasons on every row
  predictions/cashflow_forecast       the cash-flow champion's next N days with the interval

Each is downstream of its champion and of the data it scores, and eager: a new champion or new
validated data rebuilds it (never on top of data whose blocking checks failed). The scoring is the
service's own (lib/ml/batch.py). A model without a champion (cold start) leaves its table empty and
says why in the metadata: that is a state, not a failure of the run.
"""

import dagster as dg

from titans_assets.defs.ml.assets import SOURCES
from titans_assets.defs.quality.checks import FCT_DAILY_METRICS, FCT_TRANSACTIONS
from titans_assets.defs.transform.dbt import AUTOMATION
from titans_assets.lib.ml import batch
from titans_assets.lib.ml.catalog import BY_KEY
from titans_assets.resources import MlflowResource, WarehouseResource

GROUP = "predictions"
KEYS = {
    "category": dg.AssetKey([GROUP, batch.CATEGORIES]),
    "anomaly": dg.AssetKey([GROUP, batch.ANOMALIES]),
    "cashflow": dg.AssetKey([GROUP, batch.CASHFLOW]),
}
DESCRIPTIONS = {
    "category": "The category champion's category, confidence, top-3 alternatives and model version for every "
    "expense row (the enriched mart gives corrections, export labels and rules precedence).",
    "anomaly": "The anomaly champion's score, flag and reasons for every transaction (transfers left out).",
    "cashflow": "The cash-flow champion's forecast of daily net flow for the next N days, with its interval.",
}
DATA = {
    "category": (SOURCES["transactions"], FCT_TRANSACTIONS),
    "anomaly": (SOURCES["transactions"], FCT_TRANSACTIONS),
    "cashflow": (SOURCES["daily"], FCT_DAILY_METRICS),
}


class ForecastConfig(dg.Config):
    horizon_days: int = batch.DEFAULT_HORIZON


def _metadata(written: batch.Written) -> dict:
    return {
        "table": written.table,
        "dagster/row_count": written.rows,
        "model_version": written.model_version or "none",
        "reason": written.reason or "scored",
        **{k: v for k, v in written.extra.items() if v is not None},
    }


def prediction_asset(key: str):
    spec = BY_KEY[key]

    @dg.asset(
        key=KEYS[key],
        deps=[dg.AssetKey(["ml", f"{key}_champion"]), *DATA[key]],
        group_name=GROUP,
        kinds={"python", "postgres"},
        automation_condition=AUTOMATION,
        description=DESCRIPTIONS[key],
    )
    def predictions(
        context: dg.AssetExecutionContext, warehouse: WarehouseResource, mlflow: MlflowResource
    ) -> dg.MaterializeResult:
        champion = mlflow.registry().champion(spec.name)
        written = batch.refresh(warehouse.database(), key, champion)
        context.log.info(
            f"{written.table}: {written.rows} rows" + (f" ({written.reason})" if written.reason else "")
        )
        return dg.MaterializeResult(metadata=_metadata(written))

    return predictions


def cashflow_asset():
    spec = BY_KEY["cashflow"]

    @dg.asset(
        key=KEYS["cashflow"],
        deps=[dg.AssetKey(["ml", "cashflow_champion"]), *DATA["cashflow"]],
        group_name=GROUP,
        kinds={"python", "postgres"},
        automation_condition=AUTOMATION,
        description=DESCRIPTIONS["cashflow"],
    )
    def cashflow_forecast(
        context: dg.AssetExecutionContext,
        config: ForecastConfig,
        warehouse: WarehouseResource,
        mlflow: MlflowResource,
    ) -> dg.MaterializeResult:
        champion = mlflow.registry().champion(spec.name)
        written = batch.refresh(warehouse.database(), "cashflow", champion, horizon_days=config.horizon_days)
        context.log.info(
            f"{written.table}: {written.rows} days" + (f" ({written.reason})" if written.reason else "")
        )
        return dg.MaterializeResult(metadata=_metadata(written))

    return cashflow_forecast


defs = dg.Definitions(assets=[prediction_asset("category"), prediction_asset("anomaly"), cashflow_asset()])
