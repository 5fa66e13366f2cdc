"""Feature computation: silver events -> one DataFrame per entity keyed by (keys, as_of_date).

The same code computes features for training sets and for scoring (`build_features`), so the
two cannot drift apart. It is one pass per entity: events are first aggregated per entity and
event date (`daily_measures`), each daily row is paired with the as-of dates whose longest
window covers it (a range join against a broadcast list of dates), and every window's value is
a conditional aggregate of the same grouped rows - no rescan per window or per as-of date.
What each feature computes is read from the registry (`pipelines.features.registry`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from pipelines.features.registry import (
    KEYS,
    DaysSince,
    Distinct,
    Feature,
    Latest,
    Ratio,
    Relative,
    Share,
    Sum,
    Top,
    features_of,
)

SECONDS_PER_DAY = 86400.0


def _count(event_type: str) -> Column:
    return F.sum(F.when(F.col("event_type") == event_type, 1).otherwise(0)).cast("long")


def daily_measures(events: DataFrame) -> dict[str, DataFrame]:
    """Per-entity daily aggregates of silver events (columns: keys, event_date, measures).

    Events without a product (page views, searches) count for users only; events without a
    category do not count for categories.
    """
    e = events.select("user_id", "product_id", "category", "device", "event_type", "event_time", "price", "event_date")
    purchase = F.col("event_type") == "purchase"
    product_events = e.where(F.col("product_id").isNotNull())
    priced = F.col("price").isNotNull()
    price_sums = [
        F.sum(F.when(priced, F.col("price")).otherwise(0.0)).alias("price_sum"),
        F.sum(F.when(priced, 1).otherwise(0)).cast("long").alias("price_n"),
    ]
    counts = [_count("product_view").alias("views"), _count("add_to_cart").alias("carts"), _count("purchase").alias("purchases")]
    with_category = product_events.where(F.col("category").isNotNull())
    return {
        "user": e.groupBy("user_id", "event_date").agg(
            F.count(F.lit(1)).alias("events"),
            *counts,
            F.coalesce(F.sum(F.when(purchase, F.col("price"))), F.lit(0.0)).alias("spend"),
            F.lit(1).cast("long").alias("active"),
            F.max("event_time").alias("last_event_time"),
            F.max(F.when(purchase, F.col("event_time"))).alias("last_purchase_time"),
        ),
        "user_category": with_category.groupBy("user_id", "category", "event_date").agg(
            F.count(F.lit(1)).alias("events"), counts[0], counts[2]
        ),
        "user_device": e.where(F.col("device").isNotNull())
        .groupBy("user_id", "device", "event_date")
        .agg(F.count(F.lit(1)).alias("events")),
        "product": product_events.groupBy("product_id", "event_date").agg(
            *counts,
            *price_sums,
            F.max_by("category", "event_time").alias("category"),
            F.max("event_time").alias("last_event_time"),
        ),
        "category": with_category.groupBy("category", "event_date").agg(*counts, *price_sums),
        "category_product": with_category.select("category", "product_id", "event_date").distinct(),
    }


def as_of_frame(spark: SparkSession, as_of_dates: Sequence[dt.date]) -> DataFrame:
    return spark.createDataFrame([(d,) for d in sorted(set(as_of_dates))], "as_of_date date")


def pair_with_as_of(daily: DataFrame, as_of: DataFrame, max_window: int) -> DataFrame:
    """Each daily row with every as-of date D such that D-max_window <= event_date < D, plus
    `age` = D - event_date in days (1 = the day before D)."""
    age = F.datediff(F.col("as_of_date"), F.col("event_date"))
    paired = daily.join(F.broadcast(as_of), (F.col("as_of_date") > F.col("event_date")) & (age <= max_window))
    return paired.withColumn("age", age)


def _in(w: int, value: Column) -> Column:
    return F.when(F.col("age") <= w, value)


def _windowed_sum(measure: str, w: int) -> Column:
    return F.coalesce(F.sum(_in(w, F.col(measure))), F.lit(0)).alias(f"{measure}__{w}")


def _safe_ratio(num: Column, den: Column) -> Column:
    return F.when(den > 0, num.cast("double") / den.cast("double"))


def _top(daily_dim: DataFrame, keys: tuple[str, ...], dimension: str, as_of: DataFrame, windows: list[int]) -> DataFrame:
    """keys, as_of_date, top_<dimension>__<w>: the value with most events in each window."""
    paired = pair_with_as_of(daily_dim, as_of, max(windows))
    per_value = paired.groupBy(*keys, dimension, "as_of_date").agg(*[_windowed_sum("events", w) for w in windows])
    ranked = [
        F.min_by(
            F.when(F.col(f"events__{w}") > 0, F.col(dimension)),
            F.when(F.col(f"events__{w}") > 0, F.struct(-F.col(f"events__{w}"), F.col(dimension))),
        ).alias(f"top_{dimension}__{w}")
        for w in windows
    ]
    return per_value.groupBy(*keys, "as_of_date").agg(*ranked)


def _sum_measures(features: Sequence[Feature]) -> list[str]:
    measures: list[str] = []
    for f in features:
        names = {Sum: lambda x: [x.measure], Ratio: lambda x: [x.numerator, x.denominator], Share: lambda x: [x.measure]}
        for kind, pick in names.items():
            if isinstance(f.formula, kind):
                measures += [m for m in pick(f.formula) if m not in measures]
    return measures


def _aggregate(daily: DataFrame, entity: str, features: Sequence[Feature], as_of: DataFrame, windows: list[int]) -> DataFrame:
    """One grouped pass: every windowed sum, latest value and timestamp the entity's features need."""
    keys = KEYS[entity]
    longest = max(windows)
    aggs = [_windowed_sum(m, w) for m in _sum_measures(features) for w in windows]
    for f in features:
        if isinstance(f.formula, DaysSince):
            aggs.append(F.max(f.formula.measure).alias(f.formula.measure))
        elif isinstance(f.formula, Latest):
            aggs.append(F.max_by(f.formula.column, "last_event_time").alias(f"latest__{f.formula.column}"))
    return pair_with_as_of(daily, as_of, longest).groupBy(*keys, "as_of_date").agg(*aggs)


