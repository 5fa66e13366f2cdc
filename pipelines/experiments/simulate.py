"""Simulated experiments with a known truth, to check `pipelines.experiments.stats` end to end.

Every simulated user u has a latent base propensity B_u ~ Beta(a, b) and, from it, a known true
response to each variant v with lifts (l_conv_v, l_click_v):

  pre-period clicks    x_u ~ Poisson(pre_clicks * B_u / E[B])            (the CUPED covariate)
  clicks in the test   c_u ~ Poisson(clicks * B_u / E[B] * (1 + l_click_v))
  conversion           y_u ~ Bernoulli(min(B_u (1 + l_conv_v), 1))
  revenue              y_u * price_u, price_u ~ Gamma(2, 25)

so the population's true absolute lifts are known in closed form (`true_lifts`). Users are assigned
to control / treatment by a fair coin (or a chosen share), all draws vectorised with numpy and seeded.
The checks (`fixed_horizon`, `sequential`, `bandit`) return plain dicts of rates with their Monte
Carlo standard errors; `benchmarks/experiment_stats.py` prints them and the unit tests assert them.

On the generator's users (`GeneratedPopulation`, built from `pipelines.generate.experiment.user_truth`):
each exposed user's true probability of converting within the attribution window under control and
under treatment (from the clickstream generator's latent model), their pre-period product views (the
CUPED covariate) and their day of first exposure. `generated_fixed_horizon` / `generated_sequential`
re-draw the assignment (a coin with the treatment share) and the outcomes y ~ Bernoulli(p_variant)
per experiment; the true lift is the population's mean(p_treatment - p_control).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special

from pipelines.experiments.stats import (
    ExperimentStatsError,
    Moments,
    Proportion,
    cuped_test,
    msprt,
    proportion_test,
    sample_ratio_mismatch,
    thompson_weights,
)

__all__ = [
    "GeneratedPopulation", "Population", "bandit", "fixed_horizon", "generated_fixed_horizon", "generated_report",
    "generated_sequential", "mc_se", "sequential", "true_lifts",
]


@dataclass(frozen=True)
class Population:
    """The simulated user base (defaults: 10% base conversion, 10 test-period clicks per user)."""

    beta_a: float = 2.0
    beta_b: float = 18.0
    pre_clicks: float = 10.0
    clicks: float = 10.0
    price_shape: float = 2.0
    price_scale: float = 25.0

    @property
    def mean_propensity(self) -> float:
        return self.beta_a / (self.beta_a + self.beta_b)

    def conversion_rate(self, lift: float) -> float:
        """E[min(B (1 + lift), 1)], exactly: (1 + l) E[B] I_c(a + 1, b) + P(B >= c) with c = 1 / (1 + l)."""
        if lift <= 0:
            return (1 + lift) * self.mean_propensity
        c = 1 / (1 + lift)
        a, b = self.beta_a, self.beta_b
        return (1 + lift) * self.mean_propensity * special.betainc(a + 1, b, c) + special.betaincc(a, b, c)


def true_lifts(pop: Population, conv_lift: float, click_lift: float) -> dict[str, float]:
    """The population's true treatment - control differences (and the relative conversion lift)."""
    p0, p1 = pop.conversion_rate(0.0), pop.conversion_rate(conv_lift)
    price = pop.price_shape * pop.price_scale
    return {
        "conversion_abs": p1 - p0,
        "conversion_rel": p1 / p0 - 1,
        "clicks_abs": pop.clicks * click_lift,
        "revenue_abs": price * (p1 - p0),
    }


def mc_se(rate: float, n: int) -> float:
    """Monte Carlo standard error of a proportion estimated from n independent simulations."""
    return math.sqrt(max(rate * (1 - rate), 0.0) / n) if n else math.nan


