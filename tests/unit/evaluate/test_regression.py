"""Regression metrics against scikit-learn."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from pipelines.evaluate import EvaluationInputError, regression_metrics


@pytest.fixture(scope="module")
def pdf() -> pd.DataFrame:
    rng = np.random.default_rng(5)
    label = rng.normal(1000.0, 3.0, 2000)  # large mean, small spread: a naive sum-of-squares R2 would drift
    return pd.DataFrame({"label": label, "prediction": label + rng.normal(0, 1.0, 2000),
                         "weight": rng.uniform(0.1, 2.0, 2000)})


@pytest.mark.parametrize("weighted", [False, True])
def test_agrees_with_sklearn(spark, pdf, weighted):
    w = pdf["weight"] if weighted else None
    ev = regression_metrics(spark.createDataFrame(pdf), weight_col="weight" if weighted else None)
    y, p = pdf["label"], pdf["prediction"]
    expected = {
        "rmse": skm.root_mean_squared_error(y, p, sample_weight=w),
        "mse": skm.mean_squared_error(y, p, sample_weight=w),
        "mae": skm.mean_absolute_error(y, p, sample_weight=w),
        "r2": skm.r2_score(y, p, sample_weight=w),
    }
    for name, value in expected.items():
        assert ev.metrics[name] == pytest.approx(value, rel=1e-9), name
    assert ev.metrics["rows"] == 2000
    assert json.loads(ev.to_json())["metrics"]["r2"] == ev.metrics["r2"]


def test_constant_label_and_nulls(spark, caplog):
    df = spark.createDataFrame([(2.0, 2.0), (2.0, 3.0), (None, 1.0)], "label double, prediction double")
    with caplog.at_level(logging.WARNING, logger="pipelines.evaluate"):
        ev = regression_metrics(df)
    assert ev.metrics["r2"] == skm.r2_score([2.0, 2.0], [2.0, 3.0]) == 0.0
    assert ev.metrics["rows"] == 2 and ev.metrics["mae"] == 0.5
    assert "skipped 1 row(s)" in caplog.text and "constant" in caplog.text


def test_errors(spark):
    with pytest.raises(EvaluationInputError, match=r"ratings: no rows .*'rating'"):
        empty = spark.createDataFrame([], "rating double, prediction double")
        regression_metrics(empty, label_col="rating", table="ratings")
    with pytest.raises(EvaluationInputError, match="NaN"):
        regression_metrics(spark.createDataFrame([(float("nan"), 1.0)], "label double, prediction double"))
    with pytest.raises(EvaluationInputError, match="prediction column 'prediction' must be numeric"):
        regression_metrics(spark.createDataFrame([(1.0, "x")], "label double, prediction string"))
