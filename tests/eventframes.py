"""Tiny hand-made silver-events frames for feature and training-set tests."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

SILVER_EVENT_SCHEMA = (
    "event_id string, event_time timestamp, event_type string, user_id string, session_id string, "
    "session_start timestamp, client_session_id string, product_id string, category string, brand string, "
    "price double, currency string, device string, referrer string, country string, source string"
)


def silver_events(spark: SparkSession, rows: list[tuple]) -> DataFrame:
    """rows: (user_id, product_id, category, device, event_type, event_time, price)."""
    full = [
        (f"e{i}", ts, kind, user, f"s-{user}", ts, None, product, category, None, price, "USD", device, "direct", "FR", "test")
        for i, (user, product, category, device, kind, ts, price) in enumerate(rows)
    ]
    return spark.createDataFrame(full, SILVER_EVENT_SCHEMA).withColumn("event_date", F.to_date("event_time"))


def at(day: int, hour: int = 12, minute: int = 0) -> dt.datetime:
    """2024-01-<day> hour:minute (UTC)."""
    return dt.datetime(2024, 1, day, hour, minute)
