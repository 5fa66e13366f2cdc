"""MLflow locations for a config (embedded defaults, a tracking server, a remote lakehouse), and
how an MLlib model is logged: with its signature and input example, and without MLflow loading it
back to score that example (MLflow 3.17's spark flavor drops validate_serving_input=False on a
local artifact store; `log_spark_model` passes it on)."""

from __future__ import annotations

import json

import mlflow.models.utils
import pytest
from mlflow.models import infer_signature
from pyspark.ml import Pipeline
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.feature import VectorAssembler

from pipelines.train.tracking import TrackingError, default_uris, log_spark_model
from tests.conftest import make_config


def test_a_local_lakehouse_gets_sqlite_and_artifacts_beside_it(tmp_path):
    tracking, artifacts = default_uris(make_config(tmp_path))
    assert tracking == f"sqlite:///{tmp_path / 'lakehouse' / '_mlflow' / 'mlflow.db'}"
    assert artifacts == str(tmp_path / "lakehouse" / "_mlflow" / "artifacts")


def test_a_tracking_server_without_an_artifact_root_keeps_the_servers_default(tmp_path):
    # The s3-standalone profile: lakehouse on S3, MLflow server with its artifact root in the
    # bucket. This raised "lake.root ... is not local" and the demo failed on the stack.
    config = make_config(tmp_path, "lake.root=s3a://bucket/lake", "mlflow.tracking_uri=http://127.0.0.1:5000")
    assert default_uris(config) == ("http://127.0.0.1:5000", None)


def test_a_remote_lakehouse_without_a_tracking_server_is_an_error_naming_the_keys(tmp_path):
    with pytest.raises(TrackingError, match="lake.root s3a://bucket/lake is not local: set mlflow.tracking_uri"):
        default_uris(make_config(tmp_path, "lake.root=s3a://bucket/lake"))
    # a database tracking store still needs an artifact root
    with pytest.raises(TrackingError):
        default_uris(make_config(tmp_path, "lake.root=s3a://bucket/lake", f"mlflow.tracking_uri=sqlite:///{tmp_path}/m.db"))


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
