"""Exposures are split from user activity in silver: they never reach sessions or features."""

from __future__ import annotations

import datetime as dt

from pipelines.silver.stage import EXPOSURE_COLUMNS, exposure_rows, split_exposures

T0 = dt.datetime(2024, 1, 3, 10, 0)
DAY = dt.date(2024, 1, 3)


def test_exposures_leave_the_events_and_keep_their_request_id(spark):
    frame = spark.createDataFrame(
        [("exp-r1", T0, "exposure", "u1", "exp-r1", "ab", "control", "3", "clickstream", DAY),
         ("e1", T0, "page_view", "u1", "s1", None, None, None, "clickstream", DAY)],
        "event_id string, event_time timestamp, event_type string, user_id string, session_id string, "
        "experiment_id string, variant string, model_version string, source string, event_date date",
    )
    events, exposures = split_exposures(frame)
    assert [r.event_id for r in events.collect()] == ["e1"]  # tiny frames
    (row,) = exposure_rows(exposures).collect()
    assert tuple(exposure_rows(exposures).columns) == EXPOSURE_COLUMNS
    assert (row.experiment_id, row.variant, row.user_id, row.request_id, row.model_version, row.exposure_time) == \
        ("ab", "control", "u1", "r1", "3", T0)


def test_bronze_from_before_exposures_reads_them_as_null(spark):
    old = spark.createDataFrame([("e1", "page_view", "u1", DAY)], "event_id string, event_type string, user_id string, event_date date")
    events, exposures = split_exposures(old)
    assert events.count() == 1 and exposures.count() == 0
    assert {"experiment_id", "variant", "model_version"} <= set(events.columns)