def _users(rng: np.random.Generator, shape, pop: Population, conv_lift: float, click_lift: float, treat_share: float = 0.5):
    """Users in an array of `shape` (experiments x users), their assignment and observed outcomes."""
    b = rng.beta(pop.beta_a, pop.beta_b, size=shape)
    activity = b / pop.mean_propensity
    treated = rng.random(shape) < treat_share
    x = rng.poisson(pop.pre_clicks * activity).astype(float)
    clicks = rng.poisson(pop.clicks * activity * np.where(treated, 1 + click_lift, 1.0)).astype(float)
    p = np.minimum(b * np.where(treated, 1 + conv_lift, 1.0), 1.0)
    converted = rng.random(shape) < p
    revenue = converted * rng.gamma(pop.price_shape, pop.price_scale, size=shape)
    return treated, converted, clicks, x, revenue


def _row_moments(name, mask, y, x):
    """Per-row sufficient statistics of y (and covariate x) over the users in mask: arrays per row."""
    ym, xm = np.where(mask, y, 0.0), np.where(mask, x, 0.0)
    return (mask.sum(1), ym.sum(1), (ym * ym).sum(1), xm.sum(1), (xm * xm).sum(1), (xm * ym).sum(1))


def _moments(name: str, sums, i: int) -> Moments:
    n, sy, syy, sx, sxx, sxy = (s[i] for s in sums)
    return Moments(name, int(n), float(sy), float(syy), float(sx), float(sxx), float(sxy))


def fixed_horizon(
    n_experiments: int = 1000,
    n_users: int = 20_000,
    conv_lift: float = 0.10,
    click_lift: float = 0.05,
    alpha: float = 0.05,
    seed: int = 0,
    pop: Population = Population(),
    chunk: int = 50,
) -> dict:
    """Fixed-horizon A/B experiments with a true lift: interval coverage of the true absolute and
    relative conversion lift (z-test intervals), of the clicks-per-user lift (Welch, and CUPED with the
    pre-period clicks), the CUPED/plain interval width ratio, the rejection rates (power), and the SRM
    false-alarm rate. A/A when both lifts are 0 (then the rejection rate is the false-positive rate)."""
    rng = np.random.default_rng(seed)
    truth = true_lifts(pop, conv_lift, click_lift)
    hits = dict.fromkeys(
        ["conv_abs_cover", "conv_rel_cover", "clicks_cover", "cuped_cover", "conv_reject", "clicks_reject", "cuped_reject", "srm_flag"],
        0,
    )
    width_ratio, cuped_conv_ratio, variance_reduction = [], [], []
    done = 0
    while done < n_experiments:
        k = min(chunk, n_experiments - done)
        treated, converted, clicks, x, _ = _users(rng, (k, n_users), pop, conv_lift, click_lift)
        conv = [_row_moments(v, m, converted.astype(float), x) for v, m in (("control", ~treated), ("treatment", treated))]
        clk = [_row_moments(v, m, clicks, x) for v, m in (("control", ~treated), ("treatment", treated))]
        for i in range(k):
            pc = Proportion("control", int(conv[0][0][i]), int(conv[0][1][i]))
            pt = Proportion("treatment", int(conv[1][0][i]), int(conv[1][1][i]))
            z = proportion_test(pc, pt, alpha)
            hits["conv_abs_cover"] += z.abs_ci[0] <= truth["conversion_abs"] <= z.abs_ci[1]
            hits["conv_rel_cover"] += z.rel_ci[0] <= truth["conversion_rel"] <= z.rel_ci[1]
            hits["conv_reject"] += z.significant
            cuped = cuped_test(_moments("control", clk[0], i), _moments("treatment", clk[1], i), alpha)
            w = cuped.unadjusted
            hits["clicks_cover"] += w.abs_ci[0] <= truth["clicks_abs"] <= w.abs_ci[1]
            hits["clicks_reject"] += w.significant
            hits["cuped_cover"] += cuped.adjusted.abs_ci[0] <= truth["clicks_abs"] <= cuped.adjusted.abs_ci[1]
            hits["cuped_reject"] += cuped.adjusted.significant
            width_ratio.append(cuped.width_ratio)
            variance_reduction.append(cuped.variance_reduction)
            cuped_conv_ratio.append(cuped_test(_moments("control", conv[0], i), _moments("treatment", conv[1], i), alpha).width_ratio)
            srm = sample_ratio_mismatch({"control": pc.n, "treatment": pt.n}, {"control": 0.5, "treatment": 0.5})
            hits["srm_flag"] += srm.mismatch
        done += k
    out = {"n_experiments": n_experiments, "n_users": n_users, "conv_lift": conv_lift, "click_lift": click_lift, "truth": truth}
    _rates(out, hits, n_experiments)
    return _means(out, {"cuped_width_ratio": width_ratio, "cuped_variance_reduction": variance_reduction,
                        "cuped_width_ratio_conversion": cuped_conv_ratio})


