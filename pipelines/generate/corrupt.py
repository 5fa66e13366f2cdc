"""Bad-record injection and the output lines (valid and bad) with their arrival time.

Bad records are *extra* lines derived from valid events: each valid event independently spawns
a bad line with probability q = share / (1 - share), so bad lines are `share` of all lines and
the valid events (all of them) still match the ground-truth tables. Every bad line except a
duplicate carries a fresh event_id. Kinds:

- malformed_json: the line cut short (a proper prefix of a JSON object is never valid JSON);
- missing_field: one required field (event_id, event_time, event_type, user_id, session_id) absent;
- wrong_type: event_time as a JSON number (epoch ms), or price as a string ("12.99 USD");
- duplicate: an exact copy of a valid line (same event_id), arriving up to 10 minutes later;
- unknown_event_type: event_type not in the schema's list (e.g. "hover", "PageView");
- too_old: event_time 365 to 730 days before the line's arrival;
- future: event_time 2 to 30 days after the line's arrival.
"""

from __future__ import annotations

from collections import OrderedDict

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from pipelines.config.generator import BAD_RECORD_KINDS, GeneratorConfig
from pipelines.generate import clock
from pipelines.generate import events as ev
from pipelines.generate import random as rnd

VALID = "valid"
UNKNOWN_EVENT_TYPES: tuple[str, ...] = ("hover", "wishlist_add", "share", "PageView", "checkout_start")
TOO_OLD_MIN_MS = 365 * clock.MS_PER_DAY
TOO_OLD_MAX_MS = 730 * clock.MS_PER_DAY
FUTURE_MIN_MS = 2 * clock.MS_PER_DAY
FUTURE_MAX_MS = 30 * clock.MS_PER_DAY


def injection_rate(share: float) -> float:
    """Bad lines per valid event so that bad lines are `share` of all lines."""
    if not 0.0 <= share < 1.0:
        raise ValueError(f"share must be in [0, 1), got {share}")
    return share / (1.0 - share)


def kind_weights(config: GeneratorConfig) -> list[float]:
    """Weights of BAD_RECORD_KINDS, in that order."""
    return [float(config.bad_records.kinds.get(kind, 0.0)) for kind in BAD_RECORD_KINDS]


def _between(u: Column, low: int, high: int) -> Column:
    return F.lit(low) + F.floor(u * F.lit(float(high - low))).cast("long")


def bad_lines(events_df: DataFrame, config: GeneratorConfig) -> DataFrame:
    """The bad lines spawned by valid events (frame of `events.events`): line, arrival_ms, kind."""
    seed = config.seed
    rate = injection_rate(config.bad_records.share)
    if rate <= 0.0:
        return events_df.sparkSession.createDataFrame([], "line string, arrival_ms long, kind string")
    key, position = F.col("session_key"), F.col("position")

    def u(salt: str) -> Column:
        return rnd.uniform(seed, salt, key, position)

    spawning = events_df.where(u("bad") < F.lit(rate)).withColumn(
        "kind", rnd.choice(u("bad_kind"), BAD_RECORD_KINDS, kind_weights(config))
    )
    kind = F.col("kind")
    arrival = F.col("arrival_ms")

    def fields(**changes: Column) -> OrderedDict[str, Column]:
        base = ev.canonical_fields()
        base["event_id"] = rnd.uuid_string(seed, "bad_event_id", key, position)
        base.update(changes)
        return base

    canonical = ev.json_line(ev.canonical_fields())
    fresh = ev.json_line(fields())
    truncated = F.expr("substring(_fresh, 1, greatest(1, cast(floor(length(_fresh) * _cut) as int)))")

    required = ev.REQUIRED_FIELDS
    dropped = F.floor(u("missing") * F.lit(len(required))).cast("int")
    missing = ev.json_line(
        fields(**{name: F.when(dropped == F.lit(i), F.lit(None)).otherwise(column)
                  for i, (name, column) in enumerate(fields().items()) if name in required})
    )
    time_as_number = ev.json_line(fields(event_time=F.col("event_ms")))
    price_as_string = ev.json_line(fields(price=F.format_string("%.2f USD", F.col("price"))))
    wrong_type = F.when(F.col("price").isNotNull() & (u("wrong_type") < F.lit(0.5)), price_as_string).otherwise(
        time_as_number
    )
    unknown = ev.json_line(
        fields(event_type=rnd.choice(u("unknown_type"), UNKNOWN_EVENT_TYPES, [1.0] * len(UNKNOWN_EVENT_TYPES)))
    )
    too_old = ev.json_line(
        fields(event_time=clock.iso_millis(arrival - _between(u("too_old"), TOO_OLD_MIN_MS, TOO_OLD_MAX_MS)))
    )
    future = ev.json_line(fields(event_time=clock.iso_millis(arrival + _between(u("future"), FUTURE_MIN_MS, FUTURE_MAX_MS))))

    line = (
        F.when(kind == "malformed_json", truncated)
        .when(kind == "missing_field", missing)
        .when(kind == "wrong_type", wrong_type)
        .when(kind == "duplicate", canonical)
        .when(kind == "unknown_event_type", unknown)
        .when(kind == "too_old", too_old)
        .otherwise(future)
    )
    redelivery = _between(u("redelivery"), 0, ev.MAX_ARRIVAL_DELAY_MS)
    return (
        spawning.withColumn("_fresh", F.when(kind == "malformed_json", fresh))
        .withColumn("_cut", F.lit(0.2) + F.lit(0.7) * u("cut"))
        .select(
            line.alias("line"),
            (arrival + F.when(kind == "duplicate", redelivery).otherwise(F.lit(0).cast("long"))).alias("arrival_ms"),
            kind.alias("kind"),
        )
    )


def output_lines(events_df: DataFrame, config: GeneratorConfig) -> DataFrame:
    """All lines to land: line, arrival_ms, kind (`valid` or a bad kind), late (valid and late)."""
    valid = events_df.select(
        ev.json_line(ev.canonical_fields()).alias("line"),
        "arrival_ms",
        F.lit(VALID).alias("kind"),
        F.col("late"),
    )
    bad = bad_lines(events_df, config).withColumn("late", F.lit(False))
    return valid.unionByName(bad)
