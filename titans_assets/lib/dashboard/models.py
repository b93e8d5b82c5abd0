"""The model page's data: every training of a model and its promotion decision, read from the MLflow
registry and runs, as plain rows (no Streamlit; the page only draws them).

Per training run (tags `titans.model`, `titans.stage` = challenger) the run holds the challenger's
metrics, every baseline's (`baseline.<name>.<metric>`) and the then-champion rescored on the same
holdout (`champion.<metric>`), the decision text (`titans.decision`) and whether it was promoted
(`titans.promoted`). A baseline registered to serve has a run of its own (`titans.stage` = baseline).
The registered versions carry the alias `champion` and the reason of the promotion that set it.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from titans_assets.lib.ml.importance import ARTIFACT as IMPORTANCE_ARTIFACT

# What each model's page shows beside its primary metric: calibration for the classifier, interval
# coverage for the models that predict intervals (metric, nominal level's param, plot artifact).
QUALITY = {
    "category": {
        "metric": "ece",
        "label": "expected calibration error (ECE, lower is better)",
        "plot": "plots/calibration.png",
        "nominal": None,
    },
    "amount": {
        "metric": "interval_coverage",
        "label": "interval coverage (measured on the holdout)",
        "plot": "plots/intervals.png",
        "nominal": "level",
    },
    "cashflow": {
        "metric": "interval_coverage",
        "label": "interval coverage (rolling-origin backtest)",
        "plot": "plots/backtest_forecast.png",
        "nominal": "level",
    },
    "anomaly": {
        "metric": None,
        "label": None,
        "plot": "plots/anomaly_score_distribution.png",
        "nominal": None,
    },
}


@dataclass
class Training:
    """One run of a model as the page lists it."""

    run_id: str
    started: str  # ISO time the run started
    stage: str  # challenger | baseline
    kind: str  # model | baseline:<name>
    version: str | None  # the registered version this run produced
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    decision: str | None = None
    promoted: bool | None = None
    promotion_reason: str | None = None  # set on the version when an alias move made it the champion


def _finite(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def best_baseline(
    metrics: Mapping[str, float], primary: str, higher_is_better: bool
) -> tuple[str | None, float | None]:
    """The strongest baseline a run logged on `primary`: (name, value), (None, None) when it logged none."""
    suffix = "." + primary
    scored = {
        k.removeprefix("baseline.").removesuffix(suffix): _finite(v)
        for k, v in metrics.items()
        if k.startswith("baseline.") and k.endswith(suffix) and k.count(".") == 2
    }
    scored = {k: v for k, v in scored.items() if v is not None}
    if not scored:
        return None, None
    name = (max if higher_is_better else min)(scored, key=scored.get)
    return name, scored[name]


def history_rows(
    trainings: Iterable[Training], primary: str, higher_is_better: bool, champion_version: str | None
) -> list[dict[str, Any]]:
    """One row per challenger training, oldest first: its value, the best baseline's and the then-champion's
    on the same holdout, the decision and its reason; `serving` marks the run behind the champion now."""
    rows = []
    for t in sorted(trainings, key=lambda t: t.started):
        if t.stage != "challenger":
            continue
        base_name, base_value = best_baseline(t.metrics, primary, higher_is_better)
        rows.append(
            {
                "started": t.started,
                "version": t.version,
                "run_id": t.run_id,
                "challenger": _finite(t.metrics.get(primary)),
                "best_baseline": base_name,
                "best_baseline_value": base_value,
                "champion_same_holdout": _finite(t.metrics.get(f"champion.{primary}")),
                "promoted": t.promoted,
                "decision": t.decision,
                "serving": champion_version is not None and t.version == str(champion_version),
            }
        )
    return rows


def served_rows(trainings: Iterable[Training], primary: str) -> list[dict[str, Any]]:
    """Every version that was made the champion, with the reason recorded when its alias moved."""
    out = []
    for t in sorted(trainings, key=lambda t: t.started):
        if t.promotion_reason:
            out.append(
                {
                    "started": t.started,
                    "version": t.version,
                    "kind": t.kind,
                    primary: _finite(t.metrics.get(primary)),
                    "reason": t.promotion_reason,
                }
            )
    return out


def holdout_comparison(metrics: Mapping[str, float], primary: str) -> list[dict[str, Any]]:
    """The challenger, the champion it met and every baseline on the same holdout, metric by metric:
    one row per metric the challenger logged (primary first), one column per predictor."""
    baselines = sorted({k.split(".")[1] for k in metrics if k.startswith("baseline.") and k.count(".") >= 2})
    own = [k for k in metrics if "." not in k]
    names = ([primary] if primary in own else []) + sorted(k for k in own if k != primary)
    rows = []
    for name in names:
        row: dict[str, Any] = {
            "metric": name,
            "challenger": _finite(metrics.get(name)),
            "champion (same holdout)": _finite(metrics.get(f"champion.{name}")),
        }
        for b in baselines:
            row[f"baseline {b}"] = _finite(metrics.get(f"baseline.{b}.{name}"))
        rows.append(row)
    return rows


def quality_series(trainings: Iterable[Training], key: str) -> list[dict[str, Any]]:
    """Calibration (category: ECE) or interval coverage (amount, cash flow) of every challenger over time,
    with the nominal level when the run logged one."""
    spec = QUALITY.get(key) or {}
    metric = spec.get("metric")
    if not metric:
        return []
    out = []
    for t in sorted(trainings, key=lambda t: t.started):
        value = _finite(t.metrics.get(metric))
        if t.stage != "challenger" or value is None:
            continue
        nominal = _finite(t.params.get(spec["nominal"])) if spec.get("nominal") else None
        out.append({"started": t.started, "version": t.version, "value": value, "nominal": nominal})
    return out


def importance_rows(artifact: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The features of a feature_importance.json, most important first ([] when not computed)."""
    if not artifact or not artifact.get("supported"):
        return []
    return [
        {"feature": f["feature"], "importance": f["importance_mean"], "std": f.get("importance_std")}
        for f in artifact.get("features", [])
        if f.get("importance_mean") is not None
    ]


