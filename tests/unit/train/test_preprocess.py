"""Feature selection and the preprocessing stages: the fitted pipeline scores raw rows,
including unseen categories and nulls."""

from __future__ import annotations

import pytest
from pyspark.ml import Pipeline
from pyspark.ml.classification import LogisticRegression

from pipelines.config.models import TrainJobSpec
from pipelines.train.preprocess import (
    FEATURES,
    LABEL,
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
