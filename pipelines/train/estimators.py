"""The algorithms a training job can name, as pyspark.ml estimators on our column names."""

from __future__ import annotations

from typing import Any

from pyspark.ml import Estimator
from pyspark.ml.classification import (
    GBTClassifier,
    LogisticRegression,
    RandomForestClassifier,
)
from pyspark.ml.recommendation import ALS
from pyspark.ml.regression import GBTRegressor, LinearRegression, RandomForestRegressor

from pipelines.train.errors import ModelSpecError
from pipelines.train.preprocess import FEATURES, LABEL, WEIGHT

USER_INDEX = "__user_idx"
ITEM_INDEX = "__item_idx"

CLASSES = {
    "logistic_regression": LogisticRegression,
    "random_forest": RandomForestClassifier,
    "gbt": GBTClassifier,
    "linear_regression": LinearRegression,
    "random_forest_regression": RandomForestRegressor,
    "gbt_regression": GBTRegressor,
    "als": ALS,
}
LINEAR = frozenset({"logistic_regression", "linear_regression"})
"""Algorithms that get one-hot encoding and scaling."""
TREES = frozenset({"random_forest", "gbt", "random_forest_regression", "gbt_regression"})




def build_estimator(algorithm: str, params: dict[str, Any], seed: int, weighted: bool, implicit: bool = True) -> Estimator:
    cls = CLASSES[algorithm]
    if algorithm == "als":
        estimator = cls(
            userCol=USER_INDEX, itemCol=ITEM_INDEX, ratingCol=LABEL, implicitPrefs=implicit,
            coldStartStrategy="drop", seed=seed, nonnegative=True,
        )
    else:
        estimator = cls(featuresCol=FEATURES, labelCol=LABEL)
        if estimator.hasParam("seed"):
            estimator.setSeed(seed)
        if weighted:
            estimator.set(estimator.getParam("weightCol"), WEIGHT)
    return set_params(estimator, params, algorithm)


def set_params(estimator: Estimator, params: dict[str, Any], algorithm: str) -> Estimator:
    for name, value in params.items():
        if not estimator.hasParam(name):
            known = sorted(p.name for p in estimator.params)
            raise ModelSpecError(f"{algorithm} has no parameter {name!r}; parameters: {', '.join(known)}")
        try:
            estimator.set(estimator.getParam(name), value)
        except (TypeError, ValueError) as exc:
            raise ModelSpecError(f"{algorithm}: bad value {value!r} for {name}: {exc}") from None
    return estimator
