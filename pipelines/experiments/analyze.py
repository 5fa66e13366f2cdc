"""Experiment analysis in Spark: exposures + silver events -> per-user metrics -> per-variant sums
-> the statistics of `pipelines.experiments.stats`.

Pure transforms (DataFrame -> DataFrame) up to `variant_aggregates` / `daily_aggregates`, whose
results are bounded (one row per experiment x variant, and per first-exposure day) and are the only
data brought to the driver; `summarize` is plain Python on those rows.

Per-user metrics (one row per experiment and user):
  variant          the variant of the user's FIRST exposure (ties on time broken by request id); a
                   user seen in several variants stays in the first and is flagged `multi_variant`
  converted        1 if the user had a `conversion_event` within the attribution window
                   [first exposure, first exposure + attribution_window_hours), else 0
  clicks           product_view events in the window
  revenue          sum of purchase prices in the window
  pre_<metric>     the same metric over the pre-period [start - pre_period_days, start), where
                   start is the configured start date (UTC midnight) or the experiment's first
                   exposure: the CUPED covariate of <metric> (before any treatment, so unbiased)
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from typing import Iterable, Mapping

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from pipelines.experiments.stats import (
    ExperimentStatsError,
    Moments,
    Proportion,
    beta_binomial,
    cuped_test,
    msprt_path,
    proportion_test,
    sample_ratio_mismatch,
    welch_test,
)

log = logging.getLogger(__name__)

__all__ = ["METRICS", "daily_aggregates", "first_exposures", "summarize", "user_metrics", "variant_aggregates"]

METRICS = ("converted", "clicks", "revenue")
"""Per-user metrics; each has its pre-period covariate `pre_<metric>`."""
CLICK_EVENT = "product_view"
PURCHASE_EVENT = "purchase"


def _midnight(day: dt.date) -> F.Column:
    return F.lit(dt.datetime.combine(day, dt.time()))


def first_exposures(
    exposures: DataFrame, experiment_id: str | None = None, start: dt.date | None = None, end: dt.date | None = None
) -> DataFrame:
    """One row per (experiment_id, user_id): the first exposure's variant, model version and time,
    and `multi_variant` when the user was exposed to more than one variant. `start` / `end` (UTC
    dates, end inclusive) bound the exposures considered."""
    df = exposures
    if experiment_id is not None:
        df = df.where(F.col("experiment_id") == experiment_id)
    if start is not None:
        df = df.where(F.col("exposure_time") >= _midnight(start))
    if end is not None:
        df = df.where(F.col("exposure_time") < _midnight(end + dt.timedelta(days=1)))
    first = F.min(F.struct("exposure_time", "request_id", "variant", "model_version"))  # earliest, ties by request id
    return (
        df.where(F.col("user_id").isNotNull() & F.col("variant").isNotNull() & F.col("exposure_time").isNotNull())
        .groupBy("experiment_id", "user_id")
        .agg(first.alias("first"), F.countDistinct("variant").alias("variants_seen"))
        .select(
            "experiment_id",
            "user_id",
            F.col("first.variant").alias("variant"),
            F.col("first.model_version").alias("model_version"),
            F.col("first.exposure_time").alias("first_exposure"),
            (F.col("variants_seen") > 1).alias("multi_variant"),
        )
    )


def user_metrics(
    first: DataFrame,
    events: DataFrame,
    *,
    conversion_event: str = "purchase",
    attribution_window_hours: float = 24.0,
    pre_period_days: int = 7,
    start: dt.date | None = None,
    end: dt.date | None = None,
) -> DataFrame:
    """Per-user metrics (see the module doc) from `first_exposures(...)` and silver events
    (user_id, event_type, event_time, price). Users without events get zeros. With `start` / `end`
    the events are pruned to [start - pre_period_days, end + 1 day + window) before the join."""
    window_s = float(attribution_window_hours) * 3600.0
    pre_s = float(pre_period_days) * 86400.0
    exp_start = (
        _midnight(start).cast("double") if start is not None
        else F.min(F.col("first_exposure")).over(Window.partitionBy("experiment_id")).cast("double")
    )
    users = first.select(
        "experiment_id", "user_id", "variant", "first_exposure", "multi_variant",
        F.col("first_exposure").cast("double").alias("_t0"), exp_start.alias("_start"),
    )
    ev = events.select("user_id", "event_type", F.col("event_time").cast("double").alias("_t"), "price")
    if start is not None:
        ev = ev.where(F.col("_t") >= _epoch(start) - pre_s)
    if end is not None:
        ev = ev.where(F.col("_t") < _epoch(end + dt.timedelta(days=1)) + window_s)
    joined = users.join(ev, on="user_id", how="left")
    in_window = (F.col("_t") >= F.col("_t0")) & (F.col("_t") < F.col("_t0") + window_s)
    in_pre = (F.col("_t") >= F.col("_start") - pre_s) & (F.col("_t") < F.col("_start"))

    def count(cond):
        return F.sum(F.when(cond, 1).otherwise(0))

    def revenue(cond):
        return F.sum(F.when(cond & (F.col("event_type") == PURCHASE_EVENT), F.coalesce(F.col("price"), F.lit(0.0))).otherwise(0.0))

    is_conv, is_click = F.col("event_type") == conversion_event, F.col("event_type") == CLICK_EVENT
    return joined.groupBy("experiment_id", "user_id", "variant", "first_exposure", "multi_variant").agg(
        (count(in_window & is_conv) > 0).cast("int").alias("converted"),
        count(in_window & is_click).cast("double").alias("clicks"),
        revenue(in_window).cast("double").alias("revenue"),
        (count(in_pre & is_conv) > 0).cast("int").alias("pre_converted"),
        count(in_pre & is_click).cast("double").alias("pre_clicks"),
        revenue(in_pre).cast("double").alias("pre_revenue"),
    )


def _epoch(day: dt.date) -> float:
    """Seconds since the epoch of the UTC midnight starting `day` (the Spark session runs in UTC)."""
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.timezone.utc).timestamp()


def _sums(metrics: Iterable[str]) -> list[F.Column]:
    cols = []
    for m in metrics:
        y, x = F.col(m).cast("double"), F.col(f"pre_{m}").cast("double")
        cols += [
            F.sum(y).alias(f"{m}_sum"), F.sum(y * y).alias(f"{m}_sum_sq"), F.sum(x).alias(f"{m}_sum_x"),
            F.sum(x * x).alias(f"{m}_sum_xx"), F.sum(x * y).alias(f"{m}_sum_xy"),
        ]
    return cols


def variant_aggregates(metrics: DataFrame) -> DataFrame:
    """Per (experiment_id, variant): users, multi-variant users and, for each metric, the sufficient
    statistics sum, sum_sq and the CUPED sums sum_x, sum_xx, sum_xy. Small: experiments x variants rows."""
    return metrics.groupBy("experiment_id", "variant").agg(
        F.count(F.lit(1)).alias("users"),
        F.sum(F.col("multi_variant").cast("int")).alias("multi_variant_users"),
        *_sums(METRICS),
    )


def daily_aggregates(metrics: DataFrame) -> DataFrame:
    """Per (experiment_id, variant, day of first exposure): users, conversions, clicks and revenue
    (the conversion-over-time plot and the mSPRT's daily looks). Small: days x variants rows."""
    return (
        metrics.groupBy("experiment_id", "variant", F.to_date("first_exposure").alias("day"))
        .agg(
            F.count(F.lit(1)).alias("users"), F.sum("converted").alias("conversions"),
            F.sum("clicks").alias("clicks"), F.sum("revenue").alias("revenue"),
        )
    )


# --------------------------------------------------------------------------- driver side (bounded rows)


def _moments(row: Mapping, metric: str) -> Moments:
    return Moments(
        row["variant"], int(row["users"]), float(row[f"{metric}_sum"] or 0.0), float(row[f"{metric}_sum_sq"] or 0.0),
        float(row[f"{metric}_sum_x"] or 0.0), float(row[f"{metric}_sum_xx"] or 0.0), float(row[f"{metric}_sum_xy"] or 0.0),
    )


def _safe(fn, *args, **kwargs):
    """A result's dict, or {"error": reason} when the statistic is undefined for these counts."""
    try:
        return fn(*args, **kwargs).to_dict()
    except ExperimentStatsError as exc:
        return {"error": str(exc)}


def _msprt_daily(daily: list[Mapping], control: str, variant: str, tau2: float, alpha: float) -> dict:
    by_day: dict = {}
    for row in daily:
        if row["variant"] in (control, variant):
            by_day.setdefault(row["day"], {})[row["variant"]] = row
    looks, cum = [], {control: [0, 0], variant: [0, 0]}
    days = []
    for day in sorted(by_day):
        for name, row in by_day[day].items():
            cum[name][0] += int(row["users"])
            cum[name][1] += int(row["conversions"])
        rates = [cum[v][1] / cum[v][0] if cum[v][0] else 0.0 for v in (control, variant)]
        if all(cum[v][0] > 0 for v in (control, variant)) and any(0 < r < 1 for r in rates):  # else no evidence yet
            looks.append((Proportion(control, *cum[control]), Proportion(variant, *cum[variant])))
            days.append(str(day))
    try:
        path = msprt_path(looks, tau2, alpha)
    except ExperimentStatsError as exc:
        return {"error": str(exc)}
    return {"tau2": tau2, "days": days, "p_values": [lk.p_value for lk in path.looks], "p_value": path.p_value,
            "rejected": path.rejected, "first_rejection_day": days[path.first_rejection - 1] if path.first_rejection else None}


def summarize(
    experiment_id: str,
    spec,
    aggregates: list[Mapping],
    daily: list[Mapping] | None = None,
    tau2: float | None = None,
    srm_threshold: float = 0.001,
) -> dict:
    """The statistics of one experiment from its `variant_aggregates` rows (and `daily_aggregates`
    rows for the mSPRT), as a JSON-ready dict: per variant users, conversions, rate, clicks and revenue
    per user; per non-control variant against `spec.control`: z-test, Beta-Binomial, Welch on clicks
    and revenue, CUPED on each metric, the mSPRT over the days, and the decision of `spec.decision`
    (ship when P(beat) > min_prob_beat and the expected loss < max_expected_loss, with no SRM).
    `spec` is an `ExperimentSpec` (pipelines/config/serving.py). tau2 defaults to (10% of the
    control's conversion rate)^2: the mixture is centred on effects of that size."""
    rows = {r["variant"]: r for r in aggregates if r["experiment_id"] == experiment_id}
    control = spec.control
    if control not in rows:
        raise ExperimentStatsError(f"experiment {experiment_id!r}: no exposed user in the control variant {control!r}")
    unknown = sorted(set(rows) - set(spec.variants))
    alpha, decision = spec.decision.alpha, spec.decision
    out: dict = {"experiment_id": experiment_id, "kind": spec.kind, "control": control, "unknown_variants": unknown, "variants": {}}
    for name, r in rows.items():
        n = int(r["users"])
        out["variants"][name] = {
            "users": n, "multi_variant_users": int(r["multi_variant_users"] or 0), "conversions": int(r["converted_sum"] or 0),
            "conversion_rate": (r["converted_sum"] or 0) / n if n else math.nan,
            "clicks_per_user": (r["clicks_sum"] or 0) / n if n else math.nan,
            "revenue_per_user": (r["revenue_sum"] or 0) / n if n else math.nan,
        }
    traffic = spec.traffic()
    if spec.kind == "bandit":
        out["srm"] = {"skipped": "a bandit moves its weights; no fixed ratio to check"}
    else:
        counts = {k: int(rows[k]["users"]) if k in rows else 0 for k in traffic}
        out["srm"] = _safe(sample_ratio_mismatch, counts, traffic, srm_threshold)
    srm_flag = bool(out["srm"].get("mismatch"))
    if spec.kind == "shadow":
        out["comparisons"] = {}
        out["note"] = "shadow: only the control's answer is served, so there is no outcome difference to test"
        return _json(out)
    c = rows[control]
    pc = Proportion(control, int(c["users"]), int(c["converted_sum"] or 0))
    out["comparisons"] = {}
    for name in sorted(rows):
        if name == control or name in unknown:
            continue
        r = rows[name]
        pt = Proportion(name, int(r["users"]), int(r["converted_sum"] or 0))
        comp = {
            "conversion": _safe(proportion_test, pc, pt, alpha),
            "bayes": _safe(beta_binomial, pc, pt, spec.bandit.prior_alpha, spec.bandit.prior_beta, 1 - alpha),
            "clicks": _safe(welch_test, _moments(c, "clicks"), _moments(r, "clicks"), alpha),
            "revenue": _safe(welch_test, _moments(c, "revenue"), _moments(r, "revenue"), alpha),
            "cuped": {},
        }
        if spec.pre_period_days > 0:
            for m in METRICS:
                res = None
                try:
                    res = cuped_test(_moments(c, m), _moments(r, m), alpha)
                    comp["cuped"][m] = {**res.to_dict(), "width_ratio": res.width_ratio}
                except ExperimentStatsError as exc:
                    comp["cuped"][m] = {"error": str(exc)}
        if daily:
            rate = pc.rate if pc.n else 0.0
            t2 = tau2 if tau2 is not None else max((0.1 * rate) ** 2, 1e-8)
            comp["sequential"] = _msprt_daily(daily, control, name, t2, alpha)
        bayes = comp["bayes"]
        ship = (
            "error" not in bayes and bayes["prob_treatment_beats_control"] > decision.min_prob_beat
            and bayes["loss_choose_treatment"] < decision.max_expected_loss and not srm_flag
        )
        comp["decision"] = {"ship": bool(ship), "blocked_by_srm": srm_flag,
                            "rule": f"P(beat) > {decision.min_prob_beat} and expected loss < {decision.max_expected_loss}"}
        out["comparisons"][name] = comp
    return _json(out)


def _json(value):
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
