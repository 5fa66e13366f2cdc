"""Experiment statistics on per-variant sufficient statistics (pure numpy / scipy).

Spark reduces an experiment to a few numbers per variant (users, conversions, the sum and sum of
squares of a per-user metric, and for CUPED the pre-period covariate sums); everything here works
on those, so the driver only ever holds a bounded aggregate.

Frequentist: `proportion_test` (two-proportion z-test, pooled variance for the p-value as
statsmodels' `proportions_ztest`; unpooled Wald interval for the absolute lift; delta method on the
log ratio for the relative lift, as statsmodels' `confint_proportions_2indep(compare="ratio",
method="log")`), `welch_test` (Welch's t-test and intervals), `sample_ratio_mismatch` (chi-square
against the configured weights), `cuped_test` (CUPED-adjusted Welch test), `msprt` / `msprt_path`
(mixture SPRT, always-valid p-values). Bayesian: `beta_binomial` (Beta posteriors, exact
P(treatment beats control), expected losses, credible intervals) and `thompson_weights`.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, field
from typing import Iterable, Mapping

import numpy as np
from scipy import integrate, optimize, special, stats

__all__ = [
    "BetaBinomialResult",
    "CupedResult",
    "ExperimentStatsError",
    "Moments",
    "Proportion",
    "ProportionTestResult",
    "SequentialLook",
    "SequentialPath",
    "SrmResult",
    "WelchResult",
    "beta_binomial",
    "beta_credible_interval",
    "cuped_test",
    "expected_loss",
    "msprt",
    "msprt_path",
    "prob_beta_greater",
    "proportion_test",
    "sample_ratio_mismatch",
    "thompson_weights",
    "welch_test",
]


class ExperimentStatsError(ValueError):
    """A statistic cannot be computed from these aggregates (the message names the variant)."""


def _clean(value):
    """JSON-friendly: NaN/inf -> None, numpy scalars -> Python, tuples -> lists."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


class _Result:
    def to_dict(self) -> dict:
        return _clean(asdict(self))


# --------------------------------------------------------------------------- sufficient statistics


@dataclass(frozen=True)
class Proportion:
    """A variant's users and converted users."""

    name: str
    n: int
    successes: int

    def __post_init__(self):
        if self.n < 0 or self.successes < 0 or self.successes > self.n:
            raise ExperimentStatsError(f"variant {self.name!r}: need 0 <= successes ({self.successes}) <= n ({self.n})")

    @property
    def rate(self) -> float:
        _require_users(self.name, self.n, 1)
        return self.successes / self.n

    def moments(self) -> "Moments":
        """The same data as a 0/1 metric (sum = sum of squares = successes)."""
        return Moments(self.name, self.n, float(self.successes), float(self.successes))


@dataclass(frozen=True)
class Moments:
    """A variant's per-user metric y as sums; optionally a pre-period covariate x for CUPED."""

    name: str
    n: int
    sum: float
    sum_sq: float
    sum_x: float | None = None
    sum_xx: float | None = None
    sum_xy: float | None = None

    @classmethod
    def from_values(cls, name: str, y, x=None) -> "Moments":
        y = np.asarray(y, dtype=float)
        if x is None:
            return cls(name, int(y.size), float(y.sum()), float(y @ y))
        x = np.asarray(x, dtype=float)
        return cls(name, int(y.size), float(y.sum()), float(y @ y), float(x.sum()), float(x @ x), float(x @ y))

    @property
    def mean(self) -> float:
        _require_users(self.name, self.n, 1)
        return self.sum / self.n

    @property
    def var(self) -> float:
        """Sample variance (ddof=1), clipped at 0 against rounding."""
        _require_users(self.name, self.n, 2)
        return max((self.sum_sq - self.sum * self.sum / self.n) / (self.n - 1), 0.0)

    def _covariate(self) -> tuple[float, float, float]:
        if self.sum_x is None or self.sum_xx is None or self.sum_xy is None:
            raise ExperimentStatsError(f"variant {self.name!r}: CUPED needs sum_x, sum_xx and sum_xy")
        return self.sum_x, self.sum_xx, self.sum_xy


