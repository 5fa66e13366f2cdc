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
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special

from pipelines.experiments.stats import (
    Moments,
    Proportion,
    cuped_test,
    msprt,
    proportion_test,
    sample_ratio_mismatch,
    thompson_weights,
)

__all__ = ["Population", "bandit", "fixed_horizon", "mc_se", "sequential", "true_lifts"]


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
    for key, count in hits.items():
        rate = count / n_experiments
        out[key] = {"rate": rate, "se": mc_se(rate, n_experiments)}
    for key, values in (("cuped_width_ratio", width_ratio), ("cuped_variance_reduction", variance_reduction),
                        ("cuped_width_ratio_conversion", cuped_conv_ratio)):
        arr = np.asarray(values)
        out[key] = {"mean": float(arr.mean()), "se": float(arr.std(ddof=1) / math.sqrt(arr.size))}
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
            naive, p_seq, stop = False, 1.0, None
            for d in range(looks):
                pc = Proportion("control", int(nc[i, d]), int(sc[i, d]))
                pt = Proportion("treatment", int(nt[i, d]), int(st[i, d]))
                z = proportion_test(pc, pt, alpha)
                naive |= z.significant
                look = msprt(pc, pt, tau2, alpha, p_seq)
                p_seq = look.p_value
                if look.reject and stop is None:
                    stop = d + 1
            counts["naive_peeking"] += naive
            counts["msprt"] += stop is not None
            counts["fixed_last_look"] += z.significant
            if stop is not None:
                stop_days.append(stop)
        done += k
    out = {"n_experiments": n_experiments, "n_users": per_day * looks, "looks": looks, "conv_lift": conv_lift, "tau2": tau2}
    for key, count in counts.items():
        rate = count / n_experiments
        out[key] = {"rate": rate, "se": mc_se(rate, n_experiments)}
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
