"""The latent purchase model and its oracle AUCs.

A session of user u with device d and referrer r, starting at t, ends in a purchase with
probability

    p = sigmoid(intercept + propensity_weight * z_u + device_effect[d] + referrer_effect[r]
                + [t >= drift.start_date] * drift.purchase_logit_shift)

(with `drift.device_effects` set, it replaces device_effect in the drifted period)

where z_u ~ N(0, 1) is the user's latent propensity. No model can rank sessions better than p
itself, so the AUC of p against the realised labels is the best achievable ("oracle") AUC:

- `session_auc(truth_sessions)`: realised, computed with Spark from `truth.sessions`;
- `expected_session_auc(config)`: the same quantity computed independently from the model's
  parameters by Monte Carlo on the driver (bounded sample, numpy);
- `oracle_window_auc(truth_sessions, cutoff, horizon_days)`: user level, the label a purchase in
  (cutoff, cutoff + horizon], the score p_window = 1 - prod(1 - p) over the user's sessions there.
  It knows which sessions the window holds (how many, on which device, from where), which no
  predictor at the cutoff can know: an upper bound, not an attainable target;
- `ex_ante_window_auc(truth_users, truth_sessions, cutoff, horizon_days, config)`: the same label,
  scored by the purchase probability that the user's latent attributes imply at the cutoff
  (`ex_ante_window_probability`): the best AUC of any predictor at the cutoff, even one that knew
  every user's latent propensity and session rate exactly.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Literal

import numpy as np
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from pipelines.config.generator import DEVICES, REFERRERS, GeneratorConfig
from pipelines.generate import random as rnd


def _lookup(key: Column, effects: dict[str, float], names: tuple[str, ...]) -> Column:
    expr = F.lit(0.0)
    for name in names:
        value = float(effects.get(name, 0.0))
        if value != 0.0:
            expr = F.when(key == F.lit(name), F.lit(value)).otherwise(expr)
    return expr


def purchase_logit(
    propensity: Column, device: Column, referrer: Column, after_drift: Column, config: GeneratorConfig
) -> Column:
    """The purchase logit of a session (see the module docstring)."""
    model = config.purchase
    device_effect = _lookup(device, model.device_effects, DEVICES)
    drifted_effects = config.drift.device_effects
    if config.drift.start_date is not None and drifted_effects is not None:
        device_effect = F.when(after_drift, _lookup(device, drifted_effects, DEVICES)).otherwise(device_effect)
    logit = (
        F.lit(model.intercept)
        + F.lit(model.propensity_weight) * propensity
        + device_effect
        + _lookup(referrer, model.referrer_effects, REFERRERS)
    )
    shift = config.drift.purchase_logit_shift
    if config.drift.start_date is not None and shift != 0.0:
        logit = logit + F.when(after_drift, F.lit(shift)).otherwise(F.lit(0.0))
    return logit


def purchase_probability(*args: Column, config: GeneratorConfig) -> Column:
    """sigmoid(purchase_logit(...))."""
    return rnd.sigmoid(purchase_logit(*args, config=config))


# -- Expected oracle AUC from the parameters (Monte Carlo, driver side, bounded) -----------------


def weighted_auc(scores: np.ndarray, positive_rate: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Expected AUC of `scores` when item i is positive with probability positive_rate[i] and
    occurs with relative frequency weights[i] (pairs of distinct items; ties count one half)."""
    scores = np.asarray(scores, dtype=float)
    rate = np.asarray(positive_rate, dtype=float)
    weights = np.ones_like(scores) if weights is None else np.asarray(weights, dtype=float)
    pos = weights * rate
    neg = weights * (1.0 - rate)
    order = np.argsort(scores, kind="mergesort")
    scores, pos, neg = scores[order], pos[order], neg[order]
    _, first, counts = np.unique(scores, return_index=True, return_counts=True)
    group = np.repeat(np.arange(len(first)), counts)
    neg_in_group = np.add.reduceat(neg, first)
    neg_before_group = np.concatenate([[0.0], np.cumsum(neg_in_group)[:-1]])
    # a tie with another item counts one half; an item is not paired with itself
    wins = pos * (neg_before_group[group] + 0.5 * (neg_in_group[group] - neg))
    denominator = pos.sum() * neg.sum() - float(np.sum(pos * neg))
    return float(wins.sum() / denominator) if denominator > 0 else float("nan")