def _require_users(name: str, n: int, minimum: int) -> None:
    if n < minimum:
        raise ExperimentStatsError(f"variant {name!r} has {n} users; at least {minimum} needed")


# scipy.special directly (the functions scipy.stats' norm / t / chi2 call): the simulation calls these
# tens of thousands of times and the distribution objects' argument checks cost more than the maths.
def _norm_sf(x: float) -> float:
    return float(special.ndtr(-x))


def _t_sf(x: float, df: float) -> float:
    return float(special.stdtr(df, -x))


@functools.lru_cache(maxsize=64)
def _z(alpha: float) -> float:
    """The two-sided normal critical value z_{1 - alpha/2}."""
    if not 0 < alpha < 1:
        raise ExperimentStatsError(f"alpha must be in (0, 1), got {alpha}")
    return float(special.ndtri(1 - alpha / 2))


# --------------------------------------------------------------------------- two proportions


@dataclass(frozen=True)
class ProportionTestResult(_Result):
    control: str
    treatment: str
    n_control: int
    n_treatment: int
    rate_control: float
    rate_treatment: float
    abs_lift: float
    abs_ci: tuple[float, float]
    rel_lift: float  # rate_treatment / rate_control - 1 (NaN when the control has no conversion)
    rel_ci: tuple[float, float]
    z: float
    p_value: float
    alpha: float
    significant: bool


def proportion_test(control: Proportion, treatment: Proportion, alpha: float = 0.05) -> ProportionTestResult:
    """Two-sided two-proportion z-test (pooled variance, as `proportions_ztest`), the unpooled Wald
    interval for p_t - p_c, and the interval for p_t / p_c - 1 from the delta method on log(p_t / p_c):
    var(log ratio) ~ (1 - p_t) / (n_t p_t) + (1 - p_c) / (n_c p_c); undefined (NaN) with zero
    conversions in either variant."""
    z_crit = _z(alpha)
    pc, pt = control.rate, treatment.rate
    nc, nt = control.n, treatment.n
    pooled = (control.successes + treatment.successes) / (nc + nt)
    se_pooled = math.sqrt(pooled * (1 - pooled) * (1 / nc + 1 / nt))
    if se_pooled == 0:
        raise ExperimentStatsError(
            f"variants {control.name!r} and {treatment.name!r}: no variance "
            f"(both have a rate of {pooled:g}); the z-test is undefined"
        )
    diff = pt - pc
    z = diff / se_pooled
    p_value = 2 * _norm_sf(abs(z))
    se_wald = math.sqrt(pc * (1 - pc) / nc + pt * (1 - pt) / nt)
    abs_ci = (diff - z_crit * se_wald, diff + z_crit * se_wald)
    if control.successes > 0 and treatment.successes > 0:
        log_ratio = math.log(pt / pc)
        se_log = math.sqrt((1 - pt) / (nt * pt) + (1 - pc) / (nc * pc))
        rel = pt / pc - 1
        rel_ci = (math.exp(log_ratio - z_crit * se_log) - 1, math.exp(log_ratio + z_crit * se_log) - 1)
    else:
        rel = pt / pc - 1 if pc > 0 else math.nan
        rel_ci = (math.nan, math.nan)
    return ProportionTestResult(
        control.name, treatment.name, nc, nt, pc, pt, diff, abs_ci, rel, rel_ci, z, p_value, alpha, p_value < alpha
    )


# --------------------------------------------------------------------------- Welch


@dataclass(frozen=True)
class WelchResult(_Result):
    control: str
    treatment: str
    n_control: int
    n_treatment: int
    mean_control: float
    mean_treatment: float
    var_control: float
    var_treatment: float
    abs_lift: float
    abs_ci: tuple[float, float]
    rel_lift: float  # mean_treatment / mean_control - 1
    rel_ci: tuple[float, float]
    t: float
    df: float
    p_value: float
    alpha: float
    significant: bool


