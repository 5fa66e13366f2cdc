"""Epoch-millisecond formatting, independent of the session time zone."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import functions as F

from pipelines.generate import clock

MOMENTS = [
    dt.datetime(2024, 1, 3, 10, 15, 2, 123000, tzinfo=dt.timezone.utc),
    dt.datetime(2024, 2, 29, 23, 59, 59, 999000, tzinfo=dt.timezone.utc),
    dt.datetime(2023, 12, 31, 0, 0, 0, 0, tzinfo=dt.timezone.utc),
]


def _expected(moment: dt.datetime) -> tuple[str, str, str]:
    iso = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return iso, moment.strftime("%Y-%m-%d"), moment.strftime("%H")


def test_epoch_millis():
    assert clock.epoch_millis(dt.date(1970, 1, 2)) == clock.MS_PER_DAY
    assert clock.epoch_millis(MOMENTS[0]) == int(MOMENTS[0].timestamp() * 1000)
    assert clock.epoch_millis(dt.datetime(2024, 1, 1)) == clock.epoch_millis(dt.date(2024, 1, 1))


def test_formatting_matches_python_in_any_session_time_zone(spark):
    df = spark.createDataFrame([(clock.epoch_millis(m),) for m in MOMENTS], "ms long")
    formatted = df.select(
        clock.iso_millis(F.col("ms")).alias("iso"),
        clock.date_string(F.col("ms")).alias("date"),
        clock.hour_string(F.col("ms")).alias("hour"),
    )
    expected = [_expected(m) for m in MOMENTS]
    previous = spark.conf.get("spark.sql.session.timeZone")
    try:
        for zone in ("UTC", "America/Los_Angeles", "Asia/Kolkata"):
            spark.conf.set("spark.sql.session.timeZone", zone)
            assert [tuple(r) for r in formatted.collect()] == expected, zone
    finally:
        spark.conf.set("spark.sql.session.timeZone", previous)


def test_timestamp_is_the_instant(spark):
    ms = clock.epoch_millis(MOMENTS[0])
    got = spark.range(1).select(F.unix_millis(clock.timestamp(F.lit(ms))).alias("ms")).first().ms
    assert got == ms
