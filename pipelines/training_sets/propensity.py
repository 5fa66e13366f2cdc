"""Purchase-propensity examples: point-in-time features as of a cutoff, a label after it.

An example is a user (or a (user, product) pair) observed in [cutoff - lookback, cutoff). Its
features are the gold features as of the cutoff date, which by construction use only events
before cutoff 00:00 UTC; its label is a purchase (of the pair's product) in
[cutoff, cutoff + horizon). Feature columns are prefixed by entity: `u_` user, `p_` product,
`c_` category, `uc_` user x category. `example_id` (keys and cutoff joined by `|`) identifies an
example whatever the unit.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Sequence

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pipelines.config.models import PropensityConfig
from pipelines.features.compute import as_of_frame, pair_with_as_of
from pipelines.features.registry import KEYS

log = logging.getLogger(__name__)

PREFIXES = {"user": "u_", "product": "p_", "category": "c_", "user_category": "uc_"}
META_COLUMNS = ("example_id", "cutoff", "label", "split")


class TrainingSetError(ValueError):
    """A training set cannot be built as configured."""


def derive_cutoffs(cfg: PropensityConfig, event_dates: Sequence[dt.date]) -> list[dt.date]:
    """The configured cutoffs, or every `cutoff_every_days` from first date + min_history_days to
    the last cutoff whose label horizon is fully observed (cutoff + horizon <= last date + 1).
    Configured cutoffs must leave that horizon too: a label window cut short by the end of the
    data labels the purchases it cannot see 0."""
    if not event_dates:
        raise TrainingSetError("silver.events has no data: no cutoff can be derived")
    first, last = min(event_dates), max(event_dates)
    if cfg.cutoffs:
        horizon = dt.timedelta(days=cfg.horizon_days)
        unseen = sorted({c for c in cfg.cutoffs if c + horizon > last + dt.timedelta(days=1)})
        if unseen:
            raise TrainingSetError(
                f"training_sets.propensity.cutoffs {', '.join(map(str, unseen))}: their {cfg.horizon_days}-day label "
                f"window reaches past the last event date {last}; the latest possible cutoff is "
                f"{last + dt.timedelta(days=1) - horizon}"
            )
        return sorted(set(cfg.cutoffs))
    start = first + dt.timedelta(days=cfg.min_history_days)
    stop = last + dt.timedelta(days=1) - dt.timedelta(days=cfg.horizon_days)
    cutoffs = []
    day = start
    while day <= stop:
        cutoffs.append(day)
        day += dt.timedelta(days=cfg.cutoff_every_days)
    if not cutoffs:
        raise TrainingSetError(
            f"events span {first}..{last}: too short for min_history_days={cfg.min_history_days} plus "
            f"horizon_days={cfg.horizon_days}; set training_sets.propensity.cutoffs or shorten them"
        )
    return cutoffs


def assign_splits(cfg: PropensityConfig, cutoffs: Sequence[dt.date]) -> dict[dt.date, str]:
    """cutoff -> train | validation | test, by time: the latest cutoffs are test, the ones before
    them validation. With `embargo`, a cutoff whose label window [c, c + horizon) reaches the next
    split's first cutoff is dropped (it is missing from the result)."""
    ordered = sorted(set(cutoffs))
    n = len(ordered)
    n_test = max(1, math.ceil(n * cfg.test_share)) if cfg.test_share > 0 else 0
    n_val = max(1, math.ceil(n * cfg.validation_share)) if cfg.validation_share > 0 else 0
    if n - n_test - n_val < 1:
        raise TrainingSetError(
            f"{n} cutoff(s) cannot make a train split after {n_val} validation and {n_test} test cutoff(s); "
            "add cutoffs (more days, cutoff_every_days) or lower validation_share/test_share"
        )
    groups = [("train", ordered[: n - n_val - n_test]), ("validation", ordered[n - n_val - n_test : n - n_test]), ("test", ordered[n - n_test :])]
    groups = [(name, days) for name, days in groups if days]
    splits: dict[dt.date, str] = {}
    horizon = dt.timedelta(days=cfg.horizon_days)
    for i, (name, days) in enumerate(groups):
        following = groups[i + 1][1][0] if i + 1 < len(groups) else None
        kept = [c for c in days if not (cfg.embargo and following is not None and c + horizon > following)]
        if not kept:
            raise TrainingSetError(
                f"the embargo leaves no {name} cutoff: every {name} cutoff's {cfg.horizon_days}-day label window "
                f"reaches the next split (first cutoff {following}); add cutoffs, shorten horizon_days or set embargo: false"
            )
        if len(kept) < len(days):
            log.info("training set: embargo drops %d %s cutoff(s) whose label window reaches %s", len(days) - len(kept), name, following)
        splits.update({c: name for c in kept})
    return splits


