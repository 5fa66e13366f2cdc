"""Classification and regression jobs: preprocessing + estimator in one Spark ML Pipeline,
optional hyperparameter search, evaluation on the held-out splits."""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field

from pyspark import StorageLevel
from pyspark.ml import Pipeline, PipelineModel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pipelines.config.models import ModelSpec, TrainJobSpec
from pipelines.evaluate import (
    Evaluation,
    binary_metrics,
    choose_threshold,
    multiclass_metrics,
    regression_metrics,
)
from pipelines.train.calibration import Calibrator, calibrated_model, fit_calibrator
from pipelines.train.data import Dataset, TrainingDataError
from pipelines.train.estimators import LINEAR, TREES, build_estimator
from pipelines.train.preprocess import (
    LABEL,
    WEIGHT,
    FeatureColumns,
    feature_columns,
    feature_names,
    preprocessing_stages,
)
from pipelines.train.scoring import SCORE, score
from pipelines.train.search import search_evaluator, searched, tuner

log = logging.getLogger(__name__)

MAX_TREE_BINS = 1024


@dataclass
class Fitted:
    """A trained model and what the stage logs about it."""

    model: PipelineModel
    columns: FeatureColumns
    params: dict[str, object]
    evaluation: Evaluation
    validation: Evaluation | None
    importances: tuple[list[str], list[float]] | None
    search: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    calibration: Calibrator | None = None
    """Binary models: the calibrator inside `model` (None: not calibrated)."""


def prepare(frame: DataFrame, job: TrainJobSpec, class_weights: dict[float, float] | None) -> DataFrame:
    """Add the label (double) and weight columns the estimators read."""
    out = frame.withColumn(LABEL, F.col(job.label).cast("double"))
    weight = F.col(job.weight).cast("double") if job.weight else F.lit(1.0)
    if class_weights:
        mapping = F.create_map(*[F.lit(x) for kv in class_weights.items() for x in kv])
        weight = weight * F.coalesce(mapping[F.col(LABEL)], F.lit(1.0))
    return out.withColumn(WEIGHT, weight)


def class_weights(train: DataFrame, job: TrainJobSpec, source: str, mode: str | None = None) -> dict[float, float] | None:
    """`balanced` weights n / (classes x count) (`mode`, default the job's); checks the labels."""
    if job.task not in ("binary", "multiclass"):
        return None
    # try_cast: a label that is not a number counts as null here and is reported as such below
    # (a plain cast raises Spark's CAST_INVALID_INPUT, naming neither the column's table nor the fix).
    rows = train.select(F.col(job.label).try_cast("double").alias("__c")).groupBy("__c").count().limit(1001).collect()
    counts = {r["__c"]: r["count"] for r in rows}  # bounded: one row per class (at most 1001)
    if not counts:
        raise TrainingDataError(f"{source}: the training split is empty")
    if None in counts:
        raw = F.col(job.label)
        # Bounded: a few examples of label values that are not numbers.
        bad = [r[0] for r in train.where(raw.isNotNull() & raw.try_cast("double").isNull()).select(raw.cast("string")).limit(5).collect()]
        what = f"a null or non-numeric label (e.g. {', '.join(map(repr, bad))})" if bad else "a null label"
        raise TrainingDataError(f"{source}: {counts[None]:,} training row(s) have {what} in {job.label!r}")
    labels = sorted(counts)
    expected = [0.0, 1.0] if job.task == "binary" else [float(i) for i in range(len(labels))]
    if (job.task == "binary" and not set(labels) <= set(expected)) or (job.task == "multiclass" and labels != expected):
        raise TrainingDataError(
            f"{source}: label {job.label!r} has values {labels[:10]}; {job.task} needs {'0/1' if job.task == 'binary' else '0..k-1'}"
        )
    if len(labels) < 2:
        raise TrainingDataError(f"{source}: the training split has a single class ({labels}) in {job.label!r}")
    log.info("class counts of %s in train: %s", job.label, {int(k): v for k, v in counts.items()})
    if (mode or job.class_weights) == "none":
        return None
    n, k = sum(counts.values()), len(counts)
    return {label: n / (k * count) for label, count in counts.items()}


