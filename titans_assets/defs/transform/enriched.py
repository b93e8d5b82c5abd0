"""The enriched transactions mart and the rules it applies.

  rules/category_rules             rules.yaml + accepted learned rules, matched on marts.fct_transactions
                                   (a conflict fails it: E003 naming both rules); proposes learned rules
  marts/fct_transactions_enriched  every transaction's category and its source (correction > export >
                                   rule > model), a second @dbt_assets definition

The mart is downstream of predictions/transaction_categories, which is downstream of models trained
on the first dbt definition's tables: one multi-asset cannot be both, Dagster would see a cycle.
"""

import dagster as dg
from dagster_dbt import dbt_assets

from titans_assets.defs.transform.dbt import AUTOMATION, TitansDbtTranslator
from titans_assets.defs.transform.project import titans_dbt_project
from titans_assets.lib.categories import corrections, rules
from titans_assets.lib.ml import batch
from titans_assets.resources import WarehouseResource
from titans_assets.resources.dbt import TitansDbtResource

ENRICHED_MODELS = "fct_transactions_enriched"  # dbt selection of this definition (the other excludes it)
CATEGORY_RULES = dg.AssetKey(["rules", "category_rules"])
FCT_TRANSACTIONS = dg.AssetKey(["marts", "fct_transactions"])


@dg.asset(
    key=CATEGORY_RULES,
    deps=[FCT_TRANSACTIONS],
    group_name="rules",
    kinds={"python", "postgres"},
    automation_condition=AUTOMATION,
    description="The user's rules (rules.yaml) and the accepted learned rules, matched on every transaction "
    "(rules.category_rule_matches); proposes a payee rule after consistent corrections. "
    "Conflicting rules fail it (E003, naming both).",
)
def category_rules(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    settings = warehouse.settings()
    done = rules.refresh(warehouse.database(), settings.rules_file)
    for r in done.proposed:
        context.log.info(f"proposed {r.rule_id}: {r.describe()} -> {r.category} ({r.evidence} corrections)")
    return dg.MaterializeResult(
        metadata={
            "rules_file": str(settings.rules_file),
            "user_rules": done.user_rules,
            "accepted_learned_rules": done.accepted_learned,
            "proposed_now": len(done.proposed),
            "matched_transactions": done.matched_transactions,
            "hits": dg.MetadataValue.json(done.hits),
        }
    )


@dbt_assets(
    manifest=titans_dbt_project.manifest_path,
    project=titans_dbt_project,
    select=ENRICHED_MODELS,
    dagster_dbt_translator=TitansDbtTranslator(),
)
def titans_enriched_models(
    context: dg.AssetExecutionContext, dbt: TitansDbtResource, warehouse: WarehouseResource
):
    # The tables the mart reads exist before dbt does, even before a first champion scored anything:
    # the user's (their one DDL: lib/sql/app_categories.sql) and the predictions (lib/ml/batch.py).
    corrections.ensure_tables(warehouse.database())
    batch.ensure_tables(warehouse.database())
    target = warehouse.settings().home / "dbt" / "runs" / f"{context.run.run_id[:8]}-enriched"
    yield from dbt.cli(["build"], context=context, target_path=target).stream()


defs = dg.Definitions(assets=[category_rules, titans_enriched_models])
