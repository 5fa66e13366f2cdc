"""The experiment statistics, proved by simulation: prints a report (markdown tables).

    .venv/bin/python benchmarks/experiment_stats.py                     # 2000 experiments of 20k users
    .venv/bin/python benchmarks/experiment_stats.py --experiments 200   # quick
    .venv/bin/python benchmarks/experiment_stats.py --json out.json
    .venv/bin/python benchmarks/experiment_stats.py --generated         # on the clickstream generator's users

Uses pipelines/experiments/simulate.py: every simulated user has a known true response to each
variant (a Beta base propensity that also drives their pre-period clicks), so the true lift is known
exactly. Sections:

  A/B      fixed horizon with a true lift (+10% conversion, +5% clicks per user): coverage of the 95%
           intervals (z-test absolute and relative, Welch, CUPED), power, CUPED width ratio
  A/A      the same with no lift: false-positive rate of each test, SRM false alarms
  peeking  14 daily looks at an A/A (and an A/B) test: naive "stop at the first p < 0.05" against
           the mSPRT's always-valid p-value, and the single fixed-horizon look (--tau2-grid: the
           mSPRT's error and power for several mixing variances)
  bandit   two-arm Thompson sampling refreshed every period against a fixed 50/50 split: traffic on
           the better arm over time, regret in expected conversions

--generated: the population is the clickstream generator's (a local SparkSession generates
--generated-users users over --generated-days days with an experiment from day
--generated-start-day, treatment +--generated-effect on the purchase logit): each exposed user's true
probability of converting within 24 h of their first exposure under control and under treatment,
their pre-period product views (CUPED) and their day of first exposure. The A/B, A/A and peeking
sections re-draw assignment and outcomes from those probabilities (the bandit section is skipped).

Every rate comes with its Monte Carlo standard error sqrt(r (1 - r) / n). Seeded; not a test
(tests/unit/experiments/test_simulate.py asserts the same properties on smaller runs).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines.experiments import simulate  # noqa: E402


def pct(entry: dict) -> str:
    return f"{100 * entry['rate']:.2f}% ± {100 * entry['se']:.2f}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiments", type=int, default=2000, help="simulated experiments per section")
    parser.add_argument("--users", type=int, default=20_000, help="users per experiment")
    parser.add_argument("--looks", type=int, default=14)
    parser.add_argument("--tau2", type=float, default=1e-4, help="mSPRT mixing variance (~ squared expected absolute lift)")
    parser.add_argument("--tau2-grid", default="", help="comma-separated tau^2 values: also report the mSPRT's error and power for each")
    parser.add_argument("--bandit-runs", type=int, default=200)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument("--generated", action="store_true", help="run on a population from the clickstream generator")
    parser.add_argument("--generated-users", type=int, default=5000, help="generator users (--generated)")
    parser.add_argument("--generated-days", type=int, default=14, help="generated days (--generated)")
    parser.add_argument("--generated-start-day", type=int, default=7, help="experiment start, days after the first (--generated)")
    parser.add_argument("--generated-effect", type=float, default=0.2, help="treatment's purchase-logit effect (--generated)")
    parser.add_argument("--generated-seed", type=int, default=42, help="generator seed (--generated)")
    args = parser.parse_args(argv)
    if args.generated:
        return generated_main(args)
    n, users, seed = args.experiments, args.users, args.seed
    results, timings = {}, {}

    def timed(name, fn, **kw):
        t0 = time.perf_counter()
        results[name] = fn(**kw)
        timings[name] = time.perf_counter() - t0
        return results[name]

    ab = timed("ab", simulate.fixed_horizon, n_experiments=n, n_users=users, conv_lift=0.10, click_lift=0.05, seed=seed)
    aa = timed("aa", simulate.fixed_horizon, n_experiments=n, n_users=users, conv_lift=0.0, click_lift=0.0, seed=seed + 1)
    peek_aa = timed("peek_aa", simulate.sequential, n_experiments=n, n_users=users, looks=args.looks, conv_lift=0.0,
                    tau2=args.tau2, seed=seed + 2)
    peek_ab = timed("peek_ab", simulate.sequential, n_experiments=n, n_users=users, looks=args.looks, conv_lift=0.10,
                    tau2=args.tau2, seed=seed + 3)
    bandit = timed("bandit", simulate.bandit, n_runs=args.bandit_runs, periods=48, users_per_period=250, conv_lift=0.20, seed=seed + 4)

    truth = ab["truth"]
    print(f"# Experiment statistics by simulation ({n} experiments x {users} users per section, seed {seed})\n")
    print("Base conversion 10% (user propensity ~ Beta(2, 18)), 10 clicks per user, pre-period clicks as the CUPED covariate.")
    print(f"True A/B lifts: conversion {truth['conversion_abs']:+.4f} abs ({truth['conversion_rel']:+.1%} rel), "
          f"clicks per user {truth['clicks_abs']:+.3f}.\n")
    print("## Fixed horizon (alpha = 0.05; rate ± Monte Carlo SE)\n")
    print("| statistic | A/B: 95% CI covers true lift | A/B: rejects (power) | A/A: rejects (false positives) |")
    print("|---|---|---|---|")
    print(f"| conversion, z-test, absolute lift (Wald) | {pct(ab['conv_abs_cover'])} | {pct(ab['conv_reject'])} | {pct(aa['conv_reject'])} |")
    print(f"| conversion, relative lift (delta, log ratio) | {pct(ab['conv_rel_cover'])} | | |")
    print(f"| clicks per user, Welch | {pct(ab['clicks_cover'])} | {pct(ab['clicks_reject'])} | {pct(aa['clicks_reject'])} |")
    print(f"| clicks per user, CUPED + Welch | {pct(ab['cuped_cover'])} | {pct(ab['cuped_reject'])} | {pct(aa['cuped_reject'])} |")
    print(f"\nA/A coverage of the true 0: z {pct(aa['conv_abs_cover'])}, Welch {pct(aa['clicks_cover'])}, CUPED {pct(aa['cuped_cover'])}.")
    w, v, wc = ab["cuped_width_ratio"], ab["cuped_variance_reduction"], ab["cuped_width_ratio_conversion"]
    print(f"CUPED interval width / plain width: clicks {w['mean']:.4f} ± {w['se']:.4f} (variance reduction "
          f"{v['mean']:.1%}); conversion {wc['mean']:.4f} ± {wc['se']:.4f}.")
    print(f"Sample-ratio-mismatch check (p < 0.001) false alarms on a fair split: A/B {pct(ab['srm_flag'])}, A/A {pct(aa['srm_flag'])}.\n")

    print(f"## Daily peeking ({args.looks} looks, conversion, mSPRT tau^2 = {args.tau2:g})\n")
    print("| rule | A/A: ever rejects (false positives) | A/B +10%: rejects (power) |")
    print("|---|---|---|")
    print(f"| naive z-test, stop at the first p < 0.05 | {pct(peek_aa['naive_peeking'])} | {pct(peek_ab['naive_peeking'])} |")
    print(f"| mSPRT, always-valid p <= 0.05 | {pct(peek_aa['msprt'])} | {pct(peek_ab['msprt'])} |")
    print(f"| z-test at the last look only | {pct(peek_aa['fixed_last_look'])} | {pct(peek_ab['fixed_last_look'])} |")
    if peek_ab["msprt_mean_stop_day"] is not None:
        print(f"\nmSPRT mean stopping day when it rejects in the A/B: {peek_ab['msprt_mean_stop_day']:.1f} of {args.looks}.\n")

    grid = [float(v) for v in args.tau2_grid.split(",") if v.strip()]
    if grid:
        print("\n| mSPRT tau^2 | A/A: ever rejects | A/B +10%: rejects | mean stopping day |")
        print("|---|---|---|---|")
        for i, t2 in enumerate(grid):
            kw = dict(n_experiments=n, n_users=users, looks=args.looks, tau2=t2)
            g_aa = timed(f"tau2_aa_{t2:g}", simulate.sequential, conv_lift=0.0, seed=seed + 10 + 2 * i, **kw)
            g_ab = timed(f"tau2_ab_{t2:g}", simulate.sequential, conv_lift=0.10, seed=seed + 11 + 2 * i, **kw)
            stop = g_ab["msprt_mean_stop_day"]
            print(f"| {t2:g} | {pct(g_aa['msprt'])} | {pct(g_ab['msprt'])} | {'' if stop is None else f'{stop:.1f}'} |")
        print()

    b = bandit
    print(f"## Thompson-sampling bandit ({b['n_runs']} runs, {b['periods']} periods x {b['users_per_period']} users, "
          f"true conversion lift +{b['conv_lift']:.0%})\n")
    shares = b["better_arm_share_by_period"]
    marks = sorted({0, 1, 3, 7, 15, 23, 35, len(shares) - 1})
    print("| period | " + " | ".join(str(i + 1) for i in marks) + " |")
    print("|---" * (len(marks) + 1) + "|")
    print("| share on the better arm | " + " | ".join(f"{shares[i]:.3f}" for i in marks) + " |")
    rb, rf = b["regret_bandit"], b["regret_fixed_50_50"]
    print(f"\nRegret (expected conversions lost vs always serving the better arm), per run of "
          f"{b['periods'] * b['users_per_period']} users: bandit {rb['mean']:.1f} ± {rb['se']:.1f}, "
          f"fixed 50/50 {rf['mean']:.1f} ± {rf['se']:.1f} (ratio {rb['mean'] / rf['mean']:.2f}). "
          f"Conversions: bandit {b['conversions_bandit']:.1f}, 50/50 {b['conversions_fixed_50_50']:.1f}.\n")
    print("Seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "results": results,
                                         "seconds": timings}, indent=1))
    return 0


def generated_population(users: int, days: int, start_day: int, effect: float, seed: int, window_hours: float = 24.0,
                         pre_period_days: int = 7) -> simulate.GeneratedPopulation:
    """The exposed users of a generated experiment, from the generator's truth (local Spark)."""
    from pyspark.sql import SparkSession

    from pipelines.config.generator import GeneratorConfig
    from pipelines.generate import experiment
    from pipelines.generate import sessions as sess
    from pipelines.generate.stage import build_sessions

    gen = GeneratorConfig.model_validate({
        "seed": seed, "users": users, "days": days, "products": 200,
        "experiment": {"id": "sim_ab", "start_offset_days": start_day, "variants": {
            "control": {"share": 0.5, "logit_effect": 0.0}, "treatment": {"share": 0.5, "logit_effect": effect}}},
    })
    spark = (SparkSession.builder.master("local[2]").appName("experiment_stats")
             .config("spark.sql.shuffle.partitions", "4").config("spark.sql.session.timeZone", "UTC")
             .config("spark.ui.enabled", "false").getOrCreate())
    truth = experiment.user_truth(sess.truth_sessions(build_sessions(spark, gen)), gen, window_hours, pre_period_days)
    rows = [r.asDict() for r in truth.collect()]  # bounded: one small row per exposed user (--generated-users)
    return simulate.GeneratedPopulation.from_truth(rows)