# ---------------------------------------------------------------------------------------------- reading MLflow
def read_trainings(registry, name: str, max_runs: int = 500) -> list[Training]:
    """Every run of model `name` in the experiment (challengers and served baselines), with the version
    each produced and the promotion reason on that version."""
    client = registry.client
    exp = registry._call("reading the experiment", client.get_experiment_by_name, registry.experiment)
    if exp is None:
        return []
    runs = registry._call(
        "searching runs",
        client.search_runs,
        [exp.experiment_id],
        filter_string=f"tags.`titans.model` = '{name}'",
        order_by=["attributes.start_time ASC"],
        max_results=max_runs,
    )
    versions = registry._call("listing versions", client.search_model_versions, f"name = '{name}'")
    by_run = {v.run_id: v for v in versions}
    out = []
    for run in runs:
        tags = run.data.tags
        v = by_run.get(run.info.run_id)
        promoted = tags.get("titans.promoted")
        out.append(
            Training(
                run_id=run.info.run_id,
                started=_iso(run.info.start_time),
                stage=tags.get("titans.stage", "challenger"),
                kind=tags.get("titans.model_kind", "model"),
                version=str(v.version) if v else None,
                metrics=dict(run.data.metrics),
                params=dict(run.data.params),
                decision=tags.get("titans.decision"),
                promoted=None if promoted is None else promoted == "true",
                promotion_reason=(v.tags or {}).get("titans.promotion_reason") if v else None,
            )
        )
    return out


def read_artifact_json(registry, run_id: str, path: str) -> dict | None:
    """A JSON artifact of a run, or None when the run has none."""
    raw = read_artifact_bytes(registry, run_id, path)
    return None if raw is None else json.loads(raw)


def read_artifact_bytes(registry, run_id: str, path: str) -> bytes | None:
    """An artifact's bytes (a plot), or None when the run has none."""
    parent = path.rsplit("/", 1)[0] if "/" in path else ""
    listed = registry._call("listing artifacts", registry.client.list_artifacts, run_id, parent or None)
    if path not in {a.path for a in listed}:
        return None
    with tempfile.TemporaryDirectory(prefix="titans-artifact-") as tmp:
        local = registry._call(
            "downloading an artifact", registry.client.download_artifacts, run_id, path, tmp
        )
        return Path(local).read_bytes()


def read_importance(registry, run_id: str) -> dict | None:
    return read_artifact_json(registry, run_id, IMPORTANCE_ARTIFACT)


def _iso(ms: int | None) -> str:
    import datetime as dt

    if ms is None:
        return ""
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).isoformat(timespec="seconds")
