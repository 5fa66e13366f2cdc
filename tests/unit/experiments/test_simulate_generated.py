"""The simulation on a population with known per-user responses (`GeneratedPopulation`): built from
hand-made truth rows, its true lift, and the statistics' properties on it."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from pipelines.experiments import simulate

T0 = dt.datetime(2024, 1, 8, 10)


def test_population_from_hand_made_truth_rows():
    rows = [
        {"user_id": "u1", "p_convert": {"control": 0.1, "treatment": 0.2}, "pre_product_views": 3, "first_exposure": T0},
        {"user_id": "u2", "p_convert": {"control": 0.3, "treatment": 0.3}, "pre_product_views": None,
         "first_exposure": T0 + dt.timedelta(days=2, hours=20)},
        {"user_id": "u3", "p_convert": {"control": 0.0, "treatment": 0.1}, "pre_product_views": 0,
         "first_exposure": T0 + dt.timedelta(days=1)},
        {"user_id": "u4", "p_convert": {"control": 0.2, "treatment": 0.4}, "pre_product_views": 7,
         "first_exposure": T0 + dt.timedelta(hours=15)},  # the next day (UTC)
    ]
    pop = simulate.GeneratedPopulation.from_truth(rows)
    assert pop.n == 4
    np.testing.assert_array_equal(pop.p_control, [0.1, 0.3, 0.0, 0.2])
    np.testing.assert_array_equal(pop.covariate, [3.0, 0.0, 0.0, 7.0])
    np.testing.assert_array_equal(pop.day, [0, 3, 1, 1])
    truth = pop.truth()
    assert truth["conversion_abs"] == pytest.approx(0.1) and truth["conversion_rel"] == pytest.approx(0.25 / 0.15 - 1)
    with pytest.raises(ValueError, match="no exposed users"):
        simulate.GeneratedPopulation.from_truth([])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        simulate.GeneratedPopulation(np.array([0.1, 1.2, 0.1, 0.1]), np.full(4, 0.1), np.zeros(4), np.zeros(4, dtype=int))


def _population(n=4000, seed=3):
    """Heterogeneous users like the generator's: a latent z drives the rate and the covariate."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal(n)
    logit = -2.5 + z
    p_c, p_t = 1 / (1 + np.exp(-logit)), 1 / (1 + np.exp(-(logit + 0.3)))
    views = rng.poisson(3 * np.exp(0.8 * z)).astype(float)
    return simulate.GeneratedPopulation(p_c, p_t, views, rng.integers(0, 7, n))


def test_fixed_horizon_on_known_responses():
    pop = _population()
    ab = simulate.generated_fixed_horizon(pop, n_experiments=400, seed=1)
    aa = simulate.generated_fixed_horizon(pop, n_experiments=1000, aa=True, seed=2)
    assert ab["truth"]["conversion_abs"] == pytest.approx(float(np.mean(pop.p_treatment - pop.p_control)))
    # coverage and A/A rejection within ~3 Monte Carlo SE of 95% / 5%
    assert 0.95 - 3 * 0.011 <= ab["conv_abs_cover"]["rate"] <= 0.95 + 3 * 0.011
    assert 0.95 - 3 * 0.011 <= ab["cuped_cover"]["rate"] <= 0.95 + 3 * 0.011
    assert 0.05 - 3 * 0.007 <= aa["conv_reject"]["rate"] <= 0.05 + 3 * 0.007
    assert ab["conv_reject"]["rate"] > aa["conv_reject"]["rate"]
    assert ab["cuped_width_ratio"]["mean"] < 1.0  # a covariate tied to the propensity narrows the interval
    assert ab["srm_flag"]["rate"] < 0.01


def test_sequential_on_known_responses():
    pop = _population(n=3000)
    aa = simulate.generated_sequential(pop, n_experiments=300, aa=True, tau2=1e-3, seed=4)
    ab = simulate.generated_sequential(pop, n_experiments=100, aa=False, tau2=1e-3, seed=5)
    assert aa["looks"] == 7
    assert aa["msprt"]["rate"] < 0.05 and aa["naive_peeking"]["rate"] > aa["fixed_last_look"]["rate"]
    assert ab["msprt"]["rate"] > aa["msprt"]["rate"]


def test_report_is_seeded():
    pop = _population(n=500)
    one = simulate.generated_report(pop, n_experiments=20, seed=9)
    assert one == simulate.generated_report(pop, n_experiments=20, seed=9)
    assert set(one) == {"truth", "n_users", "ab", "aa", "peek_aa", "peek_ab"}