def expected_session_auc(config: GeneratorConfig, samples: int | None = None, seed: int = 12345) -> float:
    """The oracle session AUC that the parameters imply, by Monte Carlo (independent of Spark).

    Samples users (z, session rate), weights each by its expected number of sessions (the slot
    model's cap included), draws one session's device, referrer and drift period, and returns the
    expected AUC of p against Bernoulli(p) labels over sessions.
    """
    from pipelines.generate.sessions import slot_weights

    samples = samples or config.oracle_samples
    rng = np.random.default_rng(seed)
    behaviour, model, drift = config.behaviour, config.purchase, config.drift
    z = rng.standard_normal(samples)
    noise = rng.standard_normal(samples)
    rho = behaviour.activity_propensity_correlation
    rate = np.exp(
        math.log(behaviour.sessions_per_day)
        + behaviour.sessions_per_day_sigma * (rho * z + math.sqrt(max(0.0, 1 - rho * rho)) * noise)
    )
    slot_weights = np.asarray(slot_weights())
    sessions_per_day = np.minimum(1.0, rate[:, None] * slot_weights[None, :] / len(slot_weights)).sum(axis=1)

    device_weights = np.array([behaviour.device_weights.get(d, 0.0) for d in DEVICES], dtype=float)
    device_weights /= device_weights.sum()
    home = rng.choice(len(DEVICES), size=samples, p=device_weights)
    other = rng.choice(len(DEVICES), size=samples, p=device_weights)
    device = np.where(rng.random(samples) < behaviour.home_device_stickiness, home, other)
    after = np.zeros(samples, dtype=bool)
    if drift.start_date is not None:
        drift_days = max(0, (config.end_date - drift.start_date).days)
        after = rng.random(samples) < min(1.0, drift_days / config.days)
        mobile = DEVICES.index("mobile")
        device = np.where(after & (rng.random(samples) < drift.mobile_share_shift), mobile, device)
    referrer_weights = np.array([behaviour.referrer_weights.get(r, 0.0) for r in REFERRERS], dtype=float)
    referrer = rng.choice(len(REFERRERS), size=samples, p=referrer_weights / referrer_weights.sum())

    device_effect = np.array([model.device_effects.get(d, 0.0) for d in DEVICES])
    referrer_effect = np.array([model.referrer_effects.get(r, 0.0) for r in REFERRERS])
    effect = device_effect[device]
    if drift.start_date is not None and drift.device_effects is not None:
        drifted_effect = np.array([drift.device_effects.get(d, 0.0) for d in DEVICES])
        effect = np.where(after, drifted_effect[device], effect)
    logit = model.intercept + model.propensity_weight * z + effect + referrer_effect[referrer]
    if drift.start_date is not None:
        logit = logit + np.where(after, drift.purchase_logit_shift, 0.0)
    p = 1.0 / (1.0 + np.exp(-logit))
    return weighted_auc(p, p, sessions_per_day)


# -- Realised AUCs with Spark -------------------------------------------------------------------


def class_counts(df: DataFrame, label_col: str) -> tuple[int, int]:
    """(positives, negatives) of a 0/1 or boolean label column (one small aggregate)."""
    label = F.col(label_col).cast("double")
    row = df.agg(
        F.sum(F.when(label > 0, 1).otherwise(0)).alias("pos"),
        F.sum(F.when(label > 0, 0).otherwise(1)).alias("neg"),
    ).first()
    return int(row["pos"] or 0), int(row["neg"] or 0)


