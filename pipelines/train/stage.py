"""The training stage: for each configured job, train its models, evaluate them, log everything
to MLflow and register/promote them.

Each model is one MLflow run with: the resolved config, the job and model parameters (and the
search results), test and validation metrics, plots, the Delta version of the table it trained and
was evaluated on, the git commit, and the model (Spark flavor, with signature and input example).
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from pyspark.sql import SparkSession

from pipelines.config import ClickmlConfig
from pipelines.config.models import TrainJobSpec
from pipelines.evaluate import plot_feature_importance, write_plots
from pipelines.lake import Lake
from pipelines.train import deep, recommend, supervised
from pipelines.train.data import Dataset, load
from pipelines.train.errors import TrainingError
from pipelines.train.promotion import Decision, base_rate_check, promote_group, register, register_and_promote
from pipelines.train.scoring import SCORE, load_model, score
from pipelines.train.supervised import Fitted
from pipelines.train.tracking import Tracking, configure, git_commit, log_inprocess_export, log_spark_model

log = logging.getLogger(__name__)

KEY_METRICS = {
    "binary": ("roc_auc", "log_loss", "base_rate_log_loss", "calibration_error"),
    "multiclass": ("accuracy", "weighted_f1", "macro_f1"),
    "regression": ("rmse", "mae", "r2"),
    "recommendation": ("precision_at_k", "recall_at_k", "ndcg_at_k", "map_at_k"),
}




@dataclass
class ModelResult:
    job: str
    model: str
    algorithm: str
    run_id: str
    metrics: dict[str, float]
    seconds: float
    decision: Decision | None = None

    def promotion(self) -> str:
        if self.decision is None:
            return "not registered"
        d = self.decision
        verdict = "champion" if d.promoted else "challenger"
        return f"{d.model_name} v{d.version} {verdict}: {d.reason}"


@dataclass
class TrainResult:
    tracking: Tracking | None = None
    models: list[ModelResult] = field(default_factory=list)

    def table(self) -> str:
        """The summary table: model, key metrics, promoted or why not."""
        lines = [f"{'job/model':<24} {'metrics':<84} promotion"]
        for m in self.models:
            keys = [k for k in KEY_METRICS.get(m.metrics.get("__task", ""), ()) if k in m.metrics] or list(m.metrics)[:4]
            shown = "  ".join(f"{k} {m.metrics[k]:.4f}" for k in keys)
            lines.append(f"{m.job + '/' + m.model:<24} {shown:<84} {m.promotion()}")
        return "\n".join(lines)

    def report(self) -> str:
        ui = f"\nMLflow UI: {self.tracking.ui_command}" if self.tracking else ""
        return self.table() + ui


def _flat(metrics: dict[str, float], prefix: str = "") -> dict[str, float]:
    return {f"{prefix}{k}": float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and math.isfinite(float(v))}


def _task_metrics(job: TrainJobSpec, metrics: dict[str, float]) -> dict[str, float]:
    """Rename @k metrics to the generic names the summary shows."""
    out = dict(metrics)
    if job.task == "recommendation":
        for base in ("precision", "recall", "ndcg", "map"):
            if f"{base}_at_{job.k}" in metrics:
                out[f"{base}_at_k"] = metrics[f"{base}_at_{job.k}"]
    return out


def selected_models(job, models: list[str] | None) -> dict:
    """The job's models to train: those named (disabled ones included), else the enabled ones."""
    return {m: spec for m, spec in job.models.items() if (m in models if models else spec.enabled)}


def run(
    config: ClickmlConfig,
    spark: SparkSession,
    jobs: list[str] | None = None,
    models: list[str] | None = None,
    promote: bool = True,
    run_group: str | None = None,
) -> TrainResult:
    """Train the named jobs (default: training.default_jobs, else all) and, optionally, only the
    named models of them.

    `promote=False` registers each model as `challenger`, tagged with `run_group`, and leaves the
    champion decision to `promote` (one step after models trained in parallel, so that they cannot
    overwrite each other's champion alias)."""
    if not promote and not run_group:
        raise TrainingError("registering without promotion needs a run group, for the promotion step to find the models")
    # A child session (same SparkContext, fresh session state) keeps training working after code
    # in the caller's session used DataFrame.observe: Spark 4.1 then fails MLlib model selection
    # with "Task not serializable: ObservationManager" (the initialised manager is not serializable
    # and the evaluators' closures capture the DataFrame's session).
    spark = spark.newSession()
    lake = Lake(config, spark)
    names = jobs or config.training.default_jobs or list(config.training.jobs)
    unknown = [n for n in names if n not in config.training.jobs]
    if unknown:
        raise TrainingError(f"unknown training job(s) {unknown}; configured: {', '.join(config.training.jobs) or 'none'}")
    result = TrainResult(tracking=configure(config))
    commit = git_commit(config.project_root)
    for name in names:
        job = config.training.jobs[name]
        selected = selected_models(job, models)
        if models and not selected:
            raise TrainingError(f"job {name} has none of the models {models}; it has {', '.join(job.models)}")
        if not selected:
            log.warning("job %s: every model is disabled (enabled: false); nothing trained", name)
            continue
        dataset = load(config, spark, job, lake)
        for model_name, spec in selected.items():
            log.info("training %s/%s (%s) on %s", name, model_name, spec.algorithm, dataset.source)
            result.models.append(_train_one(config, spark, name, job, model_name, dataset, commit, promote, run_group))
    return result


