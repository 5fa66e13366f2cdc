from __future__ import annotations

import datetime as dt

from pipelines.silver.dedup import first_copy_per_event

SCHEMA = "event_id string, event_time timestamp, ingested_at timestamp, batch_id string, source_file string, source_line long"


def test_the_earliest_copy_is_kept_whichever_rows_are_read(spark):
    # Bug: dropDuplicates kept an arbitrary copy, so two runs reading different days could each
    # drop the copy on the day the other one wrote, and the event left silver.
    t = dt.datetime(2024, 1, 1, 23, 59)
    later = t + dt.timedelta(minutes=2)
    rows = [
        ("x", later, t, "b1", "f1", 7),
        ("x", t, later, "b2", "f2", 1),
        ("y", t, t, "b1", "f1", 2),
        ("y", t, t, "b1", "f1", 1),  # same time and batch: the earlier line wins
        ("z", None, t, "b1", "f1", 3),
        ("z", later, t, "b1", "f1", 4),  # a copy with a time wins over one without
    ]
    kept = first_copy_per_event(spark.createDataFrame(rows, SCHEMA))
    got = sorted((r.event_id, r.batch_id, r.source_line) for r in kept.collect())
    assert got == [("x", "b2", 1), ("y", "b1", 1), ("z", "b1", 4)]
    reversed_rows = spark.createDataFrame(list(reversed(rows)), SCHEMA).repartition(3)
    assert sorted((r.event_id, r.batch_id, r.source_line) for r in first_copy_per_event(reversed_rows).collect()) == got
