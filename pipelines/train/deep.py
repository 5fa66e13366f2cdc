"""Binary and regression jobs with the deep tabular model (`deep_mlp`, `wide_and_deep`).

The model trains data-parallel on Spark executors (pipelines.deep). When the job's table is a
Delta table split by a column, the workers read the snapshot's own Parquet files (train rows for
training, validation rows for early stopping); otherwise Spark executors stage the splits as
Parquet first. Evaluation, threshold choice, MLflow logging and promotion are the same as for
the MLlib models.
"""

from __future__ import annotations

import logging
import time

from pipelines.config import ClickmlConfig
from pipelines.config.models import ModelSpec, TrainJobSpec
from pipelines.lake import Lake
from pipelines.train import supervised
from pipelines.train.data import Dataset
from pipelines.train.preprocess import feature_columns
from pipelines.train.supervised import Fitted, class_weights

log = logging.getLogger(__name__)

DEEP = frozenset({"deep_mlp", "wide_and_deep"})
VALIDATION_FLAG = "__is_validation"
metric_of = supervised.metric_of


def is_deep(model: object) -> bool:
    """Whether `model` is a deep model (checked without importing torch: the `dl` extra is optional)."""
    return type(model).__module__.startswith("pipelines.deep.")


def checkpoint_root(config: ClickmlConfig, job_name: str, model_name: str) -> str:
    return f"{config.lake.root.rstrip('/')}/_checkpoints/deep/{job_name}/{model_name}"


def fit(config: ClickmlConfig, dataset: Dataset, job: TrainJobSpec, job_name: str, name: str, spec: ModelSpec) -> Fitted:
    from pipelines.deep import (  # torch: the `dl` extra
        DeepTabularClassifier,
        DeepTabularRegressor,
    )

    started = time.time()
    train = dataset.splits["train"]
    columns = feature_columns(train, job, dataset.source)
    weights = class_weights(train, job, dataset.source, spec.class_weights)
    cls = DeepTabularClassifier if job.task == "binary" else DeepTabularRegressor
    estimator = cls(
        numericCols=list(columns.numeric), categoricalCols=list(columns.categorical), labelCol=job.label,
        seed=job.data.seed, wideAndDeep=spec.algorithm == "wide_and_deep",
        checkpointDir=checkpoint_root(config, job_name, name),
    )
    if job.weight:
        estimator.setParams(weightCol=job.weight)
    estimator.setParams(**spec.params)  # DeepParamError (a ModelSpecError) names a bad parameter
    if weights:
        estimator.setClassWeights(weights)
    if config.lake.root.startswith(("s3a://", "s3://")):
        from pipelines.lake.location import s3_storage_options

        estimator.setStorageOptions(s3_storage_options(config.lake.storage))
    data, indicator = _training_input(config, dataset, job)
    if indicator:
        estimator.setParams(validationIndicatorCol=indicator)
    model = estimator.fit(data)
    _log_history(model)
    calibrator = supervised.calibrate(model, dataset, job, spec, name)
    if calibrator is not None:  # stored with the weights: scoring and the MLflow pyfunc apply it
        model.state.extra["calibration"] = calibrator.to_dict()
    evaluation, validation = supervised.evaluate(model, dataset, job, name)
    params = {p.name: v for p, v in estimator.extractParamMap().items() if p.name not in ("checkpointDir",)}
    params.update(best_epoch=model.best_epoch, epochs_run=len(model.history), processes=model.state.processes,
                  device=model.state.device, checkpoint=model.state.checkpoint_uri)
    return Fitted(model, columns, params, evaluation, validation, None, [], time.time() - started, calibrator)


def _training_input(config: ClickmlConfig, dataset: Dataset, job: TrainJobSpec):
    """(input, validation indicator column): the snapshot itself when the workers can read it
    directly, else the train and validation rows with a column marking the validation ones."""
    spark = dataset.splits["train"].sparkSession
    if dataset.version is not None and job.data.split_column and job.data.table is not None:
        from pipelines.deep import SnapshotSplit

        lake = Lake(config, spark)
        log.info("deep model: workers read %s version %d directly (split column %s)", dataset.source, dataset.version,
                 job.data.split_column)
        return SnapshotSplit.from_lake(lake, job.data.table, job.data.split_column, version=dataset.version), None
    from pyspark.sql import functions as F

    frame = dataset.splits["train"].withColumn(VALIDATION_FLAG, F.lit(False))
    if "validation" in dataset.splits:
        frame = frame.unionByName(dataset.splits["validation"].withColumn(VALIDATION_FLAG, F.lit(True)))
    return frame, VALIDATION_FLAG


def _log_history(model) -> None:
    import mlflow

    if mlflow.active_run() is None:
        return
    for entry in model.history:
        step = int(entry["epoch"])
        mlflow.log_metrics({f"epoch_{k}": float(v) for k, v in entry.items() if k != "epoch"}, step=step)
    mlflow.log_dict({"history": model.history, "best_epoch": model.best_epoch,
                     "checkpoint": model.state.checkpoint_uri, "backend": model.state.backend,
                     "samples_per_second": model.state.samples_per_second}, "run/deep_history.json")
    mlflow.set_tags({"deep.backend": model.state.backend, "deep.processes": str(model.state.processes),
                     "deep.device": model.state.device, "deep.checkpoint": model.state.checkpoint_uri})
