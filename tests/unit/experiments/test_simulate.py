"""The proof by simulation (small, seeded): coverage, A/A error rate, peeking, CUPED, the bandit.

Sizes are chosen so the bands mean something: 1000-2000 experiments give a Monte Carlo standard
error of 0.5-0.7 points on a 95% coverage or a 5% rejection rate. benchmarks/experiment_stats.py runs
the larger version and prints the report."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.experiments import simulate
from pipelines.experiments.simulate import Population


def test_true_lifts_closed_form_matches_the_generator():
    pop = Population()
    rng = np.random.default_rng(0)
    b = rng.beta(pop.beta_a, pop.beta_b, 2_000_000)
    assert pop.conversion_rate(0.0) == pytest.approx(0.1)
    for lift in (0.1, 3.0):  # 3.0 caps some users at probability 1
        mc = np.minimum(b * (1 + lift), 1.0).mean()
        assert pop.conversion_rate(lift) == pytest.approx(mc, abs=4 * b.std() * (1 + lift) / np.sqrt(b.size))
    truth = simulate.true_lifts(pop, 0.1, 0.05)
    assert truth["conversion_abs"] == pytest.approx(0.01) and truth["clicks_abs"] == pytest.approx(0.5)


def test_intervals_cover_the_true_lift_and_cuped_narrows_them():
    r = simulate.fixed_horizon(n_experiments=1000, n_users=2000, conv_lift=0.10, click_lift=0.05, seed=11)
    for key in ("conv_abs_cover", "conv_rel_cover", "clicks_cover", "cuped_cover"):
        assert 0.93 <= r[key]["rate"] <= 0.97, (key, r[key])
    assert r["cuped_width_ratio"]["mean"] < 0.65  # pre-period clicks explain ~2/3 of the variance of clicks
    assert r["cuped_width_ratio_conversion"]["mean"] < 1.0
    assert r["cuped_reject"]["rate"] > r["clicks_reject"]["rate"] + 0.2  # narrower interval -> more power
    assert r["srm_flag"]["rate"] <= 0.01


def test_aa_experiment_rejects_at_the_nominal_rate():
    r = simulate.fixed_horizon(n_experiments=2000, n_users=1000, conv_lift=0.0, click_lift=0.0, seed=12)
    for key in ("conv_reject", "clicks_reject", "cuped_reject"):
        assert 0.04 <= r[key]["rate"] <= 0.06, (key, r[key])
    assert r["conv_reject"]["se"] == pytest.approx(np.sqrt(0.0435 * 0.9565 / 2000), rel=0.2)


def test_msprt_survives_daily_peeking_where_the_naive_z_test_does_not():
    r = simulate.sequential(n_experiments=500, n_users=2800, looks=14, conv_lift=0.0, tau2=1e-3, seed=13)
    assert r["msprt"]["rate"] < 0.05
    assert r["naive_peeking"]["rate"] > 0.12  # ~4x the nominal 5%
    assert 0.03 <= r["fixed_last_look"]["rate"] <= 0.08  # a single look is fine (500 runs: SE ~1 point)


def test_thompson_bandit_moves_traffic_and_beats_a_fixed_split():
    r = simulate.bandit(n_runs=10, periods=24, users_per_period=200, conv_lift=0.2, seed=14)
    share = r["better_arm_share_by_period"]
    assert share[0] == pytest.approx(0.5, abs=0.05)  # flat prior: an even split at first
    assert r["better_arm_share_last_quarter"] > r["better_arm_share_first_quarter"] > 0.55
    assert r["better_arm_share_last_quarter"] > 0.8
    assert r["regret_bandit"]["mean"] < 0.6 * r["regret_fixed_50_50"]["mean"]
    assert r["conversions_bandit"] > r["conversions_fixed_50_50"]
