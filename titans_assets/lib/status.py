"""What is in the warehouse: row counts of the raw tables and the marts (plain SQL, no Dagster)."""

from __future__ import annotations

from titans_assets.lib.db import Database

RAW_TABLES = ("raw.transactions", "raw.quarantine", "raw.files")


def table_counts(db: Database, schemas: tuple[str, ...] = ("raw", "marts")) -> dict[str, int | None]:
    """`schema.table` -> row count for every base table in `schemas`; raw tables always listed."""
    from psycopg2 import sql

    counts: dict[str, int | None] = {t: None for t in RAW_TABLES}
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT table_schema, table_name FROM information_schema.tables"
            " WHERE table_schema = ANY(%s) AND table_type = 'BASE TABLE' ORDER BY 1, 2",
            (list(schemas),),
        )
        for schema, table in cur.fetchall():
            cur.execute(
                sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(table))
            )
            counts[f"{schema}.{table}"] = cur.fetchone()[0]
    return counts


def file_summary(db: Database) -> list[dict]:
    """Per landed file: counts and when it was loaded (empty before the first load)."""
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT to_regclass('raw.files') IS NOT NULL")
        if not cur.fetchone()[0]:
            return []
        cur.execute(
            "SELECT source_file, rows_read, rows_loaded, rows_quarantined, loaded_at FROM raw.files ORDER BY 1"
        )
        return [
            {
                "source_file": f,
                "rows_read": r,
                "rows_loaded": lo,
                "rows_quarantined": q,
                "loaded_at": t.isoformat(),
            }
            for f, r, lo, q, t in cur.fetchall()
        ]


def champion_summary(registry, untrained: dict[str, str] | None = None) -> dict[str, dict]:
    """Per model: the champion's version, its kind ("model" or "baseline:<name>"), primary metric, every
    logged metric and the latest training's decision (or why there is no champion; `untrained`: model
    key -> why its latest challenger did not train, check_records.untrained_reasons)."""
    from titans_assets.lib.ml.catalog import SPECS
    from titans_assets.lib.ml.tracking import RegistryError

    out: dict[str, dict] = {}
    for spec in SPECS:
        try:
            champ = registry.champion(spec.name, load=False)
        except RegistryError as exc:
            out[spec.key] = {"name": spec.name, "champion": None, "error": str(exc)}
            continue
        try:
            decision = registry.last_decision(spec.name)
        except RegistryError:
            decision = None
        if champ is None:
            reason = (untrained or {}).get(spec.key)
            out[spec.key] = {
                "name": spec.name,
                "champion": None,
                "last_decision": f"not trained: {reason}" if reason else decision,
            }
            continue
        suffix = "." + spec.primary_metric
        baselines = {
            k.removeprefix("baseline.").removesuffix(suffix): v
            for k, v in champ.metrics.items()
            if k.startswith("baseline.") and k.endswith(suffix)
        }
        best = (max if spec.higher_is_better else min)(baselines, key=baselines.get) if baselines else None
        out[spec.key] = {
            "name": spec.name,
            "champion": champ.version,
            "run_id": champ.run_id,
            "model_kind": champ.kind,
            "last_decision": decision,
            "best_baseline": best,
            "best_baseline_value": baselines.get(best),
            "primary_metric": spec.primary_metric,
            "higher_is_better": spec.higher_is_better,
            "value": champ.metrics.get(spec.primary_metric),
            "promotion_reason": champ.tags.get("titans.promotion_reason"),
            "metrics": {k: v for k, v in sorted(champ.metrics.items()) if not k.startswith("champion.")},
        }
    return out