def _welch(names, nc, nt, mc, mt, vc, vt, alpha) -> WelchResult:
    _z(alpha)
    a, b = vc / nc, vt / nt
    if a + b == 0:
        raise ExperimentStatsError(f"variants {names[0]!r} and {names[1]!r}: zero variance in both; Welch's t is undefined")
    se = math.sqrt(a + b)
    df = (a + b) ** 2 / (a * a / (nc - 1) + b * b / (nt - 1))
    diff = mt - mc
    t = diff / se
    p_value = 2 * _t_sf(abs(t), df)
    t_crit = float(special.stdtrit(df, 1 - alpha / 2))
    abs_ci = (diff - t_crit * se, diff + t_crit * se)
    if mc > 0 and mt > 0:
        z_crit = _z(alpha)
        se_log = math.sqrt(a / (mc * mc) + b / (mt * mt))
        rel_ci = (math.exp(math.log(mt / mc) - z_crit * se_log) - 1, math.exp(math.log(mt / mc) + z_crit * se_log) - 1)
    else:
        rel_ci = (math.nan, math.nan)
    rel = mt / mc - 1 if mc != 0 else math.nan
    return WelchResult(names[0], names[1], nc, nt, mc, mt, vc, vt, diff, abs_ci, rel, rel_ci, t, df, p_value, alpha, p_value < alpha)


def welch_test(control: Moments, treatment: Moments, alpha: float = 0.05) -> WelchResult:
    """Welch's unequal-variance t-test of mean_t - mean_c (as scipy `ttest_ind_from_stats(equal_var=False)`),
    the t interval for the difference with Welch-Satterthwaite df, and the interval for
    mean_t / mean_c - 1 from the delta method on the log ratio (normal quantile; needs positive means)."""
    return _welch(
        (control.name, treatment.name), control.n, treatment.n, control.mean, treatment.mean, control.var, treatment.var, alpha
    )


# --------------------------------------------------------------------------- CUPED


@dataclass(frozen=True)
class CupedResult(_Result):
    theta: float
    variance_reduction: float  # 1 - pooled adjusted variance / pooled raw variance
    adjusted: WelchResult
    unadjusted: WelchResult

    @property
    def width_ratio(self) -> float:
        """Adjusted / unadjusted width of the absolute-lift interval."""
        return (self.adjusted.abs_ci[1] - self.adjusted.abs_ci[0]) / (self.unadjusted.abs_ci[1] - self.unadjusted.abs_ci[0])


def cuped_test(control: Moments, treatment: Moments, alpha: float = 0.05) -> CupedResult:
    """CUPED: y_adj = y - theta (x - mean_x), theta = pooled within-variant cov(x, y) / var(x).

    From the sums: adjusted mean_v = mean_y_v - theta (mean_x_v - mean_x_all) and adjusted
    var_v = var_y_v - 2 theta cov_v(x, y) + theta^2 var_v(x); then Welch's test on those. The
    pre-period x is independent of the assignment, so the adjusted difference stays unbiased."""
    moments = []
    for v in (control, treatment):
        sx, sxx, sxy = v._covariate()
        _require_users(v.name, v.n, 2)
        mx, my = sx / v.n, v.mean
        moments.append(
            (v.n, my, mx, sxx - sx * mx, sxy - sx * my, v.sum_sq - v.sum * my)  # n, means, co-moments (not divided)
        )
    nc, nt = control.n, treatment.n
    cxx = moments[0][3] + moments[1][3]
    cxy = moments[0][4] + moments[1][4]
    if cxx <= 0:
        raise ExperimentStatsError(
            f"variants {control.name!r} and {treatment.name!r}: the pre-period covariate has no variance; CUPED is undefined"
        )
    theta = cxy / cxx
    mx_all = (moments[0][2] * nc + moments[1][2] * nt) / (nc + nt)
    adj_means, adj_vars = [], []
    for n, my, mx, mxx, mxy, myy in moments:
        adj_means.append(my - theta * (mx - mx_all))
        adj_vars.append(max((myy - 2 * theta * mxy + theta * theta * mxx) / (n - 1), 0.0))
    unadjusted = welch_test(control, treatment, alpha)
    adjusted = _welch((control.name, treatment.name), nc, nt, adj_means[0], adj_means[1], adj_vars[0], adj_vars[1], alpha)
    raw_pooled = moments[0][5] + moments[1][5]
    adj_pooled = adj_vars[0] * (nc - 1) + adj_vars[1] * (nt - 1)
    reduction = 1 - adj_pooled / raw_pooled if raw_pooled > 0 else math.nan
    return CupedResult(theta, reduction, adjusted, unadjusted)


