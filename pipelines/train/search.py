"""Hyperparameter search on Spark: grid or random over the configured values (or a random search
over the algorithm's default space, pipelines/train/spaces.py), scored by cross-validation or a
train/validation split of the training rows, models fitted in parallel."""

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
from pipelines.train import spaces
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


def combinations(search: SearchSpec, seed: int, algorithm: str | None = None, implicit: bool = True) -> list[dict]:
    """The parameter combinations to try (name -> value): all of the grid, `trials` drawn from it,
    or, for a random search without a grid, `trials` drawn from the algorithm's default space."""
    if search.method == "none":
        return []
    if not search.grid:
        if search.method == "random" and algorithm in spaces.SPACES:
            return spaces.draw(algorithm, search.trials, seed, implicit)
        return []
    names = sorted(search.grid)
    combos = list(itertools.product(*[search.grid[n] for n in names]))
    if search.method == "random" and len(combos) > search.trials:
        combos = random.Random(seed).sample(combos, search.trials)
    return [dict(zip(names, combo)) for combo in combos]


def param_maps(estimator: Estimator, search: SearchSpec, seed: int, model: str, algorithm: str | None = None) -> list[dict]:
    """`combinations` as Spark param maps of `estimator` (unknown parameter names refused)."""
    maps = []
    for combo in combinations(search, seed, algorithm):
        for name in combo:
            if not estimator.hasParam(name):
                raise ModelSpecError(f"model {model}: search.grid names {name!r}, not a parameter of {type(estimator).__name__}")
        maps.append({estimator.getParam(n): v for n, v in combo.items()})
    return maps


def searched(search: SearchSpec, algorithm: str) -> list[str]:
    """The parameter names a search varies."""
    if search.method == "none":
        return []
    return sorted(search.grid) if search.grid else sorted(spaces.SPACES.get(algorithm, {}))


def tuner(pipeline: Pipeline, estimator: Estimator, search: SearchSpec, evaluator: Evaluator, seed: int, model: str,
          algorithm: str | None = None):
    """A CrossValidator or TrainValidationSplit over the pipeline, or None without a search."""
    maps = param_maps(estimator, search, seed, model, algorithm)
    if not maps:
        return None
    log.info("model %s: %s search over %d combination(s) (%s), parallelism %d",
             model, search.method, len(maps), search.validation, search.parallelism)
    if search.validation == "cross_validation":
        return CrossValidator(estimator=pipeline, estimatorParamMaps=maps, evaluator=evaluator,
                              numFolds=search.folds, parallelism=search.parallelism, seed=seed)
    return TrainValidationSplit(estimator=pipeline, estimatorParamMaps=maps, evaluator=evaluator,
                                trainRatio=search.train_ratio, parallelism=search.parallelism, seed=seed)
