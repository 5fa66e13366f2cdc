"""Feature importances handed to the importance plot."""

from __future__ import annotations

from pyspark.ml import Pipeline
from pyspark.ml.classification import LogisticRegression

from pipelines.train.preprocess import FEATURES, LABEL, FeatureColumns, preprocessing_stages
from pipelines.train.supervised import _importances


def test_binary_logistic_regression_importances_keep_the_coefficients_sign(spark):
    # Bug: the values were made absolute, so the plot (documented to draw negative coefficients
    # in red) never showed a sign.
    rows = [(float(i % 10), float((i * 7) % 10), float(i % 10 > (i * 7) % 10)) for i in range(60)]
    frame = spark.createDataFrame(rows, "up double, down double, label double").withColumnRenamed("label", LABEL)
    stages = preprocessing_stages(FeatureColumns(numeric=("up", "down"), categorical=()), one_hot=True, scale=True)
    model = Pipeline(stages=[*stages, LogisticRegression(featuresCol=FEATURES, labelCol=LABEL, maxIter=20)]).fit(frame)
    names, values = _importances(model, model.transform(frame), "logistic_regression")
    weights = dict(zip(names, values, strict=True))
    assert weights["up"] > 0 > weights["down"], weights


def test_binary_multinomial_logistic_regression_has_importances(spark):
    # Bug: with `family: multinomial` on two classes the code asked for `coefficients`, which
    # Spark refuses for a multinomial model, and training failed after the fit.
    rows = [(float(i % 10), float((i * 7) % 10), float(i % 10 > (i * 7) % 10)) for i in range(60)]
    frame = spark.createDataFrame(rows, "up double, down double, label double").withColumnRenamed("label", LABEL)
    stages = preprocessing_stages(FeatureColumns(numeric=("up", "down"), categorical=()), one_hot=True, scale=True)
    lr = LogisticRegression(featuresCol=FEATURES, labelCol=LABEL, maxIter=20, family="multinomial")
    model = Pipeline(stages=[*stages, lr]).fit(frame)
    names, values = _importances(model, model.transform(frame), "logistic_regression")
    assert set(names) == {"up", "down"} and all(v > 0 for v in values), (names, values)


def test_multiclass_labels_given_as_numeric_strings_are_evaluated(spark):
    # Bug: "0"/"1"/"2" passed the class check (try_cast) and trained, then the evaluation refused
    # a string label against the double prediction, after the fit.
    from pipelines.config.models import TrainJobSpec
    from pipelines.train import supervised
    from pipelines.train.data import Dataset, split

    rows = [(float(i % 3) + (i % 7) / 10, str(i % 3), ("train", "validation", "test")[i % 3 if i > 30 else 0])
            for i in range(120)]
    frame = spark.createDataFrame(rows, "x double, label string, split string")
    job = TrainJobSpec.model_validate({"data": {"table": "t.x", "split_column": "split"}, "task": "multiclass",
                                       "label": "label", "models": {"lr": {"algorithm": "logistic_regression"}}})
    fitted = supervised.fit(Dataset("t.x", None, split(frame, job, "t.x")), job, "lr", job.models["lr"])
    assert fitted.evaluation.metrics["accuracy"] > 0.9


def test_a_numeric_feature_without_values_in_train_is_named(spark):
    # Bug: Spark's mean imputation failed with a Py4JJavaError naming the internal column
    # "empty__num", not the feature or the table.
    import pytest

    from pipelines.config.models import TrainJobSpec
    from pipelines.train import supervised
    from pipelines.train.data import Dataset, TrainingDataError, split

    rows = [(float(i % 5), None, float(i % 2), ("train", "validation", "test")[i % 3]) for i in range(60)]
    frame = spark.createDataFrame(rows, "x double, empty double, label double, split string")
    job = TrainJobSpec.model_validate({"data": {"table": "t.x", "split_column": "split"}, "task": "binary",
                                       "label": "label", "models": {"lr": {"algorithm": "logistic_regression"}}})
    with pytest.raises(TrainingDataError, match="t.x: model lr: numeric feature 'empty' has no value in the training split"):
        supervised.fit(Dataset("t.x", None, split(frame, job, "t.x")), job, "lr", job.models["lr"])
