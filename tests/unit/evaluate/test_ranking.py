"""Ranking metrics against a numpy reference, Spark's RankingEvaluator and sklearn's ndcg_score."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from pyspark.ml.evaluation import RankingEvaluator
from sklearn.metrics import ndcg_score

from pipelines.evaluate import EvaluationInputError, flatten_recommendations, ranking_metrics

USERS, ITEMS = 40, 30


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Recommendations with tied scores and duplicates; users 35-39 get none. Users 0-4 have no
    relevant items (not evaluated); relevant rows have duplicates."""
    rng = np.random.default_rng(9)
    recs, rel = [], []
    for user in range(35):
        items = rng.choice(ITEMS, rng.integers(3, 16), replace=False)
        recs += [(user, int(i), float(rng.integers(0, 5)) / 4) for i in items]
        recs.append((user, int(items[0]), -1.0))  # a duplicate with a lower score: ignored
    for user in range(5, USERS):
        items = rng.choice(ITEMS, rng.integers(1, 7), replace=False)
        rel += [(user, int(i)) for i in items] + [(user, int(items[0]))]
    return (pd.DataFrame(recs, columns=["user_id", "product_id", "score"]),
            pd.DataFrame(rel, columns=["user_id", "product_id"]))


def top_k(recs: pd.DataFrame, user: int, k: int) -> list[int]:
    best = recs[recs.user_id == user].groupby("product_id", as_index=False)["score"].max()
    return best.sort_values(["score", "product_id"], ascending=[False, True])["product_id"].head(k).tolist()


def reference(recs: pd.DataFrame, rel: pd.DataFrame, k: int) -> dict[str, float]:
    """The definitions in pipelines/evaluate/ranking.py, written out per user with numpy."""
    out = {"precision": [], "recall": [], "ndcg": [], "map": [], "hit": []}
    for user, items in rel.groupby("user_id")["product_id"]:
        relevant = set(items)
        hits = np.array([i in relevant for i in top_k(recs, user, k)], dtype=float)
        ranks = np.arange(1, len(hits) + 1)
        cutoff = min(k, len(relevant))
        out["precision"].append(hits.sum() / k)
        out["recall"].append(hits.sum() / len(relevant))
        out["ndcg"].append((hits / np.log2(ranks + 1)).sum() / (1 / np.log2(np.arange(1, cutoff + 1) + 1)).sum())
        out["map"].append((hits * np.cumsum(hits) / ranks).sum() / cutoff)
        out["hit"].append(float(hits.sum() > 0))
    return {f"{name}_at_{k}" if name != "hit" else f"hit_rate_at_{k}": float(np.mean(v)) for name, v in out.items()}


@pytest.mark.parametrize("k", [1, 5, 10])
def test_agrees_with_numpy_reference(spark, data, k, caplog):
    recs, rel = data
    with caplog.at_level(logging.WARNING, logger="pipelines.evaluate"):
        ev = ranking_metrics(spark.createDataFrame(recs), spark.createDataFrame(rel), k=k)
    for name, value in reference(recs, rel, k).items():
        assert ev.metrics[name] == pytest.approx(value, abs=1e-12), name
    assert ev.metrics["users"] == 35 and ev.metrics["users_without_recommendations"] == 5
    assert "5 of 35 evaluated user(s) have no recommendations" in caplog.text
    table = ev.tables["users_by_hits"]
    assert table["users"].sum() == 35 and table["hits"].max() <= k


def test_agrees_with_spark_ranking_evaluator(spark, data):
    recs, rel = data
    k = 5
    ev = ranking_metrics(spark.createDataFrame(recs), spark.createDataFrame(rel), k=k)
    rows = [([float(i) for i in top_k(recs, u, k)], [float(i) for i in sorted(set(items))])
            for u, items in rel.groupby("user_id")["product_id"]]
    per_user = spark.createDataFrame(rows, "prediction array<double>, label array<double>")
    for spark_name, ours in [("precisionAtK", "precision"), ("recallAtK", "recall"), ("ndcgAtK", "ndcg"),
                             ("meanAveragePrecisionAtK", "map")]:
        expected = RankingEvaluator(metricName=spark_name, k=k).evaluate(per_user)
        assert ev.metrics[f"{ours}_at_{k}"] == pytest.approx(expected, abs=1e-12), spark_name


def test_ndcg_agrees_with_sklearn_on_full_rankings(spark):
    """Every user scores every item with distinct scores: sklearn's ndcg_score sees the same top k."""
    rng = np.random.default_rng(4)
    scores = rng.permutation(np.arange(20 * 12, dtype=float)).reshape(20, 12)
    truth = (rng.random((20, 12)) < 0.2).astype(int)
    truth[:, 0] = np.maximum(truth[:, 0], truth.sum(axis=1) == 0)  # every user has a relevant item
    recs = [(u, i, float(scores[u, i])) for u in range(20) for i in range(12)]
    rel = [(u, i) for u in range(20) for i in range(12) if truth[u, i]]
    ev = ranking_metrics(spark.createDataFrame(recs, "user_id long, product_id long, score double"),
                         spark.createDataFrame(rel, "user_id long, product_id long"), k=4)
    assert ev.metrics["ndcg_at_4"] == pytest.approx(ndcg_score(truth, scores, k=4), abs=1e-12)


def test_flatten_als_recommendations(spark):
    als = spark.createDataFrame(
        [(1, [(10, 0.9), (11, 0.5)]), (2, [(12, 0.7)])],
        "user_id int, recommendations array<struct<product_id:int, rating:float>>",
    )
    flat = flatten_recommendations(als)
    assert flat.columns == ["user_id", "product_id", "score"]
    assert sorted((r.user_id, r.product_id) for r in flat.collect()) == [(1, 10), (1, 11), (2, 12)]  # tiny
    ev = ranking_metrics(flat, spark.createDataFrame([(1, 11), (2, 13)], "user_id int, product_id int"), k=2)
    assert ev.metrics["precision_at_2"] == pytest.approx(0.25) and ev.metrics["recall_at_2"] == pytest.approx(0.5)


def test_errors(spark):
    recs = spark.createDataFrame([(1, 10, 0.5)], "user_id long, product_id long, score double")
    with pytest.raises(EvaluationInputError, match=r"purchases_next_week: no \('user_id', 'product_id'\) rows"):
        none = spark.createDataFrame([], "user_id long, product_id long")
        ranking_metrics(recs, none, relevant_table="purchases_next_week")
    message = "recommendations: 'product_id' is bigint here but string in relevant_items"
    with pytest.raises(EvaluationInputError, match=message):
        ranking_metrics(recs, spark.createDataFrame([(1, "10")], "user_id long, product_id string"))
    with pytest.raises(EvaluationInputError, match="recommendations: no score column 'rating'"):
        ranking_metrics(recs, recs.select("user_id", "product_id"), score_col="rating")
    with pytest.raises(EvaluationInputError, match="relevant_items: no key column 'product_id'"):
        ranking_metrics(recs, recs.select("user_id"))
