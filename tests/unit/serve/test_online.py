"""The online store against a real redis-server: key layout, TTLs, value round trips, defaults and
the fallback counters (the writers called directly, as a Spark task calls them)."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from pyspark.sql import Row

from pipelines.config.serving import ServingConfig
from pipelines.serve import online
from pipelines.serve.online import OnlineStore, decode, encode, masked_url, parse_meta

JOB = "propensity"
AS_OF = "2024-01-05"
COLUMNS = ["u_events_7d", "u_revenue_7d", "u_is_buyer", "u_top_category", "u_last_seen"]
SCHEMA = {"u_events_7d": "int", "u_revenue_7d": "float", "u_is_buyer": "bool", "u_top_category": "str", "u_last_seen": "date"}


@pytest.fixture
def serving(redis_server):  # noqa: F811
    redis_server.flush()
    return ServingConfig(redis_url=redis_server.url, key_prefix="t", feature_ttl_hours=2)


@pytest.fixture
def store(serving):
    return OnlineStore(serving, meta_cache_seconds=0)


def rows():
    return [
        Row(user_id="u1", u_events_7d=12, u_revenue_7d=0.1 + 0.2, u_is_buyer=True, u_top_category="shoes",
            u_last_seen=dt.date(2024, 1, 4)),
        Row(user_id="u2", u_events_7d=3, u_revenue_7d=None, u_is_buyer=False, u_top_category=None,
            u_last_seen=dt.date(2024, 1, 1)),
        Row(user_id="u3", u_events_7d=0, u_revenue_7d=float("inf"), u_is_buyer=False, u_top_category="",
            u_last_seen=None),
    ]


def materialize(serving, client, batch_size=2):
    written = online.write_features(rows(), url=serving.redis_url, prefix="t", job=JOB, as_of=AS_OF, columns=COLUMNS,
                                    ttl_seconds=7200, batch_size=batch_size)
    defaults = {"u_events_7d": "3", "u_revenue_7d": "0.5", "u_is_buyer": "false", "u_top_category": "shoes",
                "u_last_seen": "2024-01-02"}
    online.write_meta(client, "t", JOB, {"kind": "features", "as_of_date": AS_OF, "users": str(written),
                                         "schema": json.dumps(SCHEMA), "defaults": json.dumps(defaults)}, 7200)
    return written


def test_keys_follow_the_contract_with_a_ttl(serving, redis_server):  # noqa: F811
    client = redis_server.client()
    assert materialize(serving, client) == 3
    assert sorted(client.keys("*")) == ["t:propensity:features:u1", "t:propensity:features:u2",
                                        "t:propensity:features:u3", "t:propensity:meta"]
    stored = client.hgetall("t:propensity:features:u1")
    assert stored == {"u_events_7d": "12", "u_revenue_7d": repr(0.1 + 0.2), "u_is_buyer": "true",
                      "u_top_category": "shoes", "u_last_seen": "2024-01-04", "as_of_date": AS_OF}
    assert client.hget("t:propensity:features:u2", "u_revenue_7d") == online.NULL
    for key in client.keys("*"):
        assert 7100 < client.ttl(key) <= 7200, key


def test_features_round_trip_exactly_with_their_types(serving, store, redis_server):  # noqa: F811
    materialize(serving, redis_server.client())
    features, as_of = store.get_user_features(JOB, "u1")
    assert as_of == dt.date(2024, 1, 5)
    assert features == {"u_events_7d": 12, "u_revenue_7d": 0.1 + 0.2, "u_is_buyer": True, "u_top_category": "shoes",
                        "u_last_seen": dt.date(2024, 1, 4)}
    assert type(features["u_events_7d"]) is int and features["u_revenue_7d"] == 0.30000000000000004
    nulls, _ = store.get_user_features(JOB, "u2")
    assert nulls["u_revenue_7d"] is None and nulls["u_top_category"] is None  # null in batch, null online
    edge, _ = store.get_user_features(JOB, "u3")
    assert edge["u_revenue_7d"] == float("inf") and edge["u_top_category"] == "" and edge["u_last_seen"] is None
    assert store.fallbacks(JOB) == {"missing_user": 0, "missing_feature": 0, "missing_recs": 0}
    assert store.materialized_as_of(JOB) == dt.date(2024, 1, 5)


def test_a_missing_user_gets_the_defaults_and_is_counted(serving, store, redis_server):  # noqa: F811
    materialize(serving, redis_server.client())
    features, as_of = store.get_user_features(JOB, "nobody")
    assert as_of is None
    assert features == {"u_events_7d": 3, "u_revenue_7d": 0.5, "u_is_buyer": False, "u_top_category": "shoes",
                        "u_last_seen": dt.date(2024, 1, 2)}
    store.get_user_features(JOB, "nobody-else")
    assert store.fallbacks(JOB)["missing_user"] == 2
    assert redis_server.client().ttl("t:propensity:fallbacks") == -1  # counters do not expire


def test_a_missing_feature_gets_its_default_and_is_counted(serving, store, redis_server):  # noqa: F811
    client = redis_server.client()
    materialize(serving, client)
    client.hdel("t:propensity:features:u1", "u_revenue_7d", "u_top_category")
    features, _ = store.get_user_features(JOB, "u1")
    assert features["u_revenue_7d"] == 0.5 and features["u_top_category"] == "shoes" and features["u_events_7d"] == 12
    assert store.fallbacks(JOB) == {"missing_user": 0, "missing_feature": 1, "missing_recs": 0}


def test_a_job_never_materialized_has_no_features_and_no_date(store):
    assert store.get_user_features("other", "u1") == (None, None)
    assert store.materialized_as_of("other") is None
    assert store.defaults("other") == {}
    assert store.fallbacks("other")["missing_user"] == 1


def test_rewriting_a_user_replaces_its_fields_atomically(serving, redis_server):  # noqa: F811
    client = redis_server.client()
    materialize(serving, client)
    client.hset("t:propensity:features:u1", "stale_column", "1")
    online.write_features([rows()[0]], url=serving.redis_url, prefix="t", job=JOB, as_of="2024-01-06",
                          columns=COLUMNS, ttl_seconds=60, batch_size=10)
    stored = client.hgetall("t:propensity:features:u1")
    assert "stale_column" not in stored and stored["as_of_date"] == "2024-01-06"
    assert client.ttl("t:propensity:features:u1") <= 60


def test_recommendations_keep_their_rank_order(serving, store, redis_server):  # noqa: F811
    items = [Row(user_id="u1", items=[Row(product_id="p9", score=0.9), Row(product_id="p1", score=0.4)])]
    counted = []

    class Counter:
        def add(self, n):
            counted.append(n)

    assert online.write_recommendations(items, url=serving.redis_url, prefix="t", job="recommender", as_of=AS_OF,
                                        model_version="3", ttl_seconds=60, batch_size=1, counter=Counter()) == 1
    assert counted == [1]
    assert store.get_recommendations("recommender", "u1", "3") == [("p9", 0.9), ("p1", 0.4)]
    stored = redis_server.client().hgetall("t:recommender:recs:3:u1")  # one set of keys per model version
    assert stored["model_version"] == "3" and stored["as_of_date"] == AS_OF
    assert store.get_recommendations("recommender", "nobody", "3") == []
    assert store.get_recommendations("recommender", "u1", "4") == []  # a version never materialized
    # without a version: the job meta's (none yet: counted like an unknown user)
    assert store.get_recommendations("recommender", "u1") == []
    assert store.fallbacks("recommender")["missing_recs"] == 3
    online.write_meta(redis_server.client(), "t", "recommender", {"as_of_date": AS_OF, "model_version": "3"}, 60)
    assert store.get_recommendations("recommender", "u1") == [("p9", 0.9), ("p1", 0.4)]


def test_meta_is_cached_for_a_while(serving, redis_server):  # noqa: F811
    client = redis_server.client()
    materialize(serving, client)
    cached = OnlineStore(serving, meta_cache_seconds=60)
    assert cached.meta(JOB)["users"] == 3
    client.hset("t:propensity:meta", "users", "4")
    assert cached.meta(JOB)["users"] == 3  # within the cache period
    assert cached.meta(JOB, fresh=True)["users"] == 4
    assert cached.materialized_as_of(JOB) == dt.date(2024, 1, 5)


def test_an_unreachable_store_names_the_url_without_its_password():
    from pipelines.serve.online import OnlineStoreError
    from tests.processes import free_ports

    serving = ServingConfig(redis_url=f"redis://user:secret@127.0.0.1:{free_ports()[0]}/0")
    store = OnlineStore(serving)
    assert store.ping() is False
    with pytest.raises(OnlineStoreError, match=r"redis://user:\*\*\*@127.0.0.1:\d+/0: reading clickml:propensity:features:u1") as caught:
        store.get_user_features(JOB, "u1")
    assert "secret" not in str(caught.value)


@pytest.mark.parametrize("value", [0.1, -2.5e-308, 1e300, float("nan"), 7, True, "a:b", dt.date(2024, 2, 29), None])
def test_encode_decode_round_trip(value):
    kind = {float: "float", int: "int", bool: "bool", str: "str", dt.date: "date", type(None): "float"}[type(value)]
    back = decode(encode(value), kind)
    if isinstance(value, float) and value != value:
        assert back != back
    else:
        assert back == value and type(back) is type(value)


def test_masked_url_and_meta_parsing():
    assert masked_url("redis://:pw@h:1/0") == "redis://***@h:1/0"
    assert masked_url("redis://h:1/0") == "redis://h:1/0"
    meta = parse_meta({"as_of_date": AS_OF, "users": "2", "schema": json.dumps({"a": "int"}), "defaults": json.dumps({"a": "4"})})
    assert meta["as_of_date"] == dt.date(2024, 1, 5) and meta["users"] == 2 and meta["defaults"] == {"a": 4}
