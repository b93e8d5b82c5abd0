"""Training, evaluation and promotion of the four models, as assets (pure logic in lib/ml/).

`model_assets` builds, per model NAME (category, amount, anomaly, cashflow), ml/NAME_challenger
(train, log, register), ml/NAME_evaluation (rescore the champion, decide; its check
`beats_best_baseline` is a WARN, never blocking) and ml/NAME_champion (move the `champion` alias).

Design notes (what each asset does): docs/model-design.md#titans_assetsdefsmlassetspy
"""

from dataclasses import replace

import dagster as dg

from titans_assets.defs.quality.checks import FCT_DAILY_METRICS, FCT_TRANSACTIONS
from titans_assets.lib.ml.catalog import SPECS, ModelSpec, train_model
from titans_assets.lib.ml.cold_start import LabelGate, NotTrained, train_gated
from titans_assets.lib.ml.importance import log_importance
from titans_assets.lib.ml.promotion import (
    KEEP,
    MODEL_KIND,
    SERVE_BASELINE,
    Challenger,
    Champion,
    Decision,
    Verdict,
    move_alias,
    rescore_and_decide,
    serving_verdict,
)
from titans_assets.resources import MlflowResource, WarehouseResource

SOURCES = {
    "transactions": dg.AssetKey(["marts", "fct_transactions"]),  # lib/ml/data.py reads it (not transfers)
    "daily": dg.AssetKey(["features", "ml_daily_cashflow"]),
}
# The marts whose Great Expectations suites block. The feature tables are built in the same dbt step as
# the marts, before those suites run, so a model depends on the marts too: a failing suite then stops
# its training in the same run (a blocking check blocks only its asset's direct dependents).
GATED_MARTS = (FCT_TRANSACTIONS, FCT_DAILY_METRICS)
CHECK = "beats_best_baseline"


def _metric_metadata(prefix: str, metrics: dict) -> dict:
    return {
        f"{prefix}{k}": float(v)
        for k, v in metrics.items()
        if isinstance(v, int | float) and v == v and abs(v) != float("inf")
    }


def _key(spec: ModelSpec, stage: str) -> dg.AssetKey:
    return dg.AssetKey(["ml", f"{spec.key}_{stage}"])


def _challenger_metadata(run_id: str, version: str, result) -> dict:
    """The trained challenger's run, version, data window, metrics (its own and the baselines') and notes."""
    return {
        "trained": True,
        "mlflow_run_id": run_id,
        "model_version": version,
        **result.data_window,
        **_metric_metadata("", result.metrics),
        **{
            k: v
            for b, m in result.baselines.items()
            for k, v in _metric_metadata(f"baseline.{b}.", m).items()
        },
        "notes": dg.MetadataValue.md("\n".join(f"- {n}" for n in result.notes) or "none"),
    }


def challenger_asset(spec: ModelSpec) -> dg.AssetsDefinition:
    @dg.asset(
        key=_key(spec, "challenger"),
        deps=[SOURCES[spec.source], *GATED_MARTS],
        group_name="ml",
        kinds={"python", "mlflow"},
        description=f"Train the {spec.key} model on the past, test it on the most recent period, "
        "log the run and register a version.",
    )
    def challenger(
        context: dg.AssetExecutionContext, warehouse: WarehouseResource, mlflow: MlflowResource
    ) -> Challenger:
        try:
            result = train_gated(
                spec, warehouse.database(), warehouse.settings(), LabelGate.from_env(), train_model
            )
        except NotTrained as skipped:  # cold start, or too little data: an outcome, not a failure
            context.log.info(f"{spec.key}: not trained: {skipped.reason}")
            context.add_output_metadata({"trained": False, "reason": skipped.reason, **skipped.metadata})
            return Challenger(None, None, None, skipped=skipped.reason)
        run_id, version = mlflow.registry().log_training(
            spec.name, result, spec.example_frame(), tags={"dagster.run_id": context.run_id}
        )
        log_importance(
            mlflow.registry(), run_id, spec, result
        )  # permutation importance, an artifact of the run
        context.add_output_metadata(_challenger_metadata(run_id, version, result))
        return Challenger(run_id, version, replace(result, model=None, figures={}))

    return challenger


