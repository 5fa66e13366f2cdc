"""How the training stage logs an MLlib model: with its signature and input example, and without
MLflow loading it back to score that example (MLflow 3.17's spark flavor drops
validate_serving_input=False on a local artifact store; pipelines/train/stage.py passes it on)."""

from __future__ import annotations

import json

import mlflow.models.utils
import pytest
from mlflow.models import infer_signature
from pyspark.ml import Pipeline
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.feature import VectorAssembler

from pipelines.train.stage import log_spark_model


@pytest.fixture
def fitted(spark):
    frame = spark.createDataFrame([(float(i), float(i % 3), float(i > 5)) for i in range(12)], ["a", "b", "label"])
    model = Pipeline(stages=[VectorAssembler(inputCols=["a", "b"], outputCol="features"),
                             LogisticRegression(maxIter=5)]).fit(frame)
    example = frame.select("a", "b").limit(3).toPandas()
    predictions = model.transform(frame.limit(3)).select("prediction").toPandas()
    return model, example, infer_signature(example, predictions)


def test_a_spark_model_is_logged_with_its_example_and_not_loaded_back(spark, fitted, tmp_path, monkeypatch):
    loaded_back = []
    monkeypatch.setattr(mlflow.models.utils, "_validate_serving_input", lambda **kw: loaded_back.append(kw))
    model, example, signature = fitted
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = mlflow.create_experiment("log-spark-model", artifact_location=str(tmp_path / "artifacts"))
    try:
        with mlflow.start_run(experiment_id=experiment) as run:
            info = log_spark_model(model, signature, example, ["pyspark"])
    finally:
        mlflow.set_tracking_uri("")
    assert loaded_back == []  # before the fix: MLflow loaded the model as a pyfunc and scored the example
    assert info.model_uri == f"runs:/{run.info.run_id}/model"  # where the flavor logs it on this store
    assert info.signature == signature and info.saved_input_example_info is not None
    folder = tmp_path / "artifacts" / run.info.run_id / "artifacts" / "model"
    assert json.loads((folder / "input_example.json").read_text())["columns"] == ["a", "b"]
    assert (folder / "serving_input_example.json").exists() and (folder / "sparkml" / "stages").is_dir()
    assert "pyspark" in (folder / "requirements.txt").read_text().split()
