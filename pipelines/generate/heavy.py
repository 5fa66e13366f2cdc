"""Heavy users: a few bots/abusers with a huge number of events at machine speed.

`generator.heavy_users.count` users (0 = off) are added after the normal users: user index
`users + h`, id `u<users + h>` (formatted like any other id, so only their behaviour gives them
away; `truth.users.is_heavy` and `GenerateResult.heavy_user_ids` name them). Each heavy user has,
every day, exactly `events_per_day` valid events in `ceil(events_per_day / session_events)` giant
sessions of `session_events` events (the day's last one takes the remainder):

- the day is cut into equal windows, one per session; a session starts at a random point of its
  window and ends at least 45 minutes before the next window, so the ETL's 30-minute inactivity
  rule rebuilds each one whole, and no session crosses midnight or the end of the period;
- events run at `events_per_second` (event k at gap * (k + 0.2 + 0.6 u_k), gap = 1 / rate): many
  events a second, sustained for minutes;
- the first event is a `page_view`; then 95% `product_view` (a crawl through the catalogue from a
  random product on) and 5% `search`; no cart, no purchase;
- device: the user's home device; referrer: `direct`; country: the user's.

Heavy sessions have negative `session_key`s (-1, -2, ...), disjoint from the normal sessions'
keys (>= 0), so every draw keyed by the session (session_id, event ids, arrival delays, bad
records) is independent of the normal users' and the normal output does not change.
Rows come from `spark.range` over the heavy sessions and a `sequence` per session (exploded with
the normal events in `events.events`): nothing runs on the driver.
"""

from __future__ import annotations

import math

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from pipelines.config.generator import HEAVY_SESSION_GAP_MINUTES, GeneratorConfig
from pipelines.generate import clock
from pipelines.generate import random as rnd
from pipelines.generate import sessions as sess
from pipelines.generate import users as usr

PRODUCT_VIEW_SHARE = 0.95
"""Share of a heavy session's events after the first that are `product_view` (the rest: `search`)."""
REFERRER = "direct"
EVENTS_PER_PARTITION = 500_000
GAP_MARGIN_MS = HEAVY_SESSION_GAP_MINUTES * clock.MS_PER_MINUTE


def enabled(config: GeneratorConfig) -> bool:
    """Whether the config asks for heavy users."""
    return config.heavy_users.count > 0


def heavy_user_ids(config: GeneratorConfig) -> list[str]:
    """The ids of the heavy users (a small list: `heavy_users.count` <= 1000)."""
    return [f"u{config.users + h:07d}" for h in range(config.heavy_users.count)]


def session_count(config: GeneratorConfig) -> int:
    """Heavy sessions in the whole period, all heavy users together."""
    return config.heavy_users.count * config.days * config.heavy_users.sessions_per_day


def event_count(config: GeneratorConfig) -> int:
    """Valid events of the heavy users in the whole period (exact)."""
    return config.heavy_users.count * config.days * config.heavy_users.events_per_day


def heavy_users(spark: SparkSession, config: GeneratorConfig) -> DataFrame:
    """One row per heavy user, with the columns of `users.users` plus `is_heavy` (true);
    activity_rate is their number of sessions a day."""
    first = config.users
    return spark.range(first, first + config.heavy_users.count, 1, 1).select(
        *[
            F.lit(float(config.heavy_users.sessions_per_day)).alias("activity_rate") if name == "activity_rate" else column
            for name, column in zip(
                ("user_idx", "user_id", "propensity", "activity_rate", "home_device", "country"),
                usr.attributes(F.col("id"), config),
            )
        ],
        F.lit(True).alias("is_heavy"),
    )


def _event(event_type: Column, product: Column, offset: Column) -> Column:
    return F.struct(event_type.alias("event_type"), product.alias("product"), offset.alias("offset_ms"))


