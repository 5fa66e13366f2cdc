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
