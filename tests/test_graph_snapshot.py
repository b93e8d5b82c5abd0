"""A snapshot of the Dagster graph's public names: asset keys (with group and whether an automation
condition drives them), check names with their blocking flag, jobs, sensors and schedules. A rename
that would break the runner, the CLI, the sensors or a user's saved selection fails here, in one place.

After an intended change: `TITANS_UPDATE_SNAPSHOTS=1 .venv/bin/python -m pytest tests/test_graph_snapshot.py`
rewrites tests/snapshots/graph.json; review its diff like code."""

from __future__ import annotations

import json
import os
from pathlib import Path

SNAPSHOT = Path(__file__).parent / "snapshots" / "graph.json"


def graph_snapshot() -> dict:
    from titans_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    repo = defs.get_repository_def()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "automated": node.automation_condition is not None,
            "partitioned": node.partitions_def is not None,
        }
    checks = {
        f"{k.asset_key.to_user_string()}:{k.name}": graph.get_check_spec(k).blocking
        for k in sorted(graph.asset_check_keys, key=lambda k: (k.asset_key.to_user_string(), k.name))
    }
    return {
        "assets": assets,
        "checks": checks,
        "jobs": sorted(j.name for j in repo.get_all_jobs() if not j.name.startswith("__")),
        "sensors": {s.name: s.default_status.value for s in sorted(repo.sensor_defs, key=lambda s: s.name)},
        "schedules": {
            s.name: {"cron": s.cron_schedule, "default": s.default_status.value}
            for s in sorted(repo.schedule_defs, key=lambda s: s.name)
        },
    }


def test_the_graph_matches_its_snapshot():
    current = graph_snapshot()
    if os.environ.get("TITANS_UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(json.dumps(current, indent=1, sort_keys=True) + "\n")
    expected = json.loads(SNAPSHOT.read_text())
    for part in ("assets", "checks", "jobs", "sensors", "schedules"):
        assert current[part] == expected[part], (
            f"the graph's {part} changed; if intended, rewrite the snapshot (see this module's docstring)"
        )