# --------------------------------------------------------------------------- sample ratio mismatch


@dataclass(frozen=True)
class SrmResult(_Result):
    observed: dict
    expected: dict
    chi2: float
    p_value: float
    threshold: float
    mismatch: bool


def sample_ratio_mismatch(counts: Mapping[str, int], weights: Mapping[str, float], threshold: float = 0.001) -> SrmResult:
    """Pearson chi-square of the users per variant against the configured weights (normalised to 1);
    `mismatch` when p < threshold. A variant with weight 0 that got users is a mismatch outright."""
    missing = sorted(set(counts) ^ set(weights))
    if missing:
        raise ExperimentStatsError(f"variants {missing} are in only one of counts / weights")
    if len(counts) < 2:
        raise ExperimentStatsError("the sample-ratio check needs at least two variants")
    names = list(weights)
    w = np.array([float(weights[k]) for k in names])
    if (w < 0).any() or w.sum() <= 0:
        raise ExperimentStatsError(f"weights must be >= 0 with a positive sum, got {dict(weights)}")
    obs = np.array([int(counts[k]) for k in names], dtype=float)
    if (obs < 0).any():
        raise ExperimentStatsError(f"negative user count in {dict(counts)}")
    total = obs.sum()
    if total == 0:
        raise ExperimentStatsError("the sample-ratio check needs users; every variant has 0")
    exp = w / w.sum() * total
    zero = exp == 0
    if (obs[zero] > 0).any():
        chi2, p_value = math.inf, 0.0
    else:
        chi2 = float((((obs - exp) ** 2)[~zero] / exp[~zero]).sum())
        p_value = float(special.chdtrc(int((~zero).sum()) - 1, chi2))
    return SrmResult(
        {k: int(c) for k, c in zip(names, obs)}, {k: float(e) for k, e in zip(names, exp)}, chi2, p_value, threshold, p_value < threshold
    )


# --------------------------------------------------------------------------- Beta-Binomial


def prob_beta_greater(a_x: float, b_x: float, a_y: float, b_y: float) -> float:
    """P(X > Y) for independent X ~ Beta(a_x, b_x), Y ~ Beta(a_y, b_y), deterministically.

    Integer a_x (or a_y, by symmetry; the smaller is used): the exact finite sum (Miller 2015)
    P(X > Y) = sum_{i=0}^{a_x-1} B(a_y + i, b_x + b_y) / ((b_x + i) B(1 + i, b_x) B(a_y, b_y)),
    summed in log space. Otherwise adaptive quadrature of f_Y(y) (1 - F_X(y)) over Y's support."""
    for v in (a_x, b_x, a_y, b_y):
        if not v > 0:
            raise ExperimentStatsError(f"Beta parameters must be > 0, got {(a_x, b_x, a_y, b_y)}")
    limit = 5_000_000  # terms of the finite sum (one vectorised pass; beyond that, quadrature)
    x_ok = float(a_x).is_integer() and a_x <= limit
    y_ok = float(a_y).is_integer() and a_y <= limit
    if x_ok and (not y_ok or a_x <= a_y):
        return _miller(int(a_x), b_x, a_y, b_y)
    if y_ok:
        return 1.0 - _miller(int(a_y), b_y, a_x, b_x)
    lo, hi = stats.beta.ppf([1e-14, 1 - 1e-14], a_y, b_y)
    value, _ = integrate.quad(
        lambda y: stats.beta.pdf(y, a_y, b_y) * stats.beta.sf(y, a_x, b_x), lo, hi, epsabs=1e-13, epsrel=1e-11, limit=200
    )
    return float(min(max(value, 0.0), 1.0))


