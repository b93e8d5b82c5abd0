"""dbt models as Dagster assets. dbt tests become asset checks; `dbt build` skips models downstream
of a failing test, and raw's blocking Great Expectations check keeps this step from running at all."""

from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, dbt_assets

from titans_assets.defs.transform.project import titans_dbt_project
from titans_assets.resources import WarehouseResource

# Eager, but never on top of data whose blocking checks failed (blocking only acts within a run).
# Eager alone never builds what was already missing when automation started (its `newly_missing`
# fires once, on the first evaluation, before anything is loaded): the seeds of an empty warehouse
# would stay missing and hold every model back. So: also build a missing asset once its deps exist,
# unless it is being built or its last build failed.
MISSING_AND_READY = (
    dg.AutomationCondition.missing() & ~dg.AutomationCondition.in_progress()
    & ~dg.AutomationCondition.execution_failed() & ~dg.AutomationCondition.any_deps_missing()
    & ~dg.AutomationCondition.any_deps_in_progress()
).with_label("missing_and_ready")
AUTOMATION = (dg.AutomationCondition.eager() | MISSING_AND_READY) & dg.AutomationCondition.all_deps_blocking_checks_passed()


class TitansDbtTranslator(DagsterDbtTranslator):
    """Asset keys `<schema>/<model>` (e.g. marts/fct_transactions); group = dbt layer."""

    def get_asset_spec(self, manifest: Mapping[str, Any], unique_id: str, project) -> dg.AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        node = manifest["nodes"].get(unique_id) or manifest["sources"].get(unique_id) or {}
        if node.get("resource_type") not in ("model", "seed", "snapshot"):
            return spec
        layer = node.get("config", {}).get("schema") or node.get("schema") or "dbt"
        return spec.replace_attributes(
            key=dg.AssetKey([layer, node["name"]]), group_name=layer, automation_condition=AUTOMATION,
        )


@dbt_assets(
    manifest=titans_dbt_project.manifest_path,
    project=titans_dbt_project,
    dagster_dbt_translator=TitansDbtTranslator(),
)
def titans_dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource):
    # `warehouse` is required so its setup exports the connection for dbt before the CLI starts.
    # Per-run dbt artifacts under TITANS_HOME, not inside the project.
    target = warehouse.settings().home / "dbt" / "runs" / context.run.run_id[:8]
    yield from dbt.cli(["build"], context=context, target_path=target).stream()


defs = dg.Definitions(assets=[titans_dbt_models])
