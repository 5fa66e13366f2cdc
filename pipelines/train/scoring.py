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
    """The model at an MLflow URI, e.g. `models:/clickml-propensity@champion`: a Spark pipeline
    model, or a deep model (pyfunc flavor) that scores Spark DataFrames the same way."""
    import mlflow.spark
    from mlflow.models import get_model_info

    if "spark" in get_model_info(uri).flavors:
        return mlflow.spark.load_model(uri)
    from pipelines.deep.mlflow_model import load_deep_model

    return load_deep_model(uri)