def generated_main(args) -> int:
    n, seed = args.experiments, args.seed
    t0 = time.perf_counter()
    pop = generated_population(args.generated_users, args.generated_days, args.generated_start_day, args.generated_effect,
                               args.generated_seed)
    built = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = simulate.generated_report(pop, n_experiments=n, tau2=args.tau2, seed=seed)
    took = time.perf_counter() - t0
    truth, ab, aa, peek_aa, peek_ab = res["truth"], res["ab"], res["aa"], res["peek_aa"], res["peek_ab"]
    print(f"# Experiment statistics on the generator's users ({n} experiments per section, seed {seed})\n")
    print(f"Generator: {args.generated_users} users x {args.generated_days} days (seed {args.generated_seed}), experiment "
          f"from day {args.generated_start_day}, treatment logit effect {args.generated_effect:+g}; {pop.n} exposed users, "
          f"{peek_aa['looks']} days of first exposures.")
    print(f"True conversion within 24 h of the first exposure: control {truth['control_rate']:.4f}, treatment "
          f"{truth['treatment_rate']:.4f}: lift {truth['conversion_abs']:+.4f} abs ({truth['conversion_rel']:+.1%} rel). "
          "CUPED covariate: pre-period (7 days) product views.\n")
    print("## Fixed horizon (alpha = 0.05; rate ± Monte Carlo SE)\n")
    print("| statistic | A/B: 95% CI covers true lift | A/B: rejects (power) | A/A: rejects (false positives) |")
    print("|---|---|---|---|")
    print(f"| conversion, z-test, absolute lift (Wald) | {pct(ab['conv_abs_cover'])} | {pct(ab['conv_reject'])} | {pct(aa['conv_reject'])} |")
    print(f"| conversion, relative lift (delta, log ratio) | {pct(ab['conv_rel_cover'])} | | |")
    print(f"| conversion, CUPED + Welch | {pct(ab['cuped_cover'])} | {pct(ab['cuped_reject'])} | {pct(aa['cuped_reject'])} |")
    print(f"\nA/A coverage of the true 0: z {pct(aa['conv_abs_cover'])}, CUPED {pct(aa['cuped_cover'])}.")
    w, v = ab["cuped_width_ratio"], ab["cuped_variance_reduction"]
    print(f"CUPED interval width / plain width: {w['mean']:.4f} ± {w['se']:.4f} (variance reduction {v['mean']:.1%}).")
    print(f"Sample-ratio-mismatch check (p < 0.001) false alarms: A/B {pct(ab['srm_flag'])}, A/A {pct(aa['srm_flag'])}.\n")
    print(f"## Daily peeking ({peek_aa['looks']} looks, conversion, mSPRT tau^2 = {args.tau2:g})\n")
    print("| rule | A/A: ever rejects (false positives) | A/B: rejects (power) |")
    print("|---|---|---|")
    print(f"| naive z-test, stop at the first p < 0.05 | {pct(peek_aa['naive_peeking'])} | {pct(peek_ab['naive_peeking'])} |")
    print(f"| mSPRT, always-valid p <= 0.05 | {pct(peek_aa['msprt'])} | {pct(peek_ab['msprt'])} |")
    print(f"| z-test at the last look only | {pct(peek_aa['fixed_last_look'])} | {pct(peek_ab['fixed_last_look'])} |")
    print(f"\nSeconds: generating the population {built:.1f}, simulating {took:.1f}")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "results": res}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
