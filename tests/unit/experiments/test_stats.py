"""pipelines.experiments.stats against scipy / statsmodels on the same counts."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import integrate, stats
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest

from pipelines.experiments.stats import (
    ExperimentStatsError,
    Moments,
    Proportion,
    beta_binomial,
    cuped_test,
    expected_loss,
    msprt,
    msprt_path,
    prob_beta_greater,
    proportion_test,
    sample_ratio_mismatch,
    thompson_weights,
    welch_test,
)

TOL = 1e-9
COUNTS = [(10_000, 1_000, 10_000, 1_100), (523, 17, 611, 31), (50, 1, 80, 9), (200_000, 9_871, 199_500, 10_012)]


@pytest.mark.parametrize("nc, sc, nt, st", COUNTS)
def test_proportion_test_matches_statsmodels(nc, sc, nt, st):
    r = proportion_test(Proportion("control", nc, sc), Proportion("treatment", nt, st), alpha=0.05)
    z, p = proportions_ztest([st, sc], [nt, nc])
    assert r.z == pytest.approx(z, abs=TOL) and r.p_value == pytest.approx(p, abs=TOL)
    lo, hi = confint_proportions_2indep(st, nt, sc, nc, method="wald", compare="diff", alpha=0.05)
    assert r.abs_ci == pytest.approx((lo, hi), abs=TOL)
    lo, hi = confint_proportions_2indep(st, nt, sc, nc, method="log", compare="ratio", alpha=0.05)
    assert r.rel_ci == pytest.approx((lo - 1, hi - 1), abs=TOL)
    assert r.abs_lift == pytest.approx(st / nt - sc / nc, abs=TOL)
    assert r.significant == (p < 0.05)


def test_proportion_test_alpha_and_to_dict_is_json():
    r90 = proportion_test(Proportion("c", 1000, 100), Proportion("t", 1000, 120), alpha=0.10)
    r95 = proportion_test(Proportion("c", 1000, 100), Proportion("t", 1000, 120), alpha=0.05)
    assert r90.abs_ci[1] - r90.abs_ci[0] < r95.abs_ci[1] - r95.abs_ci[0]
    json.dumps(r95.to_dict())


def test_proportion_zero_conversions():
    r = proportion_test(Proportion("control", 500, 0), Proportion("treatment", 500, 7))
    assert r.rate_control == 0 and r.p_value < 0.05
    assert math.isnan(r.rel_lift) and math.isnan(r.rel_ci[0])
    assert r.to_dict()["rel_ci"] == [None, None]  # NaN -> null for JSON
    with pytest.raises(ExperimentStatsError, match="'control' and 'treatment'.*no variance"):
        proportion_test(Proportion("control", 500, 0), Proportion("treatment", 500, 0))


def test_empty_or_invalid_variant_is_named():
    with pytest.raises(ExperimentStatsError, match="variant 'treatment' has 0 users"):
        proportion_test(Proportion("control", 10, 1), Proportion("treatment", 0, 0))
    with pytest.raises(ValueError, match="variant 'b'"):
        Proportion("b", 10, 11)
    with pytest.raises(ExperimentStatsError, match="variant 'control' has 1 users; at least 2"):
        welch_test(Moments("control", 1, 3.0, 9.0), Moments("treatment", 5, 10.0, 30.0))
    with pytest.raises(ExperimentStatsError, match="variant 'treatment' has 0 users"):
        beta_binomial(Proportion("control", 10, 1), Proportion("treatment", 0, 0))


def _sample(seed, n, mean, sd):
    return np.random.default_rng(seed).normal(mean, sd, n)


@pytest.mark.parametrize("n_c, n_t, sd_c, sd_t", [(200, 250, 1.0, 3.0), (40, 9, 5.0, 0.5), (5000, 5100, 20.0, 21.0)])
def test_welch_matches_scipy(n_c, n_t, sd_c, sd_t):
    yc, yt = _sample(1, n_c, 10.0, sd_c), _sample(2, n_t, 10.4, sd_t)
    r = welch_test(Moments.from_values("control", yc), Moments.from_values("treatment", yt))
    ref = stats.ttest_ind_from_stats(yt.mean(), yt.std(ddof=1), n_t, yc.mean(), yc.std(ddof=1), n_c, equal_var=False)
    assert r.t == pytest.approx(ref.statistic, abs=TOL) and r.p_value == pytest.approx(ref.pvalue, abs=TOL)
    raw = stats.ttest_ind(yt, yc, equal_var=False)
    assert r.p_value == pytest.approx(raw.pvalue, abs=TOL)
    lo, hi = raw.confidence_interval(0.95)
    assert r.abs_ci == pytest.approx((lo, hi), abs=TOL)
    assert r.df == pytest.approx(raw.df, rel=TOL)
    # relative lift: delta method on log(mean_t / mean_c)
    se = math.sqrt(yc.var(ddof=1) / n_c / yc.mean() ** 2 + yt.var(ddof=1) / n_t / yt.mean() ** 2)
    z = stats.norm.ppf(0.975)
    expected = (math.exp(math.log(yt.mean() / yc.mean()) - z * se) - 1, math.exp(math.log(yt.mean() / yc.mean()) + z * se) - 1)
    assert r.rel_ci == pytest.approx(expected, abs=TOL)


def test_welch_zero_variance():
    one = Moments.from_values("treatment", [2.0] * 30)
    r = welch_test(Moments.from_values("control", _sample(3, 30, 1.0, 1.0)), one)
    assert r.var_treatment == 0 and r.df == pytest.approx(29)
    with pytest.raises(ExperimentStatsError, match="'control' and 'treatment': zero variance"):
        welch_test(Moments.from_values("control", [1.0] * 30), one)


def test_srm_matches_scipy_chisquare():
    r = sample_ratio_mismatch({"control": 5_000, "treatment": 5_210}, {"control": 0.5, "treatment": 0.5})
    ref = stats.chisquare([5_000, 5_210], [5_105, 5_105])
    assert r.chi2 == pytest.approx(ref.statistic, abs=TOL) and r.p_value == pytest.approx(ref.pvalue, abs=TOL)
    assert not r.mismatch
    r = sample_ratio_mismatch({"a": 1_000, "b": 2_150, "c": 950}, {"a": 1, "b": 2, "c": 1})  # weights normalised
    ref = stats.chisquare([1_000, 2_150, 950], np.array([1, 2, 1]) / 4 * 4_100)
    assert r.p_value == pytest.approx(ref.pvalue, abs=TOL)
    broken = sample_ratio_mismatch({"control": 5_000, "treatment": 5_400}, {"control": 0.5, "treatment": 0.5})
    assert broken.mismatch and broken.p_value < 0.001
    assert sample_ratio_mismatch({"c": 5_000, "t": 5_400}, {"c": 0.5, "t": 0.5}, threshold=1e-5).mismatch is False
    assert sample_ratio_mismatch({"c": 10, "t": 1}, {"c": 1.0, "t": 0.0}).mismatch  # a weight-0 arm got users
    with pytest.raises(ExperimentStatsError, match=r"\['x'\]"):
        sample_ratio_mismatch({"c": 1, "x": 2}, {"c": 1.0})


@pytest.mark.parametrize("ax, bx, ay, by", [
    (11, 91, 8, 95), (1, 1, 1, 1), (101, 9901, 90, 9912),  # integer: the finite sum
    (2.5, 7.5, 3.5, 6.0),  # no integer alpha: quadrature
    (3, 5.5, 2.2, 4.0), (2.5, 7.5, 4, 6.0),  # one integer alpha: the sum over it (or its complement)
    (50_001, 950_001, 49_201, 950_801),  # a million users per variant
])
def test_prob_beta_greater_matches_integration(ax, bx, ay, by):
    def integrand(y):
        return stats.beta.pdf(y, ay, by) * stats.beta.sf(y, ax, bx)

    sd = stats.beta.std(ay, by)
    lo, hi = max(ay / (ay + by) - 40 * sd, 0.0), min(ay / (ay + by) + 40 * sd, 1.0)
    ref, _ = integrate.quad(integrand, lo, hi, epsabs=1e-13, epsrel=1e-12, limit=500, points=[ay / (ay + by)])
    assert prob_beta_greater(ax, bx, ay, by) == pytest.approx(ref, abs=1e-9)
    assert prob_beta_greater(ax, bx, ay, by) + prob_beta_greater(ay, by, ax, bx) == pytest.approx(1, abs=1e-9)


def test_expected_loss_matches_integration():
    ax, bx, ay, by = 30, 270, 36, 264

    # E[(Y - X)+] = integral f_X(x) E[(Y - x)+] dx with the partial moment E[(Y - x)+] = E[Y] S_{Beta(ay+1, by)}(x) - x S_Y(x)
    def integrand(x):
        partial = ay / (ay + by) * stats.beta.sf(x, ay + 1, by) - x * stats.beta.sf(x, ay, by)
        return stats.beta.pdf(x, ax, bx) * partial

    ref, _ = integrate.quad(integrand, 0, 1, epsabs=1e-13, epsrel=1e-12, points=[0.1], limit=200)
    assert expected_loss(ax, bx, ay, by) == pytest.approx(ref, abs=1e-8)


def test_beta_binomial_posteriors_and_intervals():
    c, t = Proportion("control", 2_000, 200), Proportion("treatment", 2_000, 240)
    r = beta_binomial(c, t, prior_alpha=1, prior_beta=1)
    assert r.posterior_control == (201, 1_801) and r.posterior_treatment == (241, 1_761)
    assert r.ci_control == pytest.approx(tuple(stats.beta.ppf([0.025, 0.975], 201, 1_801)), abs=TOL)
    assert r.prob_treatment_beats_control == pytest.approx(prob_beta_greater(241, 1_761, 201, 1_801), abs=TOL)
    assert 0.97 < r.prob_treatment_beats_control < 1
    assert r.loss_choose_treatment < r.loss_choose_control
    # E[max(pt-pc,0)] - E[max(pc-pt,0)] = E[pt - pc]
    assert r.loss_choose_control - r.loss_choose_treatment == pytest.approx(r.mean_treatment - r.mean_control, abs=1e-9)
    # lift intervals: the quantiles of p_t - p_c and p_t / p_c - 1 under the posteriors (Monte Carlo check)
    rng = np.random.default_rng(0)
    pc, pt = rng.beta(201, 1_801, 1_000_000), rng.beta(241, 1_761, 1_000_000)
    assert r.abs_lift_ci == pytest.approx(tuple(np.quantile(pt - pc, [0.025, 0.975])), abs=3e-4)
    assert r.rel_lift_ci == pytest.approx(tuple(np.quantile(pt / pc - 1, [0.025, 0.975])), abs=5e-3)
    assert r.abs_lift_ci[0] < r.mean_treatment - r.mean_control < r.abs_lift_ci[1]
    json.dumps(r.to_dict())


def test_beta_binomial_zero_conversions():
    r = beta_binomial(Proportion("control", 100, 0), Proportion("treatment", 100, 0))
    assert r.prob_treatment_beats_control == pytest.approx(0.5, abs=TOL)
    assert r.abs_lift_ci[0] == pytest.approx(-r.abs_lift_ci[1], abs=1e-9)


def test_thompson_weights_seeded_and_sensible():
    post = {"a": (11, 91), "b": (31, 71)}
    w = thompson_weights(post, seed=7)
    assert w == thompson_weights(post, seed=7)
    assert sum(w.values()) == pytest.approx(1) and w["b"] > 0.99
    assert w["b"] == pytest.approx(prob_beta_greater(31, 71, 11, 91), abs=0.01)
    floored = thompson_weights(post, seed=7, floor=0.05)
    assert floored["a"] >= 0.05 and sum(floored.values()) == pytest.approx(1)
    even = thompson_weights({"a": (5, 5), "b": (5, 5), "c": (5, 5)}, draws=60_000, seed=1)
    assert all(abs(v - 1 / 3) < 0.01 for v in even.values())
    with pytest.raises(ExperimentStatsError, match="arm 'x'"):
        thompson_weights({"x": (0, 1)})


def test_cuped_matches_explicit_adjustment():
    rng = np.random.default_rng(4)
    xc, xt = rng.poisson(5, 3_000).astype(float), rng.poisson(5, 3_200).astype(float)
    yc = 0.8 * xc + rng.normal(0, 1.5, xc.size)
    yt = 0.8 * xt + 0.2 + rng.normal(0, 1.5, xt.size)
    r = cuped_test(Moments.from_values("control", yc, xc), Moments.from_values("treatment", yt, xt))
    # theta from the pooled within-variant covariance
    cov = ((xc - xc.mean()) @ (yc - yc.mean()) + (xt - xt.mean()) @ (yt - yt.mean()))
    var = ((xc - xc.mean()) ** 2).sum() + ((xt - xt.mean()) ** 2).sum()
    assert r.theta == pytest.approx(cov / var, rel=TOL)
    mx = np.concatenate([xc, xt]).mean()
    ac, at = yc - r.theta * (xc - mx), yt - r.theta * (xt - mx)
    ref = stats.ttest_ind(at, ac, equal_var=False)
    assert r.adjusted.p_value == pytest.approx(ref.pvalue, abs=TOL)
    assert r.adjusted.abs_ci == pytest.approx(tuple(ref.confidence_interval(0.95)), abs=TOL)
    assert r.adjusted.abs_lift == pytest.approx(at.mean() - ac.mean(), abs=TOL)
    assert r.width_ratio < 0.7 and r.variance_reduction > 0.5  # corr(x, y)^2 ~ 0.59
    assert r.unadjusted == welch_test(Moments.from_values("control", yc), Moments.from_values("treatment", yt))
    with pytest.raises(ExperimentStatsError, match="variant 'control': CUPED needs"):
        cuped_test(Moments.from_values("control", yc), Moments.from_values("treatment", yt, xt))


def test_msprt_formula_and_monotone_p_value():
    c, t = Proportion("control", 4_000, 400), Proportion("treatment", 4_000, 470)
    look = msprt(c, t, tau2=1e-4)
    v = 0.1 * 0.9 / 4_000 + 0.1175 * 0.8825 / 4_000
    d = 0.0175
    lam = math.sqrt(v / (v + 1e-4)) * math.exp(1e-4 * d * d / (2 * v * (v + 1e-4)))
    assert look.variance == pytest.approx(v, rel=TOL) and look.likelihood_ratio == pytest.approx(lam, rel=TOL)
    assert look.p_value == pytest.approx(min(1.0, 1 / lam), rel=TOL)
    assert look.ci[0] < d < look.ci[1]
    # cumulative looks where the evidence comes and goes: the always-valid p-value never increases
    counts = [(1_000, 100, 1_000, 130), (2_000, 200, 2_000, 215), (3_000, 300, 3_000, 330), (4_000, 400, 4_000, 470)]
    path = msprt_path([(Proportion("c", a, b), Proportion("t", e, f)) for a, b, e, f in counts], tau2=1e-4)
    ps = [lk.p_value for lk in path.looks]
    assert all(b <= a for a, b in zip(ps, ps[1:])) and ps[1] == ps[0] < 1
    assert path.p_value == ps[-1] and path.rejected == (min(ps) <= 0.05)
    assert msprt(Proportion("c", 100, 10), Proportion("t", 100, 10), tau2=1e-3).p_value == 1.0
    with pytest.raises(ExperimentStatsError, match="tau2"):
        msprt(c, t, tau2=0)