def _not_trained(trained: Challenger):
    """The evaluation of a challenger that was not trained: nothing decided, the check says why."""
    yield dg.Output(
        Verdict(None, None, None, skipped=trained.skipped),
        metadata={"trained": False, "reason": trained.skipped, "serve_version": "none"},
    )
    yield dg.AssetCheckResult(
        check_name=CHECK,
        passed=False,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"not trained: {trained.skipped}",
    )


def _beats_baseline(decision: Decision) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=CHECK,
        passed=decision.beats_baseline,
        severity=dg.AssetCheckSeverity.WARN,
        description=decision.reason,
        metadata={
            "challenger": decision.challenger,
            "best_baseline": decision.best_baseline,
            "best_baseline_value": decision.best_baseline_value,
            "served": decision.served,
        },
    )


def evaluation_asset(spec: ModelSpec) -> dg.AssetsDefinition:
    key = _key(spec, "evaluation")

    @dg.asset(
        key=key,
        ins={"trained": dg.AssetIn(_key(spec, "challenger"))},
        group_name="ml",
        kinds={"python", "mlflow"},
        check_specs=[
            dg.AssetCheckSpec(
                CHECK,
                asset=key,
                blocking=False,
                description="The challenger beats the strongest baseline on the "
                "model's primary metric (a warning when it does not: "
                "the best honest predictor is served instead).",
            )
        ],
        description=f"The {spec.key} challenger vs the current champion and the baselines, same holdout; "
        "registers the best baseline when that is what should serve.",
    )
    def evaluation(context: dg.AssetExecutionContext, mlflow: MlflowResource, trained: Challenger):
        if trained.skipped is not None:
            yield from _not_trained(trained)
            return
        registry = mlflow.registry()
        decision = rescore_and_decide(spec, registry, trained)
        verdict = serving_verdict(spec, registry, trained, decision, {"dagster.run_id": context.run_id})
        summary = {k: v for k, v in decision.to_dict().items() if v is not None}
        yield dg.Output(
            verdict,
            metadata={
                **summary,
                "mlflow_run_id": trained.run_id,
                "serve_version": verdict.serve_version or "none",
            },
        )
        yield _beats_baseline(decision)

    return evaluation


def _champion_metadata(current, promoted: bool, moved: bool, reason: str) -> dict:
    return {
        "champion_version": current.version if current else "none",
        "model_kind": current.kind if current else "none",
        "promoted": promoted,
        "moved": moved,
        "reason": reason,
    }


def _served_value(decision: Decision) -> float:
    """The primary metric of what serves after `decision`, on the challenger's holdout (nan: unknown)."""
    value = {KEEP: decision.champion, SERVE_BASELINE: decision.best_baseline_value}.get(
        decision.action, decision.challenger
    )
    return float("nan") if value is None else value


def champion_asset(spec: ModelSpec) -> dg.AssetsDefinition:
    @dg.asset(
        key=_key(spec, "champion"),
        ins={"verdict": dg.AssetIn(_key(spec, "evaluation"))},
        group_name="ml",
        kinds={"mlflow"},
        description=f"The {spec.key} model's registry alias `champion`: the challenger when it beats the "
        "baseline and the champion, else the champion, else the best baseline.",
    )
    def champion(context: dg.AssetExecutionContext, mlflow: MlflowResource, verdict: Verdict) -> Champion:
        registry = mlflow.registry()
        decision = verdict.decision
        moved = decision is not None and move_alias(spec, registry, verdict)
        current = registry.champion(spec.name, load=False)
        if decision is None:  # nothing trained: whatever serves (maybe nothing yet) stays
            metadata = _champion_metadata(current, False, False, f"not trained: {verdict.skipped}")
        else:
            metadata = {
                **_champion_metadata(current, decision.promote, moved, decision.reason),
                spec.primary_metric: _served_value(decision),
            }
        context.add_output_metadata(metadata)
        return Champion(
            spec.name, current.version if current else None, current.kind if current else MODEL_KIND
        )

    return champion


def model_assets(spec: ModelSpec) -> list[dg.AssetsDefinition]:
    """The challenger, its evaluation and the champion of one model."""
    return [challenger_asset(spec), evaluation_asset(spec), champion_asset(spec)]


defs = dg.Definitions(assets=[a for spec in SPECS for a in model_assets(spec)])