def _column(f: Feature, windows: list[int]) -> Column:
    """The expression of a feature over the aggregated frame (Top/Relative/Distinct/Share are
    joined in beforehand under their `__` names)."""
    w = f.window_days
    formula = f.formula
    if isinstance(formula, Sum):
        value = F.col(f"{formula.measure}__{w}")
    elif isinstance(formula, Ratio):
        value = _safe_ratio(F.col(f"{formula.numerator}__{w}"), F.col(f"{formula.denominator}__{w}"))
    elif isinstance(formula, DaysSince):
        as_of_seconds = F.unix_date(F.col("as_of_date")).cast("double") * SECONDS_PER_DAY
        value = (as_of_seconds - F.unix_micros(F.col(formula.measure)).cast("double") / 1e6) / SECONDS_PER_DAY
    elif isinstance(formula, Latest):
        value = F.col(f"latest__{formula.column}")
    elif isinstance(formula, Top):
        value = F.col(f"top_{formula.dimension}__{w}")
    elif isinstance(formula, Relative):
        value = _safe_ratio(F.col(f"{formula.feature}_{w}d"), F.col(f"{formula.entity}__{formula.feature}_{w}d"))
    elif isinstance(formula, Distinct):
        value = F.col(f"distinct_{formula.key}__{w}")
    elif isinstance(formula, Share):
        value = F.col(f"share_{formula.measure}__{w}")
    else:  # pragma: no cover - the registry only holds the formulas above
        raise TypeError(f"unknown formula {formula!r} of feature {f.name}")
    return value.cast(f.dtype).alias(f.name)


def _select(frame: DataFrame, entity: str, features: Sequence[Feature], windows: list[int]) -> DataFrame:
    """Keys, as_of_date and the features in registry order. Relative features are computed after
    the plain ones they refer to."""
    plain = [f for f in features if not isinstance(f.formula, Relative)]
    referenced = [
        f"{f.formula.entity}__{f.formula.feature}_{f.window_days}d" for f in features if isinstance(f.formula, Relative)
    ]
    frame = frame.select(*KEYS[entity], "as_of_date", *[_column(f, windows) for f in plain], *referenced)
    for f in features:
        if isinstance(f.formula, Relative):
            frame = frame.withColumn(f.name, _column(f, windows))
    return frame.select(*KEYS[entity], "as_of_date", *[f.name for f in features])


def build_features(
    events: DataFrame, as_of_dates: Sequence[dt.date], windows_days: Sequence[int]
) -> dict[str, DataFrame]:
    """entity -> features keyed by (keys, as_of_date) for every entity with an event in the
    longest window before the as-of date. `events` needs the silver event columns; only events
    in [min(as_of) - longest window, max(as_of)) matter (callers prune partitions to that)."""
    windows = sorted(set(windows_days))
    spark = events.sparkSession
    as_of = as_of_frame(spark, as_of_dates)
    daily = daily_measures(events)
    out: dict[str, DataFrame] = {}

    users = _aggregate(daily["user"], "user", features_of("user", windows), as_of, windows)
    for dimension, source in (("category", "user_category"), ("device", "user_device")):
        top = _top(daily[source], ("user_id",), dimension, as_of, windows)
        users = users.join(top, ["user_id", "as_of_date"], "left")
    out["user"] = _select(users, "user", features_of("user", windows), windows)

    categories = _aggregate(daily["category"], "category", features_of("category", windows), as_of, windows)
    distinct = (
        pair_with_as_of(daily["category_product"], as_of, max(windows))
        .groupBy("category", "as_of_date")
        .agg(*[F.count_distinct(_in(w, F.col("product_id"))).alias(f"distinct_product_id__{w}") for w in windows])
    )
    out["category"] = _select(
        categories.join(distinct, ["category", "as_of_date"], "left"), "category", features_of("category", windows), windows
    )

    products = _aggregate(daily["product"], "product", features_of("product", windows), as_of, windows)
    category_prices = out["category"].select(
        F.col("category").alias("latest__category"),
        "as_of_date",
        *[F.col(f"avg_price_{w}d").alias(f"category__avg_price_{w}d") for w in windows],
    )
    products = products.join(category_prices, ["latest__category", "as_of_date"], "left")
    out["product"] = _select(products, "product", features_of("product", windows), windows)

    affinity = _aggregate(daily["user_category"], "user_category", features_of("user_category", windows), as_of, windows)
    per_user = Window.partitionBy("user_id", "as_of_date")
    affinity = affinity.select(
        "*",
        *[_safe_ratio(F.col(f"events__{w}"), F.sum(f"events__{w}").over(per_user)).alias(f"share_events__{w}") for w in windows],
    )
    out["user_category"] = _select(affinity, "user_category", features_of("user_category", windows), windows)
    return out
