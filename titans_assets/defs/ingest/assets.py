"""Landing folder -> raw.transactions / raw.files / raw.quarantine.

Each CSV in the landing folder is one partition of the `landing_files` dynamic partitions: the file is
the source, its partition's materialization is its load (with per-file metadata in the UI), and a
run over a range of files loads them all in one step (single-run backfill policy) so the checks and
dbt downstream run once per batch, not once per file.
"""

import dagster as dg

from titans_assets.defs.quality.checks import suite_check_result
from titans_assets.lib import quality
from titans_assets.lib.loader import ensure_raw_schema, load_files, quarantine_reasons, remove_file
from titans_assets.resources import WarehouseResource

landing_files = dg.DynamicPartitionsDefinition(name="landing_files")

RAW_TRANSACTIONS = dg.AssetKey(["raw", "transactions"])
RAW_FILES = dg.AssetKey(["raw", "files"])
RAW_QUARANTINE = dg.AssetKey(["raw", "quarantine"])
RAW_SUITE_CHECK = "gx_raw_transactions"


@dg.multi_asset(
    name="raw_landing",
    group_name="ingest",
    partitions_def=landing_files,
    backfill_policy=dg.BackfillPolicy.single_run(),
    specs=[
        dg.AssetSpec(
            RAW_TRANSACTIONS,
            kinds={"postgres", "csv"},
            description="Rows that parsed, typed, values as written; one partition per landed file.",
        ),
        dg.AssetSpec(
            RAW_FILES,
            kinds={"postgres"},
            description="One row per landed file: size, sha256, rows read/loaded/quarantined.",
        ),
        dg.AssetSpec(
            RAW_QUARANTINE,
            kinds={"postgres"},
            description="Rows that did not parse: file, line number, raw text and reason.",
        ),
    ],
    check_specs=[
        dg.AssetCheckSpec(
            RAW_SUITE_CHECK,
            asset=RAW_TRANSACTIONS,
            blocking=True,
            description="Great Expectations suite on the loaded files: completeness, formats, "
            "sign matches Type, amount bounds, unique lines; freshness warns only.",
        )
    ],
)
def raw_landing(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    settings = warehouse.settings()
    db = warehouse.database()
    ensure_raw_schema(db)
    keys = list(context.partition_keys)
    present = [key for key in keys if (settings.landing_dir / key).is_file()]
    results = load_files(db, settings.landing_dir, [settings.landing_dir / key for key in present])
    for result in results:
        context.log.info(
            f"{result.source_file}: {result.status}, {result.rows_loaded} loaded, {result.rows_quarantined} quarantined"
            + (f" ({result.file_error})" if result.file_error else "")
        )
    removed = [key for key in keys if key not in present and remove_file(db, key)]
    for key in removed:
        context.log.info(f"{key}: left the landing folder, its rows were removed")

    per_file = {
        r.source_file: {
            "status": r.status,
            "read": r.rows_read,
            "loaded": r.rows_loaded,
            "quarantined": r.rows_quarantined,
            "sha256": r.sha256[:12],
        }
        for r in results
    }
    loaded = sum(r.rows_loaded for r in results)
    quarantined = sum(r.rows_quarantined for r in results)
    changed = [r for r in results if r.status != "unchanged"]
    yield dg.MaterializeResult(
        asset_key=RAW_TRANSACTIONS,
        metadata={
            "files": len(results),
            "rows_loaded": loaded,
            "removed_files": removed,
            "changed_files": [r.source_file for r in changed],
            "per_file": per_file,
            "rows_per_second": dg.MetadataValue.float(
                round(sum(r.rows_read for r in changed) / max(sum(r.seconds for r in changed), 1e-9), 1)
            ),
        },
    )
    yield dg.MaterializeResult(asset_key=RAW_FILES, metadata={"files": len(results), "per_file": per_file})
    yield dg.MaterializeResult(
        asset_key=RAW_QUARANTINE,
        metadata={
            "rows_quarantined": quarantined,
            "top_reasons": quarantine_reasons(db, [r.source_file for r in results]),
        },
    )

    suite = quality.run_suite(
        quality.raw_transactions_suite(source_files=keys),
        db.sqlalchemy_url(),
        params=settings.check_params(),
        today=settings.today(),
    )
    yield suite_check_result(suite, check_name=RAW_SUITE_CHECK, asset_key=RAW_TRANSACTIONS)


defs = dg.Definitions(assets=[raw_landing])
