"""Sessionization edge cases and the session summary, on tiny hand-made frames."""

from __future__ import annotations

import datetime as dt

from pipelines.silver.sessionize import sessionize, summarize_sessions

T0 = dt.datetime(2024, 1, 1, 10, 0, 0)


def events(spark, rows):
    """rows: (user, seconds after T0 or datetime, type, product, price)."""
    data = []
    for i, (user, when, kind, product, price) in enumerate(rows):
        ts = when if isinstance(when, dt.datetime) else T0 + dt.timedelta(seconds=when)
        data.append((f"e{i}", user, ts, ts.date(), kind, product, price, "mobile", "search", "FR"))
    return spark.createDataFrame(
        data,
        "event_id string, user_id string, event_time timestamp, event_date date, event_type string, "
        "product_id string, price double, device string, referrer string, country string",
    )


def session_of(spark, rows, gap=30.0):
    out = sessionize(events(spark, rows), gap).orderBy("event_id").collect()  # tiny frames
    return [(r.user_id, r.session_id, r.session_start) for r in out]


def distinct_sessions(result):
    return len({s for _, s, _ in result})


def test_gap_exactly_at_the_threshold_starts_a_new_session(spark):
    result = session_of(spark, [("u", 0, "page_view", None, None), ("u", 30 * 60, "page_view", None, None)])
    assert distinct_sessions(result) == 2
    result = session_of(spark, [("u", 0, "page_view", None, None), ("u", 30 * 60 - 1, "page_view", None, None)])
    assert distinct_sessions(result) == 1


def test_session_crossing_midnight_stays_one(spark):
    late = dt.datetime(2024, 1, 1, 23, 50)
    rows = [("u", late, "page_view", None, None), ("u", late + dt.timedelta(minutes=20), "product_view", "p", None)]
    result = session_of(spark, rows)
    assert distinct_sessions(result) == 1
    assert result[0][2] == late and result[1][2] == late


def test_hour_bucket_edges_do_not_split_sessions(spark):
    rows = [("u", 3599, "page_view", None, None), ("u", 3601, "product_view", "p", None), ("u", 3600 * 3 - 10, "search", None, None)]
    result = session_of(spark, rows)
    # 10:59:59 and 11:00:01 belong together; 12:59:50 is 2 hours later: a new session
    assert result[0][1] == result[1][1] != result[2][1]
    assert result[2][2] == T0 + dt.timedelta(seconds=3600 * 3 - 10)


def test_session_spanning_several_buckets(spark):
    rows = [("u", k * 20 * 60, "product_view", "p", None) for k in range(10)]  # every 20 min for 3 hours
    result = session_of(spark, rows)
    assert distinct_sessions(result) == 1 and {r[2] for r in result} == {T0}


def test_unsorted_input_and_several_users(spark):
    rows = [
        ("b", 100, "search", None, None),
        ("a", 5000, "page_view", None, None),
        ("a", 0, "page_view", None, None),
        ("b", 0, "page_view", None, None),
        ("a", 60, "product_view", "p", None),
    ]
    result = session_of(spark, rows)
    by_event = {f"e{i}": r for i, r in enumerate(result)}
    assert by_event["e2"][1] == by_event["e4"][1] != by_event["e1"][1]  # a: 0 and 60 together; 5000 s apart
    assert by_event["e0"][1] == by_event["e3"][1]  # b: one session
    assert by_event["e0"][1] != by_event["e2"][1]


def test_one_event_sessions(spark):
    rows = [("u", 0, "page_view", None, None), ("u", 7200, "page_view", None, None), ("v", 0, "page_view", None, None)]
    assert distinct_sessions(session_of(spark, rows)) == 3


def test_session_ids_do_not_depend_on_what_else_is_processed(spark):
    rows = [("u", 0, "page_view", None, None), ("u", 60, "product_view", "p", None)]
    alone = session_of(spark, rows)
    with_other_day = session_of(spark, rows + [("u", 86400 * 2, "page_view", None, None)])
    assert alone[0][1] == with_other_day[0][1]


def test_summary(spark):
    rows = [
        ("u", 0, "page_view", None, None),
        ("u", 30, "product_view", "p1", None),
        ("u", 60, "product_view", "p2", None),
        ("u", 90, "add_to_cart", "p2", 20.0),
        ("u", 120, "purchase", "p2", 20.0),
        ("u", 7200, "search", None, None),
    ]
    sessions = summarize_sessions(sessionize(events(spark, rows), 30.0)).orderBy("session_start").collect()
    first, second = sessions
    assert (first.events, first.page_views, first.product_views, first.add_to_carts, first.purchases) == (5, 1, 2, 1, 1)
    assert first.distinct_products == 2 and first.converted and first.revenue == 20.0
    assert first.duration_seconds == 120.0 and first.session_date == dt.date(2024, 1, 1)
    assert first.device == "mobile" and first.referrer == "search"
    assert (second.events, second.searches, second.converted, second.revenue, second.duration_seconds) == (1, 1, False, 0.0, 0.0)


def test_rebuild_days_reach_as_far_as_the_longest_session():
    # Bug: silver.max_session_hours was read by nothing; the reach was one day whatever it said.
    from pipelines.silver.stage import rebuild_days

    day = dt.date(2024, 1, 10)
    rebuild, context = rebuild_days([day], 24)
    assert (rebuild[0], rebuild[-1], context[0], context[-1]) == (
        dt.date(2024, 1, 9), dt.date(2024, 1, 11), dt.date(2024, 1, 8), dt.date(2024, 1, 12)
    )
    rebuild, context = rebuild_days([day], 30)  # rounded up to two days
    assert (len(rebuild), len(context)) == (5, 9)
    assert rebuild_days([day], 2)[0] == rebuild_days([day], 24)[0]