def _miller(a_x: int, b_x: float, a_y: float, b_y: float) -> float:
    i = np.arange(a_x, dtype=float)
    log_terms = special.betaln(a_y + i, b_x + b_y) - np.log(b_x + i) - special.betaln(1 + i, b_x) - special.betaln(a_y, b_y)
    return float(min(max(np.exp(special.logsumexp(log_terms)), 0.0), 1.0))


def expected_loss(a_x: float, b_x: float, a_y: float, b_y: float) -> float:
    """E[max(Y - X, 0)]: the expected loss in rate of choosing X when Y might be better. Exact via
    E[Y 1{Y > X}] = E[Y] P(Y' > X) with Y' ~ Beta(a_y + 1, b_y) (and the same for X)."""
    mean_y, mean_x = a_y / (a_y + b_y), a_x / (a_x + b_x)
    loss = mean_y * prob_beta_greater(a_y + 1, b_y, a_x, b_x) - mean_x * prob_beta_greater(a_y, b_y, a_x + 1, b_x)
    return max(loss, 0.0)


def beta_credible_interval(a: float, b: float, level: float = 0.95) -> tuple[float, float]:
    """Equal-tailed credible interval of Beta(a, b)."""
    tail = (1 - level) / 2
    lo, hi = stats.beta.ppf([tail, 1 - tail], a, b)
    return float(lo), float(hi)


_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(800)


def _posterior_nodes(a: float, b: float) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes over Beta(a, b)'s central 1 - 2e-12 mass, weights times the density."""
    lo, hi = stats.beta.ppf([1e-12, 1 - 1e-12], a, b)
    x = lo + (hi - lo) * (_GL_NODES + 1) / 2
    w = _GL_WEIGHTS * (hi - lo) / 2 * stats.beta.pdf(x, a, b)
    return x, w / w.sum()


def _lift_interval(ac, bc, at, bt, level: float, relative: bool) -> tuple[float, float]:
    """Equal-tailed interval of p_t - p_c (or p_t / p_c - 1), deterministically: its CDF by 800-point
    Gauss-Legendre quadrature, inverted with Brent's method. Absolute lift: P(p_t - p_c <= d) =
    integral f_c(x) F_t(x + d) dx for d >= 0 and integral f_t(y) S_c(y - d) dy for d < 0 (so the
    integrand has no kink inside the bulk of the mass); relative: integral f_c(x) F_t(x (1 + d)) dx."""
    tail = (1 - level) / 2
    xc, wc = _posterior_nodes(ac, bc)
    xt, wt = _posterior_nodes(at, bt)

    def cdf(d: float) -> float:
        if relative:
            return float(wc @ stats.beta.cdf(np.clip(xc * (1 + d), 0.0, 1.0), at, bt))
        if d >= 0:
            return float(wc @ stats.beta.cdf(np.clip(xc + d, 0.0, 1.0), at, bt))
        return float(wt @ stats.beta.sf(np.clip(xt - d, 0.0, 1.0), ac, bc))

    mc, mt = ac / (ac + bc), at / (at + bt)
    sd = math.sqrt(ac * bc / ((ac + bc) ** 2 * (ac + bc + 1)) + at * bt / ((at + bt) ** 2 * (at + bt + 1)))
    center, scale = (mt / mc - 1, sd / mc) if relative else (mt - mc, sd)
    out = []
    for q in (tail, 1 - tail):
        a_ = max(center - 20 * scale, -1.0 + 1e-12)  # both lifts are >= -1
        b_ = center + 20 * scale if relative else min(center + 20 * scale, 1.0)
        while relative and cdf(b_) < q:  # heavy right tail of a ratio with a small control rate
            b_ = 2 * b_ + 1
        out.append(float(optimize.brentq(lambda d: cdf(d) - q, a_, b_, xtol=1e-12, rtol=1e-10)))
    return out[0], out[1]


