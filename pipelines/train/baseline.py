"""The baseline predictor for explicit ratings, as Spark pipeline stages: ALS on its residuals.

    r_hat(u, i) = mu + b_u + b_i (+ the ALS factors' dot product of the residuals)

with mu the global mean rating and regularised biases (Koren, "Factorization meets the
neighborhood", 2008, section 2.1): b_i = sum_u (r_ui - mu) / (item_reg + n_i), then
b_u = sum_i (r_ui - mu - b_i) / (user_reg + n_u). A user or item unseen in training has bias 0.

`BiasBaseline` (an Estimator) fits the biases in Spark (group-bys; only mu reaches the driver) and
gives a `BiasBaselineModel` that adds the baseline and the residual (rating - baseline) columns;
ALS then fits the residuals, and `AddBaseline` adds the baseline back to ALS's prediction. The bias
tables are saved with the pipeline model as Parquet (a custom writer), so `mlflow.spark` restores
the whole model.
"""

from __future__ import annotations

from pyspark import keyword_only
from pyspark.ml import Estimator, Model, Transformer
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.util import (
    DefaultParamsReadable,
    DefaultParamsReader,
    DefaultParamsWritable,
    DefaultParamsWriter,
    MLReadable,
    MLReader,
    MLWritable,
    MLWriter,
)
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

BASELINE = "__baseline"
RESIDUAL = "__residual"
USER_REG, ITEM_REG = 10.0, 25.0
"""Default regularisation of the user and item biases (Koren's values for the Netflix data)."""


class _BiasParams(Params):
    userCol = Param(Params._dummy(), "userCol", "user id column", TypeConverters.toString)
    itemCol = Param(Params._dummy(), "itemCol", "item id column", TypeConverters.toString)
    ratingCol = Param(Params._dummy(), "ratingCol", "rating column", TypeConverters.toString)
    userReg = Param(Params._dummy(), "userReg", "regularisation of the user biases", TypeConverters.toFloat)
    itemReg = Param(Params._dummy(), "itemReg", "regularisation of the item biases", TypeConverters.toFloat)

    def _defaults(self) -> None:
        self._setDefault(userCol="user", itemCol="item", ratingCol="rating", userReg=USER_REG, itemReg=ITEM_REG)

    def value(self, name: str):
        return self.getOrDefault(self.getParam(name))


class BiasBaseline(Estimator, _BiasParams, DefaultParamsReadable, DefaultParamsWritable):
    """Fits mu, the item biases, then the user biases on (user, item, rating) rows."""

    @keyword_only
    def __init__(self, userCol: str = "user", itemCol: str = "item", ratingCol: str = "rating",
                 userReg: float = USER_REG, itemReg: float = ITEM_REG):
        super().__init__()
        self._defaults()
        self._set(**self._input_kwargs)

    def _fit(self, dataset: DataFrame) -> BiasBaselineModel:
        user, item, rating = self.value("userCol"), self.value("itemCol"), self.value("ratingCol")
        rows = dataset.select(user, item, F.col(rating).cast("double").alias("r")).where(F.col("r").isNotNull())
        mu = rows.agg(F.avg("r")).first()[0]  # bounded: one row
        if mu is None:
            raise ValueError(f"no ratings in {rating!r} to fit the baseline on")
        items = rows.groupBy(item).agg(
            (F.sum(F.col("r") - F.lit(mu)) / (F.lit(self.value("itemReg")) + F.count("*"))).alias("b_i"))
        users = (
            rows.join(items, item).groupBy(user)
            .agg((F.sum(F.col("r") - F.lit(mu) - F.col("b_i")) / (F.lit(self.value("userReg")) + F.count("*"))).alias("b_u"))
        )
        # Not cached: a cached table would stay in the session's cache after the model is gone
        # (nothing unpersists it); the aggregates are recomputed where the model transforms.
        model = BiasBaselineModel(mu=float(mu), users=users, items=items)
        return self._copyValues(model)


class BiasBaselineModel(Model, _BiasParams, MLReadable, MLWritable):
    """Adds `__baseline` = mu + b_u + b_i and, where the rating column is present, `__residual`."""

    def __init__(self, mu: float = 0.0, users: DataFrame | None = None, items: DataFrame | None = None):
        super().__init__()
        self._defaults()
        self.mu, self.users, self.items = mu, users, items

    def _transform(self, dataset: DataFrame) -> DataFrame:
        user, item, rating = self.value("userCol"), self.value("itemCol"), self.value("ratingCol")
        # The bias tables are one row per training user / item: joined, not collected.
        out = dataset.join(self.users, user, "left").join(self.items, item, "left")
        out = out.withColumn(BASELINE, F.lit(self.mu) + F.coalesce(F.col("b_u"), F.lit(0.0)) + F.coalesce(F.col("b_i"), F.lit(0.0)))
        if rating in dataset.columns:
            out = out.withColumn(RESIDUAL, F.col(rating).cast("double") - F.col(BASELINE))
        return out.drop("b_u", "b_i")

    def write(self) -> MLWriter:
        return _BiasWriter(self)

    @classmethod
    def read(cls) -> MLReader:
        return _BiasReader(cls)


class _BiasWriter(MLWriter):
    def __init__(self, instance: BiasBaselineModel):
        super().__init__()
        self.instance = instance

    def saveImpl(self, path: str) -> None:
        DefaultParamsWriter.saveMetadata(self.instance, path, self.sparkSession, extraMetadata={"mu": self.instance.mu})
        self.instance.users.write.mode("overwrite").parquet(f"{path}/users")
        self.instance.items.write.mode("overwrite").parquet(f"{path}/items")


class _BiasReader(MLReader):
    def __init__(self, cls):
        super().__init__()
        self.cls = cls

    def load(self, path: str) -> BiasBaselineModel:
        metadata = DefaultParamsReader.loadMetadata(path, self.sparkSession)
        spark = self.sparkSession
        model = self.cls(mu=float(metadata["mu"]), users=spark.read.parquet(f"{path}/users"),
                         items=spark.read.parquet(f"{path}/items"))
        DefaultParamsReader.getAndSetParams(model, metadata)
        return model


class AddBaseline(Transformer, DefaultParamsReadable, DefaultParamsWritable):
    """The last stage: ALS's prediction of the residual plus the baseline."""

    predictionCol = Param(Params._dummy(), "predictionCol", "prediction column", TypeConverters.toString)

    @keyword_only
    def __init__(self, predictionCol: str = "prediction"):
        super().__init__()
        self._setDefault(predictionCol="prediction")
        self._set(**self._input_kwargs)

    def _transform(self, dataset: DataFrame) -> DataFrame:
        prediction = self.getOrDefault(self.predictionCol)
        return dataset.withColumn(prediction, F.col(prediction) + F.col(BASELINE)).drop(BASELINE, RESIDUAL)
