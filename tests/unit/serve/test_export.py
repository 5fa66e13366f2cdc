"""In-process export of binary MLlib pipelines: the same P(1) as Spark (to 1e-6) on the test split,
with nulls, NaN and an unseen category, for logistic regression, random forest and GBT."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pyspark.ml import Pipeline

from pipelines.config.models import TrainJobSpec
from pipelines.serve.export import TOLERANCE, UnsupportedStageError, check_parity, export_model
from pipelines.serve.inprocess import InProcessModel, InvalidInput, java_double, load_exported
from pipelines.train.calibration import Calibrator, calibrated_model
from pipelines.train.data import Dataset, split
from pipelines.train.estimators import LINEAR, build_estimator
from pipelines.train.preprocess import feature_columns, preprocessing_stages
from pipelines.train.scoring import SCORE, score
from pipelines.train.supervised import class_weights, prepare

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


MODELS = {
    # weighted (balanced), Platt-calibrated; one-hot + scaling; numeric features log-transformed (the
    # linear models' default, `numeric_transform: auto`; x1 has negative values)
    "lr": ("logistic_regression", {"maxIter": 30, "regParam": 0.01}, True, Calibrator("platt", 1.3, -0.2)),
    # weighted leaf counts, isotonic-calibrated; categorical splits on the indices
    "rf": ("random_forest", {"numTrees": 8, "maxDepth": 4, "maxBins": 32}, True,
           Calibrator("isotonic", knots_x=(0.0, 0.3, 0.31, 0.6, 1.0), knots_y=(0.05, 0.2, 0.25, 0.5, 0.9))),
    "gbt": ("gbt", {"maxIter": 6, "maxDepth": 3, "maxBins": 32}, False, None),
    # `family: multinomial` on two classes: two coefficient rows, softmax; no log transform
    "lr_multinomial": ("logistic_regression", {"maxIter": 30, "regParam": 0.01, "family": "multinomial"}, False, None),
}


@pytest.fixture(scope="module")
def dataset(spark) -> tuple[Dataset, TrainJobSpec]:
    frame = spark.createDataFrame(_rows(), SCHEMA)
    job = TrainJobSpec.model_validate({
        "data": {"table": "t.parity", "split_column": "split"}, "task": "binary", "label": "label",
        "categorical": ["device", "plan", "member"], "models": {name: {"algorithm": m[0]} for name, m in MODELS.items()},
    })
    return Dataset("t.parity", None, split(frame, job, "t.parity")), job


@pytest.fixture(scope="module")
def fitted(dataset):
    """The pipelines `supervised.fit` builds (its preprocessing, estimator, class weights and
    calibration stage), without its search and evaluation (the slow part: the full path is in
    tests/integration/serve)."""
    data, job = dataset
    train = data.splits["train"]
    columns = feature_columns(train, job, data.source)
    models = {}
    for name, (algorithm, params, weighted, calibrator) in MODELS.items():
        weights = class_weights(train, job, data.source, "balanced" if weighted else "none")
        linear = algorithm in LINEAR
        estimator = build_estimator(algorithm, params, 42, weighted)
        stages = preprocessing_stages(columns, one_hot=linear, scale=linear, log_numeric=name == "lr")
        model = Pipeline(stages=[*stages, estimator]).fit(
            prepare(train, job, weights))
        models[name] = calibrated_model(model, calibrator) if calibrator is not None else model
    return models


@pytest.mark.slow  # the module's fitted models (~12 s on a loaded 2-core machine): out of make test-fast; make test runs it
@pytest.mark.parametrize("name", list(MODELS))
def test_export_scores_the_test_split_as_spark_does(dataset, fitted, name):
    data, _ = dataset
    model = fitted[name]
    exported = json.loads(json.dumps(export_model(model)))  # what the artifact holds
    assert any(s["type"] == "log1p" for s in exported["stages"]) == (name == "lr")
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


@pytest.mark.slow  # the module's fitted models (~12 s on a loaded 2-core machine): out of make test-fast; make test runs it
def test_a_missing_key_is_a_null_feature(fitted, spark):
    model = fitted["lr"]
    inprocess = InProcessModel.from_dict(export_model(model))
    frame = spark.createDataFrame([(None, None, None, None, None)], "x1 double, visits int, device string, plan int, member boolean")
    expected = score(model, frame, "binary").first()[SCORE]
    assert abs(inprocess.predict_proba([{}])[0] - expected) <= TOLERANCE
    assert abs(inprocess.predict_proba([{"x1": None, "unused": "x"}])[0] - expected) <= TOLERANCE
    assert inprocess.input_columns == ["x1", "visits", "device", "plan", "member"]
    assert inprocess.numeric == ["x1", "visits"] and inprocess.categorical == ["device", "plan", "member"]


@pytest.mark.slow  # the module's fitted models (~12 s on a loaded 2-core machine): out of make test-fast; make test runs it
def test_json_round_trip_gives_the_same_scores(fitted, dataset, tmp_path):
    data, _ = dataset
    model = fitted["rf"]
    rows = data.splits["test"].select("x1", "visits", "device", "plan", "member").toPandas()  # 72 rows
    direct = InProcessModel.from_dict(export_model(model))
    path = direct.save(tmp_path / "inprocess" / "model.json")
    loaded = load_exported(path)
    assert np.array_equal(loaded.predict_proba(rows), direct.predict_proba(rows))
    assert loaded.exported == json.loads(path.read_text())
    # in a fresh interpreter: the same scores, and no JVM was started (no py4j gateway)
    import subprocess
    import sys

    rows.to_json(tmp_path / "rows.json", orient="records")
    script = ("import json, sys; import numpy as np; from pyspark import SparkContext; "
              "from pipelines.serve.inprocess import load_exported; "
              f"p = load_exported({str(path)!r}).predict_proba(json.load(open({str(tmp_path / 'rows.json')!r}))); "
              "assert SparkContext._gateway is None and SparkContext._jvm is None; print(json.dumps(p.tolist()))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True,
                         cwd=str(Path(__file__).resolve().parents[3]))
    assert np.abs(np.array(json.loads(out.stdout)) - direct.predict_proba(rows)).max() <= 1e-12


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


# -- the registration hook and loading through MLflow ---------------------------------------------


@pytest.fixture
def tracking(tmp_path):
    from pipelines.train.tracking import configure
    from tests.conftest import make_config

    return configure(make_config(tmp_path))


@pytest.mark.slow  # the module's fitted models (~12 s on a loaded 2-core machine): out of make test-fast; make test runs it
def test_the_registration_hook_logs_a_checked_export_that_load_inprocess_reads(tracking, fitted, dataset):
    import mlflow

    from pipelines.serve.inprocess import ARTIFACT, load_inprocess
    from pipelines.train.tracking import log_inprocess_export

    data, _ = dataset
    model = fitted["gbt"]
    with mlflow.start_run() as run:
        assert log_inprocess_export(model, "binary", "t/gbt", data.splits["test"])
        assert not log_inprocess_export(model, "regression", "t/gbt")  # binary models only
    logged = mlflow.get_run(run.info.run_id).data
    assert logged.tags["inprocess.export"] == ARTIFACT and logged.metrics["inprocess_max_abs_diff"] <= TOLERANCE
    scored = score(model, data.splits["test"], "binary").select("x1", "visits", "device", "plan", "member", SCORE).toPandas()
    for source in (run.info.run_id, f"runs:/{run.info.run_id}"):
        got = load_inprocess(source).predict_proba(scored.drop(columns=[SCORE]))
        assert np.abs(got - scored[SCORE].to_numpy()).max() <= TOLERANCE


def test_a_failed_export_does_not_fail_training_but_warns_and_tags_the_run(tracking, spark, caplog):
    import mlflow
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.feature import Bucketizer, VectorAssembler

    from pipelines.serve.inprocess import ExportNotFound, load_inprocess
    from pipelines.train.tracking import log_inprocess_export

    frame = spark.createDataFrame([(float(i), float(i % 2)) for i in range(20)], "x double, label double")
    model = Pipeline(stages=[
        Bucketizer(splits=[-float("inf"), 5.0, float("inf")], inputCol="x", outputCol="b"),
        VectorAssembler(inputCols=["b"], outputCol="features"), LogisticRegression(maxIter=5),
    ]).fit(frame)
    with mlflow.start_run() as run:
        assert not log_inprocess_export(model, "binary", "jobx/odd", frame)
    assert "model jobx/odd: no in-process export for serving: UnsupportedStageError" in caplog.text
    assert mlflow.get_run(run.info.run_id).data.tags["inprocess.export"].startswith("failed: UnsupportedStageError: pipeline stage 0")
    with pytest.raises(ExportNotFound, match="has no in-process export"):
        load_inprocess(run.info.run_id)


# -- deep models ----------------------------------------------------------------------------------


@pytest.mark.slow  # 26 s on the loaded 2-core machine: a Python worker importing torch, and an MLflow pyfunc log
def test_a_deep_model_scores_in_pytorch_as_its_spark_transform_and_loads_through_mlflow(spark, tracking):
    import mlflow
    import torch

    from pipelines.deep.estimator import DeepModelState, DeepTabularModel
    from pipelines.deep.features import FeatureSchema
    from pipelines.deep.mlflow_model import log_deep_model
    from pipelines.deep.network import NetConfig, TabularNet
    from pipelines.serve.inprocess import DeepInProcessModel, load_inprocess

    torch.manual_seed(0)
    features = FeatureSchema(("x1", "visits"), (0.1, 5.0), (1.0, 3.0), ("device", "plan"), (("web", "app", "tv"), ("1", "2")))
    net = NetConfig(2, features.cardinalities, hidden=(8,))
    state = DeepModelState("binary", features, net, TabularNet(net).state_dict(), "label", 0, 0.0, [], "local", 1, "cpu",
                           0.0, "", {"calibration": Calibrator("platt", 0.8, 0.1).to_dict()})
    model = DeepTabularModel(state)
    rows = [(0.5, 3, "app", 1), (None, None, None, None), (-1.0, 12, "watch", 7), (2.0, 0, "tv", 2)]
    frame = spark.createDataFrame(rows, "x1 double, visits int, device string, plan int")
    expected = np.array([r[SCORE] for r in score(model, frame, "binary").select(SCORE).collect()])
    requests = [dict(zip(("x1", "visits", "device", "plan"), r)) for r in rows]
    got = DeepInProcessModel(state).predict_proba(requests)
    assert np.abs(got - expected).max() <= TOLERANCE and len(set(np.round(expected, 6))) == 4
    with mlflow.start_run():
        info = log_deep_model(model, frame.toPandas())  # 4 rows
    loaded = load_inprocess(info.model_uri)
    assert isinstance(loaded, DeepInProcessModel)
    assert np.abs(loaded.predict_proba(pd.DataFrame(requests)) - expected).max() <= TOLERANCE


def test_categorical_splits_follow_sparks_stored_side():
    """Spark keeps the smaller side of a categorical split: a value outside 0..numCategories-1
    goes right when the left side is stored (at most half the categories), left otherwise."""
    from pipelines.serve.inprocess import ExportFormatError

    def model(left_categories: list[int]) -> InProcessModel:
        tree = {"feature": [0, -1, -1], "threshold": [None, None, None], "left": [1, -1, -1], "right": [2, -1, -1],
                "left_categories": [left_categories, None, None], "num_categories": [4, 0, 0],
                "value": [[0.0], [1.0], [-1.0]]}
        return InProcessModel.from_dict({"format": "clickml.inprocess", "version": 1, "stages": [
            {"type": "sql_cast", "casts": [{"input": "c", "to": "double", "output": "c__num"}]},
            {"type": "vector_assembler", "inputs": ["c__num"], "output": "features", "handle_invalid": "keep"},
            {"type": "gbt", "features": "features", "probability": "probability", "weights": [0.5], "trees": [tree]}]})

    def goes_left(m: InProcessModel, values: list[float]) -> list[bool]:
        return list(m.predict_proba([{"c": v} for v in values]) > 0.5)

    assert goes_left(model([1]), [1.0, 0.0, 2.0, 7.0, 1.5]) == [True, False, False, False, False]  # left side stored
    assert goes_left(model([0, 1, 3]), [1.0, 2.0, 7.0, -1.0]) == [True, False, True, True]  # right side stored
    with pytest.raises(ExportFormatError, match="version 2"):
        InProcessModel.from_dict({"format": "clickml.inprocess", "version": 2, "stages": []})
