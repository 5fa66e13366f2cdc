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


def with_bad_lines(events_df: DataFrame, config: GeneratorConfig) -> DataFrame:
    """Add to valid events (frame of `events.events`) the formatted `event_time`, the valid JSON
    `line` and the bad line each one spawns, if any: bad_kind (null: none), bad_line, bad_arrival_ms."""
    seed = config.seed
    rate = injection_rate(config.bad_records.share)
    key, position = F.col("session_key"), F.col("position")

    def u(salt: str) -> Column:
        return rnd.uniform(seed, salt, key, position)

    no_bad = F.lit(None).cast("string")
    if rate <= 0.0:
        timed = events_df.select("*", clock.iso_millis(F.col("event_ms")).alias("event_time"))
        return timed.select(
            "*",
            ev.json_line(ev.canonical_fields(F.col("event_time"), events_df.columns)).alias("line"),
            no_bad.alias("bad_kind"),
            no_bad.alias("bad_line"),
            F.lit(None).cast("long").alias("bad_arrival_ms"),
        )
    spawns = u("bad") < F.lit(rate)
    timed = events_df.select(
        "*",
        clock.iso_millis(F.col("event_ms")).alias("event_time"),
        F.when(spawns, rnd.choice(u("bad_kind"), BAD_RECORD_KINDS, kind_weights(config))).alias("bad_kind"),
        F.when(spawns, rnd.uuid_string(seed, "bad_event_id", key, position)).alias("_bad_id"),
        F.when(spawns, u("variant")).alias("_u"),
    )
    fresh_fields = ev.canonical_fields(F.col("event_time"), events_df.columns)
    fresh_fields["event_id"] = F.col("_bad_id")
    staged = timed.select(
        "*",
        ev.json_line(ev.canonical_fields(F.col("event_time"), events_df.columns)).alias("_line"),
        F.when(F.col("bad_kind").isNotNull(), ev.json_line(fresh_fields)).alias("_fresh"),
    )
    kind = F.col("bad_kind")
    arrival = F.col("arrival_ms")
    variant = F.col("_u")

    def offset(low: int, high: int) -> Column:
        return _between(variant, low, high)

    # Variants are edits of one JSON line with a fresh event_id (we control its format: string
    # values hold no quotes, so a field is `"name":"value"` or `"price":number`).
    fresh = F.col("_fresh")

    def replace_string_field(name: str, value: Column) -> Column:
        return F.regexp_replace(fresh, F.lit(f'"{name}":"[^"]*"'), F.concat(F.lit(f'"{name}":'), value))

    def quoted(value: Column) -> Column:
        return F.concat(F.lit('"'), value, F.lit('"'))

    cut = F.greatest(F.lit(1), F.floor(F.length(fresh) * (F.lit(0.2) + F.lit(0.7) * variant)).cast("int"))
    truncated = F.substring(fresh, F.lit(1), cut)
    required = F.array(*[F.lit(name) for name in ev.REQUIRED_FIELDS])
    dropped = F.element_at(required, F.floor(variant * F.lit(len(ev.REQUIRED_FIELDS))).cast("int") + 1)
    # the required fields come first, so each is followed by a comma
    missing = F.regexp_replace(fresh, F.concat(F.lit('"'), dropped, F.lit('":"[^"]*",')), F.lit(""))
    time_as_number = replace_string_field("event_time", F.col("event_ms").cast("string"))
    price_as_string = F.regexp_replace(fresh, F.lit(r'"price":([-0-9.Ee]+)'), F.lit('"price":"$1 USD"'))
    wrong_type = F.when(F.col("price").isNotNull() & (variant < F.lit(0.5)), price_as_string).otherwise(time_as_number)
    unknown = replace_string_field(
        "event_type", quoted(rnd.choice(variant, UNKNOWN_EVENT_TYPES, [1.0] * len(UNKNOWN_EVENT_TYPES)))
    )
    too_old = replace_string_field(
        "event_time", quoted(clock.iso_millis(arrival - offset(TOO_OLD_MIN_MS, TOO_OLD_MAX_MS)))
    )
    future = replace_string_field("event_time", quoted(clock.iso_millis(arrival + offset(FUTURE_MIN_MS, FUTURE_MAX_MS))))
    duplicate = F.col("_line")

    line = (
        F.when(kind == "malformed_json", truncated)
        .when(kind == "missing_field", missing)
        .when(kind == "wrong_type", wrong_type)
        .when(kind == "duplicate", duplicate)
        .when(kind == "unknown_event_type", unknown)
        .when(kind == "too_old", too_old)
        .when(kind == "future", future)
    )
    bad_arrival = arrival + F.when(kind == "duplicate", offset(0, ev.MAX_ARRIVAL_DELAY_MS)).otherwise(
        F.lit(0).cast("long")
    )
    return staged.select(
        *events_df.columns,
        "event_time",
        F.col("_line").alias("line"),
        "bad_kind",
        line.alias("bad_line"),
        F.when(kind.isNotNull(), bad_arrival).alias("bad_arrival_ms"),
    )


def bad_lines(events_df: DataFrame, config: GeneratorConfig) -> DataFrame:
    """Only the bad lines: line, arrival_ms, kind."""
    return (
        with_bad_lines(events_df, config)
        .where(F.col("bad_kind").isNotNull())
        .select(F.col("bad_line").alias("line"), F.col("bad_arrival_ms").alias("arrival_ms"), F.col("bad_kind").alias("kind"))
    )


def output_lines(events_df: DataFrame, config: GeneratorConfig) -> DataFrame:
    """All lines to land, in one pass over the events: line, arrival_ms, kind (`valid` or a bad
    kind), late (a valid line arriving late)."""
    staged = with_bad_lines(events_df, config)
    valid = F.struct(
        F.col("line").alias("line"),
        F.col("arrival_ms").alias("arrival_ms"),
        F.lit(VALID).alias("kind"),
        F.col("late").alias("late"),
    )
    bad = F.struct(
        F.col("bad_line").alias("line"),
        F.col("bad_arrival_ms").alias("arrival_ms"),
        F.col("bad_kind").alias("kind"),
        F.lit(False).alias("late"),
    )
    # one pass: every event yields its valid line, and its bad line when it spawned one (explode
    # of a CASE, not a filter lambda: cheaper; _outer for the reason given in events.events)
    both = F.when(F.col("bad_kind").isNull(), F.array(valid)).otherwise(F.array(valid, bad))
    return staged.select(F.explode_outer(both).alias("_l")).select("_l.*")
