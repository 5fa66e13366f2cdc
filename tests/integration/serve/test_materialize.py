"""`clickml materialize` on the tiny pipeline (tests/services/baseline.py) into a real redis-server:
online features equal the gold features batch scoring uses, a rerun of the same as-of date writes
nothing, a missing user falls back and is counted; scored recommendations keep their rank order."""

from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import functions as F

from pipelines.lake import Lake
from pipelines.score.stage import available_as_of_dates, propensity_frame
from pipelines.serve import materialize
from pipelines.serve.online import OnlineStore, decode

# The shared tiny pipeline (built once per session, ~80 s with its training) is not part of
# `make test-fast`; materializing it takes a few seconds.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def serving_config(tiny_pipeline_on_disk, redis_server, tmp_path_factory):  # noqa: F811
    """The shared pipeline's config with the store on our redis-server and the recommendations
    table in a folder of ours (the shared lake is read, never written)."""
    base = tiny_pipeline_on_disk
    out = tmp_path_factory.mktemp("materialize")
    return base.model_copy(update={
        "serving": base.serving.model_copy(update={"redis_url": redis_server.url, "write_batch_size": 7}),
        "tables": base.tables.model_copy(update={"recommendations": str(out / "recommendations")}),
    })


def test_features_equal_the_gold_table_and_a_rerun_writes_nothing(spark, serving_config, redis_server):  # noqa: F811
    config = serving_config
    redis_server.flush()
    lake = Lake(config, spark)
    latest = available_as_of_dates(config, lake)[-1]

    result = materialize.run(config, spark, "propensity")
    print(result.report())
    assert (result.kind, result.as_of, result.skipped) == ("features", latest, False)
    frame = propensity_frame(config, lake, latest)
    assert result.users == frame.count() > 0

    client = redis_server.client()
    feature_keys = client.keys("clickml:propensity:features:*")
    assert len(feature_keys) == result.users and client.exists("clickml:propensity:meta")
    assert all(0 < client.ttl(k) <= 72 * 3600 for k in feature_keys[:20])

    # A few users' online features equal their gold.user_features row (prefixed u_, as in training)
    # and the batch scoring frame's row, value for value (nulls included).
    store = OnlineStore(config.serving)
    users = sorted(k.rsplit(":", 1)[1] for k in feature_keys)[:5]
    gold = {r["user_id"]: r.asDict() for r in lake.read(config.tables.user_features, partition_filters=[
        ("as_of_date", "in", [latest.isoformat()])]).withColumn("user_id", F.col("user_id").cast("string"))
        .where(F.col("user_id").isin(users)).collect()}  # bounded: 5 users
    batch = {r["user_id"]: r.asDict() for r in frame.withColumn("user_id", F.col("user_id").cast("string"))
             .where(F.col("user_id").isin(users)).collect()}  # bounded: 5 users
    assert set(gold) == set(batch) == set(users)
    for user in users:
        online, as_of = store.get_user_features("propensity", user)
        assert as_of == latest
        expected = {f"u_{c}": v for c, v in gold[user].items() if c not in ("user_id", "as_of_date")}
        assert online == expected, user
        assert all(online[c] == batch[user][c] for c in online), user
    assert store.fallbacks("propensity") == {"missing_user": 0, "missing_feature": 0, "missing_recs": 0}

    # Defaults: every stored column, typed like the column (medians of the materialized users).
    meta = store.meta("propensity", fresh=True)
    assert set(meta["defaults"]) == set(meta["schema"]) == set(expected)
    assert meta["users"] == result.users and meta["as_of_date"] == latest
    lookback = config.training_sets.propensity.lookback_days
    assert 0 <= meta["defaults"]["u_days_since_last_event"] <= lookback

    # The same as-of date again writes nothing (a hand-edited field survives); --force rewrites.
    key = f"clickml:propensity:features:{users[0]}"
    client.hset(key, "u_days_since_last_event", "999")
    again = materialize.run(config, spark, "propensity")
    assert again.skipped and again.users == 0 and "nothing written" in again.report()
    assert client.hget(key, "u_days_since_last_event") == "999"
    older = available_as_of_dates(config, lake)[0]
    assert materialize.run(config, spark, "propensity", as_of=older).skipped  # the store holds a later date
    forced = materialize.run(config, spark, "propensity", force=True)
    assert not forced.skipped and forced.users == result.users
    assert decode(client.hget(key, "u_days_since_last_event"), meta["schema"]["u_days_since_last_event"]) == gold[users[0]]["days_since_last_event"]

    # A user the store does not hold gets the defaults and is counted.
    features, as_of = store.get_user_features("propensity", "no-such-user")
    assert as_of is None and features == meta["defaults"]
    assert store.fallbacks("propensity")["missing_user"] == 1


