"""Sessions: when users visit, on which device, from which referrer, and whether they buy.

Each day is cut into 12 two-hour slots, shifted for each user by a fixed random phase in
[0, 2h). A user has a session in a slot with probability min(1, activity_rate *
diurnal_weight(slot) / 12) (so about `activity_rate` sessions a day). A session starts in the
first 30 minutes of its slot and lasts at most 50 minutes, so two sessions of a user are always
more than 40 minutes apart: the 30-minute inactivity rule that the ETL's sessionization uses
recovers them exactly. Sessions that could run past the end of the period are dropped.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from pipelines.config.generator import DEVICES, REFERRERS, GeneratorConfig
from pipelines.generate import clock, experiment, latent
from pipelines.generate import random as rnd

SLOT_HOURS = 2
SLOTS_PER_DAY = 24 // SLOT_HOURS
START_WINDOW_MS = 30 * clock.MS_PER_MINUTE
"""A session starts in the first 30 minutes of its slot."""
MAX_SESSION_MS = 50 * clock.MS_PER_MINUTE
"""A session lasts at most 50 minutes (so sessions of a user are > 40 minutes apart)."""

# Relative traffic of the 2-hour slots of a UTC day (night low, evening peak); mean 1.
_DIURNAL = (0.35, 0.2, 0.15, 0.25, 0.6, 0.9, 1.1, 1.2, 1.3, 1.5, 1.6, 0.85)


def slot_weights() -> list[float]:
    """Diurnal weights of the slots of a day, normalised to mean 1."""
    mean = sum(_DIURNAL) / len(_DIURNAL)
    return [w / mean for w in _DIURNAL]


def session_probability(activity_rate: Column, slot_of_day: Column) -> Column:
    """Probability that a user with `activity_rate` sessions/day has a session in a slot."""
    weights = F.array(*[F.lit(w) for w in slot_weights()])
    weight = F.element_at(weights, slot_of_day + 1)
    return F.least(F.lit(1.0), activity_rate * weight / F.lit(float(SLOTS_PER_DAY)))


def drift_start_ms(config: GeneratorConfig) -> int | None:
    """Epoch milliseconds of the drift start, None without drift."""
    start = config.drift.start_date
    return None if start is None else clock.epoch_millis(start)


def after_drift(start_ms: Column, config: GeneratorConfig) -> Column:
    """Whether a session starting at `start_ms` belongs to the drifted period."""
    boundary = drift_start_ms(config)
    if boundary is None:
        return F.lit(False)
    return start_ms >= F.lit(boundary)


def sessions(users_df: DataFrame, config: GeneratorConfig) -> DataFrame:
    """One row per session (no events yet): session_key (long, unique), user columns, session_id,
    session_start_ms, device, referrer, after_drift, purchase_logit, p_purchase, purchased; with an
    experiment also variant, exposure, p_purchase_by_variant (`experiment.with_experiment`)."""
    seed = config.seed
    behaviour = config.behaviour
    slots = config.days * SLOTS_PER_DAY
    start_ms = clock.epoch_millis(config.start_date)
    end_ms = clock.epoch_millis(config.end_date)

    slot = F.col("slot")
    key = F.col("session_key")
    candidates = users_df.select(
        "*", F.explode(F.sequence(F.lit(0), F.lit(slots - 1))).alias("slot")
    ).where(
        rnd.uniform(seed, "session", F.col("user_idx"), slot)
        < session_probability(F.col("activity_rate"), F.pmod(slot, F.lit(SLOTS_PER_DAY)))
    )
    # Each user's slot grid is shifted by a fixed random phase in [0, 2h): visits of the whole
    # population spread evenly over the clock while a user's own sessions stay > 40 min apart.
    slot_ms = SLOT_HOURS * clock.MS_PER_HOUR
    phase = F.floor(rnd.uniform(seed, "phase", F.col("user_idx")) * F.lit(float(slot_ms))).cast("long")
    placed = (
        candidates.withColumn("session_key", F.col("user_idx") * F.lit(slots) + slot.cast("long"))
        .withColumn(
            "session_start_ms",
            F.lit(start_ms)
            + slot.cast("long") * F.lit(slot_ms)
            + phase
            + F.floor(rnd.uniform(seed, "start", key) * F.lit(START_WINDOW_MS)).cast("long"),
        )
        # sessions that could run past the end of the period are not generated
        .where(F.col("session_start_ms") + F.lit(MAX_SESSION_MS) < F.lit(end_ms))
    )

    device_weights = [behaviour.device_weights.get(d, 0.0) for d in DEVICES]
    device = F.when(
        rnd.uniform(seed, "sticky", key) < F.lit(behaviour.home_device_stickiness), F.col("home_device")
    ).otherwise(rnd.choice(rnd.uniform(seed, "device", key), DEVICES, device_weights))
    drifted = after_drift(F.col("session_start_ms"), config)
    if config.drift.start_date is not None and config.drift.mobile_share_shift > 0:
        device = F.when(
            drifted & (rnd.uniform(seed, "drift_mobile", key) < F.lit(config.drift.mobile_share_shift)), F.lit("mobile")
        ).otherwise(device)
    referrer_weights = [behaviour.referrer_weights.get(r, 0.0) for r in REFERRERS]

    attributed = placed.select(
        "session_key",
        "user_idx",
        "user_id",
        "propensity",
        "country",
        rnd.hex16(seed, "session_id", key).alias("session_id"),
        "session_start_ms",
        device.alias("device"),
        rnd.choice(rnd.uniform(seed, "referrer", key), REFERRERS, referrer_weights).alias("referrer"),
        drifted.alias("after_drift"),
    )
    logit = latent.purchase_logit(
        F.col("propensity"), F.col("device"), F.col("referrer"), F.col("after_drift"), config
    )
    if config.experiment is not None:  # the variant's effect from the experiment's start on
        with_logit = experiment.with_experiment(attributed, logit, config)
    else:
        with_logit = attributed.withColumn("purchase_logit", logit)
    return with_logit.withColumn("p_purchase", rnd.sigmoid(F.col("purchase_logit"))).withColumn(
        "purchased", rnd.uniform(seed, "purchase", key) < F.col("p_purchase")
    )


def truth_sessions(funnel_df: DataFrame) -> DataFrame:
    """The `truth.sessions` table from sessions with their funnel (`events.with_funnel`, and the
    heavy users' sessions from `heavy.with_heavy_sessions`: `is_heavy`, false without them)."""
    events = F.col("events")
    is_heavy = F.col("is_heavy") if "is_heavy" in funnel_df.columns else F.lit(False)

    def count(event_type: str) -> Column:
        return F.size(F.filter(events, lambda e: e["event_type"] == F.lit(event_type)))

    return funnel_df.select(
        "user_id",
        "session_id",
        clock.timestamp(F.col("session_start_ms")).alias("session_start"),
        clock.timestamp(F.col("session_start_ms") + F.element_at(events, -1)["offset_ms"]).alias("session_end"),
        "device",
        "referrer",
        "country",
        F.size(events).alias("n_events"),
        count("product_view").alias("n_product_views"),
        count("add_to_cart").alias("n_add_to_cart"),
        count("remove_from_cart").alias("n_remove_from_cart"),
        count("purchase").alias("n_purchases"),
        "after_drift",
        "purchase_logit",
        "p_purchase",
        "purchased",
        is_heavy.alias("is_heavy"),
        *[c for c in experiment.TRUTH_COLUMNS if c in funnel_df.columns],  # only with an experiment
    )