def label_frame(events: DataFrame, cutoffs: Sequence[dt.date], horizon_days: int, keys: Sequence[str]) -> DataFrame:
    """(keys, cutoff, label=1) for every key with a purchase in [cutoff, cutoff + horizon)."""
    purchases = events.where(F.col("event_type") == "purchase").select(*keys, "event_time")
    cut = as_of_frame(events.sparkSession, cutoffs).withColumnRenamed("as_of_date", "cutoff")
    start = F.to_timestamp(F.col("cutoff"))
    end = F.to_timestamp(F.date_add(F.col("cutoff"), horizon_days))
    in_window = (F.col("event_time") >= start) & (F.col("event_time") < end)
    return purchases.join(F.broadcast(cut), in_window).select(*keys, "cutoff").distinct().withColumn("label", F.lit(1))


def _prefixed(frame: DataFrame, entity: str, keep: Sequence[str]) -> DataFrame:
    prefix = PREFIXES[entity]
    return frame.select(
        *keep, *[F.col(c).alias(prefix + c) for c in frame.columns if c not in KEYS[entity] and c != "as_of_date"]
    )


def examples(
    cfg: PropensityConfig,
    events: DataFrame,
    features: dict[str, DataFrame],
    splits: dict[dt.date, str],
    longest_window: int,
) -> DataFrame:
    """The labelled examples for the cutoffs in `splits`.

    `events`: silver events covering [min cutoff - lookback, max cutoff + horizon); `features`:
    entity -> gold features holding the cutoffs as as-of dates.
    """
    if cfg.lookback_days > longest_window:
        raise TrainingSetError(
            f"training_sets.propensity.lookback_days ({cfg.lookback_days}) exceeds the longest feature window "
            f"({longest_window} days): examples would have no features; raise features.windows_days or lower it"
        )
    cutoffs = sorted(splits)
    spark = events.sparkSession
    split_frame = spark.createDataFrame([(c, s) for c, s in splits.items()], "cutoff date, split string")
    cutoff_of = lambda frame: frame.withColumnRenamed("as_of_date", "cutoff")
    user = cutoff_of(_prefixed(features["user"], "user", ["user_id", "as_of_date"]))
    if cfg.unit == "user":
        keys = ["user_id"]
        base = user.where(F.col("u_days_since_last_event") <= cfg.lookback_days)
    else:
        keys = ["user_id", "product_id"]
        seen = events.where(F.col("product_id").isNotNull()).select("user_id", "product_id", "event_date").distinct()
        pairs = (
            pair_with_as_of(seen, as_of_frame(spark, cutoffs), cfg.lookback_days)
            .select("user_id", "product_id", F.col("as_of_date").alias("cutoff"))
            .distinct()
        )
        product = cutoff_of(_prefixed(features["product"], "product", ["product_id", "as_of_date"]))
        category = cutoff_of(_prefixed(features["category"], "category", ["category", "as_of_date"]))
        affinity = cutoff_of(_prefixed(features["user_category"], "user_category", ["user_id", "category", "as_of_date"]))
        base = (
            pairs.join(user, ["user_id", "cutoff"], "left")
            .join(product, ["product_id", "cutoff"], "left")
            .join(category.withColumnRenamed("category", "p_category"), ["p_category", "cutoff"], "left")
            .join(affinity.withColumnRenamed("category", "p_category"), ["user_id", "p_category", "cutoff"], "left")
        )
    labels = label_frame(events, cutoffs, cfg.horizon_days, keys)
    labelled = (
        base.join(F.broadcast(split_frame), "cutoff")
        .join(labels, [*keys, "cutoff"], "left")
        .withColumn("label", F.coalesce(F.col("label"), F.lit(0)).cast("int"))
        .withColumn("example_id", F.concat_ws("|", *[F.col(k) for k in keys], F.col("cutoff").cast("string")))
    )
    feature_columns = [c for c in labelled.columns if c not in (*keys, *META_COLUMNS)]
    return labelled.select(*keys, *META_COLUMNS, *sorted(feature_columns, key=labelled.columns.index))