def _champion_scorer(job: TrainJobSpec, dataset: Dataset, name: str):
    """uri -> the registry metric of the model at `uri` on this job's evaluation data."""
    trainer = recommend if job.task == "recommendation" else supervised
    return lambda uri: trainer.metric_of(load_model(uri), dataset, job, job.registry.metric, f"{name} ({uri})")


def promotion_report(decisions: list[Decision], run_group: str) -> str:
    """One line per decision of `promote`."""
    if not decisions:
        return f"no model of run group {run_group} to promote"
    return "\n".join(f"{d.model_name} v{d.version} {'champion' if d.promoted else 'challenger'}: {d.reason}"
                     for d in decisions)


def promote(config: ClickmlConfig, spark: SparkSession, jobs: list[str] | None, run_group: str) -> list[Decision]:
    """The champion decision for the models that `run(..., promote=False, run_group=...)` registered:
    per job, the best of the group and the champion are scored on the same evaluation data, and the
    best becomes champion if it beats the champion by the margin."""
    import mlflow

    spark = spark.newSession()  # see `run`
    lake = Lake(config, spark)
    names = jobs or config.training.default_jobs or list(config.training.jobs)
    unknown = [n for n in names if n not in config.training.jobs]
    if unknown:
        raise TrainingError(f"unknown training job(s) {unknown}; configured: {', '.join(config.training.jobs) or 'none'}")
    configure(config)
    decisions = []
    for name in names:
        job = config.training.jobs[name]
        if job.registry is None:
            log.info("promote %s: no registry configured; nothing to decide", name)
            continue
        dataset = load(config, spark, job, lake)
        with mlflow.start_run(run_name=f"{name}/promotion"):
            mlflow.set_tags({"clickml.job": name, "clickml.run_group": run_group, "data.source": dataset.source,
                             "data.version": str(dataset.version)})
            decision = promote_group(job.registry, run_group, _champion_scorer(job, dataset, name))
            if decision is None:
                mlflow.set_tag("promotion.reason", f"no model of run group {run_group} passed its prediction gate")
                continue
            mlflow.set_tags({"promotion.promoted": str(decision.promoted), "promotion.reason": decision.reason,
                             "registry.version": decision.version})
            decisions.append(decision)
    return decisions


def _train_one(config: ClickmlConfig, spark: SparkSession, job_name: str, job: TrainJobSpec, model_name: str,
               dataset: Dataset, commit: str, promote: bool = True, run_group: str | None = None) -> ModelResult:
    import mlflow

    spec = job.models[model_name]
    trainer = recommend if job.task == "recommendation" else deep if spec.algorithm in deep.DEEP else supervised
    with mlflow.start_run(run_name=f"{job_name}/{model_name}") as run:
        if trainer is deep:
            fitted = deep.fit(config, dataset, job, job_name, model_name, spec)
        else:
            fitted = trainer.fit(dataset, job, model_name, spec)
        metrics = _task_metrics(job, fitted.evaluation.metrics)
        mlflow.set_tags({
            "clickml.job": job_name, "clickml.model": model_name, "clickml.algorithm": spec.algorithm,
            "clickml.task": job.task, "git_commit": commit, "clickml.profile": config.profile,
            "data.source": dataset.source, "data.version": str(dataset.version),
        })
        mlflow.log_params({
            "algorithm": spec.algorithm, "task": job.task, "label": job.label, "source": dataset.source,
            "source_version": dataset.version, "features": len(fitted.columns.all),
            **{f"param.{k}": v for k, v in fitted.params.items()},
        })
        mlflow.log_metrics(_flat(metrics))
        if fitted.validation is not None:
            mlflow.log_metrics(_flat(fitted.validation.metrics, "validation_"))
        mlflow.log_metric("training_seconds", fitted.seconds)
        if fitted.calibration is not None:
            mlflow.log_param("calibration", fitted.calibration.method)
            mlflow.log_metrics({f"calibration_holdout_log_loss_{k}": v for k, v in fitted.calibration.holdout_log_loss.items()
                                if math.isfinite(v)})
        _log_artifacts(config, job, model_name, fitted)
        _log_reference_profile(job, fitted, dataset)
        model_uri = _log_model(spark, job, fitted, dataset)
        decision = None
        if job.registry is not None:
            # before registering: a new version has its export when a model server resolves it
            log_inprocess_export(fitted.model, job.task, f"{job_name}/{model_name}", dataset.splits.get("test"))
            gate = _prediction_gate(config, job, fitted, dataset)
            if promote:
                decision = register_and_promote(job.registry, model_uri, metrics, gate,
                                                _champion_scorer(job, dataset, model_name), run.info.run_id)
            else:
                version = register(job.registry, model_uri, metrics, gate, run.info.run_id, run_group)
                decision = Decision(job.registry.name, version, False,
                                    f"registered in run group {run_group}; the promotion step decides",
                                    job.registry.metric, float(metrics[job.registry.metric]))
            mlflow.set_tags({"promotion.promoted": str(decision.promoted), "promotion.reason": decision.reason,
                             "registry.version": decision.version})
    metrics["__task"] = job.task  # type: ignore[assignment]
    return ModelResult(job_name, model_name, spec.algorithm, run.info.run_id, metrics, fitted.seconds, decision)