def heavy_funnel(spark: SparkSession, config: GeneratorConfig) -> DataFrame:
    """The heavy sessions with their events, in the columns of `events.with_funnel` (plus
    `is_heavy`, true): the events of a session are an array built by `transform(sequence(...))`."""
    heavy = config.heavy_users
    seed = config.seed
    per_day = heavy.sessions_per_day
    per_user = config.days * per_day
    total = session_count(config)
    wanted = max(spark.sparkContext.defaultParallelism, math.ceil(event_count(config) / EVENTS_PER_PARTITION))
    partitions = max(1, min(total, wanted))
    window_ms = clock.MS_PER_DAY // per_day
    gap_ms = 1000.0 / heavy.events_per_second

    s = F.col("id")
    key = F.col("session_key")
    user = F.lit(config.users).cast("long") + F.floor(s / F.lit(per_user)).cast("long")
    rest = F.pmod(s, F.lit(per_user))
    day = F.floor(rest / F.lit(per_day)).cast("long")
    slot = F.pmod(rest, F.lit(per_day)).cast("long")
    n_events = F.least(
        F.lit(heavy.session_events).cast("long"), F.lit(heavy.events_per_day).cast("long") - slot * F.lit(heavy.session_events)
    )
    keyed = spark.range(0, total, 1, partitions).select(
        (F.lit(-1).cast("long") - s).alias("session_key"), user.alias("_user"), day.alias("_day"), slot.alias("_slot"),
        n_events.alias("_n"),
    )

    # the session's latest event lies at most (n - 0.2) gaps after its start
    duration = F.ceil((F.col("_n").cast("double") - F.lit(0.2)) * F.lit(gap_ms)).cast("long")
    slack = F.greatest(F.lit(0).cast("long"), F.lit(window_ms - GAP_MARGIN_MS).cast("long") - duration)
    start = (
        F.lit(clock.epoch_millis(config.start_date)).cast("long")
        + F.col("_day") * F.lit(clock.MS_PER_DAY)
        + F.col("_slot") * F.lit(window_ms)
        + F.floor(rnd.uniform(seed, "heavy_start", key) * slack.cast("double")).cast("long")
    )
    attributes = dict(
        zip(
            ("user_idx", "user_id", "propensity", "activity_rate", "home_device", "country"),
            usr.attributes(F.col("_user"), config),
        )
    )
    placed = keyed.select(
        "session_key",
        "_n",
        attributes["user_idx"],
        attributes["user_id"],
        attributes["propensity"],
        attributes["country"],
        rnd.hex16(seed, "session_id", key).alias("session_id"),
        start.alias("session_start_ms"),
        attributes["home_device"].alias("device"),
        F.lit(REFERRER).alias("referrer"),
        F.floor(rnd.uniform(seed, "heavy_crawl", key) * F.lit(float(config.products))).cast("long").alias("_crawl"),
    )

    def event(k: Column) -> Column:
        viewing = rnd.uniform(seed, "heavy_type", key, k) < F.lit(PRODUCT_VIEW_SHARE)
        first = k == F.lit(0)
        event_type = F.when(first, F.lit("page_view")).when(viewing, F.lit("product_view")).otherwise(F.lit("search"))
        product = F.when(~first & viewing, F.pmod(F.col("_crawl") + k.cast("long"), F.lit(config.products).cast("long")))
        offset = F.when(first, F.lit(0).cast("long")).otherwise(
            F.floor(
                F.lit(gap_ms) * (k.cast("double") + F.lit(0.2) + F.lit(0.6) * rnd.uniform(seed, "heavy_offset", key, k))
            ).cast("long")
        )
        return _event(event_type, product.cast("long"), offset)

    return placed.select(
        "session_key",
        "user_idx",
        "user_id",
        "propensity",
        "country",
        "session_id",
        "session_start_ms",
        "device",
        "referrer",
        sess.after_drift(F.col("session_start_ms"), config).alias("after_drift"),
        F.lit(None).cast("double").alias("purchase_logit"),
        F.lit(0.0).alias("p_purchase"),
        F.lit(False).alias("purchased"),
        F.transform(F.sequence(F.lit(0).cast("long"), F.col("_n") - F.lit(1)), event).alias("events"),
        F.lit(True).alias("is_heavy"),
    )


def with_heavy_sessions(funnel_df: DataFrame, spark: SparkSession, config: GeneratorConfig) -> DataFrame:
    """The normal sessions (frame of `events.with_funnel`) with the heavy ones appended, and an
    `is_heavy` column; the frame itself when heavy users are off."""
    if not enabled(config):
        return funnel_df
    # heavy users are in no experiment: its columns (if any) are null on their sessions
    return funnel_df.withColumn("is_heavy", F.lit(False)).unionByName(heavy_funnel(spark, config), allowMissingColumns=True)
