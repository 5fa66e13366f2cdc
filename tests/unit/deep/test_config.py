"""Deep models in the training config: binary and regression only, no Spark-ML search."""

from __future__ import annotations

import json

import pytest

from pipelines.config.loader import ConfigError
from tests.conftest import make_config


def _job(task: str, model: dict) -> str:
    job = {"data": {"path": "x.csv", "format": "csv"}, "task": task, "label": "y", "models": {"deep": model}}
    return f"training.jobs={json.dumps({'j': job})}"


def test_base_config_trains_a_small_deep_model_on_cpu(tmp_path):
    deep = make_config(tmp_path).training.jobs["propensity"].models["deep"]
    assert deep.algorithm == "deep_mlp" and deep.params["numProcesses"] == 2 and deep.params["useGpu"] == "auto"


@pytest.mark.parametrize(("task", "model", "message"), [
    ("multiclass", {"algorithm": "deep_mlp"}, "supports tasks binary and regression"),
    ("binary", {"algorithm": "wide_and_deep", "search": {"method": "grid", "grid": {"stepSize": [0.1]}}},
     "does not support search"),
])
def test_deep_models_reject_what_they_cannot_do(tmp_path, task, model, message):
    with pytest.raises(ConfigError, match=message):
        make_config(tmp_path, _job(task, model))


def test_deep_models_fit_binary_and_regression(tmp_path):
    for task in ("binary", "regression"):
        assert make_config(tmp_path, _job(task, {"algorithm": "wide_and_deep"})).training.jobs["j"].task == task
