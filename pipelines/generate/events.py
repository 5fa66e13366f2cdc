"""The funnel of each session and its events, in the generator's canonical JSON format.

A session's events, in order:
1. `page_view` or `search` (no product);
2. V >= 1 product views; V - 1 ~ geometric with mean extra_views_mean * exp(w * z), capped;
   each viewed product is added to the cart with probability sigmoid(cart_intercept +
   cart_propensity_weight * z) and a cart addition is undone with probability remove_share;
   in a purchasing session the last viewed product is always added (and kept);
3. in a purchasing session, one `purchase` per product in the cart at the end.

Events are seconds to minutes apart (at most 50 minutes per session, see `sessions`).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from pipelines.config.generator import GeneratorConfig
from pipelines.generate import catalog, clock
from pipelines.generate import experiment as exp
from pipelines.generate import random as rnd
from pipelines.generate import sessions as sess

EVENT_TYPES: tuple[str, ...] = ("page_view", "search", "product_view", "add_to_cart", "remove_from_cart", "purchase")
CURRENCY = "USD"
EVENT_FIELDS: tuple[str, ...] = (
    "event_id",
    "event_time",
    "event_type",
    "user_id",
    "session_id",
    "product_id",
    "category",
    "brand",
    "price",
    "currency",
    "device",
    "referrer",
    "country",
)
"""Fields of an event line, in output order (product fields, price and currency only on product events)."""
REQUIRED_FIELDS: tuple[str, ...] = ("event_id", "event_time", "event_type", "user_id", "session_id")

MIN_GAP_MS = 2_000
MAX_GAP_MS = 120_000
GAP_SIGMA = 0.5
MAX_ARRIVAL_DELAY_MS = 10 * clock.MS_PER_MINUTE
LATE_MIN_MS = clock.MS_PER_HOUR
LATE_MAX_MS = 48 * clock.MS_PER_HOUR


def _event(event_type: str | Column, product: Column, keep: Column) -> Column:
    type_col = event_type if isinstance(event_type, Column) else F.lit(event_type)
    return F.struct(type_col.alias("event_type"), product.alias("product"), keep.alias("keep"))


def with_funnel(sessions_df: DataFrame, config: GeneratorConfig) -> DataFrame:
    """Add `events`: array<struct<event_type, product (long or null), offset_ms>> in time order."""
    seed = config.seed
    behaviour = config.behaviour
    key = F.col("session_key")
    z = F.col("propensity")
    purchased = F.col("purchased")

    # Per-session draws first, in their own projection, so that the lambdas below reference
    # them instead of recomputing them for every element.
    views_mean = F.lit(behaviour.extra_views_mean) * F.exp(F.lit(behaviour.views_propensity_weight) * z)
    pace = F.exp(F.lit(math.log(behaviour.event_gap_seconds * 1000.0)) + F.lit(GAP_SIGMA) * rnd.normal(seed, "gap", key))
    drawn = sessions_df.select(
        "*",
        F.least(F.lit(behaviour.max_views), F.lit(1) + rnd.geometric(rnd.uniform(seed, "views", key), views_mean)).alias(
            "_n_views"
        ),
        rnd.sigmoid(F.lit(behaviour.cart_intercept) + F.lit(behaviour.cart_propensity_weight) * z).alias("_cart_p"),
        F.when(rnd.uniform(seed, "entry", key) < F.lit(behaviour.search_share), F.lit("search"))
        .otherwise(F.lit("page_view"))
        .alias("_entry"),
        F.least(F.greatest(pace, F.lit(float(MIN_GAP_MS))), F.lit(float(MAX_GAP_MS))).alias("_pace"),
    )
    n_views, cart_p = F.col("_n_views"), F.col("_cart_p")

    def view(i: Column) -> Column:
        bought_here = purchased & (i == n_views)
        cart = bought_here | (rnd.uniform(seed, "cart", key, i) < cart_p)
        remove = cart & ~bought_here & (rnd.uniform(seed, "remove", key, i) < F.lit(behaviour.remove_share))
        product = catalog.zipf_rank(rnd.uniform(seed, "product", key, i), config.products, config.zipf_exponent)
        return F.struct(product.alias("product"), cart.alias("cart"), remove.alias("remove"))

    viewed = drawn.select("*", F.transform(F.sequence(F.lit(1), n_views), view).alias("_views"))
    views = F.col("_views")
    browsing = F.flatten(
        F.transform(
            views,
            lambda v: F.array(
                _event("product_view", v["product"], F.lit(True)),
                _event("add_to_cart", v["product"], v["cart"]),
                _event("remove_from_cart", v["product"], v["remove"]),
            ),
        )
    )
    buying = F.transform(views, lambda v: _event("purchase", v["product"], purchased & v["cart"] & ~v["remove"]))
    entry = F.array(_event(F.col("_entry"), F.lit(None).cast("long"), F.lit(True)))
    funnel = F.filter(F.concat(entry, browsing, buying), lambda e: e["keep"])
    staged = viewed.select("*", funnel.alias("_funnel"))
    # The session's pace, capped so that the whole session lasts < MAX_SESSION_MS.
    paced = staged.select(
        "*", F.least(F.col("_pace"), F.lit(float(sess.MAX_SESSION_MS)) / F.size(F.col("_funnel"))).alias("_gap")
    )
    gap = F.col("_gap")

    def timed(event: Column, k: Column) -> Column:
        # event k >= 1 at gap * (k + 0.2 + 0.6 u): strictly increasing, > 0.4 gap apart
        offset = F.when(k == 0, F.lit(0).cast("long")).otherwise(
            F.floor(gap * (k.cast("double") + F.lit(0.2) + F.lit(0.6) * rnd.uniform(seed, "offset", key, k))).cast("long")
        )
        return F.struct(event["event_type"].alias("event_type"), event["product"].alias("product"), offset.alias("offset_ms"))

    return paced.select(*sessions_df.columns, F.transform(F.col("_funnel"), timed).alias("events"))


def events(funnel_df: DataFrame, config: GeneratorConfig) -> DataFrame:
    """One row per valid event with typed columns: the canonical fields (event_time as
    `event_ms` epoch milliseconds, price as double), plus session_key, position, after_drift,
    arrival_ms and late; with an experiment also the exposure events (position -1) and their
    fields experiment_id, variant, model_version, request_id (null on user events)."""
    seed = config.seed
    experiment = exp.enabled(config)
    exploded = funnel_df.select(
        "session_key",
        "user_id",
        "session_id",
        "session_start_ms",
        "device",
        "referrer",
        "country",
        "after_drift",
        # _outer: a plain posexplode makes the optimizer infer size(events) > 0 and push that
        # filter (the whole funnel expression) below every projection; funnels are never empty
        F.posexplode_outer("events").alias("position", "event"),
        *(["variant"] if experiment else []),
    )
    if experiment:  # the exposure events, at the start of each user's first session in the experiment
        exploded = exploded.unionByName(exp.exposure_rows(funnel_df))
    key, position = F.col("session_key"), F.col("position")
    product = F.col("product")
    has_product = product.isNotNull()
    factor: Column | float = 1.0
    if config.drift.start_date is not None and config.drift.price_factor != 1.0:
        factor = F.when(F.col("after_drift"), F.lit(config.drift.price_factor)).otherwise(F.lit(1.0))
    # two projections: the category index and the id halves are computed once per event
    keyed = exploded.select(
        "*",
        F.col("event.product").alias("product"),
        F.when(F.col("event.product").isNotNull(), catalog.category_index(seed, F.col("event.product"))).alias("_cat"),
        rnd.hex16(seed, "event_id:hi", key, position).alias("_hi"),
        rnd.hex16(seed, "event_id:lo", key, position).alias("_lo"),
    )
    index = F.col("_cat")
    uuid = rnd.uuid_from_hex(F.col("_hi"), F.col("_lo"))
    event_id: Column = uuid
    extra: list[Column] = []
    if experiment:  # the server's exposure shape: event_id `exp-<request id>`, no session context
        is_exposure = F.col("event.event_type") == F.lit(exp.EXPOSURE_EVENT)
        event_id = F.when(is_exposure, F.concat(F.lit("exp-"), uuid)).otherwise(uuid)
        extra = exp.exposure_columns(config, is_exposure, uuid)
        keyed = keyed.withColumns({c: F.when(~is_exposure, F.col(c)) for c in ("device", "referrer", "country")})
    typed = keyed.select(
        "session_key",
        "position",
        event_id.alias("event_id"),
        (F.col("session_start_ms") + F.col("event.offset_ms")).alias("event_ms"),
        F.col("event.event_type").alias("event_type"),
        "user_id",
        "session_id",
        F.when(has_product, catalog.product_id(product)).alias("product_id"),
        F.when(has_product, catalog.category_name(index)).alias("category"),
        F.when(has_product, catalog.brand(seed, product, index)).alias("brand"),
        F.when(has_product, catalog.price(seed, product, factor, index)).alias("price"),
        F.when(has_product, F.lit(CURRENCY)).alias("currency"),
        "device",
        "referrer",
        "country",
        "after_drift",
        *extra,
    )
    return with_arrival(typed, config)


def with_arrival(events_df: DataFrame, config: GeneratorConfig) -> DataFrame:
    """Add `late` and `arrival_ms`: event time + an exponential delay (capped at 10 minutes), plus
    1-48 hours for the `late_share` of events that arrive late."""
    seed = config.seed
    key, position = F.col("session_key"), F.col("position")
    delay = F.least(
        F.floor(rnd.exponential(rnd.uniform(seed, "delay", key, position), config.arrival_delay_seconds * 1000.0)),
        F.lit(float(MAX_ARRIVAL_DELAY_MS)),
    ).cast("long")
    late = rnd.uniform(seed, "late", key, position) < F.lit(config.late_share)
    lateness = F.lit(LATE_MIN_MS) + F.floor(
        rnd.uniform(seed, "lateness", key, position) * F.lit(float(LATE_MAX_MS - LATE_MIN_MS))
    ).cast("long")
    return events_df.withColumn("late", late).withColumn(
        "arrival_ms",
        F.col("event_ms") + delay + F.when(F.col("late"), lateness).otherwise(F.lit(0).cast("long")),
    )


def canonical_fields(event_time: Column | None = None, columns: Sequence[str] = ()) -> "OrderedDict[str, Column]":
    """The JSON fields of a valid event as columns of an `events()` frame, in output order.
    `event_time` replaces the formatted `event_ms` when already computed; the exposure fields
    follow when `columns` (the frame's) has them (a generation with an experiment)."""
    fields: OrderedDict[str, Column] = OrderedDict()
    for name in EVENT_FIELDS:
        fields[name] = F.col(name)
    for name in exp.EXPOSURE_FIELDS:
        if name in columns:
            fields[name] = F.col(name)
    fields["event_time"] = clock.iso_millis(F.col("event_ms")) if event_time is None else event_time
    return fields


def json_line(fields: "OrderedDict[str, Column]") -> Column:
    """One JSON object (a line) from named columns; null fields are left out."""
    return F.to_json(F.struct(*[column.alias(name) for name, column in fields.items()]), {"ignoreNullFields": "true"})