def _tree_bins(train: DataFrame, columns: FeatureColumns) -> int:
    if not columns.categorical:
        return 32
    # Exact counts: an approximate count can fall short (300 values counted as 289), and a tree
    # refuses maxBins below a feature's number of values. Bounded: one row.
    row = train.agg(*[F.count_distinct(c).alias(c) for c in columns.categorical]).first()
    widest = max(int(row[c]) for c in columns.categorical) + 2  # + the unseen/null bucket
    if widest > MAX_TREE_BINS:
        raise TrainingDataError(
            f"categorical column(s) have up to {widest} values: more than trees handle ({MAX_TREE_BINS}); "
            "exclude high-cardinality ids or list them as numeric features"
        )
    return max(32, widest)


def _importances(model: PipelineModel, scored: DataFrame, algorithm: str) -> tuple[list[str], list[float]] | None:
    last = model.stages[-1]
    names = feature_names(scored)
    if algorithm in TREES:
        values = list(last.featureImportances.toArray())
    elif algorithm in LINEAR and hasattr(last, "coefficientMatrix") and last.coefficientMatrix.numRows > 1:
        # Multinomial (more than two classes, or `family: multinomial` on two): one coefficient
        # row per class (`coefficients` raises); a feature's weight is its largest magnitude over
        # the classes.
        matrix = last.coefficientMatrix.toArray()
        values = [float(abs(matrix[:, j]).max()) for j in range(matrix.shape[1])]
    elif algorithm in LINEAR and hasattr(last, "coefficients"):
        # Signed, on standardised features (comparable): the plot ranks by magnitude and draws
        # negative coefficients in red.
        values = [float(v) for v in last.coefficients.toArray()]
    else:
        return None
    return names[: len(values)], values


_ALL_NULL = re.compile(r"All the values in (.+?)__(?:num|log) are Null")


def _fit_checked(estimator, prepared: DataFrame, source: str, name: str):
    """`estimator.fit(prepared)`; a numeric feature with no value in the training split (Spark's
    mean imputation refuses it, naming an internal column) is reported by its name."""
    try:
        return estimator.fit(prepared)
    except Exception as exc:
        found = _ALL_NULL.search(str(exc))
        if found is None:
            raise
        raise TrainingDataError(
            f"{source}: model {name}: numeric feature {found.group(1)!r} has no value in the training split "
            "(all null or NaN); exclude it or fill it"
        ) from exc


def pipeline_stages(columns: FeatureColumns, spec: ModelSpec) -> list:
    """The preprocessing stages of model `spec`: linear models get one-hot encoding and scaling;
    logistic regression (`numeric_transform: auto`) log-transformed numeric features. Linear
    regression keeps them as they are: a target linear in a feature would no longer be."""
    linear = spec.algorithm in LINEAR
    log_numeric = spec.numeric_transform == "log1p" or (
        spec.numeric_transform == "auto" and spec.algorithm == "logistic_regression")
    return preprocessing_stages(columns, one_hot=linear, scale=linear, log_numeric=log_numeric)


