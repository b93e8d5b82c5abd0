"""What `titans status` and the dashboard's health page show: the database, the files loaded, table
counts, last materializations, every check's state and the champions. A plain function (no click);
it prepares the environment like every command (the embedded server starts if it is the database)."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def collect_status() -> dict:
    import dagster as dg

    from titans_assets import runner
    from titans_assets.check_records import check_statuses, untrained_reasons
    from titans_assets.definitions import defs
    from titans_assets.lib.ml.catalog import SPECS
    from titans_assets.lib.ml.tracking import Registry
    from titans_assets.lib.status import champion_summary, file_summary, table_counts

    settings, db = runner.prepare_environment()
    instance = runner.get_instance()
    graph = defs.resolve_asset_graph()
    keys = sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string())
    latest = instance.get_latest_materialization_events(keys)
    checks = check_statuses(instance, graph.asset_check_keys)
    for state in checks.values():
        state["at"] = _iso(state["at"]) if state["at"] else None
    return {
        "database": db.redacted(),
        "landing_dir": str(settings.landing_dir),
        "home": str(settings.home),
        "tables": table_counts(db),
        "files": file_summary(db),
        "materializations": {
            k.to_user_string(): (_iso(latest[k].timestamp) if latest.get(k) else None) for k in keys
        },
        "checks": checks,
        "checks_failed": [k for k, v in checks.items() if v["status"] == "failed"],
        "models": champion_summary(
            Registry.from_settings(settings, db), untrained_reasons(instance, [s.key for s in SPECS])
        ),
        "generated_at": _iso(time.time()),
        "dagster_version": dg.__version__,
    }


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="seconds")
