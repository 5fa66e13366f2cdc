"""Recommendation jobs: ALS matrix factorization on (user, item, strength or rating).

User and item ids are string-indexed inside the pipeline (unseen ids go to an extra index that
ALS has no factors for; `coldStartStrategy=drop` removes their predictions). Implicit feedback is
ranked: the top k items per test user, against the items of the later (test) period -
precision@k, recall@k, NDCG@k, MAP@k over every user with an item in the test period (a
cold-start user, unseen in training, gets no recommendations and counts as a miss). Explicit
ratings: RMSE on the test split.
"""

from __future__ import annotations

import logging
import time

from pyspark import StorageLevel
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.feature import IndexToString, StringIndexer
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pipelines.config.models import ModelSpec, TrainJobSpec
from pipelines.evaluate import Evaluation, ranking_metrics, regression_metrics
from pipelines.train.data import Dataset
from pipelines.train.estimators import ITEM_INDEX, USER_INDEX, build_estimator
from pipelines.train.preprocess import LABEL, FeatureColumns
from pipelines.train.supervised import Fitted

log = logging.getLogger(__name__)


def als_pipeline(job: TrainJobSpec, spec: ModelSpec) -> Pipeline:
    indexers = StringIndexer(
        inputCols=[job.user_column, job.item_column], outputCols=[USER_INDEX, ITEM_INDEX], handleInvalid="keep"
    )
    return Pipeline(stages=[indexers, build_estimator("als", spec.params, job.data.seed, False, job.implicit)])


def recommend(model: PipelineModel, users: DataFrame, job: TrainJobSpec, k: int) -> DataFrame:
    """(user, item, score): the top k items for each of `users` (a frame with the user column)
    that was seen in training."""
    indexer, als = model.stages[0], model.stages[-1]
    known_users = len(indexer.labelsArray[0])
    indexed = (
        indexer.transform(users.select(job.user_column).distinct().withColumn(job.item_column, F.lit(None).cast("string")))
        .where(F.col(USER_INDEX) < known_users)
        .select(job.user_column, F.col(USER_INDEX).cast("int").alias(als.getUserCol()))
    )
    recs = als.recommendForUserSubset(indexed.select(als.getUserCol()), k)
    exploded = recs.select(als.getUserCol(), F.explode("recommendations").alias("r")).select(
        als.getUserCol(), F.col("r")[als.getItemCol()].cast("double").alias(ITEM_INDEX), F.col("r.rating").alias("score")
    )
    items = IndexToString(inputCol=ITEM_INDEX, outputCol=job.item_column, labels=indexer.labelsArray[1])
    return items.transform(exploded.join(indexed, als.getUserCol())).select(job.user_column, job.item_column, "score")


def evaluate(model: PipelineModel, dataset: Dataset, job: TrainJobSpec, name: str) -> Evaluation:
    test = dataset.splits["test"]
    if not job.implicit:
        predictions = model.transform(test.withColumn(LABEL, F.col(job.label).cast("double")))
        return regression_metrics(predictions, LABEL, "prediction", table=f"{name} test")
    relevant = test.select(job.user_column, job.item_column)
    # The indexer gives the items back as strings: compare them in the table's own type (numeric
    # item ids were refused as string-vs-bigint).
    item_type = relevant.schema[job.item_column].dataType
    recs = recommend(model, relevant, job, job.k).withColumn(job.item_column, F.col(job.item_column).cast(item_type))
    return ranking_metrics(recs, relevant, k=job.k, user_col=job.user_column, item_col=job.item_column,
                           table=f"{name} recommendations", relevant_table=f"{name} test items")


def fit(dataset: Dataset, job: TrainJobSpec, name: str, spec: ModelSpec) -> Fitted:
    started = time.time()
    train = dataset.splits["train"].withColumn(LABEL, F.col(job.label).cast("double"))
    prepared = train.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        model = als_pipeline(job, spec).fit(prepared)
    finally:
        prepared.unpersist()
    evaluation = evaluate(model, dataset, job, name)
    return Fitted(model, FeatureColumns((), (job.user_column, job.item_column)), dict(spec.params), evaluation, None,
                  None, [], time.time() - started)


def metric_of(model: PipelineModel, dataset: Dataset, job: TrainJobSpec, metric: str, name: str) -> float:
    """`metric` of a registered model on `dataset`; `<m>_at_k` is `<m>_at_<job.k>`, as in the summary."""
    if metric.endswith("_at_k"):
        metric = f"{metric[:-1]}{job.k}"
    return float(evaluate(model, dataset, job, name).metrics.get(metric, float("nan")))