def fit(dataset: Dataset, job: TrainJobSpec, name: str, spec: ModelSpec) -> Fitted:
    started = time.time()
    train = dataset.splits["train"]
    columns = feature_columns(train, job, dataset.source)
    weights = class_weights(train, job, dataset.source, spec.class_weights)
    weighted = bool(weights) or job.weight is not None
    params = dict(spec.params)
    if spec.algorithm in TREES and "maxBins" not in params:
        params["maxBins"] = _tree_bins(train, columns)
    estimator = build_estimator(spec.algorithm, params, job.data.seed, weighted)
    pipeline = Pipeline(stages=[*pipeline_stages(columns, spec), estimator])
    prepared = prepare(train, job, weights).persist(StorageLevel.MEMORY_AND_DISK)
    search_results: list[dict] = []
    try:
        search = tuner(pipeline, estimator, spec.search, search_evaluator(job.task, weighted), job.data.seed, name,
                       spec.algorithm)
        if search is None:
            model = _fit_checked(pipeline, prepared, dataset.source, name)
        else:
            tuned = _fit_checked(search, prepared, dataset.source, name)
            model = tuned.bestModel
            metrics = tuned.avgMetrics if hasattr(tuned, "avgMetrics") else tuned.validationMetrics
            for param_map, value in zip(search.getEstimatorParamMaps(), metrics):
                search_results.append({**{p.name: v for p, v in param_map.items()}, "metric": float(value)})
            best = model.stages[-1]
            varied = searched(spec.search, spec.algorithm)
            params.update({p: best.getOrDefault(best.getParam(p)) for p in varied})
            log.info("model %s: best parameters %s", name, {p: params[p] for p in varied})
    finally:
        prepared.unpersist()
    importances = _importances(model, model.transform(train.limit(1)), spec.algorithm)
    calibrator = calibrate(model, dataset, job, spec, name)
    if calibrator is not None:
        model = calibrated_model(model, calibrator)
    evaluation, validation = evaluate(model, dataset, job, name)
    return Fitted(model, columns, params, evaluation, validation, importances, search_results, time.time() - started,
                  calibrator)


def calibrate(model, dataset: Dataset, job: TrainJobSpec, spec: ModelSpec, name: str) -> Calibrator | None:
    """The calibrator of a binary model's P(1) (trained, not yet calibrated), fitted on the
    validation split; None for other tasks, `calibration: none`, or without a validation split."""
    method = spec.calibration or job.calibration
    if job.task != "binary" or method == "none":
        return None
    validation = dataset.splits.get("validation")
    if validation is None:
        log.warning("model %s: no validation split, so no calibration: its scores are not probabilities "
                    "(give the job a validation split)", name)
        return None
    return fit_calibrator(score(model, validation, job.task), job.label, SCORE, job.weight, method, job.data.seed,
                          table=f"{name} validation")


def evaluate(model: PipelineModel, dataset: Dataset, job: TrainJobSpec, name: str) -> tuple[Evaluation, Evaluation | None]:
    """(test evaluation, validation evaluation or None). For binary models the threshold is
    chosen on the validation split (F1 or fixed, per the job) and applied to the test split."""
    test = score(model, dataset.splits["test"], job.task)
    validation_frame = dataset.splits.get("validation")
    validation = score(model, validation_frame, job.task) if validation_frame is not None else None
    weight = job.weight
    if job.task == "binary":
        threshold = job.fixed_threshold
        validation_eval = None
        if validation is not None:
            threshold = choose_threshold(validation, job.label, SCORE, job.threshold, job.fixed_threshold, weight,
                                         table=f"{name} validation")
            validation_eval = binary_metrics(validation, job.label, SCORE, threshold, weight, table=f"{name} validation")
        return binary_metrics(test, job.label, SCORE, threshold, weight, table=f"{name} test"), validation_eval
    metric = multiclass_metrics if job.task == "multiclass" else regression_metrics
    if job.task == "multiclass":
        # Labels given as numeric strings ("0", "1", "2") passed the class check (try_cast) and
        # trained; the evaluation compares them with the double prediction, so it gets doubles too.
        test = test.withColumn(job.label, F.col(job.label).try_cast("double"))
        validation = validation.withColumn(job.label, F.col(job.label).try_cast("double")) if validation is not None else None
    validation_eval = metric(validation, job.label, "prediction", weight, table=f"{name} validation") if validation is not None else None
    return metric(test, job.label, "prediction", weight, table=f"{name} test"), validation_eval


def metric_of(model: PipelineModel, dataset: Dataset, job: TrainJobSpec, metric: str, name: str) -> float:
    """One test metric of another model (the champion) on this job's evaluation data."""
    evaluation, _ = evaluate(model, dataset, job, name)
    return float(evaluation.metrics.get(metric, float("nan")))