def _rates(out: dict, counts: dict, n_experiments: int) -> dict:
    """Each count as a rate over the experiments with its Monte Carlo standard error, into `out`."""
    for key, count in counts.items():
        rate = count / n_experiments
        out[key] = {"rate": rate, "se": mc_se(rate, n_experiments)}
    return out


def _means(out: dict, series: dict) -> dict:
    """Each series' mean with its standard error, into `out`."""
    for key, values in series.items():
        arr = np.asarray(values)
        out[key] = {"mean": float(arr.mean()), "se": float(arr.std(ddof=1) / math.sqrt(arr.size)) if arr.size > 1 else math.nan}
    return out


def sequential(
    n_experiments: int = 1000,
    n_users: int = 20_000,
    looks: int = 14,
    conv_lift: float = 0.0,
    tau2: float = 1e-4,
    alpha: float = 0.05,
    seed: int = 1,
    pop: Population = Population(),
    chunk: int = 50,
) -> dict:
    """Daily peeking: users arrive evenly over `looks` days; after each day the conversion z-test and
    the mSPRT (normal mixture, variance tau2) see the cumulative counts. The naive rule stops at the
    first look with p < alpha; the mSPRT at the first look whose always-valid p-value <= alpha. Also
    the fixed-horizon z-test at the last look only. With conv_lift = 0 the rates are false positives."""
    rng = np.random.default_rng(seed)
    per_day = n_users // looks
    counts = {"naive_peeking": 0, "msprt": 0, "fixed_last_look": 0}
    stop_days = []
    done = 0
    while done < n_experiments:
        k = min(chunk, n_experiments - done)
        treated, converted, *_ = _users(rng, (k, per_day * looks), pop, conv_lift, 0.0)
        day = lambda a: a.reshape(k, looks, per_day).sum(2).cumsum(1)  # noqa: E731  cumulative per day
        nt, nc = day(treated), day(~treated)
        st, sc = day(treated & converted), day(~treated & converted)
        for i in range(k):
            _count_looks(counts, stop_days, _looks(nc[i], nt[i], sc[i], st[i], tau2, alpha, skip_thin=False))
        done += k
    out = {"n_experiments": n_experiments, "n_users": per_day * looks, "looks": looks, "conv_lift": conv_lift, "tau2": tau2}
    return _sequential_rates(out, counts, stop_days, n_experiments)


def _looks(nc, nt, sc, st, tau2: float, alpha: float, skip_thin: bool) -> tuple[bool, int | None, bool]:
    """One experiment's daily looks on cumulative counts (control / treatment users, conversions):
    (the naive z-test ever rejected, the first look (1-based) the mSPRT rejected, the last look's
    z-test rejected). `skip_thin`: no look before both arms have 2 users and a conversion."""
    naive, p_seq, stop, z = False, 1.0, None, None
    for d in range(len(nc)):
        if skip_thin and (min(nc[d], nt[d]) < 2 or sc[d] + st[d] == 0):
            continue  # too few users, or no conversion yet: nothing to test (as the analysis skips the day)
        pc = Proportion("control", int(nc[d]), int(sc[d]))
        pt = Proportion("treatment", int(nt[d]), int(st[d]))
        try:
            z_now, look = proportion_test(pc, pt, alpha), msprt(pc, pt, tau2, alpha, p_seq)
        except ExperimentStatsError:
            continue  # undefined on these counts (e.g. every user converted): no look
        z = z_now
        naive |= z.significant
        p_seq = look.p_value
        if look.reject and stop is None:
            stop = d + 1
    return naive, stop, bool(z is not None and z.significant)


