"""dbt models as Dagster assets. dbt tests become asset checks; `dbt build` skips models downstream
of a failing test, and raw's blocking Great Expectations check keeps this step from running at all."""

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, dbt_assets

from titans_assets.defs.transform.project import titans_dbt_project
from titans_assets.lib import incremental
from titans_assets.resources import WarehouseResource
from titans_assets.resources.dbt import TitansDbtResource

# Eager, but never on top of data whose blocking checks failed (blocking only acts within a run).
# Eager alone never builds what was already missing when automation started (its `newly_missing`
# fires once, on the first evaluation, before anything is loaded): the seeds of an empty warehouse
# would stay missing and hold every model back. So: also build a missing asset once its deps exist,
# unless it is being built or its last build failed.
MISSING_AND_READY = (
    dg.AutomationCondition.missing()
    & ~dg.AutomationCondition.in_progress()
    & ~dg.AutomationCondition.execution_failed()
    & ~dg.AutomationCondition.any_deps_missing()
    & ~dg.AutomationCondition.any_deps_in_progress()
).with_label("missing_and_ready")
AUTOMATION = (
    dg.AutomationCondition.eager() | MISSING_AND_READY
) & dg.AutomationCondition.all_deps_blocking_checks_passed()
# Models tagged `analysis` (the point-in-time feature table nobody in the pipeline reads): group
# `analysis`, no automation condition, left out of `titans materialize` unless selected
# (`titans materialize --select 'group:analysis'`).
ANALYSIS = incremental.ANALYSIS_GROUP


class TitansDbtTranslator(DagsterDbtTranslator):
    """Asset keys `<schema>/<model>` (e.g. marts/fct_transactions); group = dbt layer."""

    def get_asset_spec(self, manifest: Mapping[str, Any], unique_id: str, project) -> dg.AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        node = manifest["nodes"].get(unique_id) or manifest["sources"].get(unique_id) or {}
        if node.get("resource_type") not in ("model", "seed", "snapshot"):
            return spec
        layer = node.get("config", {}).get("schema") or node.get("schema") or "dbt"
        if ANALYSIS in (node.get("tags") or []):
            return spec.replace_attributes(
                key=dg.AssetKey([layer, node["name"]]), group_name=ANALYSIS, automation_condition=None
            )
        return spec.replace_attributes(
            key=dg.AssetKey([layer, node["name"]]),
            group_name=layer,
            automation_condition=AUTOMATION,
        )


def _incremental_keys() -> set[dg.AssetKey]:
    """Asset keys of the incremental models (their slices follow the data, not the project)."""
    manifest = json.loads(Path(titans_dbt_project.manifest_path).read_text())
    return {
        dg.AssetKey([n.get("config", {}).get("schema") or n["schema"], n["name"]])
        for n in manifest["nodes"].values()
        if n.get("resource_type") == "model" and n.get("config", {}).get("materialized") == "incremental"
    }


@dbt_assets(
    manifest=titans_dbt_project.manifest_path,
    project=titans_dbt_project,
    exclude="fct_transactions_enriched",  # downstream of the predictions: its own definition (enriched.py)
    dagster_dbt_translator=TitansDbtTranslator(),
)
def titans_dbt_models(
    context: dg.AssetExecutionContext, dbt: TitansDbtResource, warehouse: WarehouseResource
):
    # Per-run dbt artifacts under TITANS_HOME, not inside the project.
    target = warehouse.settings().home / "dbt" / "runs" / context.run.run_id[:8]
    # Incremental unless asked for a full refresh or the project changed since the last complete build
    # (lib/incremental.py); a build of every incremental model records the project it was built from,
    # and every build how it ended (the fct_transactions check reads that to check only the slice).
    db = warehouse.database()
    current = incremental.fingerprint(titans_dbt_project.project_dir)
    args, why = incremental.dbt_build_args(
        context.run.tags.get(incremental.FULL_REFRESH_TAG) == "1",
        incremental.recorded_fingerprint(db),
        current,
    )
    complete = _incremental_keys() <= set(context.selected_asset_keys)
    sliced, tests_why = incremental.dbt_test_scope(args, complete, incremental.build_state(db))
    context.log.info(f"dbt {' '.join(args)}: {why}; {tests_why}")
    build_id = incremental.start_build(db)
    env = {incremental.TEST_SLICE_ENV: "1" if sliced else "0"}
    yield from dbt.cli(args, env=env, context=context, target_path=target).stream()
    incremental.finish_build(
        db, build_id, incremental.build_mode(args, complete), current if complete else None
    )


defs = dg.Definitions(assets=[titans_dbt_models])
