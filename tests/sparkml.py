"""Shared check for the Spark 4.1 ObservationManager regression (see the tests that use it)."""

from __future__ import annotations

from pyspark.sql import functions as F


def model_selection_works(spark) -> bool:
    """A tiny TrainValidationSplit in `spark`: fails with "Task not serializable:
    ObservationManager" in a session where DataFrame.observe has run (Spark 4.1)."""
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.evaluation import BinaryClassificationEvaluator
    from pyspark.ml.feature import VectorAssembler
    from pyspark.ml.tuning import ParamGridBuilder, TrainValidationSplit

    frame = spark.range(200).select(F.rand(1).alias("x"), (F.rand(2) > 0.5).cast("double").alias("label"))
    lr = LogisticRegression(maxIter=5)
    search = TrainValidationSplit(
        estimator=Pipeline(stages=[VectorAssembler(inputCols=["x"], outputCol="features"), lr]),
        estimatorParamMaps=ParamGridBuilder().addGrid(lr.regParam, [0.1, 0.01]).build(),
        evaluator=BinaryClassificationEvaluator(), parallelism=2,
    )
    return len(search.fit(frame).validationMetrics) == 2
