"""The deep model in the training stage: a `models:` entry with algorithm deep_mlp trains on Spark
executors with TorchDistributor (workers read the Delta snapshot directly), learns, keeps the best
epoch in its checkpoint, logs like the MLlib models (pyfunc flavor with a signature, the same
metrics and plots), takes part in champion/challenger promotion, and `models:/<name>@champion`
scores a Spark DataFrame exactly as the trained model's `transform` does."""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from mlflow import MlflowClient

from pipelines.deep import DeepTabularModel
from pipelines.lake import Lake
from pipelines.train import stage
from pipelines.train.promotion import CHAMPION
from pipelines.train.scoring import load_model, score
from tests.conftest import make_config
from tests.integration.train.test_train import _binary_frame


def _frame(n: int, seed: int) -> pd.DataFrame:
    return _binary_frame(n, seed, app_effect=1.5, intercept=-0.5)


@pytest.mark.slow
def test_deep_model_trains_logs_and_becomes_champion(spark, tmp_path):
    models = {
        "weak": {"algorithm": "random_forest", "params": {"numTrees": 2, "maxDepth": 1}},
        "deep": {"algorithm": "deep_mlp", "params": {"maxIter": 3, "batchSize": 128, "stepSize": 0.01,
                                                     "hiddenLayers": [16], "numProcesses": 2, "timeout": 240}},
    }
    job = {"data": {"table": "gold.deep_training", "split_column": "split"}, "task": "binary", "label": "label",
           "exclude": ["row_id"], "models": models,
           "registry": {"name": "test-deep", "metric": "roc_auc", "prediction_suite": None}}
    config = make_config(tmp_path, f"training.jobs={json.dumps({'deep': job})}")
    Lake(config, spark).write(spark.createDataFrame(_frame(2000, seed=11)).repartition(4), "gold.deep_training",
                              mode="overwrite")

    result = stage.run(config, spark, jobs=["deep"])
    weak, deep = result.models
    assert weak.decision.promoted and weak.decision.reason == "no champion yet"
    assert deep.algorithm == "deep_mlp" and deep.metrics["roc_auc"] > 0.78
    assert deep.decision.promoted and "better" in deep.decision.reason  # beat the RF champion, scored the same way
    assert deep.decision.champion_version == weak.decision.version

    client = MlflowClient()
    run = mlflow.get_run(deep.run_id)
    assert run.data.tags["deep.backend"] == "torch_distributor" and run.data.params["param.numProcesses"] == "2"
    assert "validation_roc_auc" in run.data.metrics and "epoch_val_loss" in run.data.metrics
    assert "plots/deep_roc.png" in {a.path for a in client.list_artifacts(deep.run_id, "plots")}
    assert "run/deep_history.json" in {a.path for a in client.list_artifacts(deep.run_id, "run")}
    version = client.get_model_version_by_alias("test-deep", CHAMPION)
    assert str(version.version) == deep.decision.version
    info = mlflow.models.get_model_info("models:/test-deep@champion")
    assert "python_function" in info.flavors and info.signature is not None

    champion = load_model("models:/test-deep@champion")
    # Calibrated on the validation split; the pyfunc and Spark scoring below both apply it.
    assert champion.state.calibrator() is not None
    assert champion.state.calibrator().method == run.data.params["calibration"]
    rows = _frame(30, seed=12).drop(columns=["label", "split"])
    raw = spark.createDataFrame(rows)
    scored = score(champion, raw).select("score").toPandas()  # 30 rows
    assert len(scored) == 30 and scored["score"].between(0, 1).all()

    # the champion's checkpoint is its best epoch; restoring it scores like the logged model
    history = [h["val_loss"] for h in champion.history]
    assert champion.best_epoch == int(np.argmin(history)) and len(history) == 3
    restored = DeepTabularModel.from_checkpoint(champion.state.checkpoint_uri, champion)
    assert all(torch.equal(restored.state.state_dict[k], v) for k, v in champion.state.state_dict.items())
    logged = mlflow.pyfunc.load_model("models:/test-deep@champion").predict(rows)
    from_restored = score(restored, raw).select("score").toPandas()  # 30 rows
    np.testing.assert_allclose(scored["score"], logged["probability"], rtol=1e-6)
    np.testing.assert_allclose(from_restored["score"], logged["probability"], rtol=1e-6)
