"""Top-k recommendation metrics against the items users interacted with in a later period.

Definitions (binary relevance; the same as pyspark.ml.evaluation.RankingEvaluator fed, per user,
the top-k recommended items and the relevant items):
- users evaluated: every user with at least one relevant item; a user without recommendations
  scores 0 on every metric, users without relevant items are left out;
- top k: a user's recommendations by score descending, ties broken by item ascending; a
  (user, item) recommended twice counts once, with its highest score;
- precision@k = hits / k (k even when fewer than k items were recommended);
- recall@k = hits / relevant items;
- NDCG@k = DCG / ideal DCG, DCG = sum over hits of 1 / log2(rank + 1), the ideal ranking
  putting min(k, relevant) hits first;
- MAP@k: mean over users of sum over hits of (hits so far / rank), divided by min(k, relevant);
- hit_rate@k: the share of users with at least one hit.
All of it runs in Spark; only a table of users by number of hits (at most k + 1 rows) is collected.
"""

from __future__ import annotations

import logging
import math

import pandas as pd
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from pipelines.evaluate.inputs import EvaluationInputError, col, column_type, numeric
from pipelines.evaluate.result import Evaluation

log = logging.getLogger(__name__)


def flatten_recommendations(
    recommendations: DataFrame,
    user_col: str = "user_id",
    item_col: str = "product_id",
    array_col: str = "recommendations",
    score_field: str = "rating",
) -> DataFrame:
    """ALS `recommendForAllUsers` output (user, array<struct<item, rating>>) -> (user, item, score) rows."""
    exploded = recommendations.select(col(user_col).alias(user_col), F.explode(col(array_col)).alias("__rec"))
    return exploded.select(
        user_col, F.col("__rec").getField(item_col).alias(item_col), F.col("__rec").getField(score_field).alias("score")
    )


def _check_key_types(
    recommendations: DataFrame, relevant: DataFrame, key: str, table: str, relevant_table: str
) -> None:
    left = column_type(recommendations, key, table, "key")
    right = column_type(relevant, key, relevant_table, "key")
    if left != right:
        raise EvaluationInputError(
            table, f"{key!r} is {left.simpleString()} here but {right.simpleString()} in {relevant_table}"
        )


def ranking_metrics(
    recommendations: DataFrame,
    relevant: DataFrame,
    k: int = 10,
    user_col: str = "user_id",
    item_col: str = "product_id",
    score_col: str = "score",
    table: str = "recommendations",
    relevant_table: str = "relevant_items",
) -> Evaluation:
    """precision@k, recall@k, NDCG@k, MAP@k and hit rate@k over users with a relevant item.

    `recommendations`: (user, item, score) rows, any number per user (the top k by score are used);
    `relevant`: (user, item) rows from the later period (duplicates count once).
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    for key in (user_col, item_col):
        _check_key_types(recommendations, relevant, key, table, relevant_table)
    score = numeric(recommendations, score_col, table, "score")
    user, item = col(user_col).alias("user"), col(item_col).alias("item")

    recs = (
        recommendations.select(user, item, score.alias("score"))
        .where(F.col("user").isNotNull() & F.col("item").isNotNull() & F.col("score").isNotNull())
        .groupBy("user", "item")
        .agg(F.max("score").alias("score"))
    )
    by_score = Window.partitionBy("user").orderBy(F.desc("score"), F.asc("item"))
    top = recs.withColumn("rank", F.row_number().over(by_score)).where(F.col("rank") <= k)

    rel = relevant.select(user, item).where(F.col("user").isNotNull() & F.col("item").isNotNull()).distinct()
    n_relevant = rel.groupBy("user").agg(F.count(F.lit(1)).alias("n_relevant"))
    hits = top.join(rel.withColumn("hit", F.lit(1)), ["user", "item"], "left").fillna(0, subset=["hit"])
    so_far = Window.partitionBy("user").orderBy("rank").rowsBetween(Window.unboundedPreceding, Window.currentRow)
    hits = hits.withColumn("hits_so_far", F.sum("hit").over(so_far))
    rank = F.col("rank").cast("double")
    per_user = hits.groupBy("user").agg(
        F.sum("hit").alias("hits"),
        F.sum(F.col("hit") * F.col("hits_so_far") / rank).alias("precision_sum"),
        F.sum(F.col("hit") / F.log2(rank + 1.0)).alias("dcg"),
    )

    # Ideal DCG for m relevant items: sum_{i=1..min(m, k)} 1 / log2(i + 1), a k-entry lookup.
    ideal, acc = [], 0.0
    for i in range(1, k + 1):
        acc += 1.0 / math.log2(i + 1)
        ideal.append(F.lit(acc))
    cutoff = F.least(F.col("n_relevant"), F.lit(k))
    users = n_relevant.join(per_user, "user", "left").select(
        F.coalesce(F.col("hits"), F.lit(0)).alias("hits"),
        F.col("hits").isNull().alias("no_recs"),
        (F.coalesce(F.col("hits"), F.lit(0)) / F.col("n_relevant")).alias("recall"),
        (F.coalesce(F.col("dcg"), F.lit(0.0)) / F.element_at(F.array(*ideal), cutoff.cast("int"))).alias("ndcg"),
        (F.coalesce(F.col("precision_sum"), F.lit(0.0)) / cutoff).alias("ap"),
    )
    rows = (
        users.groupBy("hits")
        .agg(F.count(F.lit(1)).alias("users"), F.sum(F.col("no_recs").cast("int")).alias("no_recs"),
             F.sum("recall").alias("recall"), F.sum("ndcg").alias("ndcg"), F.sum("ap").alias("ap"))
        .collect()  # bounded: one row per number of hits, at most k + 1
    )
    if not rows:
        raise EvaluationInputError(relevant_table, f"no ({user_col!r}, {item_col!r}) rows: no user to evaluate")
    by_hits = pd.DataFrame(rows, columns=["hits", "users", "no_recs", "recall", "ndcg", "ap"]).sort_values("hits")
    n = float(by_hits["users"].sum())
    metrics = {
        f"precision_at_{k}": float((by_hits["hits"] * by_hits["users"]).sum() / (k * n)),
        f"recall_at_{k}": float(by_hits["recall"].sum() / n),
        f"ndcg_at_{k}": float(by_hits["ndcg"].sum() / n),
        f"map_at_{k}": float(by_hits["ap"].sum() / n),
        f"hit_rate_at_{k}": float(by_hits.loc[by_hits["hits"] > 0, "users"].sum() / n),
        "users": n,
        "users_without_recommendations": float(by_hits["no_recs"].sum()),
    }
    if metrics["users_without_recommendations"]:
        log.warning("%s: %d of %d evaluated user(s) have no recommendations (scored 0)",
                    table, metrics["users_without_recommendations"], n)
    hits_table = by_hits[["hits", "users"]].reset_index(drop=True)
    hits_table["share"] = hits_table["users"] / n
    evaluation = Evaluation(
        kind="ranking",
        metrics=metrics,
        tables={"users_by_hits": hits_table},
        params={"k": k, "user_col": user_col, "item_col": item_col, "score_col": score_col, "table": table,
                "relevant_table": relevant_table},
    )
    log.info("%s: %s", table, evaluation.summary())
    return evaluation
