"""Heavy users (bots/abusers): config, volume, sessions and events, on tiny Spark frames."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from pyspark.sql import functions as F

from pipelines.config.generator import GeneratorConfig, HeavyUsersConfig
from pipelines.generate import clock, estimate, heavy
from pipelines.generate import events as ev
from pipelines.generate import users as usr

# 2 heavy users x 2 days x 2,500 events a day in sessions of 1,000 (1,000 + 1,000 + 500 a day)
CONFIG = GeneratorConfig.model_validate(
    {
        "users": 30,
        "days": 2,
        "products": 50,
        "seed": 5,
        "heavy_users": {"count": 2, "events_per_day": 2500, "session_events": 1000, "events_per_second": 20},
    }
)


def test_off_by_default():
    config = GeneratorConfig()
    assert config.heavy_users.count == 0 and not heavy.enabled(config)
    assert heavy.heavy_user_ids(config) == [] and heavy.event_count(config) == 0
    assert estimate(config).heavy_events == 0


def test_sessions_per_day_and_validation():
    assert HeavyUsersConfig().sessions_per_day == 10  # 50,000 events a day in sessions of 5,000
    assert HeavyUsersConfig(events_per_day=3000).sessions_per_day == 1
    assert CONFIG.heavy_users.sessions_per_day == 3 and CONFIG.heavy_users.events_per_session == 1000
    with pytest.raises(ValidationError, match="do not fit in a day"):
        HeavyUsersConfig(events_per_day=1_000_000, session_events=5000, events_per_second=10)
    with pytest.raises(ValidationError, match="do not fit in a day"):
        HeavyUsersConfig(events_per_day=5000, session_events=5000, events_per_second=0.05)


def test_ids_counts_and_estimate():
    assert heavy.heavy_user_ids(CONFIG) == ["u0000030", "u0000031"]
    assert heavy.session_count(CONFIG) == 2 * 2 * 3
    assert heavy.event_count(CONFIG) == 2 * 2 * 2500
    plain = estimate(CONFIG.model_copy(update={"heavy_users": HeavyUsersConfig()}))
    sized = estimate(CONFIG)
    assert sized.heavy_events == 10_000 and sized.heavy_sessions == 12
    assert sized.events == pytest.approx(plain.events + 10_000)
    assert sized.sessions == pytest.approx(plain.sessions + 12)


def test_heavy_users_frame(spark):
    rows = usr.truth_users(heavy.heavy_users(spark, CONFIG)).collect()
    assert [r.user_id for r in rows] == heavy.heavy_user_ids(CONFIG)
    assert all(r.is_heavy and r.activity_rate == 3.0 for r in rows)
    normal = usr.truth_users(usr.users(spark, CONFIG)).collect()
    assert len(normal) == 30 and not any(r.is_heavy for r in normal)


@pytest.fixture(scope="module")
def funnel(spark):
    return heavy.heavy_funnel(spark, CONFIG).collect()


def test_sessions_volume_and_placement(funnel):
    assert len(funnel) == 12 and all(r.is_heavy for r in funnel)
    assert all(r.session_key < 0 for r in funnel) and len({r.session_key for r in funnel}) == 12
    assert len({r.session_id for r in funnel}) == 12
    per_user_day: dict[tuple[str, int], list] = {}
    start = clock.epoch_millis(CONFIG.start_date)
    for row in funnel:
        day = (row.session_start_ms - start) // clock.MS_PER_DAY
        per_user_day.setdefault((row.user_id, day), []).append(row)
        assert row.referrer == "direct" and not row.purchased and row.p_purchase == 0.0
    assert {user for user, _ in per_user_day} == set(heavy.heavy_user_ids(CONFIG))
    for (_, day), rows in per_user_day.items():
        assert sum(len(r.events) for r in rows) == 2500
        assert sorted(len(r.events) for r in rows) == [500, 1000, 1000]
        spans = sorted((r.session_start_ms, r.session_start_ms + r.events[-1].offset_ms) for r in rows)
        day_start = start + day * clock.MS_PER_DAY
        assert spans[0][0] >= day_start and spans[-1][1] < day_start + clock.MS_PER_DAY  # inside its day
        gaps = [b[0] - a[1] for a, b in zip(spans, spans[1:])]
        assert min(gaps) >= 45 * clock.MS_PER_MINUTE  # rebuilt as separate sessions by a 30-minute rule


def test_events_are_mostly_product_views_at_machine_speed(funnel):
    for row in funnel:
        kinds = [e.event_type for e in row.events]
        offsets = [e.offset_ms for e in row.events]
        assert kinds[0] == "page_view" and set(kinds) <= {"page_view", "product_view", "search"}
        assert kinds.count("product_view") / len(kinds) > 0.9
        assert all(b > a for a, b in zip(offsets, offsets[1:]))
        rate = (len(offsets) - 1) / (offsets[-1] / 1000.0)
        assert rate == pytest.approx(CONFIG.heavy_users.events_per_second, rel=0.05)
        products = [e.product for e in row.events if e.event_type == "product_view"]
        assert all(0 <= p < CONFIG.products for p in products)
        assert all(e.product is None for e in row.events if e.event_type != "product_view")


def test_events_are_valid_canonical_events(spark):
    events = ev.events(heavy.heavy_funnel(spark, CONFIG), CONFIG)
    stats = events.agg(
        F.count(F.lit(1)).alias("n"),
        F.countDistinct("event_id").alias("ids"),
        F.sum(F.col("product_id").isNull().cast("int")).alias("no_product"),
        F.sum((F.col("event_type") == "product_view").cast("int")).alias("views"),
    ).first()
    assert stats.n == stats.ids == heavy.event_count(CONFIG)
    assert stats.views + stats.no_product == stats.n  # product fields exactly on product views


def test_deterministic_and_independent_of_the_normal_sessions(spark, funnel):
    again = heavy.heavy_funnel(spark, CONFIG).collect()
    assert again == funnel
    other = heavy.heavy_funnel(spark, CONFIG.model_copy(update={"seed": 6})).collect()
    assert {r.session_id for r in other}.isdisjoint(r.session_id for r in funnel)
