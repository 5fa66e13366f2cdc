"""Users: latent purchase propensity, session rate, home device and country."""

from __future__ import annotations

import math

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from pipelines.config.generator import DEVICES, GeneratorConfig
from pipelines.generate import random as rnd

USERS_PER_PARTITION = 20_000


def user_id(user: Column) -> Column:
    """The user's string id, e.g. `u0000123`."""
    return F.format_string("u%07d", user)


def attributes(user: Column, config: GeneratorConfig) -> list[Column]:
    """The user columns of `users` as expressions of the user index `user` (a long column)."""
    behaviour = config.behaviour
    seed = config.seed
    z = rnd.normal(seed, "z", user)
    rho = behaviour.activity_propensity_correlation
    noise = rnd.normal(seed, "activity", user)
    log_rate = F.lit(math.log(behaviour.sessions_per_day)) + F.lit(behaviour.sessions_per_day_sigma) * (
        F.lit(rho) * z + F.lit(math.sqrt(max(0.0, 1.0 - rho * rho))) * noise
    )
    device_weights = [behaviour.device_weights.get(d, 0.0) for d in DEVICES]
    countries = sorted(behaviour.country_weights)
    return [
        user.alias("user_idx"),
        user_id(user).alias("user_id"),
        z.alias("propensity"),
        F.exp(log_rate).alias("activity_rate"),
        rnd.choice(rnd.uniform(seed, "home_device", user), DEVICES, device_weights).alias("home_device"),
        rnd.choice(
            rnd.uniform(seed, "country", user), countries, [behaviour.country_weights[c] for c in countries]
        ).alias("country"),
    ]


def users(spark: SparkSession, config: GeneratorConfig, partitions: int | None = None) -> DataFrame:
    """One row per user: user_idx (long), user_id, propensity z ~ N(0,1), activity_rate
    (expected sessions per day before the slot cap), home_device, country.

    log(activity_rate) = log(median) + sigma * (rho * z + sqrt(1 - rho^2) * e), e ~ N(0,1).
    Heavy users (`heavy.heavy_users`) are not in this frame.
    """
    if partitions is None:
        partitions = max(spark.sparkContext.defaultParallelism, math.ceil(config.users / USERS_PER_PARTITION))
    return spark.range(0, config.users, 1, max(1, partitions)).select(*attributes(F.col("id"), config))


def truth_users(users_df: DataFrame) -> DataFrame:
    """The `truth.users` table: the users' latent attributes, without internal columns, and
    `is_heavy` (false unless the frame has that column: see `heavy.heavy_users`)."""
    is_heavy = F.col("is_heavy") if "is_heavy" in users_df.columns else F.lit(False)
    return users_df.select("user_id", "propensity", "activity_rate", "home_device", "country", is_heavy.alias("is_heavy"))
