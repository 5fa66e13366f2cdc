"""The bot/abuse filter: rules per (user, event date); a user matching any rule is dropped that day.

Rules (thresholds in `silver.bots`):
- `sustained_rate`: more than `max_events_per_minute` events in a minute, in at least
  `sustained_minutes` distinct minutes of the day (humans do not keep that pace);
- `giant_session`: a rebuilt session with more than `max_events_per_session` events;
- `daily_volume`: more than `max_events_per_day` events in the day.

All are aggregations (skew-safe: partial aggregation before the shuffle).
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pipelines.config.models import BotRulesConfig


def flag_bots(events: DataFrame, rules: BotRulesConfig) -> DataFrame:
    """(user_id, event_date, rules: array<string>, events) for each flagged user-day."""
    per_minute = (
        events.groupBy("user_id", "event_date", F.date_trunc("minute", "event_time").alias("minute"))
        .count()
        .where(F.col("count") > rules.max_events_per_minute)
        .groupBy("user_id", "event_date")
        .agg(F.count(F.lit(1)).alias("fast_minutes"))
        .where(F.col("fast_minutes") >= rules.sustained_minutes)
        .select("user_id", "event_date", F.lit("sustained_rate").alias("rule"))
    )
    sessions = (
        events.groupBy("user_id", "session_id")
        .agg(F.count(F.lit(1)).alias("n"), F.min("event_date").alias("event_date"))
        .where(F.col("n") > rules.max_events_per_session)
        .select("user_id", "event_date", F.lit("giant_session").alias("rule"))
    )
    daily = (
        events.groupBy("user_id", "event_date").count()
        .where(F.col("count") > rules.max_events_per_day)
        .select("user_id", "event_date", F.lit("daily_volume").alias("rule"))
    )
    volume = events.groupBy("user_id", "event_date").agg(F.count(F.lit(1)).alias("events"))
    fired = per_minute.unionByName(sessions).unionByName(daily).distinct()
    return (
        fired.groupBy("user_id", "event_date")
        .agg(F.sort_array(F.collect_set("rule")).alias("rules"))
        .join(volume, ["user_id", "event_date"], "left")
    )