def auc(df: DataFrame, score_col: str, label_col: str) -> float:
    """Exact ROC AUC of a score against a 0/1 (or boolean) label, computed by Spark.

    Uses MLlib's BinaryClassificationEvaluator without down-sampling (numBins=0): a distributed
    sort by score and a trapezoidal ROC, ties counting one half, like sklearn's roc_auc_score.
    NaN when only one class is present.
    """
    from pyspark.ml.evaluation import BinaryClassificationEvaluator

    data = df.select(F.col(score_col).cast("double").alias("score"), F.col(label_col).cast("double").alias("label"))
    positives, negatives = class_counts(data, "label")
    if positives == 0 or negatives == 0:
        return float("nan")
    evaluator = BinaryClassificationEvaluator(
        rawPredictionCol="score", labelCol="label", metricName="areaUnderROC", numBins=0
    )
    return float(evaluator.evaluate(data))


def session_auc(truth_sessions: DataFrame) -> float:
    """Realised oracle AUC at session level: `p_purchase` against `purchased`."""
    return auc(truth_sessions, "p_purchase", "purchased")


def _instant(value: dt.date | dt.datetime | str) -> dt.datetime:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
    return dt.datetime(value.year, value.month, value.day, tzinfo=dt.timezone.utc)


def window_scores(
    truth_sessions: DataFrame,
    cutoff: dt.date | dt.datetime | str,
    horizon_days: float,
    population: Literal["history", "all"] = "history",
) -> DataFrame:
    """User-level oracle scores for a prediction window: user_id, p_window, label.

    Window = sessions starting in (cutoff, cutoff + horizon_days]; p_window = 1 - prod(1 - p)
    over them (0 without sessions there), label = any purchase there. `population` picks the
    users scored: `history` = users with a session at or before the cutoff (the users a model
    with history can score), `all` = every user in `truth_sessions`.
    """
    start = _instant(cutoff)
    end = start + dt.timedelta(days=horizon_days)
    start_lit = F.timestamp_millis(F.lit(int(round(start.timestamp() * 1000))))
    end_lit = F.timestamp_millis(F.lit(int(round(end.timestamp() * 1000))))
    sessions = truth_sessions.select("user_id", "p_purchase", "purchased", F.col("session_start").alias("start_utc"))
    in_window = sessions.where((F.col("start_utc") > start_lit) & (F.col("start_utc") <= end_lit))
    scored = in_window.groupBy("user_id").agg(
        (F.lit(1.0) - F.exp(F.sum(F.log1p(-F.least(F.col("p_purchase"), F.lit(1.0 - 1e-15)))))).alias("p_window"),
        F.max(F.col("purchased").cast("int")).alias("label"),
    )
    if population == "history":
        users = sessions.where(F.col("start_utc") <= start_lit).select("user_id").distinct()
    elif population == "all":
        users = sessions.select("user_id").distinct()
    else:
        raise ValueError(f"population must be 'history' or 'all', got {population!r}")
    return users.join(scored, "user_id", "left").select(
        "user_id",
        F.coalesce(F.col("p_window"), F.lit(0.0)).alias("p_window"),
        F.coalesce(F.col("label"), F.lit(0)).alias("label"),
    )


def oracle_window_auc(
    truth_sessions: DataFrame,
    cutoff: dt.date | dt.datetime | str,
    horizon_days: float,
    population: Literal["history", "all"] = "history",
) -> float:
    """The generator's known best AUC for "will the user purchase in (cutoff, cutoff + horizon]"
    (see `window_scores`). NaN when the window has only one class."""
    return auc(window_scores(truth_sessions, cutoff, horizon_days, population), "p_window", "label")


