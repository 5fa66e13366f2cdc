"""Feature selection and the preprocessing stages: the fitted pipeline scores raw rows,
including unseen categories and nulls."""

from __future__ import annotations

import pytest
from pyspark.ml import Pipeline
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.feature import SQLTransformer

from pipelines.config.models import TrainJobSpec
from pipelines.train.preprocess import (
    FEATURES,
    LABEL,
    FeatureColumns,
    FeatureSpecError,
    feature_columns,
    feature_names,
    preprocessing_stages,
)

SCHEMA = "id string, label int, amount double, visits long, device string, member boolean, split string"
ROWS = [
    ("a", 1, 10.0, 3, "web", True, "train"),
    ("b", 0, 1.0, 1, "app", False, "train"),
    ("c", 1, 12.0, None, "web", True, "train"),
    ("d", 0, None, 0, None, False, "train"),
]


def job(**kw) -> TrainJobSpec:
    base = {"data": {"table": "gold.x", "split_column": "split"}, "task": "binary", "label": "label",
            "models": {"lr": {"algorithm": "logistic_regression"}}}
    return TrainJobSpec.model_validate({**base, **kw})


def test_default_features_are_all_but_label_split_and_excluded(spark):
    frame = spark.createDataFrame(ROWS, SCHEMA)
    cols = feature_columns(frame, job(exclude=["id"]), "t")
    assert cols.numeric == ("amount", "visits") and cols.categorical == ("device", "member")
    cols = feature_columns(frame, job(features=["amount", "device"], categorical=["device"]), "t")
    assert cols.all == ("amount", "device")


def test_unusable_columns_are_named(spark):
    frame = spark.createDataFrame([("a", 1, [1.0])], "id string, label int, arr array<double>")
    with pytest.raises(FeatureSpecError, match=r"arr \(array<double>\)"):
        feature_columns(frame, job(exclude=["id"]), "gold.x")
    with pytest.raises(FeatureSpecError, match="not in the table"):
        feature_columns(frame, job(features=["nope"]), "gold.x")


@pytest.mark.parametrize("linear", [True, False])
def test_fitted_pipeline_scores_raw_rows_with_unseen_categories_and_nulls(spark, linear):
    frame = spark.createDataFrame(ROWS, SCHEMA)
    cols = feature_columns(frame, job(exclude=["id"]), "t")
    stages = preprocessing_stages(cols, one_hot=linear, scale=linear)
    model = Pipeline(stages=[*stages, LogisticRegression(featuresCol=FEATURES, labelCol=LABEL, maxIter=5)]).fit(
        frame.withColumn(LABEL, frame["label"].cast("double"))
    )
    raw = spark.createDataFrame([("z", None, None, "smart-tv", None)], "id string, amount double, visits long, device string, member boolean")
    scored = model.transform(raw).first()  # one row
    assert scored["prediction"] in (0.0, 1.0) and 0.0 <= scored["probability"][1] <= 1.0
    names = feature_names(model.transform(raw))
    assert "amount" in names and any(n.startswith("device") for n in names)


def test_the_log_transform_keeps_the_sign_and_imputes_the_mean_of_the_logs(spark):
    import math

    frame = spark.createDataFrame([(-3.0,), (0.0,), (9.0,), (None,), (float("nan"),)], "amount double")
    stages = preprocessing_stages(FeatureColumns(numeric=("amount",), categorical=()), one_hot=True, scale=True,
                                  log_numeric=True)
    rows = Pipeline(stages=stages).fit(frame).transform(frame).select("amount__imp").collect()  # 5 rows
    logs = [-math.log(4.0), 0.0, math.log(10.0)]
    assert [r[0] for r in rows] == pytest.approx(logs + [sum(logs) / 3] * 2)


def test_numeric_transform_defaults_to_log1p_for_logistic_regression_and_is_refused_for_deep_models(spark):
    from pydantic import ValidationError

    from pipelines.train.supervised import pipeline_stages

    frame = spark.createDataFrame(ROWS, SCHEMA)
    cols = feature_columns(frame, job(exclude=["id"]), "t")
    spec = job(models={"lr": {"algorithm": "logistic_regression"}, "rf": {"algorithm": "random_forest"},
                       "plain": {"algorithm": "logistic_regression", "numeric_transform": "none"}})
    regression = TrainJobSpec.model_validate({
        "data": {"table": "gold.x", "split_column": "split"}, "task": "regression", "label": "amount",
        "models": {"linear": {"algorithm": "linear_regression"}, "logged": {"algorithm": "linear_regression",
                                                                           "numeric_transform": "log1p"}}})

    def statements(name, of=spec):
        return [s.getStatement() for s in pipeline_stages(cols, of.models[name]) if isinstance(s, SQLTransformer)]

    assert len(statements("lr")) == 2 and "LOG1P" in statements("lr")[1]
    assert len(statements("rf")) == 1 and len(statements("plain")) == 1
    # linear regression keeps a target that is linear in a feature linear (unless asked)
    assert len(statements("linear", regression)) == 1 and len(statements("logged", regression)) == 2
    with pytest.raises(ValidationError, match="numeric_transform log1p applies to MLlib's tabular models, not deep_mlp"):
        job(models={"deep": {"algorithm": "deep_mlp", "numeric_transform": "log1p"}})
