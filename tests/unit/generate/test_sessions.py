"""Session placement and the funnel, checked on the Spark frames of a tiny config."""

from __future__ import annotations

import pytest
from pyspark.sql import functions as F

from pipelines.config.generator import GeneratorConfig
from pipelines.generate import clock
from pipelines.generate import events as ev
from pipelines.generate import sessions as sess
from pipelines.generate import users as usr

CONFIG = GeneratorConfig.model_validate({"users": 120, "days": 3, "products": 50, "seed": 11})


def _sessions(spark, partitions=None):
    return sess.sessions(usr.users(spark, CONFIG, partitions=partitions), CONFIG)


def test_session_probability_is_capped(spark):
    df = spark.createDataFrame([(0.5, 0), (0.5, 11), (1000.0, 10)], "rate double, slot int")
    got = [r.p for r in df.select(sess.session_probability(F.col("rate"), F.col("slot")).alias("p")).collect()]
    weights = sess.slot_weights()
    assert sum(weights) == pytest.approx(sess.SLOTS_PER_DAY)
    assert got == pytest.approx([0.5 * weights[0] / 12, 0.5 * weights[11] / 12, 1.0])


def test_sessions_do_not_depend_on_partitioning(spark):
    columns = ["session_id", "user_id", "session_start_ms", "device", "referrer", "p_purchase", "purchased"]
    one = sorted(_sessions(spark, partitions=1).select(columns).collect())
    assert one == sorted(_sessions(spark, partitions=3).select(columns).collect())
    assert len({r.session_id for r in one}) == len(one)


def test_sessions_of_a_user_are_far_apart_and_inside_the_period(spark):
    funnel = ev.with_funnel(_sessions(spark), CONFIG)
    rows = funnel.select(
        "user_id", "session_start_ms", (F.col("session_start_ms") + F.element_at("events", -1)["offset_ms"]).alias("end_ms")
    ).collect()
    start = clock.epoch_millis(CONFIG.start_date)
    end = clock.epoch_millis(CONFIG.end_date)
    by_user: dict[str, list[tuple[int, int]]] = {}
    for row in rows:
        assert start <= row.session_start_ms and row.end_ms < end
        assert row.end_ms - row.session_start_ms < sess.MAX_SESSION_MS
        by_user.setdefault(row.user_id, []).append((row.session_start_ms, row.end_ms))
    gaps = [
        b[0] - a[1] for spans in by_user.values() for a, b in zip(sorted(spans), sorted(spans)[1:])
    ]
    assert gaps and min(gaps) > 40 * clock.MS_PER_MINUTE


def test_funnel_rules(spark):
    rows = ev.with_funnel(_sessions(spark), CONFIG).select("purchased", "events").collect()
    assert any(r.purchased for r in rows) and not all(r.purchased for r in rows)
    for row in rows:
        kinds = [e.event_type for e in row.events]
        offsets = [e.offset_ms for e in row.events]
        assert kinds[0] in ("page_view", "search") and row.events[0].product is None
        assert all(e.product is not None for e in row.events[1:])
        assert offsets[0] == 0 and all(b - a >= 500 for a, b in zip(offsets, offsets[1:]))
        assert kinds[1] == "product_view"
        assert ("purchase" in kinds) == row.purchased
        cart: dict[int, int] = {}
        for i, e in enumerate(row.events):
            if e.event_type == "add_to_cart":
                assert row.events[i - 1].event_type == "product_view" and row.events[i - 1].product == e.product
                cart[e.product] = cart.get(e.product, 0) + 1
            elif e.event_type == "remove_from_cart":
                assert cart.get(e.product, 0) > 0
                cart[e.product] -= 1
            elif e.event_type == "purchase":
                assert cart.get(e.product, 0) > 0, "purchase only after an add_to_cart"
                assert all(x.event_type == "purchase" for x in row.events[i:])


def test_truth_sessions_counts(spark):
    truth = sess.truth_sessions(ev.with_funnel(_sessions(spark), CONFIG)).collect()
    for row in truth:
        assert row.n_events == 1 + row.n_product_views + row.n_add_to_cart + row.n_remove_from_cart + row.n_purchases
        assert (row.n_purchases > 0) == row.purchased
        assert row.session_end >= row.session_start
        assert 0 < row.p_purchase < 1
