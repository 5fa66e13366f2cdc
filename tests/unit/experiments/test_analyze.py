"""Experiment analysis transforms on hand-made exposures and events, and the driver-side summary."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest

from pipelines.experiments import analyze
from pipelines.experiments.stats import ExperimentStatsError, Proportion, beta_binomial, proportion_test

T = dt.datetime
EXPOSURE_SCHEMA = "experiment_id string, variant string, user_id string, request_id string, model_version string, exposure_time timestamp"
EVENT_SCHEMA = "user_id string, event_type string, event_time timestamp, price double, product_id string, session_id string"

EXPOSURES = [
    ("exp", "control", "u1", "r1", "1", T(2026, 1, 10, 10)),
    ("exp", "treatment", "u2", "r2", "2", T(2026, 1, 10, 12)),
    ("exp", "control", "u2", "r3", "1", T(2026, 1, 10, 13)),  # u2 seen again in control: stays treatment, flagged
    ("exp", "treatment", "u2", "r9", "2", T(2026, 1, 11, 12)),
    ("exp", "treatment", "u3", "r4", "2", T(2026, 1, 11, 9)),
    ("exp", "control", "u4", "a", "1", T(2026, 1, 10, 8)),  # same time: request id "a" < "b" decides
    ("exp", "treatment", "u4", "b", "2", T(2026, 1, 10, 8)),
    ("other", "control", "u1", "r5", "7", T(2026, 1, 1, 0)),  # another experiment
]
EVENTS = [
    ("u1", "purchase", T(2026, 1, 10, 10, 30), 20.0, "p1", "s1"),  # in the window: converted, revenue 20
    ("u1", "product_view", T(2026, 1, 10, 11), 20.0, "p1", "s1"),  # click in the window
    ("u1", "product_view", T(2026, 1, 11, 10), 5.0, "p2", "s2"),  # exactly t0 + 24 h: outside (half-open)
    ("u1", "product_view", T(2026, 1, 5, 9), 5.0, "p2", "s0"),  # pre-period click
    ("u1", "purchase", T(2026, 1, 5, 9, 5), 7.5, "p2", "s0"),  # pre-period purchase
    ("u1", "product_view", T(2026, 1, 10, 9), 5.0, "p3", "s3"),  # after the start, before u1's exposure: neither
    ("u1", "product_view", T(2026, 1, 2, 9), 5.0, "p3", "s3"),  # before the 7-day pre-period
    ("u2", "purchase", T(2026, 1, 11, 13), 30.0, "p1", "s4"),  # 25 h after u2's first exposure: not attributed
    ("u2", "product_view", T(2026, 1, 10, 12, 1), 30.0, "p1", "s4"),
    ("u4", "purchase", T(2026, 1, 10, 9), None, "p1", "s5"),  # a purchase with no price: revenue 0
    ("u9", "purchase", T(2026, 1, 10, 9), 9.0, "p1", "s6"),  # never exposed
]


@pytest.fixture(scope="module")
def metrics(spark):
    exposures = spark.createDataFrame(EXPOSURES, EXPOSURE_SCHEMA)
    events = spark.createDataFrame(EVENTS, EVENT_SCHEMA)
    first = analyze.first_exposures(exposures, "exp")
    m = analyze.user_metrics(first, events, conversion_event="purchase", attribution_window_hours=24, pre_period_days=7)
    return m.cache()


def test_first_exposure_and_multi_variant(spark):
    first = {r.user_id: r for r in analyze.first_exposures(spark.createDataFrame(EXPOSURES, EXPOSURE_SCHEMA), "exp").collect()}
    assert set(first) == {"u1", "u2", "u3", "u4"}
    assert (first["u2"].variant, first["u2"].multi_variant, first["u2"].first_exposure) == ("treatment", True, T(2026, 1, 10, 12))
    assert (first["u4"].variant, first["u4"].multi_variant, first["u4"].model_version) == ("control", True, "1")
    assert not first["u1"].multi_variant and first["u3"].variant == "treatment"
    bounded = analyze.first_exposures(spark.createDataFrame(EXPOSURES, EXPOSURE_SCHEMA), "exp", start=dt.date(2026, 1, 11))
    assert {r.user_id: r.variant for r in bounded.collect()} == {"u2": "treatment", "u3": "treatment"}


def test_user_metrics_windows(metrics):
    rows = {r.user_id: r.asDict() for r in metrics.collect()}  # tiny test frame
    u1 = rows["u1"]
    assert (u1["converted"], u1["clicks"], u1["revenue"]) == (1, 1.0, 20.0)
    assert (u1["pre_converted"], u1["pre_clicks"], u1["pre_revenue"]) == (1, 1.0, 7.5)
    u2 = rows["u2"]
    assert (u2["converted"], u2["clicks"], u2["revenue"], u2["multi_variant"]) == (0, 1.0, 0.0, True)
    assert (rows["u3"]["converted"], rows["u3"]["clicks"], rows["u3"]["pre_clicks"]) == (0, 0.0, 0.0)
    assert (rows["u4"]["converted"], rows["u4"]["revenue"]) == (1, 0.0)
    assert "u9" not in rows


def test_user_metrics_configured_start_prunes_and_moves_the_pre_period(spark):
    exposures = spark.createDataFrame(EXPOSURES, EXPOSURE_SCHEMA)
    events = spark.createDataFrame(EVENTS, EVENT_SCHEMA)
    first = analyze.first_exposures(exposures, "exp", start=dt.date(2026, 1, 10))
    m = analyze.user_metrics(first, events, pre_period_days=1, start=dt.date(2026, 1, 10), end=dt.date(2026, 1, 11))
    u1 = {r.user_id: r for r in m.collect()}["u1"]
    assert (u1.pre_clicks, u1.pre_converted) == (0.0, 0)  # pre-period is now 2026-01-09 only
    assert (u1.clicks, u1.converted) == (1.0, 1)


def test_variant_and_daily_aggregates(metrics):
    agg = {r.variant: r.asDict() for r in analyze.variant_aggregates(metrics).collect()}  # experiments x variants rows
    c, t = agg["control"], agg["treatment"]
    assert (c["users"], c["multi_variant_users"], c["converted_sum"], c["revenue_sum"]) == (2, 1, 2.0, 20.0)
    assert (c["clicks_sum_x"], c["clicks_sum_xx"], c["clicks_sum_xy"]) == (1.0, 1.0, 1.0)
    assert (c["revenue_sum_sq"], c["revenue_sum_xy"]) == (400.0, 150.0)
    assert (t["users"], t["multi_variant_users"], t["converted_sum"], t["clicks_sum"]) == (2, 1, 0.0, 1.0)
    daily = {(r.variant, r.day): r for r in analyze.daily_aggregates(metrics).collect()}
    assert daily[("control", dt.date(2026, 1, 10))].users == 2
    assert daily[("treatment", dt.date(2026, 1, 10))].users == 1 and daily[("treatment", dt.date(2026, 1, 11))].users == 1


def _row(variant, users, conv, clicks=None, seed=0):
    clicks = users * 3.0 if clicks is None else clicks
    return {
        "experiment_id": "exp", "variant": variant, "users": users, "multi_variant_users": 0,
        "converted_sum": conv, "converted_sum_sq": conv, "converted_sum_x": conv * 0.5, "converted_sum_xx": conv * 0.5,
        "converted_sum_xy": conv * 0.3, "clicks_sum": clicks, "clicks_sum_sq": clicks * 5, "clicks_sum_x": clicks,
        "clicks_sum_xx": clicks * 5, "clicks_sum_xy": clicks * 4, "revenue_sum": conv * 40.0, "revenue_sum_sq": conv * 2000.0,
        "revenue_sum_x": conv * 20.0, "revenue_sum_xx": conv * 1000.0, "revenue_sum_xy": conv * 500.0,
    }


def _spec(kind="ab", weights=None):
    weights = weights or {"control": 0.5, "treatment": 0.5}
    return SimpleNamespace(
        control="control", kind=kind, variants=dict.fromkeys(weights), pre_period_days=7,
        bandit=SimpleNamespace(prior_alpha=1.0, prior_beta=1.0),
        decision=SimpleNamespace(alpha=0.05, min_prob_beat=0.95, max_expected_loss=0.001),
        traffic=lambda: weights,
    )


def test_summarize_matches_the_stats_and_decides():
    rows = [_row("control", 10_000, 1_000), _row("treatment", 10_050, 1_160)]
    daily = [{"experiment_id": "exp", "variant": r["variant"], "day": dt.date(2026, 1, d), "users": r["users"] // 2,
              "conversions": r["converted_sum"] // 2} for r in rows for d in (10, 11)]
    out = analyze.summarize("exp", _spec(), rows, daily)
    comp = out["comparisons"]["treatment"]
    pc, pt = Proportion("control", 10_000, 1_000), Proportion("treatment", 10_050, 1_160)
    assert comp["conversion"] == proportion_test(pc, pt).to_dict()
    bayes = beta_binomial(pc, pt)
    assert comp["bayes"]["prob_treatment_beats_control"] == pytest.approx(bayes.prob_treatment_beats_control)
    assert comp["decision"]["ship"] and not out["srm"]["mismatch"]
    assert out["variants"]["treatment"]["conversion_rate"] == pytest.approx(1_160 / 10_050)
    assert set(comp["cuped"]) == {"converted", "clicks", "revenue"}
    assert comp["sequential"]["days"] == ["2026-01-10", "2026-01-11"] and len(comp["sequential"]["p_values"]) == 2
    assert comp["sequential"]["p_values"][1] <= comp["sequential"]["p_values"][0]
    early = [{"experiment_id": "exp", "variant": v, "day": dt.date(2026, 1, 9), "users": 5, "conversions": 0}
             for v in ("control", "treatment")]  # a first day without any conversion is not a look
    assert analyze.summarize("exp", _spec(), rows, early + daily)["comparisons"]["treatment"]["sequential"]["days"][0] == "2026-01-10"


def test_summarize_srm_blocks_and_errors_are_reported():
    rows = [_row("control", 10_000, 1_000), _row("treatment", 11_000, 1_300)]
    out = analyze.summarize("exp", _spec(), rows)
    assert out["srm"]["mismatch"] and not out["comparisons"]["treatment"]["decision"]["ship"]
    assert out["comparisons"]["treatment"]["decision"]["blocked_by_srm"]
    zero = analyze.summarize("exp", _spec(), [_row("control", 100, 0, 0.0), _row("treatment", 100, 0, 0.0)])
    assert "no variance" in zero["comparisons"]["treatment"]["conversion"]["error"]
    assert analyze.summarize("exp", _spec("bandit"), rows)["srm"]["skipped"]
    assert "shadow" in analyze.summarize("exp", _spec("shadow", {"control": 1.0, "treatment": 0.0}), rows)["note"]
    with pytest.raises(ExperimentStatsError, match="control variant 'control'"):
        analyze.summarize("exp", _spec(), [_row("treatment", 10, 1)])
