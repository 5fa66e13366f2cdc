"""The generator's online experiment (`generator.experiment`): assignment, true effects, truth.

From the experiment's start day on, every user with a session is assigned to a variant by the
model server's rule (`pipelines.serve.routing`: the point sha256(salt + ":" + user_id) read as a
number in [0, 1), then the variant whose slice of [0, 1) holds it, slices in config order),
reimplemented here as Spark columns. The user's purchase logit in every session from the start
on gets the variant's `logit_effect`; the user's first session from the start on carries an
`exposure` event at its start (experiment_id, variant, model_version, as the server writes it).

Truth (`truth.sessions` gains three columns, only with an experiment):
  variant                the user's variant, for sessions from the start on (null before)
  exposure               the session that carries the user's exposure event
  p_purchase_by_variant  variant -> the session's purchase probability under that variant
                         (counterfactuals included; null before the start)

`user_truth` turns them into one row per exposed user with the probability of converting
within the attribution window under each variant: the population's true lift is known.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from pipelines.config.generator import ExperimentConfig, GeneratorConfig
from pipelines.generate import clock
from pipelines.generate import random as rnd

EXPOSURE_EVENT = "exposure"
EXPOSURE_FIELDS: tuple[str, ...] = ("experiment_id", "variant", "model_version", "request_id")
"""JSON fields of an exposure event beyond the canonical ones (the server's `Exposure.to_line`)."""
EXPOSURE_POSITION = -1
"""`position` of the exposure event in its session (the funnel's events are 0, 1, ...)."""
TRUTH_COLUMNS: tuple[str, ...] = ("variant", "exposure", "p_purchase_by_variant")
"""Columns the experiment adds to sessions and to `truth.sessions`."""
_TWO_POW_32 = float(2**32)
_TWO_POW_64 = float(2**64)


def enabled(config: GeneratorConfig) -> bool:
    return config.experiment is not None


def start_ms(config: GeneratorConfig) -> int:
    """Epoch milliseconds of the experiment's first day (UTC midnight)."""
    return clock.epoch_millis(config.experiment_start)


def assignment_point(salt: str, user_id: Column) -> Column:
    """`routing.assignment_point(salt, user_id)` as a double column, bit for bit.

    The first 64 bits of the digest as two exact 32-bit halves: hi * 2^32 + lo is rounded once
    (as Python's int -> float), and the division by 2^64 is exact."""
    digest = F.sha2(F.concat(F.lit(f"{salt}:"), user_id), 256)
    hi = F.conv(F.substring(digest, 1, 8), 16, 10).cast("long").cast("double")
    lo = F.conv(F.substring(digest, 9, 8), 16, 10).cast("long").cast("double")
    return (hi * F.lit(_TWO_POW_32) + lo) / F.lit(_TWO_POW_64)


def pick(point: Column, weights: dict[str, float]) -> Column:
    """`routing.pick(point, weights)` as a column: the variant whose slice holds the point."""
    bounds, upper = [], 0.0
    for name, weight in weights.items():
        if weight <= 0:
            continue
        upper += weight  # the same float accumulation as the server
        bounds.append((upper, name))
    if not bounds:
        raise ValueError("no variant has a positive share")
    expr = F.lit(bounds[-1][1])  # float rounding at the top end: the last variant with traffic
    for bound, name in reversed(bounds):
        expr = F.when(point < F.lit(bound), F.lit(name)).otherwise(expr)
    return expr


def assigned_variant(user_id: Column, experiment: ExperimentConfig) -> Column:
    """The server's variant for `user_id` in this experiment."""
    return pick(assignment_point(experiment.salt_value, user_id), experiment.traffic())


def logit_effect(variant: Column, experiment: ExperimentConfig) -> Column:
    """The variant's true logit effect (0 for a null variant)."""
    expr = F.lit(0.0)
    for name, spec in experiment.variants.items():
        if spec.logit_effect != 0.0:
            expr = F.when(variant == F.lit(name), F.lit(float(spec.logit_effect))).otherwise(expr)
    return expr


def with_experiment(sessions_df: DataFrame, base_logit: Column, config: GeneratorConfig) -> DataFrame:
    """Add `variant`, `exposure`, `p_purchase_by_variant` and the experiment's `purchase_logit`
    (`base_logit` plus the variant's effect from the start on) to sessions (`sessions.sessions`)."""
    experiment = config.experiment
    assert experiment is not None
    in_experiment = F.col("session_start_ms") >= F.lit(start_ms(config))
    first = F.min(F.when(in_experiment, F.col("session_start_ms"))).over(Window.partitionBy("user_id"))
    staged = sessions_df.select(
        "*",
        F.when(in_experiment, assigned_variant(F.col("user_id"), experiment)).alias("variant"),
        (in_experiment & (F.col("session_start_ms") == first)).alias("exposure"),
        base_logit.alias("_base_logit"),
    )
    by_variant = F.create_map(*[
        x for name, spec in experiment.variants.items()
        for x in (F.lit(name), rnd.sigmoid(F.col("_base_logit") + F.lit(float(spec.logit_effect))))
    ])
    return staged.select(
        *sessions_df.columns,
        "variant",
        "exposure",
        F.when(in_experiment, by_variant).alias("p_purchase_by_variant"),
        (F.col("_base_logit") + logit_effect(F.col("variant"), experiment)).alias("purchase_logit"),
    )


def exposure_rows(funnel_df: DataFrame) -> DataFrame:
    """The exposure events' rows in the shape `events.events` explodes: one per exposing session,
    at the session's start (offset 0), `position` = EXPOSURE_POSITION."""
    event = F.struct(
        F.lit(EXPOSURE_EVENT).alias("event_type"), F.lit(None).cast("long").alias("product"), F.lit(0).cast("long").alias("offset_ms")
    )
    return funnel_df.where(F.col("exposure")).select(
        "session_key", "user_id", "session_id", "session_start_ms", "device", "referrer", "country", "after_drift",
        F.lit(EXPOSURE_POSITION).alias("position"), event.alias("event"), "variant",
    )


def exposure_columns(config: GeneratorConfig, is_exposure: Column, request_id: Column) -> list[Column]:
    """The exposure fields of an event row (null on user events)."""
    experiment = config.experiment
    assert experiment is not None
    return [
        F.when(is_exposure, F.lit(experiment.id)).alias("experiment_id"),
        F.when(is_exposure, F.col("variant")).alias("variant"),
        F.when(is_exposure, F.lit(experiment.model_version)).alias("model_version"),
        F.when(is_exposure, request_id).alias("request_id"),
    ]


def user_truth(truth_sessions: DataFrame, config: GeneratorConfig, attribution_window_hours: float = 24.0,
               pre_period_days: int = 7) -> DataFrame:
    """One row per exposed user from `truth.sessions` (of a generation with an experiment):
    user_id, variant, first_exposure (timestamp), p_convert (map: variant -> probability of a
    purchase in a session starting in [first exposure, + window) had the user been in that
    variant), converted (realised, by the same rule), and the pre-period [start - pre_period_days,
    start) covariates pre_sessions, pre_product_views, pre_purchases.

    The analysis counts purchase *events* in the window; a session starting in the window's last
    minutes may buy just after it (and count in neither): the truth is exact up to that edge."""
    experiment = config.experiment
    if experiment is None:
        raise ValueError("user_truth needs generator.experiment")
    sessions = truth_sessions.where(~F.coalesce(F.col("is_heavy"), F.lit(False)))
    t = F.col("session_start").cast("double")
    first = sessions.where(F.col("exposure")).select(
        "user_id", F.col("variant").alias("_variant"), F.col("session_start").alias("first_exposure"),
    )
    t0 = F.col("first_exposure").cast("double")
    in_window = (t >= t0) & (t < t0 + F.lit(float(attribution_window_hours) * 3600.0))
    start_s = start_ms(config) / 1000.0
    in_pre = (t >= F.lit(start_s - pre_period_days * 86400.0)) & (t < F.lit(start_s))
    log_miss = {
        name: F.sum(F.when(in_window, F.log1p(-F.col("p_purchase_by_variant")[name])).otherwise(F.lit(0.0)))
        for name in experiment.variants
    }
    per_user = sessions.join(first, "user_id").groupBy("user_id", "_variant", "first_exposure").agg(
        *[value.alias(f"_miss_{i}") for i, value in enumerate(log_miss.values())],
        F.max(in_window & F.col("purchased")).alias("converted"),
        F.sum(F.when(in_pre, 1).otherwise(0)).alias("pre_sessions"),
        F.sum(F.when(in_pre, F.col("n_product_views")).otherwise(0)).alias("pre_product_views"),
        F.sum(F.when(in_pre, F.col("n_purchases")).otherwise(0)).alias("pre_purchases"),
    )
    p_convert = F.create_map(*[
        x for i, name in enumerate(experiment.variants) for x in (F.lit(name), F.lit(1.0) - F.exp(F.col(f"_miss_{i}")))
    ])
    return per_user.select(
        "user_id", F.col("_variant").alias("variant"), "first_exposure", p_convert.alias("p_convert"),
        F.col("converted").cast("int").alias("converted"),
        F.col("pre_sessions").cast("long").alias("pre_sessions"),
        F.col("pre_product_views").cast("long").alias("pre_product_views"),
        F.col("pre_purchases").cast("long").alias("pre_purchases"),
    )
