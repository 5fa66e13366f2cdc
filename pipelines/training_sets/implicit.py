"""Implicit feedback for matrix factorization: (user, product, strength) per period.

strength = sum of the configured event-type weights over the pair's events in the period (capped
at `max_strength` when set); pairs with strength <= 0 are dropped. The last `test_days` event
dates are the `test` period (what the recommender is ranked against), the dates before `train`.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pipelines.config.models import ImplicitConfig


def first_test_date(cfg: ImplicitConfig, last_event_date: dt.date) -> dt.date:
    """First event date of the test period."""
    return last_event_date - dt.timedelta(days=cfg.test_days - 1)


def implicit_feedback(events: DataFrame, cfg: ImplicitConfig, test_from: dt.date) -> DataFrame:
    """user_id, product_id, split, strength, events, last_event_time."""
    weight = F.lit(0.0)
    for event_type, w in sorted(cfg.weights.items()):
        weight = F.when(F.col("event_type") == event_type, F.lit(float(w))).otherwise(weight)
    strength = F.sum(weight)
    if cfg.max_strength is not None:
        strength = F.least(strength, F.lit(float(cfg.max_strength)))
    split = F.when(F.col("event_date") >= F.lit(test_from), "test").otherwise("train")
    return (
        events.where(F.col("product_id").isNotNull() & F.col("event_type").isin(list(cfg.weights)))
        .withColumn("split", split)
        .groupBy("user_id", "product_id", "split")
        .agg(
            strength.alias("strength"),
            F.count(F.lit(1)).alias("events"),
            F.max("event_time").alias("last_event_time"),
        )
        .where(F.col("strength") > 0)
    )
