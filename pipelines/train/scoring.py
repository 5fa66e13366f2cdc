"""Scoring with a trained or registered pipeline model: raw rows in, predictions out."""

from __future__ import annotations

from pyspark.ml import PipelineModel
from pyspark.ml.functions import vector_to_array
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

SCORE = "score"
"""Binary models: P(positive), a double in [0, 1]."""


def score(model: PipelineModel, frame: DataFrame, task: str = "binary") -> DataFrame:
    """`model.transform(frame)` plus, for binary classification, `score` = P(label = 1)."""
    scored = model.transform(frame)
    if task == "binary":
        scored = scored.withColumn(SCORE, vector_to_array(F.col("probability")).getItem(1))
    return scored


def load_model(uri: str) -> PipelineModel:
    """A Spark pipeline model from an MLflow URI, e.g. `models:/clickml-propensity@champion`."""
    import mlflow.spark

    return mlflow.spark.load_model(uri)
