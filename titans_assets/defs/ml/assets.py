"""Training, evaluation and promotion of the four models, as assets (pure logic in lib/ml/).

Per model NAME (category, amount, anomaly, cashflow):
  ml/NAME_challenger  reads its dbt feature table, trains on the past, tests on the most recent
                      period, logs the run (params, metrics of the model and the baselines, data
                      window, plots, git commit) and registers a new MLflow model version;
  ml/NAME_evaluation  rescores the current champion on the challenger's holdout and decides
                      (lib/ml/promotion.py). Its check `beats_best_baseline` shows whether the
                      challenger beat the strongest baseline: a WARN, never blocking, because losing
                      to a baseline is an outcome (the data-quality checks upstream are what block).
                      When neither the challenger nor the champion beats the baseline, the baseline
                      itself is logged and registered (tagged `titans.model_kind=baseline:<name>`);
  ml/NAME_champion    moves the registry alias `champion` to what the decision says serves, and
                      records why.
"""

from dataclasses import replace

import dagster as dg

from titans_assets.defs.quality.checks import FCT_DAILY_METRICS, FCT_TRANSACTIONS
from titans_assets.lib.ml.catalog import SPECS, ModelSpec, train_model
from titans_assets.lib.ml.common import baseline_result
from titans_assets.lib.ml.importance import log_importance
from titans_assets.lib.ml.promotion import (
    KEEP,
    MODEL_KIND,
    SERVE_BASELINE,
    Challenger,
    Verdict,
    baseline_kind,
    decide,
)
from titans_assets.resources import MlflowResource, WarehouseResource

SOURCES = {
    "transactions": dg.AssetKey(["features", "ml_transaction_features"]),
    "daily": dg.AssetKey(["features", "ml_daily_cashflow"]),
}
# The marts whose Great Expectations suites block. The feature tables are built in the same dbt step as
# the marts, before those suites run, so a model depends on the marts too: a failing suite then stops
# its training in the same run (a blocking check blocks only its asset's direct dependents).
GATED_MARTS = (FCT_TRANSACTIONS, FCT_DAILY_METRICS)
CHECK = "beats_best_baseline"


def _metric_metadata(prefix: str, metrics: dict) -> dict:
    return {f"{prefix}{k}": float(v) for k, v in metrics.items()
            if isinstance(v, int | float) and v == v and abs(v) != float("inf")}


def model_assets(spec: ModelSpec) -> list:
    challenger_key = dg.AssetKey(["ml", f"{spec.key}_challenger"])
    evaluation_key = dg.AssetKey(["ml", f"{spec.key}_evaluation"])
    champion_key = dg.AssetKey(["ml", f"{spec.key}_champion"])

    @dg.asset(key=challenger_key, deps=[SOURCES[spec.source], *GATED_MARTS], group_name="ml", kinds={"python", "mlflow"},
              description=f"Train the {spec.key} model on the past, test it on the most recent period, "
                          "log the run and register a version.")
    def challenger(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                   mlflow: MlflowResource) -> Challenger:
        result = train_model(spec, warehouse.database(), warehouse.settings())
        run_id, version = mlflow.registry().log_training(
            spec.name, result, spec.example_frame(), tags={"dagster.run_id": context.run_id})
        log_importance(mlflow.registry(), run_id, spec, result)  # permutation importance, an artifact of the run
        context.add_output_metadata({
            "mlflow_run_id": run_id, "model_version": version, **result.data_window,
            **_metric_metadata("", result.metrics),
            **{k: v for b, m in result.baselines.items() for k, v in _metric_metadata(f"baseline.{b}.", m).items()},
            "notes": dg.MetadataValue.md("\n".join(f"- {n}" for n in result.notes) or "none"),
        })
        return Challenger(run_id, version, replace(result, model=None, figures={}))

    @dg.asset(key=evaluation_key, ins={"trained": dg.AssetIn(challenger_key)}, group_name="ml",
              kinds={"python", "mlflow"},
              check_specs=[dg.AssetCheckSpec(CHECK, asset=evaluation_key, blocking=False,
                                             description="The challenger beats the strongest baseline on the "
                                                         "model's primary metric (a warning when it does not: "
                                                         "the best honest predictor is served instead).")],
              description=f"The {spec.key} challenger vs the current champion and the baselines, same holdout; "
                          "registers the best baseline when that is what should serve.")
    def evaluation(context: dg.AssetExecutionContext, mlflow: MlflowResource, trained: Challenger):
        registry = mlflow.registry()
        result = trained.result
        champion = registry.champion(spec.name)
        champion_metrics = spec.module.score(champion.model, result.holdout) if champion else None
        decision = decide(spec.primary_metric, spec.higher_is_better, result.metrics, result.baselines,
                          champion_metrics, champion.version if champion else None,
                          champion.kind if champion else None)
        registry.record(trained.run_id, {f"champion.{k}": v for k, v in (champion_metrics or {}).items()},
                        {"titans.decision": decision.reason})
        serve_version = {KEEP: champion.version if champion else None, SERVE_BASELINE: None}.get(
            decision.action, trained.version)
        baseline_run_id = None
        if decision.action == SERVE_BASELINE:
            baseline_run_id, serve_version = registry.log_training(
                spec.name, baseline_result(result, decision.best_baseline), spec.example_frame(),
                tags={"dagster.run_id": context.run_id, "titans.challenger_run_id": trained.run_id},
                kind=baseline_kind(decision.best_baseline))
        summary = {k: v for k, v in decision.to_dict().items() if v is not None}
        yield dg.Output(Verdict(decision, trained.run_id, serve_version, baseline_run_id),
                        metadata={**summary, "mlflow_run_id": trained.run_id,
                                  "serve_version": serve_version or "none"})
        yield dg.AssetCheckResult(
            check_name=CHECK, passed=decision.beats_baseline, severity=dg.AssetCheckSeverity.WARN,
            description=decision.reason,
            metadata={"challenger": decision.challenger, "best_baseline": decision.best_baseline,
                      "best_baseline_value": decision.best_baseline_value, "served": decision.served})

    @dg.asset(key=champion_key, ins={"verdict": dg.AssetIn(evaluation_key)}, group_name="ml", kinds={"mlflow"},
              description=f"The {spec.key} model's registry alias `champion`: the challenger when it beats the "
                          "baseline and the champion, else the champion, else the best baseline.")
    def champion(context: dg.AssetExecutionContext, mlflow: MlflowResource, verdict: Verdict):
        registry = mlflow.registry()
        decision, target = verdict.decision, verdict.serve_version
        moved = decision.action != KEEP and target is not None
        if moved:
            registry.promote(spec.name, target, decision.reason)
        registry.record(verdict.run_id, {}, {"titans.promoted": str(decision.promote).lower()})
        current = registry.champion(spec.name, load=False)
        value = {KEEP: decision.champion, SERVE_BASELINE: decision.best_baseline_value}.get(
            decision.action, decision.challenger)
        context.add_output_metadata({
            "champion_version": current.version if current else "none",
            "model_kind": current.kind if current else "none", "promoted": decision.promote, "moved": moved,
            "reason": decision.reason, spec.primary_metric: float("nan") if value is None else value,
        })
        return {"name": spec.name, "version": current.version if current else None,
                "kind": current.kind if current else MODEL_KIND}

    return [challenger, evaluation, champion]


defs = dg.Definitions(assets=[a for spec in SPECS for a in model_assets(spec)])
