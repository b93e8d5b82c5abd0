"""What the registry alias `champion` should point at after a training: pure rules, one primary metric
per model, every candidate measured on the challenger's holdout.

`decide` weighs the challenger, the current champion and the strongest baseline; `move_alias` applies
the decision. A model never serves a predictor worse than its baseline (`serve_baseline`).

Design notes (the rules): docs/model-design.md#titans_assetslibmlpromotionpy
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from titans_assets.lib.ml.common import baseline_result

PROMOTE = "promote_challenger"
KEEP = "keep_champion"
SERVE_BASELINE = "serve_baseline"
KIND_TAG = "titans.model_kind"  # on registered versions and their runs
MODEL_KIND = "model"  # the kind of a trained model; a baseline registered to be served is "baseline:<name>"


def kind_of(tags: dict[str, str]) -> str:
    """A registered version's kind from its tags (versions from before kinds existed are models)."""
    return tags.get(KIND_TAG) or MODEL_KIND


def baseline_kind(name: str) -> str:
    return f"baseline:{name}"


@dataclass(frozen=True)
class Decision:
    metric: str
    higher_is_better: bool
    challenger: float
    best_baseline: str
    best_baseline_value: float
    champion_version: str | None
    champion: float | None  # the champion rescored on the challenger's holdout
    champion_kind: str | None  # "model" or "baseline:<name>"
    beats_baseline: bool  # the challenger strictly beats the strongest baseline (the visible model gate)
    action: str  # PROMOTE | KEEP | SERVE_BASELINE
    reason: str

    @property
    def promote(self) -> bool:
        """The challenger becomes the champion."""
        return self.action == PROMOTE

    @property
    def served(self) -> str:
        """What serves after this decision, as a model kind."""
        if self.action == PROMOTE:
            return MODEL_KIND
        if self.action == SERVE_BASELINE:
            return baseline_kind(self.best_baseline)
        return self.champion_kind or MODEL_KIND

    def to_dict(self) -> dict:
        return {**asdict(self), "promote": self.promote, "served": self.served}


def _fmt(v: float) -> str:
    return f"{v:.4f}"


def decide(
    metric: str,
    higher_is_better: bool,
    challenger: dict[str, float],
    baselines: dict[str, dict[str, float]],
    champion: dict[str, float] | None = None,
    champion_version: str | None = None,
    champion_kind: str | None = None,
) -> Decision:
    """Compare a challenger with every baseline and the champion on `metric`."""

    def better(a: float, b: float, strict: bool) -> bool:
        if strict:
            return a > b if higher_is_better else a < b
        return a >= b if higher_is_better else a <= b

    value = float(challenger.get(metric, math.nan))
    scored = {
        n: float(m[metric]) for n, m in baselines.items() if math.isfinite(float(m.get(metric, math.nan)))
    }
    if not scored:
        raise ValueError(f"no baseline reports {metric}")
    pick = max if higher_is_better else min
    base_name = pick(scored, key=scored.get)
    base_value = scored[base_name]
    direction = "higher" if higher_is_better else "lower"
    champ = None if champion is None else float(champion.get(metric, math.nan))
    has_champ = champ is not None and math.isfinite(champ)
    champ_label = f"champion v{champion_version}" + (
        f" ({champion_kind})" if champion_kind not in (None, MODEL_KIND) else ""
    )
    beats = math.isfinite(value) and better(value, base_value, strict=True)

    if beats and not has_champ:
        action = PROMOTE
        reason = (
            f"promoted: {metric} {_fmt(value)} beats the best baseline {base_name} ({_fmt(base_value)}) "
            "and there is no champion yet"
        )
    elif beats and better(value, champ, strict=False):
        action = PROMOTE
        reason = (
            f"promoted: {metric} {_fmt(value)} is at least as good as {champ_label} ({_fmt(champ)}) "
            f"on the same holdout and beats {base_name} ({_fmt(base_value)})"
        )
    elif beats:
        action = KEEP
        reason = (
            f"not promoted: {metric} {_fmt(value)} is worse than {champ_label} ({_fmt(champ)}) "
            f"on the same holdout ({direction} is better); keeping the champion"
        )
    else:
        lost = (
            f"challenger {metric} is not a number"
            if not math.isfinite(value)
            else f"{metric} {_fmt(value)} does not beat {base_name} {_fmt(base_value)} ({direction} is better)"
        )
        if has_champ and better(champ, base_value, strict=True):
            action = KEEP
            reason = f"not promoted: {lost}; keeping {champ_label} ({_fmt(champ)} on the same holdout)"
        else:
            action = SERVE_BASELINE
            reason = f"not promoted: {lost}; serving baseline {base_name}"
    return Decision(
        metric=metric,
        higher_is_better=higher_is_better,
        challenger=value,
        best_baseline=base_name,
        best_baseline_value=base_value,
        champion_version=champion_version,
        champion=champ,
        champion_kind=champion_kind,
        beats_baseline=beats,
        action=action,
        reason=reason,
    )