REFERENCE_PROFILE = "monitor/reference_profile.json"
"""Artifact path, in the model's run, of the profile drift monitoring compares with."""


def _log_reference_profile(job: TrainJobSpec, fitted: Fitted, dataset: Dataset) -> None:
    """Binary models: the training split's profile (feature bins and category frequencies, label
    base rate, the model's score distribution) logged beside the model for drift monitoring."""
    if job.task != "binary":
        return
    import mlflow

    from pipelines.monitor import build_profile

    scored = score(fitted.model, dataset.splits["train"], job.task)
    profile = build_profile(scored, numeric=list(fitted.columns.numeric), categorical=list(fitted.columns.categorical),
                            label=job.label, score=SCORE)
    mlflow.log_text(profile.to_json(), REFERENCE_PROFILE)
    log.info("reference profile: %d numeric, %d categorical feature(s), base rate %s -> %s", len(profile.numeric),
             len(profile.categorical), f"{profile.label_rate:.4f}" if profile.label_rate is not None else "n/a",
             REFERENCE_PROFILE)


def _log_artifacts(config: ClickmlConfig, job: TrainJobSpec, model_name: str, fitted: Fitted) -> None:
    import mlflow

    with tempfile.TemporaryDirectory(prefix="clickml-run-") as tmp:
        out = Path(tmp)
        (out / "config.json").write_text(json.dumps(config.model_dump(mode="json"), indent=2, default=str))
        (out / "evaluation.json").write_text(fitted.evaluation.to_json())
        if fitted.search:
            (out / "search.json").write_text(json.dumps(fitted.search, indent=2, default=str))
        mlflow.log_artifacts(str(out), "run")
        if config.training.plots:
            plots = out / "plots"
            plots.mkdir()
            if job.task == "binary":
                write_plots(fitted.evaluation, plots, prefix=f"{model_name}_")
            if fitted.importances is not None:
                names, values = fitted.importances
                plot_feature_importance(names, values, plots / f"{model_name}_feature_importance.png",
                                        title=f"{model_name}: feature importance")
            mlflow.log_artifacts(str(plots), "plots")


def _log_model(spark: SparkSession, job: TrainJobSpec, fitted: Fitted, dataset: Dataset) -> str:
    from mlflow.models import infer_signature

    inputs = list(fitted.columns.all) if job.task != "recommendation" else [job.user_column, job.item_column]
    sample = dataset.splits["test"].select(*inputs).limit(5)
    example = sample.toPandas()  # bounded: 5 rows
    # Numeric features as doubles in the signature: a serving request may leave a value out
    # (imputed by the pipeline), which an integer column cannot represent (MLflow warns about it).
    # Categorical integer columns stay integers: their string index is built from those values.
    whole = [c for c in fitted.columns.numeric if str(example[c].dtype).startswith(("int", "Int"))]
    example = example.astype({c: "float64" for c in whole})
    if deep.is_deep(fitted.model):  # pyfunc flavor (torch weights), scores Spark DataFrames when loaded
        from pipelines.deep.mlflow_model import log_deep_model

        return log_deep_model(fitted.model, example).model_uri
    predictions = fitted.model.transform(sample).select("prediction").toPandas()  # bounded: 5 rows
    signature = infer_signature(example, predictions)
    # pip_requirements given: inferring them loads the model in a subprocess with its own JVM.
    # The pipeline holds only pyspark.ml stages, so pyspark is all a scorer needs.
    import pyspark

    return log_spark_model(fitted.model, signature, example, [f"pyspark=={pyspark.__version__}"]).model_uri


def _prediction_gate(config: ClickmlConfig, job: TrainJobSpec, fitted: Fitted, dataset: Dataset) -> tuple[bool, str]:
    """(passed, report) of the gate before registration: binary models must have a test log loss
    below the base-rate predictor's, then pass the registry's prediction suite on their test
    predictions (P(1) as `probability`)."""
    checked = base_rate_check(fitted.evaluation.metrics) if job.task == "binary" else None
    if checked is not None and not checked[0]:
        return checked
    suite = job.registry.prediction_suite if job.registry else None
    if suite is None or job.task != "binary":
        return True, "no prediction expectations for this task" if suite else "prediction gate off"
    from pipelines.validate import validate_dataframe

    scored = score(fitted.model, dataset.splits["test"], job.task).select(SCORE)
    result = validate_dataframe(config, scored, suite, name=f"{job.registry.name}.predictions",
                                columns={"probability": SCORE}, raise_on_failure=False)
    return bool(result.success), result.report()