def _count_looks(counts: dict, stop_days: list, looked: tuple[bool, int | None, bool]) -> None:
    naive, stop, last = looked
    counts["naive_peeking"] += naive
    counts["msprt"] += stop is not None
    counts["fixed_last_look"] += last
    if stop is not None:
        stop_days.append(stop)


def _sequential_rates(out: dict, counts: dict, stop_days: list, n_experiments: int) -> dict:
    _rates(out, counts, n_experiments)
    out["msprt_mean_stop_day"] = float(np.mean(stop_days)) if stop_days else None
    return out


def bandit(
    n_runs: int = 100,
    periods: int = 48,
    users_per_period: int = 250,
    conv_lift: float = 0.20,
    prior: tuple[float, float] = (1.0, 1.0),
    seed: int = 2,
    pop: Population = Population(),
    draws: int = 4_000,
) -> dict:
    """A two-arm Thompson-sampling bandit reweighted after every period from the observed conversions
    (as the server's scheduled refresh), against a fixed 50/50 split of the same users. Regret is in
    expected conversions: sum over users of (their true rate under the better arm - under the arm
    served). Returns the treatment (better arm) share per period and the regrets, averaged over runs."""
    rng = np.random.default_rng(seed)
    share = np.zeros((n_runs, periods))
    regret_bandit, regret_fixed, conv_bandit, conv_fixed = (np.zeros(n_runs) for _ in range(4))
    for r in range(n_runs):
        post = {"control": list(prior), "treatment": list(prior)}
        for t in range(periods):
            w = thompson_weights({k: tuple(v) for k, v in post.items()}, draws=draws, seed=int(rng.integers(2**31)))
            b = rng.beta(pop.beta_a, pop.beta_b, users_per_period)
            p_c, p_t = b, np.minimum(b * (1 + conv_lift), 1.0)
            to_t = rng.random(users_per_period) < w["treatment"]
            u = rng.random(users_per_period)
            y = u < np.where(to_t, p_t, p_c)
            for arm, mask in (("control", ~to_t), ("treatment", to_t)):
                post[arm][0] += int(y[mask].sum())
                post[arm][1] += int((~y[mask]).sum())
            best = np.maximum(p_c, p_t)
            share[r, t] = to_t.mean()
            regret_bandit[r] += float((best - np.where(to_t, p_t, p_c)).sum())
            regret_fixed[r] += float((best - 0.5 * (p_c + p_t)).sum())  # expected, under a fair coin
            conv_bandit[r] += float(y.sum())
            conv_fixed[r] += float((0.5 * (p_c + p_t)).sum())
    mean_share = share.mean(0)
    q = max(periods // 4, 1)
    n = np.sqrt(n_runs)
    return {
        "n_runs": n_runs, "periods": periods, "users_per_period": users_per_period, "conv_lift": conv_lift,
        "better_arm_share_by_period": [float(s) for s in mean_share],
        "better_arm_share_first_quarter": float(mean_share[:q].mean()),
        "better_arm_share_last_quarter": float(mean_share[-q:].mean()),
        "regret_bandit": {"mean": float(regret_bandit.mean()), "se": float(regret_bandit.std(ddof=1) / n)},
        "regret_fixed_50_50": {"mean": float(regret_fixed.mean()), "se": float(regret_fixed.std(ddof=1) / n)},
        "conversions_bandit": float(conv_bandit.mean()),
        "conversions_fixed_50_50": float(conv_fixed.mean()),
    }


# --------------------------------------------------------------------------- the generator's users


@dataclass(frozen=True)
class GeneratedPopulation:
    """Exposed users of a generated experiment with their known responses (arrays of one length)."""

    p_control: np.ndarray
    """True probability of converting in the attribution window under the control."""
    p_treatment: np.ndarray
    """... under the treatment (the counterfactual of the control's users, and vice versa)."""
    covariate: np.ndarray
    """Pre-period covariate (CUPED), e.g. product views before the experiment's start."""
    day: np.ndarray
    """Day of the first exposure, 0 = the first day (the daily looks)."""

    def __post_init__(self):
        n = len(self.p_control)
        if n < 4 or any(len(a) != n for a in (self.p_treatment, self.covariate, self.day)):
            raise ValueError(f"a population needs >= 4 users and arrays of one length, got {n}")
        for name in ("p_control", "p_treatment"):
            p = getattr(self, name)
            if not np.all((p >= 0) & (p <= 1)):
                raise ValueError(f"{name} must lie in [0, 1]")

    @classmethod
    def from_truth(cls, rows, control: str = "control", treatment: str = "treatment",
                   covariate: str = "pre_product_views") -> GeneratedPopulation:
        """From `experiment.user_truth` rows (mappings: p_convert {variant: p}, the covariate,
        first_exposure a datetime)."""
        rows = list(rows)
        if not rows:
            raise ValueError("no exposed users in the truth")
        days = [r["first_exposure"].date() for r in rows]
        first = min(days)
        return cls(
            p_control=np.array([float(r["p_convert"][control]) for r in rows]),
            p_treatment=np.array([float(r["p_convert"][treatment]) for r in rows]),
            covariate=np.array([float(r[covariate] or 0.0) for r in rows]),
            day=np.array([(d - first).days for d in days], dtype=int),
        )

    @property
    def n(self) -> int:
        return len(self.p_control)

    def truth(self) -> dict[str, float]:
        """The population's true absolute and relative conversion lift."""
        pc, pt = float(self.p_control.mean()), float(self.p_treatment.mean())
        return {"control_rate": pc, "treatment_rate": pt, "conversion_abs": pt - pc, "conversion_rel": pt / pc - 1}


def _generated_users(rng: np.random.Generator, pop: GeneratedPopulation, k: int, treat_share: float, aa: bool):
    """(treated, converted) of k re-drawn experiments on the population: experiments x users."""
    treated = rng.random((k, pop.n)) < treat_share
    p_t = pop.p_control if aa else pop.p_treatment
    converted = rng.random((k, pop.n)) < np.where(treated, p_t[None, :], pop.p_control[None, :])
    return treated, converted


def generated_fixed_horizon(pop: GeneratedPopulation, n_experiments: int = 1000, aa: bool = False, alpha: float = 0.05,
                            treat_share: float = 0.5, seed: int = 0, chunk: int = 50) -> dict:
    """Fixed-horizon experiments on the generated users: coverage of the true absolute / relative
    lift by the z-test's intervals and by CUPED (covariate: the pre-period), rejection rates (with
    aa=True the treatment is the control: false positives), CUPED/plain width ratio, SRM alarms."""
    rng = np.random.default_rng(seed)
    truth = pop.truth()
    if aa:
        truth = {**truth, "treatment_rate": truth["control_rate"], "conversion_abs": 0.0, "conversion_rel": 0.0}
    hits = dict.fromkeys(["conv_abs_cover", "conv_rel_cover", "conv_reject", "cuped_cover", "cuped_reject", "srm_flag"], 0)
    width_ratio, variance_reduction = [], []
    x = np.broadcast_to(pop.covariate, (min(chunk, n_experiments), pop.n))
    done = 0
    while done < n_experiments:
        k = min(chunk, n_experiments - done)
        treated, converted = _generated_users(rng, pop, k, treat_share, aa)
        y = converted.astype(float)
        sums = [_row_moments(v, m, y, x[:k]) for v, m in (("control", ~treated), ("treatment", treated))]
        for i in range(k):
            pc, pt = (Proportion(v, int(sums[j][0][i]), int(sums[j][1][i])) for j, v in enumerate(("control", "treatment")))
            z = proportion_test(pc, pt, alpha)
            hits["conv_abs_cover"] += z.abs_ci[0] <= truth["conversion_abs"] <= z.abs_ci[1]
            hits["conv_rel_cover"] += z.rel_ci[0] <= truth["conversion_rel"] <= z.rel_ci[1]
            hits["conv_reject"] += z.significant
            cuped = cuped_test(_moments("control", sums[0], i), _moments("treatment", sums[1], i), alpha)
            hits["cuped_cover"] += cuped.adjusted.abs_ci[0] <= truth["conversion_abs"] <= cuped.adjusted.abs_ci[1]
            hits["cuped_reject"] += cuped.adjusted.significant
            width_ratio.append(cuped.width_ratio)
            variance_reduction.append(cuped.variance_reduction)
            srm = sample_ratio_mismatch({"control": pc.n, "treatment": pt.n}, {"control": 1 - treat_share, "treatment": treat_share})
            hits["srm_flag"] += srm.mismatch
        done += k
    out = {"n_experiments": n_experiments, "n_users": pop.n, "aa": aa, "truth": truth}
    _rates(out, hits, n_experiments)
    return _means(out, {"cuped_width_ratio": width_ratio, "cuped_variance_reduction": variance_reduction})


def generated_sequential(pop: GeneratedPopulation, n_experiments: int = 1000, aa: bool = True, tau2: float = 1e-4,
                         alpha: float = 0.05, treat_share: float = 0.5, seed: int = 1, chunk: int = 50) -> dict:
    """Daily peeking on the generated users: a look after each day of first exposures (cumulative
    counts, each user's outcome known at their day's look): the naive z-test (stop at the first
    p < alpha), the mSPRT (always-valid p <= alpha), and the z-test at the last look only."""
    rng = np.random.default_rng(seed)
    days = np.unique(pop.day)
    onehot = (pop.day[:, None] == days[None, :]).astype(np.int64)  # users x looks
    counts = {"naive_peeking": 0, "msprt": 0, "fixed_last_look": 0}
    stop_days = []
    done = 0
    while done < n_experiments:
        k = min(chunk, n_experiments - done)
        treated, converted = _generated_users(rng, pop, k, treat_share, aa)
        cum = lambda a: (a.astype(np.int64) @ onehot).cumsum(1)  # noqa: E731  experiments x looks
        nt, nc, st, sc = cum(treated), cum(~treated), cum(treated & converted), cum(~treated & converted)
        for i in range(k):
            _count_looks(counts, stop_days, _looks(nc[i], nt[i], sc[i], st[i], tau2, alpha, skip_thin=True))
        done += k
    out = {"n_experiments": n_experiments, "n_users": pop.n, "looks": len(days), "aa": aa, "tau2": tau2}
    return _sequential_rates(out, counts, stop_days, n_experiments)


def generated_report(pop: GeneratedPopulation, n_experiments: int = 1000, tau2: float = 1e-4, alpha: float = 0.05,
                     seed: int = 0) -> dict:
    """The four checks on the generated users: A/B and A/A at a fixed horizon, A/A and A/B with
    daily peeking."""
    return {
        "truth": pop.truth(),
        "n_users": pop.n,
        "ab": generated_fixed_horizon(pop, n_experiments, aa=False, alpha=alpha, seed=seed),
        "aa": generated_fixed_horizon(pop, n_experiments, aa=True, alpha=alpha, seed=seed + 1),
        "peek_aa": generated_sequential(pop, n_experiments, aa=True, tau2=tau2, alpha=alpha, seed=seed + 2),
        "peek_ab": generated_sequential(pop, n_experiments, aa=False, tau2=tau2, alpha=alpha, seed=seed + 3),
    }