def default_window(config: GeneratorConfig) -> tuple[dt.date, int]:
    """(cutoff, horizon_days) that `run` reports: the last `oracle_horizon_days` of the period,
    shortened to at most half of it."""
    horizon = max(1, min(config.oracle_horizon_days, config.days // 2))
    return config.end_date - dt.timedelta(days=horizon), horizon


def _window_days(cutoff: dt.datetime, horizon_days: float) -> list[dt.datetime]:
    days = max(1, int(math.ceil(horizon_days)))
    return [cutoff + dt.timedelta(days=k) for k in range(days)]


def session_purchase_probability(
    propensity: Column, home_device: Column, after_drift: bool, config: GeneratorConfig
) -> Column:
    """E[p] of one future session of a user, over its device (home device with the stickiness,
    otherwise drawn by the device weights; the drift's mobile shift) and its referrer."""
    behaviour, model, drift = config.behaviour, config.purchase, config.drift
    device_total = sum(behaviour.device_weights.get(d, 0.0) for d in DEVICES)
    referrer_total = sum(behaviour.referrer_weights.get(r, 0.0) for r in REFERRERS)
    stickiness = behaviour.home_device_stickiness
    mobile_shift = drift.mobile_share_shift if after_drift and drift.start_date is not None else 0.0
    logit_shift = drift.purchase_logit_shift if after_drift and drift.start_date is not None else 0.0
    device_effects = model.device_effects
    if after_drift and drift.start_date is not None and drift.device_effects is not None:
        device_effects = drift.device_effects
    expected = F.lit(0.0)
    for device in DEVICES:
        drawn = (1.0 - stickiness) * behaviour.device_weights.get(device, 0.0) / device_total
        p_device = F.when(home_device == F.lit(device), F.lit(stickiness + drawn)).otherwise(F.lit(drawn))
        p_device = p_device * F.lit(1.0 - mobile_shift) + F.lit(mobile_shift if device == "mobile" else 0.0)
        for referrer in REFERRERS:
            weight = behaviour.referrer_weights.get(referrer, 0.0) / referrer_total
            if weight == 0.0:
                continue
            logit = (
                F.lit(model.intercept + device_effects.get(device, 0.0) + model.referrer_effects.get(referrer, 0.0)
                      + logit_shift)
                + F.lit(model.propensity_weight) * propensity
            )
            expected = expected + p_device * F.lit(weight) * rnd.sigmoid(logit)
    return expected


def ex_ante_window_probability(
    truth_users: DataFrame, cutoff: dt.date | dt.datetime | str, horizon_days: float, config: GeneratorConfig
) -> DataFrame:
    """user_id, p_ex_ante: P(a purchase in (cutoff, cutoff + horizon]) given only the user's latent
    attributes (propensity, activity rate, home device) - what a perfect model at the cutoff knows.

    Each 2-hour slot of each day holds a session with probability q = min(1, rate * w_slot / 12)
    (`sessions.session_probability`), each session buys with E[p] (`session_purchase_probability`),
    all independent: P = 1 - prod over the slots (1 - q * E[p]). Whole days, so the users' slot
    phases do not matter.
    """
    from pipelines.generate.sessions import SLOTS_PER_DAY, slot_weights

    start = _instant(cutoff)
    drift_start = config.drift.start_date
    rate = F.col("activity_rate")
    log_none = F.lit(0.0)
    for day in _window_days(start, horizon_days):
        after = drift_start is not None and day.date() >= drift_start
        p_session = session_purchase_probability(F.col("propensity"), F.col("home_device"), after, config)
        for weight in slot_weights():
            q = F.least(F.lit(1.0), rate * F.lit(weight / SLOTS_PER_DAY))
            log_none = log_none + F.log1p(-F.least(q * p_session, F.lit(1.0 - 1e-15)))
    return truth_users.select("user_id", (F.lit(1.0) - F.exp(log_none)).alias("p_ex_ante"))


def ex_ante_window_auc(
    truth_users: DataFrame,
    truth_sessions: DataFrame,
    cutoff: dt.date | dt.datetime | str,
    horizon_days: float,
    config: GeneratorConfig,
    population: Literal["history", "all"] = "history",
) -> float:
    """AUC of `ex_ante_window_probability` against the realised window label (`window_scores`):
    the best a predictor at the cutoff can do. NaN when the window has only one class."""
    labels = window_scores(truth_sessions, cutoff, horizon_days, population).select("user_id", "label")
    scored = labels.join(ex_ante_window_probability(truth_users, cutoff, horizon_days, config), "user_id")
    return auc(scored, "p_ex_ante", "label")
