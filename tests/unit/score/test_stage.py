"""The pure parts of batch scoring: model URIs, as-of date choice, thresholds, decisions, ranks."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest

from pipelines.score import stage
from pipelines.score.stage import ScoringError

D = dt.date


def test_model_uri_by_alias_or_version():
    assert stage.model_uri("m") == "models:/m@champion"
    assert stage.model_uri("m", "challenger") == "models:/m@challenger"
    assert stage.model_uri("m", "champion", 3) == "models:/m/3"
    assert stage.model_uri("m", None, "7") == "models:/m/7"
    with pytest.raises(ScoringError, match="must be a number"):
        stage.model_uri("m", None, "latest")
    with pytest.raises(ScoringError, match="alias or a version"):
        stage.model_uri("m", None, None)


def test_as_of_is_the_latest_or_the_requested_date():
    dates = [D(2024, 1, 3), D(2024, 1, 1), D(2024, 1, 2)]
    assert stage.pick_as_of(dates, None, "gold.user_features") == D(2024, 1, 3)
    assert stage.pick_as_of(dates, D(2024, 1, 2), "gold.user_features") == D(2024, 1, 2)


def test_a_missing_as_of_date_names_the_table_and_the_dates_it_has():
    with pytest.raises(ScoringError) as err:
        stage.pick_as_of([D(2024, 1, 1), D(2024, 1, 2)], D(2024, 2, 1), "gold.user_features")
    message = str(err.value)
    assert "gold.user_features" in message and "2024-02-01" in message
    assert "2024-01-01, 2024-01-02" in message
    with pytest.raises(ScoringError, match="has no as-of date"):
        stage.pick_as_of([], None, "gold.user_features")


def test_threshold_comes_from_the_run_then_the_tag_then_the_model_then_the_default(spark):
    from pyspark.ml.classification import LogisticRegression

    assert stage.threshold_of({"threshold": 0.31, "roc_auc": 0.8}, {"metric.threshold": "0.3"}) == (0.31, "training run metric")
    assert stage.threshold_of({"roc_auc": 0.8}, {"metric.threshold": "0.3"}) == (0.3, "model version tag")
    pipeline = SimpleNamespace(stages=[object(), LogisticRegression(threshold=0.42)])
    value, source = stage.threshold_of({}, {}, pipeline)
    assert value == pytest.approx(0.42) and "LogisticRegression" in source
    deep = SimpleNamespace(value=lambda name: 0.27)
    assert stage.threshold_of(None, None, deep) == (0.27, "model param")
    assert stage.threshold_of(None, None, SimpleNamespace(stages=[object()])) == (0.5, "default")


def test_decision_is_score_at_or_above_the_threshold(spark):
    frame = spark.createDataFrame([("a", 0.1), ("b", 0.3), ("c", 0.9), ("d", None)], "user_id string, score double")
    got = {r["user_id"]: r["decision"] for r in stage.decide(frame, 0.3).collect()}
    assert got == {"a": False, "b": True, "c": True, "d": None}


def test_recommendations_are_ranked_per_user_and_cut_at_k(spark):
    recs = spark.createDataFrame(
        [("u1", "p1", 0.2), ("u1", "p2", 0.9), ("u1", "p3", 0.5), ("u2", "p1", 0.4)],
        "user_id string, product_id string, score double",
    )
    got = sorted((r["user_id"], r["rank"], r["product_id"]) for r in stage.ranked(recs, "user_id", 2).collect())
    assert got == [("u1", 1, "p2"), ("u1", 2, "p3"), ("u2", 1, "p1")]


def test_the_transaction_is_keyed_by_job_date_model_and_version():
    a = stage.txn_for("propensity", D(2024, 1, 4), "m", "1")
    assert a == stage.txn_for("propensity", D(2024, 1, 4), "m", "1")
    assert a.app_id != stage.txn_for("propensity", D(2024, 1, 4), "m", "2").app_id
    assert a.app_id != stage.txn_for("propensity", D(2024, 1, 5), "m", "1").app_id
    assert "propensity/2024-01-04/m/1" in a.app_id


def test_which_jobs_can_be_scored(config):
    jobs = config.training.jobs
    assert stage.kind_of(config, "propensity", jobs["propensity"]) == "binary"
    assert stage.kind_of(config, "recommender", jobs["recommender"]) == "recommendation"
    own = jobs["propensity"].model_copy(update={"data": jobs["propensity"].data.model_copy(update={"table": "my.table"})})
    with pytest.raises(ScoringError, match="trained on my.table"):
        stage.kind_of(config, "own", own)


class _Client:
    def __init__(self, error=None):
        self.error = error

    def _mv(self, version):
        if self.error:
            raise self.error
        return SimpleNamespace(version=version, run_id="r1", tags={"metric.threshold": "0.4"})

    def get_model_version_by_alias(self, name, alias):
        return self._mv("3")

    def get_model_version(self, name, version):
        return self._mv(version)


def test_the_alias_is_resolved_to_a_version_uri(monkeypatch):
    monkeypatch.setattr("mlflow.MlflowClient", lambda: _Client())
    ref = stage.resolve_model("m", "champion")
    assert (ref.version, ref.alias, ref.run_id, ref.uri) == ("3", "champion", "r1", "models:/m/3")
    ref = stage.resolve_model("m", "champion", 5)
    assert (ref.version, ref.alias, ref.uri) == ("5", None, "models:/m/5")


def test_a_missing_model_is_a_scoring_error(monkeypatch):
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST

    error = MlflowException("Registered model alias champion not found.", RESOURCE_DOES_NOT_EXIST)
    monkeypatch.setattr("mlflow.MlflowClient", lambda: _Client(error))
    with pytest.raises(ScoringError, match="no model at models:/m@champion"):
        stage.resolve_model("m", "champion")


@pytest.mark.slow  # fits an ALS (~20 s)
def test_als_recommendations_are_top_k_per_known_user(spark, config):
    from pyspark.sql import functions as F

    from pipelines.train.preprocess import LABEL
    from pipelines.train.recommend import als_pipeline, recommend

    job = config.training.jobs["recommender"]
    rows = [(f"u{u}", f"p{p}", float(1 + (u * p) % 3)) for u in range(6) for p in range(5) if (u + p) % 2 == 0]
    train = spark.createDataFrame(rows, "user_id string, product_id string, strength double")
    model = als_pipeline(job, {"rank": 2, "maxIter": 2, "regParam": 0.1}).fit(train.withColumn(LABEL, F.col("strength")))
    users = spark.createDataFrame([("u0",), ("u1",), ("stranger",)], "user_id string")
    out = stage.ranked(recommend(model, users, job, 2), "user_id", 2).collect()
    by_user = {}
    for r in out:
        by_user.setdefault(r["user_id"], []).append((r["rank"], r["score"]))
    assert set(by_user) == {"u0", "u1"}  # no factors for an unseen user: no recommendations
    for ranks in by_user.values():
        assert [rank for rank, _ in sorted(ranks)] == [1, 2]
        scores = [s for _, s in sorted(ranks)]
        assert scores == sorted(scores, reverse=True)
