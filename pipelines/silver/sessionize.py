"""Rebuild sessions per user from an inactivity gap, skew-safely.

A plain `lag() over (partition by user order by time)` puts all of a user's events into one task;
a handful of users with millions of events then stall the job. Here every event-level window is
partitioned by (user, hour bucket), and what crosses bucket edges (the previous event's time, the
current session's start) comes from small per-(user, bucket) aggregates whose windows span at
most a few rows per user-hour.

Rule: an event starts a new session when it is the user's first, or when at least `gap` passed
since the user's previous event (a gap exactly equal to the threshold starts a new session).
The session id is a hash of (user, session start), so it is the same whichever days are
reprocessed, and the client's own session id is kept beside it but not trusted.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.window import Window

BUCKET_SECONDS = 3600


def _micros(ts: Column) -> Column:
    return F.unix_micros(ts)


def sessionize(events: DataFrame, gap_minutes: float) -> DataFrame:
    """Add `session_id` and `session_start` to events (`user_id`, `event_time`, `event_id` needed)."""
    gap_us = int(gap_minutes * 60 * 1_000_000)
    e = events.withColumn("__bucket", F.floor(F.unix_seconds("event_time") / BUCKET_SECONDS))
    in_bucket = Window.partitionBy("user_id", "__bucket").orderBy("event_time", "event_id")
    e = e.withColumn("__prev_in_bucket", F.lag("event_time").over(in_bucket))

    buckets = e.groupBy("user_id", "__bucket").agg(F.max("event_time").alias("__bucket_last"))
    by_bucket = Window.partitionBy("user_id").orderBy("__bucket")
    buckets = buckets.withColumn("__prev_bucket_last", F.lag("__bucket_last").over(by_bucket)).drop("__bucket_last")
    e = e.join(buckets, ["user_id", "__bucket"], "left")

    prev = F.coalesce(F.col("__prev_in_bucket"), F.col("__prev_bucket_last"))
    e = e.withColumn(
        "__is_start", prev.isNull() | ((_micros(F.col("event_time")) - _micros(prev)) >= F.lit(gap_us))
    ).drop("__prev_in_bucket", "__prev_bucket_last")

    running = in_bucket.rowsBetween(Window.unboundedPreceding, Window.currentRow)
    start_here = F.when(F.col("__is_start"), F.col("event_time"))
    e = e.withColumn("__start_in_bucket", F.last(start_here, ignorenulls=True).over(running))

    starts = e.groupBy("user_id", "__bucket").agg(F.max(start_here).alias("__bucket_start"))
    before = by_bucket.rowsBetween(Window.unboundedPreceding, -1)
    starts = starts.withColumn("__prev_start", F.last("__bucket_start", ignorenulls=True).over(before)).drop("__bucket_start")
    e = e.join(starts, ["user_id", "__bucket"], "left")

    session_start = F.coalesce(F.col("__start_in_bucket"), F.col("__prev_start"))
    session_id = F.sha2(
        F.concat_ws("|", F.col("user_id"), F.date_format(session_start, "yyyy-MM-dd'T'HH:mm:ss.SSSSSS")), 256
    ).substr(1, 32)
    return (
        e.withColumn("session_start", session_start)
        .withColumn("session_id", session_id)
        .drop("__bucket", "__is_start", "__start_in_bucket", "__prev_start")
    )


def summarize_sessions(events: DataFrame) -> DataFrame:
    """One row per session: time span, counts by event type, products, conversion, revenue, context."""
    first = F.min_by
    count_type = lambda t: F.sum(F.when(F.col("event_type") == t, 1).otherwise(0)).cast("long")  # noqa: E731
    return (
        events.groupBy("session_id", "user_id")
        .agg(
            F.min("event_time").alias("session_start"),
            F.max("event_time").alias("session_end"),
            F.count(F.lit(1)).alias("events"),
            count_type("page_view").alias("page_views"),
            count_type("search").alias("searches"),
            count_type("product_view").alias("product_views"),
            count_type("add_to_cart").alias("add_to_carts"),
            count_type("remove_from_cart").alias("remove_from_carts"),
            count_type("purchase").alias("purchases"),
            F.count_distinct("product_id").alias("distinct_products"),
            F.coalesce(F.sum(F.when(F.col("event_type") == "purchase", F.col("price"))), F.lit(0.0)).alias("revenue"),
            first("device", "event_time").alias("device"),
            first("referrer", "event_time").alias("referrer"),
            first("country", "event_time").alias("country"),
        )
        .withColumn("duration_seconds", (F.unix_micros("session_end") - F.unix_micros("session_start")) / 1e6)
        .withColumn("converted", F.col("purchases") > 0)
        .withColumn("session_date", F.to_date("session_start"))
    )