def test_scored_recommendations_keep_rank_order_per_model_version(spark, serving_config, redis_server):  # noqa: F811
    config = serving_config
    lake = Lake(config, spark)
    as_of = dt.date(2024, 1, 4)
    rows = [("recommender", as_of, "u1", "p7", 1, 0.9, "2"), ("recommender", as_of, "u1", "p3", 2, 0.9, "2"),
            ("recommender", as_of, "u1", "p1", 3, 0.2, "2"), ("recommender", as_of, "u2", "p5", 1, 0.5, "2"),
            ("recommender", as_of, "u1", "p9", 1, 0.99, "1")]
    frame = spark.createDataFrame(rows, "job string, as_of_date date, user_id string, product_id string, rank int, "
                                        "score double, model_version string")
    lake.write(frame, config.tables.recommendations, mode="overwrite", partition_by=["job", "as_of_date"])

    result = materialize.run(config, spark, "recommender", version="2")
    assert (result.kind, result.as_of, result.users, result.model_version) == ("recommendations", as_of, 2, "2")
    store = OnlineStore(config.serving, meta_cache_seconds=0)  # the default version moves below
    assert store.get_recommendations("recommender", "u1") == [("p7", 0.9), ("p3", 0.9), ("p1", 0.2)]
    assert store.get_recommendations("recommender", "u2") == [("p5", 0.5)]
    assert store.materialized_as_of("recommender") == as_of
    assert materialize.run(config, spark, "recommender", version="2").skipped
    assert not materialize.run(config, spark, "recommender", version="1").skipped  # another model version
    assert store.get_recommendations("recommender", "u1") == [("p9", 0.99)]  # the default is now v1
    assert store.get_recommendations("recommender", "u1", "2")[0] == ("p7", 0.9)  # v2's keys stay beside it
    back = materialize.run(config, spark, "recommender", version="2")  # nothing to write, but the default moves
    assert back.skipped and back.default_moved and "now the default version" in back.report()
    assert store.get_recommendations("recommender", "u1")[0] == ("p7", 0.9)

    # An experiment between the two versions: each variant's version is materialized, the default stays v2.
    from pipelines.config.serving import ExperimentSpec

    spec = ExperimentSpec(job="recommender", variants={"control": {"version": 2}, "treatment": {"version": 1}})
    with_experiment = config.model_copy(update={"experiments": {"recs_ab": spec}})
    client = redis_server.client()
    client.delete("clickml:recommender:meta:1", "clickml:recommender:recs:1:u1")
    results = materialize.run_experiment(with_experiment, spark, "recs_ab")
    assert [(r.model_version, r.skipped, r.users) for r in results] == [("2", True, 0), ("1", False, 1)]
    assert store.get_recommendations("recommender", "u1", "1") == [("p9", 0.99)]
    assert store.meta("recommender", fresh=True)["model_version"] == "2"
    with pytest.raises(materialize.MaterializeError, match="unknown experiment 'nope'"):
        materialize.run_experiment(with_experiment, spark, "nope")
    with pytest.raises(materialize.MaterializeError, match="experiment recs_ab is on job recommender, not propensity"):
        materialize.run_experiment(with_experiment, spark, "recs_ab", job="propensity")

    with pytest.raises(materialize.MaterializeError, match=r"by model version 7 \(scored versions: 1, 2\)"):
        materialize.run(config, spark, "recommender", version="7")
    with pytest.raises(materialize.MaterializeError, match="no recommendations of recommender as of 2030-01-01"):
        materialize.run(config, spark, "recommender", as_of=dt.date(2030, 1, 1), version="2")
    with pytest.raises(materialize.MaterializeError, match="unknown training job"):
        materialize.run(config, spark, "nope")


def test_an_unreachable_store_is_one_clear_error(spark, serving_config):
    from tests.processes import free_ports

    config = serving_config.model_copy(update={"serving": serving_config.serving.model_copy(
        update={"redis_url": f"redis://127.0.0.1:{free_ports()[0]}/0"})})
    with pytest.raises(materialize.MaterializeError, match=r"cannot reach Redis at redis://127.0.0.1:\d+/0 \(serving.redis_url\)"):
        materialize.run(config, spark, "propensity")
