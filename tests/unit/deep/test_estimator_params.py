"""The estimator's parameters: pyspark.ml names, clear errors naming the parameter."""

from __future__ import annotations

import pytest

from pipelines.deep import DeepParamError, DeepTabularClassifier, DeepTabularRegressor
from pipelines.train.errors import ModelSpecError


def test_params_have_pyspark_names_and_defaults():
    estimator = DeepTabularClassifier(maxIter=3, hiddenLayers=[8], numProcesses="2")
    assert estimator.getOrDefault("maxIter") == 3 and estimator.getOrDefault("numProcesses") == 2
    assert estimator.getOrDefault("labelCol") == "label" and estimator.getOrDefault("backend") == "torch_distributor"
    assert DeepTabularRegressor().task == "regression"
    assert {"featuresCol"} & {p.name for p in estimator.params} == set()


def test_unknown_and_bad_parameters_name_the_parameter():
    with pytest.raises(DeepParamError, match=r"has no parameter 'maxIters'; parameters: .*maxIter") as err:
        DeepTabularClassifier(maxIters=3)
    assert isinstance(err.value, ModelSpecError)
    with pytest.raises(DeepParamError, match="bad value 'many' for maxIter"):
        DeepTabularClassifier(maxIter="many")
    with pytest.raises(DeepParamError, match="backend must be one of torch_distributor, horovod"):
        DeepTabularClassifier(backend="mpi")._check()
