"""In-process export of binary MLlib pipelines: the same P(1) as Spark (to 1e-6) on the test split,
with nulls, NaN and an unseen category, for logistic regression, random forest and GBT."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pipelines.config.models import TrainJobSpec
from pipelines.serve.export import TOLERANCE, UnsupportedStageError, check_parity, export_model
from pipelines.serve.inprocess import InProcessModel, InvalidInput, java_double, load_exported
from pipelines.train import supervised
from pipelines.train.data import Dataset, split
from pipelines.train.scoring import SCORE, score

SCHEMA = "x1 double, visits int, device string, plan int, member boolean, label int, split string"


def _rows(n: int = 360, seed: int = 7) -> list[tuple]:
    """Numeric (with nulls), categorical string/int/boolean (with nulls); the test rows also have
    a device never seen in training and a plan never seen."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        part = "train" if i < 0.6 * n else "validation" if i < 0.8 * n else "test"
        x1 = float(rng.normal()) if i % 11 else None
        visits = int(rng.integers(0, 20)) if i % 7 else None
        device = ["web", "app", "tv", None][i % 4] if part != "test" or i % 5 else "watch"
        plan = [1, 2, 3][i % 3] if i % 13 else None
        if part == "test" and i % 9 == 0:
            plan = 42
        member = [True, False, None][i % 3]
        logit = 1.2 * (x1 or 0.0) + 0.1 * (visits or 5) - 1.0 + (device == "app") * 1.0 + (member is True) * 0.5
        label = int(rng.random() < 1 / (1 + np.exp(-logit)))
        rows.append((x1, visits, device, plan, member, label, part))
    return rows


@pytest.fixture(scope="module")
def dataset(spark) -> tuple[Dataset, TrainJobSpec]:
    frame = spark.createDataFrame(_rows(), SCHEMA)
    job = TrainJobSpec.model_validate({
        "data": {"table": "t.parity", "split_column": "split"}, "task": "binary", "label": "label",
        "categorical": ["device", "plan", "member"],
        "models": {
            "lr": {"algorithm": "logistic_regression", "params": {"maxIter": 30, "regParam": 0.01}, "calibration": "platt"},
            "rf": {"algorithm": "random_forest", "params": {"numTrees": 8, "maxDepth": 4}, "calibration": "isotonic"},
            "gbt": {"algorithm": "gbt", "params": {"maxIter": 6, "maxDepth": 3}, "calibration": "none"},
        },
    })
    return Dataset("t.parity", None, split(frame, job, "t.parity")), job


@pytest.fixture(scope="module")
def fitted(dataset):
    data, job = dataset
    return {name: supervised.fit(data, job, name, job.models[name]).model for name in job.models}


@pytest.mark.parametrize("name", ["lr", "rf", "gbt"])
def test_export_scores_the_test_split_as_spark_does(dataset, fitted, name):
    data, _ = dataset
    model = fitted[name]
    exported = json.loads(json.dumps(export_model(model)))  # what the artifact holds
    test = data.splits["test"]
    # Spark's scores (the project's scoring), the rows as a server receives them: dicts
    spark_rows = score(model, test, "binary").select("x1", "visits", "device", "plan", "member", SCORE).collect()
    requests = [{k: v for k, v in r.asDict().items() if k != SCORE} for r in spark_rows]
    expected = np.array([r[SCORE] for r in spark_rows])
    got = InProcessModel.from_dict(exported).predict_proba(requests)
    assert len(requests) == 72 and any(r["device"] == "watch" for r in requests) and any(r["plan"] == 42 for r in requests)
    assert any(r["x1"] is None for r in requests) and any(r["device"] is None for r in requests)
    assert np.abs(got - expected).max() <= TOLERANCE, (name, np.abs(got - expected).max())
    assert len(set(np.round(expected, 6))) > 5  # the model discriminates: not a constant
    # the same through pandas (integer columns with nulls become floats, nulls NaN/None)
    difference, rows = check_parity(model, exported, test)
    assert rows == 72 and difference <= TOLERANCE, (name, difference)


def test_a_missing_key_is_a_null_feature(fitted, spark):
    model = fitted["lr"]
    inprocess = InProcessModel.from_dict(export_model(model))
    frame = spark.createDataFrame([(None, None, None, None, None)], "x1 double, visits int, device string, plan int, member boolean")
    expected = score(model, frame, "binary").first()[SCORE]
    assert abs(inprocess.predict_proba([{}])[0] - expected) <= TOLERANCE
    assert abs(inprocess.predict_proba([{"x1": None, "unused": "x"}])[0] - expected) <= TOLERANCE
    assert inprocess.input_columns == ["x1", "visits", "device", "plan", "member"]
    assert inprocess.numeric == ["x1", "visits"] and inprocess.categorical == ["device", "plan", "member"]


def test_json_round_trip_gives_the_same_scores(fitted, dataset, tmp_path):
    data, _ = dataset
    model = fitted["rf"]
    rows = data.splits["test"].select("x1", "visits", "device", "plan", "member").toPandas()  # 72 rows
    direct = InProcessModel.from_dict(export_model(model))
    path = direct.save(tmp_path / "inprocess" / "model.json")
    loaded = load_exported(path)
    assert np.array_equal(loaded.predict_proba(rows), direct.predict_proba(rows))
    assert loaded.exported == json.loads(path.read_text())


def test_an_unsupported_stage_is_named(spark):
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.feature import Bucketizer, VectorAssembler

    frame = spark.createDataFrame([(float(i), float(i % 2)) for i in range(20)], "x double, label double")
    model = Pipeline(stages=[
        Bucketizer(splits=[-float("inf"), 5.0, float("inf")], inputCol="x", outputCol="b"),
        VectorAssembler(inputCols=["b"], outputCol="features"), LogisticRegression(maxIter=5),
    ]).fit(frame)
    with pytest.raises(UnsupportedStageError, match=r"stage 0 .* pyspark\.ml\.feature\.Bucketizer"):
        export_model(model)


def test_a_bad_numeric_value_is_refused():
    exported = {"format": "clickml.inprocess", "version": 1, "stages": [
        {"type": "sql_cast", "casts": [{"input": "x", "to": "double", "output": "x__num"}]},
        {"type": "vector_assembler", "inputs": ["x__num"], "output": "features", "handle_invalid": "keep"},
        {"type": "logistic_regression", "features": "features", "probability": "probability", "coefficients": [[2.0]],
         "intercepts": [-1.0], "multinomial": False},
    ]}
    model = InProcessModel.from_dict(exported)
    assert model.predict_proba([{"x": "0.5"}])[0] == pytest.approx(0.5)
    assert model.predict_proba(pd.DataFrame({"x": [1.0]}))[0] == pytest.approx(1 / (1 + np.exp(-1.0)))
    with pytest.raises(InvalidInput, match="feature 'x': 'abc' is not a number"):
        model.predict_proba([{"x": "abc"}])


@pytest.mark.parametrize("value, text", [(1.0, "1.0"), (0.25, "0.25"), (1e7, "1.0E7"), (1.5e-4, "1.5E-4"),
                                          (-2.0, "-2.0"), (123456.789, "123456.789"), (float("nan"), "NaN")])
def test_doubles_are_spelled_as_spark_casts_them(spark, value, text):
    assert java_double(value) == text
    assert spark.createDataFrame([(value,)], "v double").selectExpr("CAST(v AS STRING)").first()[0] == text
