"""In-process export of models trained and registered by the training stage: the export of the
registered pipeline (its searched best model, calibration and all) gives Spark's scores on the test
split, and `load_inprocess` finds it from the registry alias, without Spark."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipelines.serve.export import TOLERANCE
from pipelines.serve.inprocess import InProcessModel, load_inprocess
from pipelines.train import stage
from pipelines.train.scoring import SCORE, load_model, score
from pipelines.train.tracking import log_inprocess_export
from tests.conftest import make_config
from tests.unit.serve.test_export import SCHEMA, _rows

FEATURES = ["x1", "visits", "device", "plan", "member"]


@pytest.mark.slow
def test_registered_models_export_and_load_from_the_registry(spark, tmp_path):
    path = str(tmp_path / "parity.parquet")
    spark.createDataFrame(_rows(), SCHEMA).write.parquet(path)
    models = {
        "lr": {"algorithm": "logistic_regression", "params": {"maxIter": 30},
               "search": {"method": "grid", "grid": {"regParam": [0.01, 0.1]}}},
        "rf": {"algorithm": "random_forest", "params": {"numTrees": 6, "maxDepth": 4}, "calibration": "isotonic"},
    }
    job = {"data": {"path": path, "format": "parquet", "split_column": "split"}, "task": "binary", "label": "label",
           "categorical": ["device", "plan", "member"], "models": models,
           "registry": {"name": "test-inprocess", "metric": "roc_auc", "margin": 0.0, "prediction_suite": None}}
    config = make_config(tmp_path, f"training.jobs={json.dumps({'parity': job})}", "training.plots=false")
    result = stage.run(config, spark, jobs=["parity"])
    test = spark.read.parquet(path).where("split = 'test'")
    for trained in result.models:
        uri = f"models:/test-inprocess/{trained.decision.version}"
        # The hook as `stage._train_one` calls it at registration, on the model MLflow stored.
        model = load_model(uri)
        assert log_inprocess_export(model, "binary", f"parity/{trained.model}", test, run_id=trained.run_id)
        scored = score(model, test, "binary").select(*FEATURES, SCORE).toPandas()  # 72 rows
        inprocess = load_inprocess(uri)
        assert isinstance(inprocess, InProcessModel)
        difference = np.abs(inprocess.predict_proba(scored[FEATURES]) - scored[SCORE].to_numpy()).max()
        assert difference <= TOLERANCE, (trained.model, difference)
    champion = load_inprocess("models:/test-inprocess@champion")
    assert champion.input_columns == FEATURES
    assert 0.0 < champion.predict_proba([{"x1": 0.3, "device": "watch"}])[0] < 1.0