@dataclass(frozen=True)
class Challenger:
    """What ml/NAME_challenger hands to its evaluation: the logged run and registered version, and the
    training's result without the model and figures (they are in MLflow): its metrics, baselines and
    fitted baseline models (one of which may be registered to serve) and the holdout to rescore the
    champion on."""

    run_id: str | None
    version: str | None
    result: Any  # lib.ml.common.TrainResult; None when nothing was trained
    # why nothing was trained (cold start: too few labels; too little data): the run goes on, the
    # evaluation and the champion pass it along and the current champion, if any, keeps serving
    skipped: str | None = None


@dataclass(frozen=True)
class Verdict:
    """What ml/NAME_evaluation hands to ml/NAME_champion: the decision and the version to serve (None
    keeps the alias where it is)."""

    decision: Decision | None  # None when the challenger was not trained (`skipped` says why)
    run_id: str | None  # the challenger's run
    serve_version: str | None
    baseline_run_id: str | None = None  # the run that registered the served baseline, if one was
    skipped: str | None = None


@dataclass(frozen=True)
class Champion:
    """What ml/NAME_champion leaves: the registered model that serves after this run (version None when
    nothing serves yet)."""

    name: str
    version: str | None
    kind: str


# The registry steps of one training's promotion, shared by the Dagster assets (defs/ml/assets.py) and the
# tests that build a registry without Dagster. `spec` is a lib.ml.catalog.ModelSpec, `registry` a
# lib.ml.tracking.Registry.


def rescore_and_decide(spec, registry, trained: Challenger) -> Decision:
    """Rescore the champion on the challenger's holdout, decide, and record both on the challenger's run."""
    result = trained.result
    champion = registry.champion(spec.name)
    champion_metrics = spec.module.score(champion.model, result.holdout) if champion else None
    decision = decide(
        spec.primary_metric,
        spec.higher_is_better,
        result.metrics,
        result.baselines,
        champion_metrics,
        champion.version if champion else None,
        champion.kind if champion else None,
    )
    registry.record(
        trained.run_id,
        {f"champion.{k}": v for k, v in (champion_metrics or {}).items()},
        {"titans.decision": decision.reason},
    )
    return decision


def serving_verdict(
    spec, registry, trained: Challenger, decision: Decision, tags: dict[str, str] | None = None
) -> Verdict:
    """The version that serves after `decision`; a baseline that should serve is logged and registered
    (its run tagged with `tags` and the challenger's run id)."""
    serve_version = {KEEP: decision.champion_version, SERVE_BASELINE: None}.get(
        decision.action, trained.version
    )
    baseline_run_id = None
    if decision.action == SERVE_BASELINE:
        baseline_run_id, serve_version = registry.log_training(
            spec.name,
            baseline_result(trained.result, decision.best_baseline),
            spec.example_frame(),
            tags={**(tags or {}), "titans.challenger_run_id": trained.run_id},
            kind=baseline_kind(decision.best_baseline),
        )
    return Verdict(decision, trained.run_id, serve_version, baseline_run_id)


def move_alias(spec, registry, verdict: Verdict) -> bool:
    """Move the alias where the verdict says, if anywhere, and record the outcome on the challenger's run."""
    decision, target = verdict.decision, verdict.serve_version
    moved = decision.action != KEEP and target is not None
    if moved:
        registry.promote(spec.name, target, decision.reason)
    registry.record(verdict.run_id, {}, {"titans.promoted": str(decision.promote).lower()})
    return moved
