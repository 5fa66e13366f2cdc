"""Multiclass metrics against scikit-learn (average="weighted")."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from pipelines.evaluate import EvaluationInputError, multiclass_metrics


@pytest.fixture(scope="module")
def pdf() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    n = 2000
    label = rng.choice([0, 1, 2, 3], n, p=[0.5, 0.25, 0.2, 0.05])
    noise = rng.choice([0, 1, 2, 3, 4], n)  # class 4 is predicted but never true
    prediction = np.where(rng.random(n) < 0.6, label, noise).astype(float)
    return pd.DataFrame({"label": label, "prediction": prediction, "weight": rng.uniform(0.1, 3.0, n)})


def sk(pdf, weight=None) -> dict[str, float]:
    y, p = pdf["label"].astype(float), pdf["prediction"]
    avg = {"average": "weighted", "zero_division": 0, "sample_weight": weight}
    return {
        "accuracy": skm.accuracy_score(y, p, sample_weight=weight),
        "weighted_precision": skm.precision_score(y, p, **avg),
        "weighted_recall": skm.recall_score(y, p, **avg),
        "weighted_f1": skm.f1_score(y, p, **avg),
        "macro_f1": skm.f1_score(y, p, average="macro", zero_division=0, sample_weight=weight),
    }


@pytest.mark.parametrize("weighted", [False, True])
def test_agrees_with_sklearn(spark, pdf, weighted):
    weight = pdf["weight"] if weighted else None
    ev = multiclass_metrics(spark.createDataFrame(pdf), weight_col="weight" if weighted else None)
    for name, value in sk(pdf, weight).items():
        assert ev.metrics[name] == pytest.approx(value, abs=1e-12), name
    expected = skm.confusion_matrix(pdf["label"].astype(float), pdf["prediction"], sample_weight=weight)
    np.testing.assert_allclose(ev.tables["confusion"].to_numpy(), expected, atol=1e-9)
    assert list(ev.tables["confusion"].index) == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert ev.metrics["classes"] == 5
    assert ("total_weight" if weighted else "rows") in ev.metrics


def test_string_labels_and_per_class_table(spark):
    rows = [("a", "a"), ("a", "b"), ("b", "b"), ("c", "b"), ("c", "c"), ("c", "c")]
    ev = multiclass_metrics(spark.createDataFrame(rows, "label string, prediction string"))
    y, p = zip(*rows)
    assert ev.metrics["weighted_f1"] == pytest.approx(skm.f1_score(y, p, average="weighted"))
    per_class = ev.tables["per_class"]
    np.testing.assert_allclose(per_class["recall"], skm.recall_score(y, p, average=None))
    assert list(per_class["support"]) == [2, 1, 3]


def test_errors_name_the_table_and_columns(spark):
    with pytest.raises(EvaluationInputError, match=r"test_predictions: no rows .*'label'.*'prediction'"):
        multiclass_metrics(spark.createDataFrame([], "label double, prediction double"), table="test_predictions")
    with pytest.raises(EvaluationInputError, match="both be numeric or both be strings"):
        multiclass_metrics(spark.createDataFrame([("a", 1.0)], "label string, prediction double"))
    with pytest.raises(EvaluationInputError, match="more than 2 classes"):
        three = spark.createDataFrame([(0.0, 0.0), (1.0, 1.0), (2.0, 2.0)], "label double, prediction double")
        multiclass_metrics(three, max_classes=2)
