"""`clickml score` on the tiny pipeline (tests/services/baseline.py): the registered propensity
champion scores the latest as-of date into a predictions table outside the shared lake."""

from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import functions as F

from pipelines.lake import Lake
from pipelines.score import stage
from pipelines.score.stage import ScoringError

# The shared tiny pipeline (trained once per session, ~80 s) is not part of `make test-fast`.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def scoring(tiny_pipeline_on_disk, tmp_path_factory):
    """The shared pipeline's config, writing predictions and GX results under a folder of ours
    (the shared lake is read, never written: table names given as paths)."""
    base = tiny_pipeline_on_disk
    out = tmp_path_factory.mktemp("scoring")
    tables = base.tables.model_copy(update={"predictions": str(out / "predictions"),
                                            "recommendations": str(out / "recommendations")})
    validation = base.validation.model_copy(update={"results_root": str(out / "validation")})
    return base.model_copy(update={"tables": tables, "validation": validation})


def _registered(config):
    """(alias, model version) of the tiny pipeline's lr: `champion` when its gate let it be
    promoted, else `challenger` (on so little data its test log loss may lose to the base rate)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from pipelines.train.tracking import configure

    configure(config)
    name = config.training.jobs["propensity"].registry.name
    try:
        return "champion", MlflowClient().get_model_version_by_alias(name, "champion")
    except MlflowException:
        return "challenger", MlflowClient().get_model_version_by_alias(name, "challenger")


def test_the_registered_model_scores_the_latest_as_of_date_once(spark, scoring):
    config = scoring
    lake = Lake(config, spark)
    dates = stage.available_as_of_dates(config, lake)
    alias, champion = _registered(config)
    result = stage.run(config, spark, "propensity", alias=alias)
    assert result.as_of == dates[-1] and not result.skipped and result.rows > 0
    assert (result.model.version, result.model.alias, result.model.run_id) == (str(champion.version), alias, champion.run_id)
    assert result.threshold_source == "training run metric" and 0 < result.threshold < 1

    rows = lake.read(config.tables.predictions).collect()  # bounded: the tiny pipeline's users
    assert len(rows) == result.rows
    lookback = config.training_sets.propensity.lookback_days
    active = {r["user_id"] for r in lake.read(config.tables.user_features, partition_filters=[("as_of_date", "in", [str(result.as_of)])])
              .where(F.col("days_since_last_event") <= lookback).select(F.col("user_id").cast("string")).collect()}
    assert {r["user_id"] for r in rows} == active and len(active) == len(rows)
    for r in rows:
        assert 0.0 <= r["score"] <= 1.0
        assert r["decision"] == (r["score"] >= result.threshold)
        assert (r["job"], r["as_of_date"], r["model_name"], r["model_version"], r["model_alias"], r["run_id"]) == (
            "propensity", result.as_of, champion.name, str(champion.version), alias, champion.run_id)
        assert r["product_id"] is None and r["scored_at"] is not None
    assert sum(r["decision"] for r in rows) == result.positives
    print(result.report())

    version = lake.version(config.tables.predictions)
    again = stage.run(config, spark, "propensity", alias=alias)
    assert again.skipped and lake.version(config.tables.predictions) == version
    by_version = stage.run(config, spark, "propensity", as_of=result.as_of, version=champion.version)
    assert by_version.skipped and by_version.model.alias is None  # same (job, date, version)
    assert "nothing written" in again.report()


def test_a_failed_prediction_gate_writes_nothing(spark, scoring, monkeypatch):
    import pipelines.train.scoring as scoring_module

    config = scoring
    lake = Lake(config, spark)
    dates = stage.available_as_of_dates(config, lake)
    real = scoring_module.score
    monkeypatch.setattr(scoring_module, "score", lambda model, frame, task="binary": real(model, frame, task)
                        .withColumn("score", F.lit(0.5)))  # a degenerate model: the same score for everyone
    before = lake.version(config.tables.predictions) if lake.exists(config.tables.predictions) else None
    with pytest.raises(ScoringError, match="suite failed.*nothing written"):
        stage.run(config, spark, "propensity", as_of=dates[0], alias=_registered(config)[0])
    if before is not None:
        assert lake.version(config.tables.predictions) == before
        assert lake.read(config.tables.predictions).where(F.col("as_of_date") == dates[0]).isEmpty()
    else:
        assert not lake.exists(config.tables.predictions)


def test_a_missing_as_of_date_or_model_is_a_clear_error(spark, scoring):
    with pytest.raises(ScoringError, match=r"no features as of 2030-01-01; available as-of dates: 2024-"):
        stage.run(scoring, spark, "propensity", as_of=dt.date(2030, 1, 1), alias=_registered(scoring)[0])
    with pytest.raises(ScoringError, match="no model at models:/clickml-propensity/999"):
        stage.run(scoring, spark, "propensity", version=999)
    with pytest.raises(ScoringError, match="unknown training job"):
        stage.run(scoring, spark, "nope")


def test_an_als_model_writes_top_k_recommendations_per_active_user(spark, scoring, monkeypatch):
    """The recommendation path of `run` with an ALS fitted here on the shared implicit-feedback
    table (the tiny pipeline registers no recommender)."""
    import pipelines.train.scoring as scoring_module
    from pipelines.train.preprocess import LABEL
    from pipelines.train.recommend import als_pipeline

    config = scoring
    lake = Lake(config, spark)
    job = config.training.jobs["recommender"]
    train = lake.read(config.tables.implicit_training).where(F.col("split") == "train")
    model = als_pipeline(job, {"rank": 4, "maxIter": 2, "regParam": 0.05, "alpha": 5.0}).fit(
        train.withColumn(LABEL, F.col("strength").cast("double")))
    ref = stage.ModelRef(job.registry.name, "1", "champion", "run-x", f"models:/{job.registry.name}/1", {})
    monkeypatch.setattr(stage, "resolve_model", lambda name, alias, version: ref)
    monkeypatch.setattr(scoring_module, "load_model", lambda uri: model)
    result = stage.run(config, spark, "recommender")
    assert result.kind == "recommendation" and result.rows > 0 and result.table == config.tables.recommendations
    recs = lake.read(config.tables.recommendations).collect()  # bounded: k per tiny-pipeline user
    assert len(recs) == result.rows
    per_user = {}
    for r in recs:
        per_user.setdefault(r["user_id"], []).append(r)
        assert (r["job"], r["model_version"], r["model_alias"], r["run_id"]) == ("recommender", "1", "champion", "run-x")
    for items in per_user.values():
        ordered = sorted(items, key=lambda r: r["rank"])
        assert [r["rank"] for r in ordered] == list(range(1, len(ordered) + 1)) and len(ordered) <= job.k
        assert [r["score"] for r in ordered] == sorted((r["score"] for r in ordered), reverse=True)
    print(result.report())


def test_a_deep_model_scores_the_latest_as_of_date_like_its_own_transform(spark, scoring, monkeypatch, tmp_path):
    """The binary path of `run` with the deep model (TorchDistributor, one process, one epoch)
    fitted here on the shared propensity training set: one prediction per user of the feature
    rows, each equal to the model's own transform, the decision at the model's threshold."""
    pytest.importorskip("torch", reason="the deep model needs the `dl` extra (torch)")
    import pipelines.train.scoring as scoring_module
    from pipelines.deep import DeepTabularClassifier
    from pipelines.score.stage import available_as_of_dates, propensity_frame
    from pipelines.train.preprocess import feature_columns

    config = scoring
    lake = Lake(config, spark)
    job = config.training.jobs["propensity"]
    training = lake.read(config.tables.propensity_training)
    columns = feature_columns(training, job, config.tables.propensity_training)
    model = DeepTabularClassifier(
        numericCols=list(columns.numeric), categoricalCols=list(columns.categorical), labelCol=job.label,
        checkpointDir=str(tmp_path / "checkpoints"), maxIter=1, batchSize=64, hiddenLayers=[8], numProcesses=1,
        timeout=240, seed=3,
    ).fit(training.where(F.col(job.data.split_column) == "train"))
    ref = stage.ModelRef(job.registry.name, "7", "champion", None, f"models:/{job.registry.name}/7", {})  # no run: the model's threshold
    monkeypatch.setattr(stage, "resolve_model", lambda name, alias, version: ref)
    monkeypatch.setattr(scoring_module, "load_model", lambda uri: model)

    result = stage.run(config, spark, "propensity")
    latest = available_as_of_dates(config, lake)[-1]
    assert result.kind == "binary" and result.as_of == latest and result.rows > 0
    assert result.threshold == pytest.approx(model.value("threshold")) and result.threshold_source == "model param"
    written = lake.read(config.tables.predictions).where(
        (F.col("model_version") == "7") & (F.col("as_of_date") == F.lit(latest)))
    frame = propensity_frame(config, lake, latest)
    assert written.count() == result.rows == frame.count()  # unit: user (conf/base.yaml)
    own = {r["user_id"]: float(r["probability"][1]) for r in model.transform(frame).select("user_id", "probability").collect()}
    for r in written.select("user_id", "score", "decision").collect():  # bounded: the tiny pipeline's users
        assert r["score"] == pytest.approx(own[r["user_id"]], abs=1e-9)
        assert r["decision"] == (r["score"] >= result.threshold)
