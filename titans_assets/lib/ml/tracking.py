"""MLflow tracking and registry with an explicit URI: no global MLflow state is touched.

By default the tracking and registry store is a `<database>_mlflow` database on the same PostgreSQL
as the warehouse (its own database because MLflow and Dagster both keep an `alembic_version` table),
reached with `postgresql+psycopg2://`; artifacts go under `$TITANS_HOME/mlartifacts`.
TITANS_MLFLOW_TRACKING_URI (e.g. an MLflow server) and TITANS_MLFLOW_ARTIFACTS override both.

A failure to reach the registry is RegistryError (E002), one readable line.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from dataclasses import dataclass, field
from functools import cached_property
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from titans_assets.lib.db import Database, DatabaseError
from titans_assets.lib.ml.common import TrainResult
from titans_assets.lib.ml.promotion import KIND_TAG, MODEL_KIND, kind_of
from titans_assets.lib.paths import PROJECT_ROOT
from titans_assets.lib.settings import Settings

EXPERIMENT = "titans"
# pg_advisory_lock key held while a client initialises the MLflow store (Registry.client).
STORE_INIT_LOCK = 7_210_351_001
CHAMPION = "champion"
# What a loaded model needs besides the titans_assets package itself.
RUNTIME_PACKAGES = ("mlflow", "numpy", "pandas", "scikit-learn", "scipy", "statsforecast", "cloudpickle")


class RegistryError(RuntimeError):
    code = "E002"


@dataclass
class Champion:
    name: str
    version: str
    run_id: str
    model: Any  # the native model object (predict, and each model's richer API)
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        """ "model", or "baseline:<name>" when the best baseline is what serves."""
        return kind_of(self.tags)


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _flat(prefix: str, values: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in values.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat(key + ".", v))
        else:
            out[key] = v
    return out


def _finite(values: dict[str, Any]) -> dict[str, float]:
    out = {}
    for k, v in values.items():
        try:
            f = float(v)
        except (TypeError, ValueError):
            continue
        if f == f and abs(f) != float("inf"):
            out[k] = f
    return out


@dataclass(frozen=True)
class Registry:
    tracking_uri: str
    artifact_root: str
    experiment: str = EXPERIMENT

    @classmethod
    def from_settings(cls, settings: Settings, db: Database) -> Registry:
        """The configured store; the default `<database>_mlflow` is created when missing."""
        uri = settings.mlflow_tracking_uri
        if uri is None:
            store = db.sibling(f"{db.dbname}_mlflow")
            store.ensure_exists()
            uri = store.sqlalchemy_url()
        artifacts = settings.mlflow_artifacts or (settings.home / "mlartifacts").as_uri()
        return cls(tracking_uri=uri, artifact_root=artifacts)

    @cached_property
    def client(self):
        from mlflow import MlflowClient

        if self.tracking_uri.startswith(("postgresql", "postgres")):
            store = Database(self.tracking_uri.replace("+psycopg2", "", 1))
            # MLflow retries an unreachable database for ~100 s; answer at once instead.
            try:
                store.ping()
            except DatabaseError as exc:
                raise RegistryError(f"E002 MLflow registry unreachable: {exc}") from None
            # A new client creates MLflow's tables in an empty store (alembic): two processes doing it
            # at once (model steps on two Celery workers) collide on CREATE TABLE, so one at a time.
            with store.connect(autocommit=True) as conn, conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_lock(%s)", (STORE_INIT_LOCK,))
                return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def _call(self, what: str, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # MlflowException, SQLAlchemy, network: one line with the code
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            raise RegistryError(f"E002 MLflow registry: {what} failed: {first}") from exc

    def experiment_id(self) -> str:
        exp = self._call("reading the experiment", self.client.get_experiment_by_name, self.experiment)
        if exp is not None:
            return exp.experiment_id
        try:
            return self._call(
                "creating the experiment",
                self.client.create_experiment,
                self.experiment,
                artifact_location=f"{self.artifact_root.rstrip('/')}/{self.experiment}",
            )
        except RegistryError:  # another process created it between the read and the create
            exp = self._call("reading the experiment", self.client.get_experiment_by_name, self.experiment)
            if exp is None:
                raise
            return exp.experiment_id

    # ---- training runs -------------------------------------------------------------------------

    def log_training(
        self,
        name: str,
        result: TrainResult,
        example: pd.DataFrame,
        tags: dict[str, str] | None = None,
        kind: str = MODEL_KIND,
    ) -> tuple[str, str]:
        """One run with params, metrics (model and baselines), data window, plots and the model;
        the model registered as a new version of `name`, tagged `titans.model_kind` = `kind` ("model",
        or "baseline:<name>" for a baseline registered to be served). Returns (run_id, version)."""
        client = self.client
        stage = "challenger" if kind == MODEL_KIND else "baseline"
        run = self._call(
            "creating a run",
            client.create_run,
            self.experiment_id(),
            run_name=f"{name}-train" if kind == MODEL_KIND else f"{name}-{kind.replace(':', '-')}",
            tags={
                "titans.model": name,
                "titans.stage": stage,
                KIND_TAG: kind,
                "mlflow.source.git.commit": git_commit(),
                **(tags or {}),
            },
        )
        run_id = run.info.run_id
        try:
            self._log_results(run_id, result)
            self._log_artifacts(run_id, result, example)
            source = f"{run.info.artifact_uri.rstrip('/')}/model"
            self._ensure_registered_model(name)
            version = self._call(
                "registering a version",
                client.create_model_version,
                name,
                source,
                run_id,
                tags={"titans.data_window": json.dumps(result.data_window), KIND_TAG: kind},
            )
        except Exception:
            client.set_terminated(run_id, "FAILED")
            raise
        client.set_terminated(run_id, "FINISHED")
        return run_id, str(version.version)

    def _log_results(self, run_id: str, result: TrainResult) -> None:
        """Params, data window, metrics (the model's and each baseline's) and the training summary."""
        client = self.client
        params = {k: str(v)[:500] for k, v in _flat("", result.params).items()}
        params.update({f"data.{k}": str(v) for k, v in result.data_window.items()})
        metrics = _finite(result.metrics)
        for baseline, values in result.baselines.items():
            metrics.update({f"baseline.{baseline}.{k}": v for k, v in _finite(values).items()})
        for k, v in params.items():
            client.log_param(run_id, k, v)
        for k, v in metrics.items():
            client.log_metric(run_id, k, v)
        client.log_dict(
            run_id,
            {
                "data_window": result.data_window,
                "notes": result.notes,
                "metrics": result.metrics,
                "baselines": result.baselines,
            },
            "training_summary.json",
        )

    def _log_artifacts(self, run_id: str, result: TrainResult, example: pd.DataFrame) -> None:
        """The plots, and the model as an MLflow pyfunc (signature inferred from `example`)."""
        from mlflow.models import infer_signature
        from mlflow.pyfunc import save_model

        from titans_assets.lib.ml.pyfunc import TitansPyfunc

        client = self.client
        with tempfile.TemporaryDirectory() as tmp:
            plots = Path(tmp) / "plots"
            plots.mkdir()
            for file_name, figure in result.figures.items():
                figure.savefig(plots / file_name, dpi=110, bbox_inches="tight")
            if result.figures:
                client.log_artifacts(run_id, str(plots), "plots")
            output = result.model.predict(example)
            try:
                signature = infer_signature(example, output)
            except Exception:  # nested outputs (lists of dicts) may not infer: inputs only
                signature = infer_signature(example)
            model_dir = Path(tmp) / "model"
            save_model(
                str(model_dir),
                python_model=TitansPyfunc(result.model),
                signature=signature,
                pip_requirements=_requirements(),
            )
            client.log_artifacts(run_id, str(model_dir), "model")

    def _ensure_registered_model(self, name: str) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(name)
        except MlflowException:
            self._call("creating the registered model", self.client.create_registered_model, name)

    def record(self, run_id: str, metrics: dict[str, Any], tags: dict[str, str]) -> None:
        """Add evaluation figures and the promotion decision to a run."""
        for k, v in _finite(metrics).items():
            self._call("logging a metric", self.client.log_metric, run_id, k, v)
        for k, v in tags.items():
            self._call("tagging the run", self.client.set_tag, run_id, k, v)

    # ---- champions -----------------------------------------------------------------------------

    def champion_version(self, name: str):
        """The model version behind `name@champion`, or None when there is none yet."""
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_model_version_by_alias(name, CHAMPION)
        except MlflowException as exc:
            if getattr(exc, "error_code", "") in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                return None
            raise RegistryError(
                f"E002 MLflow registry: reading {name}@{CHAMPION} failed: {str(exc).splitlines()[0][:300]}"
            ) from exc
        except Exception as exc:
            raise RegistryError(
                f"E002 MLflow registry unreachable: {str(exc).splitlines()[0][:300]}"
            ) from exc

    def load_version(self, name: str, version: str):
        """The native model object of a registered version."""
        import mlflow.pyfunc

        uri = self._call("resolving the model", self.client.get_model_version_download_uri, name, version)
        if not uri.startswith("mlflow-artifacts:"):
            return (
                self._call(f"loading {name} v{version}", mlflow.pyfunc.load_model, uri)
                .unwrap_python_model()
                .model
            )
        # Artifacts proxied by a tracking server: load_model would resolve the URI against MLflow's
        # process-wide tracking URI, not ours; download through ours instead (the object is unpickled
        # whole at load, so the temporary copy can go afterwards).
        import mlflow.artifacts

        with tempfile.TemporaryDirectory(prefix="titans-model-") as tmp:
            local = self._call(
                f"downloading {name} v{version}",
                mlflow.artifacts.download_artifacts,
                artifact_uri=uri,
                dst_path=tmp,
                tracking_uri=self.tracking_uri,
            )
            return (
                self._call(f"loading {name} v{version}", mlflow.pyfunc.load_model, local)
                .unwrap_python_model()
                .model
            )

    def champion(self, name: str, load: bool = True) -> Champion | None:
        mv = self.champion_version(name)
        if mv is None:
            return None
        run = self._call("reading the champion's run", self.client.get_run, mv.run_id)
        model = self.load_version(name, mv.version) if load else None
        return Champion(
            name=name,
            version=str(mv.version),
            run_id=mv.run_id,
            model=model,
            metrics=dict(run.data.metrics),
            tags=dict(mv.tags),
        )

    def last_decision(self, name: str) -> str | None:
        """The promotion decision of the latest training of `name` (the reason text), if any."""
        runs = self._call(
            "searching runs",
            self.client.search_runs,
            [self.experiment_id()],
            filter_string=f"tags.`titans.model` = '{name}' and tags.`titans.stage` = 'challenger'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        return runs[0].data.tags.get("titans.decision") if runs else None

    def promote(self, name: str, version: str, reason: str) -> None:
        self._call(
            "setting the champion alias", self.client.set_registered_model_alias, name, CHAMPION, version
        )
        self._call(
            "tagging the version",
            self.client.set_model_version_tag,
            name,
            version,
            "titans.promotion_reason",
            reason,
        )


def _requirements() -> list[str]:
    reqs = []
    for pkg in RUNTIME_PACKAGES:
        try:
            reqs.append(f"{pkg}=={metadata.version(pkg)}")
        except metadata.PackageNotFoundError:
            continue
    return reqs