@dataclass(frozen=True)
class BetaBinomialResult(_Result):
    control: str
    treatment: str
    posterior_control: tuple[float, float]  # (alpha, beta)
    posterior_treatment: tuple[float, float]
    mean_control: float
    mean_treatment: float
    ci_control: tuple[float, float]
    ci_treatment: tuple[float, float]
    prob_treatment_beats_control: float
    loss_choose_treatment: float  # E[max(p_c - p_t, 0)]
    loss_choose_control: float  # E[max(p_t - p_c, 0)]
    abs_lift_ci: tuple[float, float]  # of p_t - p_c
    rel_lift_ci: tuple[float, float]  # of p_t / p_c - 1
    level: float


def beta_binomial(
    control: Proportion,
    treatment: Proportion,
    prior_alpha: float = 1.0,
    prior_beta: float = 1.0,
    level: float = 0.95,
    lift_intervals: bool = True,
) -> BetaBinomialResult:
    """Beta(prior) x Binomial -> Beta(prior_alpha + conversions, prior_beta + non-conversions) per variant;
    exact P(p_t > p_c) and expected losses; equal-tailed credible intervals for each rate (Beta
    quantiles) and for the absolute and relative lift (the lift's CDF by quadrature, inverted with
    Brent's method; deterministic)."""
    if prior_alpha <= 0 or prior_beta <= 0:
        raise ExperimentStatsError(f"prior_alpha and prior_beta must be > 0, got {prior_alpha}, {prior_beta}")
    if not 0 < level < 1:
        raise ExperimentStatsError(f"level must be in (0, 1), got {level}")
    _require_users(control.name, control.n, 1)
    _require_users(treatment.name, treatment.n, 1)
    ac, bc = prior_alpha + control.successes, prior_beta + control.n - control.successes
    at, bt = prior_alpha + treatment.successes, prior_beta + treatment.n - treatment.successes
    nan2 = (math.nan, math.nan)
    return BetaBinomialResult(
        control.name,
        treatment.name,
        (ac, bc),
        (at, bt),
        ac / (ac + bc),
        at / (at + bt),
        beta_credible_interval(ac, bc, level),
        beta_credible_interval(at, bt, level),
        prob_beta_greater(at, bt, ac, bc),
        expected_loss(at, bt, ac, bc),
        expected_loss(ac, bc, at, bt),
        _lift_interval(ac, bc, at, bt, level, relative=False) if lift_intervals else nan2,
        _lift_interval(ac, bc, at, bt, level, relative=True) if lift_intervals else nan2,
        level,
    )


def thompson_weights(
    posteriors: Mapping[str, tuple[float, float]], draws: int = 20_000, seed: int | None = 0, floor: float = 0.0
) -> dict[str, float]:
    """Thompson-sampling arm weights: P(arm has the highest rate) under independent Beta posteriors
    {arm: (alpha, beta)}, estimated from `draws` seeded joint draws. `floor` keeps every arm at least
    that share (then renormalised) so no arm stops being explored."""
    if not posteriors:
        raise ExperimentStatsError("thompson_weights needs at least one arm")
    if not 0 <= floor * len(posteriors) <= 1:
        raise ExperimentStatsError(f"floor {floor} is too large for {len(posteriors)} arms")
    names = list(posteriors)
    for k in names:
        a, b = posteriors[k]
        if not (a > 0 and b > 0):
            raise ExperimentStatsError(f"arm {k!r}: Beta parameters must be > 0, got {(a, b)}")
    rng = np.random.default_rng(seed)
    samples = np.column_stack([rng.beta(*posteriors[k], size=draws) for k in names])
    wins = np.bincount(samples.argmax(axis=1), minlength=len(names)) / draws
    weights = floor + (1 - floor * len(names)) * wins
    return {k: float(w) for k, w in zip(names, weights)}


