"""Recommendation jobs: ALS matrix factorization on (user, item, strength or rating).

User and item ids are string-indexed inside the pipeline (unseen ids go to an extra index that
ALS has no factors for; `coldStartStrategy=drop` removes their predictions). Implicit feedback is
ranked: the top k items per test user, against the items of the later (test) period -
precision@k, recall@k, NDCG@k, MAP@k over every user with an item in the test period (a
cold-start user, unseen in training, gets no recommendations and counts as a miss). Explicit
ratings: RMSE on the test split; `baseline: true` fits the baseline predictor (global mean +
regularised user and item biases, pipelines/train/baseline.py) first and ALS on its residuals.
A `search` (grid, or random over the default space: rank, regParam, alpha) scores each candidate
on the validation split.
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
from pipelines.train.baseline import ITEM_REG, RESIDUAL, USER_REG, AddBaseline, BiasBaseline
from pipelines.train.data import Dataset, TrainingDataError
from pipelines.train.estimators import ITEM_INDEX, USER_INDEX, ModelSpecError, build_estimator
from pipelines.train.preprocess import LABEL, FeatureColumns
from pipelines.train.supervised import Fitted

log = logging.getLogger(__name__)


BASELINE_KEYS = ("baseline", "userBiasReg", "itemBiasReg")
"""`als` params that configure the baseline predictor, not Spark's ALS."""


def baseline_options(params: dict, job: TrainJobSpec, name: str) -> tuple[dict, dict | None]:
    """(ALS params, baseline options or None): `baseline: true` (explicit ratings only) fits the
    global mean + regularised user and item biases first and ALS on the residuals."""
    als = {k: v for k, v in params.items() if k not in BASELINE_KEYS}
    if not params.get("baseline"):
        if any(k in params for k in BASELINE_KEYS[1:]):
            raise ModelSpecError(f"model {name}: userBiasReg / itemBiasReg apply with baseline: true")
        return als, None
    if job.implicit:
        raise ModelSpecError(f"model {name}: baseline: true is for explicit ratings (implicit: false); "
                             "implicit feedback has no rating to take biases of")
    return als, {"userReg": float(params.get("userBiasReg", USER_REG)), "itemReg": float(params.get("itemBiasReg", ITEM_REG))}


def als_pipeline(job: TrainJobSpec, params: dict, name: str = "als") -> Pipeline:
    """String indexers + ALS; with the baseline option, the baseline stages around ALS."""
    indexers = StringIndexer(
        inputCols=[job.user_column, job.item_column], outputCols=[USER_INDEX, ITEM_INDEX], handleInvalid="keep"
    )
    als_params, baseline = baseline_options(params, job, name)
    als = build_estimator("als", als_params, job.data.seed, False, job.implicit)
    if baseline is None:
        return Pipeline(stages=[indexers, als])
    # Residuals are signed: the factors may not be constrained to non-negative values.
    als.setRatingCol(RESIDUAL).setNonnegative(False)
    biases = BiasBaseline(userCol=job.user_column, itemCol=job.item_column, ratingCol=LABEL, **baseline)
    return Pipeline(stages=[indexers, biases, als, AddBaseline(predictionCol=als.getPredictionCol())])


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


def _metric(job: TrainJobSpec) -> tuple[str, bool]:
    """(metric, greater is better) a search ranks ALS candidates by."""
    return ("rmse", False) if not job.implicit else (f"ndcg_at_{job.k}", True)


def search(dataset: Dataset, job: TrainJobSpec, name: str, spec: ModelSpec) -> tuple[dict, list[dict]]:
    """Random or grid search over ALS parameters: each candidate fits on the training rows and is
    scored on the validation split (without one: on 20% of the training rows held out by a row
    hash). Returns (best parameters, every trial)."""
    from pipelines.config.models import RandomSplitSpec
    from pipelines.train.data import random_split
    from pipelines.train.search import combinations

    combos = combinations(spec.search, job.data.seed, "als", job.implicit)
    if not combos:
        return {}, []
    train = dataset.splits["train"]
    if "validation" in dataset.splits:
        fit_rows, held = train, dataset.splits["validation"]
    else:
        parts = random_split(train, RandomSplitSpec(test=0.2, validation=0.0, seed=job.data.seed), None, dataset.source)
        fit_rows, held = parts["train"], parts["test"]
    metric, greater = _metric(job)
    trial_data = Dataset(dataset.source, dataset.version, {"train": fit_rows, "test": held})
    prepared = fit_rows.withColumn(LABEL, F.col(job.label).cast("double")).persist(StorageLevel.MEMORY_AND_DISK)
    trials: list[dict] = []
    try:
        for number, combo in enumerate(combos, 1):
            model = als_pipeline(job, {**spec.params, **combo}, name).fit(prepared)
            value = float(evaluate(model, trial_data, job, f"{name} trial {number}").metrics.get(metric, float("nan")))
            trials.append({**combo, "metric": value})
            log.info("model %s: search trial %d/%d %s -> %s %.4f", name, number, len(combos), combo, metric, value)
    finally:
        prepared.unpersist()
    scored = [t for t in trials if t["metric"] == t["metric"]]  # NaN: no evaluable user
    if not scored:
        raise TrainingDataError(f"{dataset.source}: model {name}: no search trial could be scored ({metric} is NaN)")
    best = (max if greater else min)(scored, key=lambda t: t["metric"])
    chosen = {k: v for k, v in best.items() if k != "metric"}
    log.info("model %s: best parameters %s (%s %.4f)", name, chosen, metric, best["metric"])
    return chosen, trials


def fit(dataset: Dataset, job: TrainJobSpec, name: str, spec: ModelSpec) -> Fitted:
    started = time.time()
    params = dict(spec.params)
    best, trials = search(dataset, job, name, spec)
    params.update(best)
    train = dataset.splits["train"].withColumn(LABEL, F.col(job.label).cast("double"))
    prepared = train.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        model = als_pipeline(job, params, name).fit(prepared)
    finally:
        prepared.unpersist()
    evaluation = evaluate(model, dataset, job, name)
    return Fitted(model, FeatureColumns((), (job.user_column, job.item_column)), params, evaluation, None,
                  None, trials, time.time() - started)


def metric_of(model: PipelineModel, dataset: Dataset, job: TrainJobSpec, metric: str, name: str) -> float:
    """`metric` of a registered model on `dataset`; `<m>_at_k` is `<m>_at_<job.k>`, as in the summary."""
    if metric.endswith("_at_k"):
        metric = f"{metric[:-1]}{job.k}"
    return float(evaluate(model, dataset, job, name).metrics.get(metric, float("nan")))
