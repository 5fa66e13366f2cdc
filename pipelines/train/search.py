"""Hyperparameter search on Spark: grid or random over the configured values, scored by
cross-validation or a train/validation split of the training rows, models fitted in parallel."""

from __future__ import annotations

import itertools
import logging
import random

from pyspark.ml import Estimator, Pipeline
from pyspark.ml.evaluation import (
    BinaryClassificationEvaluator,
    Evaluator,
    MulticlassClassificationEvaluator,
    RegressionEvaluator,
)
from pyspark.ml.tuning import CrossValidator, TrainValidationSplit

from pipelines.config.models import SearchSpec
from pipelines.train.estimators import ModelSpecError
from pipelines.train.preprocess import LABEL, WEIGHT

log = logging.getLogger(__name__)


def search_evaluator(task: str, weighted: bool) -> Evaluator:
    """The metric the search maximises (RMSE is minimised)."""
    if task == "binary":
        evaluator = BinaryClassificationEvaluator(labelCol=LABEL, rawPredictionCol="rawPrediction", metricName="areaUnderROC")
    elif task == "multiclass":
        evaluator = MulticlassClassificationEvaluator(labelCol=LABEL, predictionCol="prediction", metricName="f1")
    else:
        evaluator = RegressionEvaluator(labelCol=LABEL, predictionCol="prediction", metricName="rmse")
    if weighted:
        evaluator.set(evaluator.getParam("weightCol"), WEIGHT)
    return evaluator


def param_maps(estimator: Estimator, search: SearchSpec, seed: int, model: str) -> list[dict]:
    """The parameter combinations to try: all of the grid, or `samples` drawn from it."""
    names = sorted(search.grid)
    for name in names:
        if not estimator.hasParam(name):
            raise ModelSpecError(f"model {model}: search.grid names {name!r}, not a parameter of {type(estimator).__name__}")
    combos = list(itertools.product(*[search.grid[n] for n in names]))
    if search.method == "random" and len(combos) > search.samples:
        combos = random.Random(seed).sample(combos, search.samples)
    return [{estimator.getParam(n): v for n, v in zip(names, combo)} for combo in combos]


def tuner(pipeline: Pipeline, estimator: Estimator, search: SearchSpec, evaluator: Evaluator, seed: int, model: str):
    """A CrossValidator or TrainValidationSplit over the pipeline, or None without a search."""
    if search.method == "none" or not search.grid:
        return None
    maps = param_maps(estimator, search, seed, model)
    log.info("model %s: %s search over %d combination(s) (%s), parallelism %d",
             model, search.method, len(maps), search.validation, search.parallelism)
    if search.validation == "cross_validation":
        return CrossValidator(estimator=pipeline, estimatorParamMaps=maps, evaluator=evaluator,
                              numFolds=search.folds, parallelism=search.parallelism, seed=seed)
    return TrainValidationSplit(estimator=pipeline, estimatorParamMaps=maps, evaluator=evaluator,
                                trainRatio=search.train_ratio, parallelism=search.parallelism, seed=seed)