# --------------------------------------------------------------------------- mSPRT


@dataclass(frozen=True)
class SequentialLook(_Result):
    n_control: int
    n_treatment: int
    diff: float  # mean_t - mean_c (or p_t - p_c)
    variance: float  # estimated var(diff) = var_c / n_c + var_t / n_t
    likelihood_ratio: float  # the mixture likelihood ratio Lambda_n
    p_value: float  # always valid: min over looks so far of 1 / Lambda
    ci: tuple[float, float]  # always-valid (1 - alpha) confidence sequence for the difference at this look
    reject: bool


@dataclass(frozen=True)
class SequentialPath(_Result):
    tau2: float
    alpha: float
    looks: list[SequentialLook] = field(default_factory=list)

    @property
    def rejected(self) -> bool:
        return any(look.reject for look in self.looks)

    @property
    def first_rejection(self) -> int | None:
        """1-based index of the first look that rejected, or None."""
        return next((i + 1 for i, look in enumerate(self.looks) if look.reject), None)

    @property
    def p_value(self) -> float:
        return self.looks[-1].p_value if self.looks else 1.0


def _mean_and_variance(v: Proportion | Moments) -> tuple[float, float]:
    """Mean and the variance of the mean: p (1 - p) / n for a proportion, s^2 / n for a metric."""
    if isinstance(v, Proportion):
        return v.rate, v.rate * (1 - v.rate) / v.n
    return v.mean, v.var / v.n


def _diff_and_variance(control, treatment) -> tuple[float, float, int, int]:
    (mc, vc), (mt, vt) = _mean_and_variance(control), _mean_and_variance(treatment)
    return mt - mc, vc + vt, control.n, treatment.n


def msprt(control: Proportion | Moments, treatment: Proportion | Moments, tau2: float, alpha: float = 0.05,
          previous_p: float = 1.0) -> SequentialLook:
    """One look of the mixture SPRT (Johari, Pekelis, Walsh, "Always valid inference") for H0: diff = 0.

    With diff ~ N(theta, V) (V estimated from the data, normal approximation) and the mixing
    distribution theta ~ N(0, tau2): Lambda = sqrt(V / (V + tau2)) exp(tau2 diff^2 / (2 V (V + tau2))).
    The always-valid p-value is min(previous_p, 1 / Lambda); reject when it is <= alpha. The
    confidence sequence is diff +- sqrt(V (V + tau2) / tau2 (log((V + tau2) / V) - 2 log alpha))."""
    if not tau2 > 0:
        raise ExperimentStatsError(f"tau2 must be > 0, got {tau2}")
    _z(alpha)
    diff, var, nc, nt = _diff_and_variance(control, treatment)
    if var <= 0:
        raise ExperimentStatsError(f"variants {control.name!r} and {treatment.name!r}: zero variance; the mSPRT is undefined")
    log_lr = 0.5 * math.log(var / (var + tau2)) + tau2 * diff * diff / (2 * var * (var + tau2))
    p_value = min(previous_p, math.exp(-log_lr) if log_lr > 0 else 1.0)
    half = math.sqrt(var * (var + tau2) / tau2 * (math.log((var + tau2) / var) - 2 * math.log(alpha)))
    return SequentialLook(nc, nt, diff, var, math.exp(min(log_lr, 700.0)), p_value, (diff - half, diff + half), p_value <= alpha)


def msprt_path(looks: Iterable[tuple[Proportion | Moments, Proportion | Moments]], tau2: float,
               alpha: float = 0.05) -> SequentialPath:
    """mSPRT over cumulative looks [(control, treatment), ...]: the p-value is non-increasing."""
    out: list[SequentialLook] = []
    p = 1.0
    for control, treatment in looks:
        look = msprt(control, treatment, tau2, alpha, p)
        p = look.p_value
        out.append(look)
    return SequentialPath(tau2, alpha, out)
