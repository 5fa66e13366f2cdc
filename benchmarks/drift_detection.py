"""Proof on known drift (issue 18, item 6): does the monitor see drift injected on a known day, and
only there, and does retraining on it pay off? A report, not a test.

    nice -n 10 .venv/bin/python benchmarks/drift_detection.py                 # 20 no-drift seeds + 1 drift run
    nice -n 10 .venv/bin/python benchmarks/drift_detection.py --seeds 5 --users 1000 --workdir /tmp/dd --keep

Each run is the pipeline in-process, in one SparkSession (generate -> ingest -> silver -> features ->
training sets -> train `lr` without search -> score -> monitor), on its own lake and MLflow store:

- **Stationary features.** Windows of 1 and 3 days, a 3-day lookback and 3 days of history before
  the first cutoff, so from the first cutoff on no feature still grows with the history (30-day
  windows would move for a month after the first event: drift the monitor rightly reports).
- **The stale model** is trained on the pre-drift cutoffs PRE_CUTOFFS (labels before DRIFT_DAY)
  and registered; it scores the as-of dates MONITORED, each monitored with the default thresholds.
  As-of date D uses events before D 00:00, so DRIFT_DAY itself is still clean and DRIFT_DAY + 1
  is the first as-of date that sees drifted events.
- **The drift** (`generator.drift`, from DRIFT_DAY on) is in one driver, the session's device: half
  of the sessions switch to mobile (`mobile_share_shift`) and mobile now converts better than
  desktop (`device_effects`, chosen so the overall purchase rate stays about the same). Affected
  features: `u_top_device_1d`, `u_top_device_3d` (and the score). Every other feature must not alert.
- **No drift**: the same runs without `generator.drift`, `--seeds` seeds; any alert on any monitored
  date is a false alarm.
- **Retraining** (drift run only): the training set is rebuilt on the post-drift cutoffs
  POST_CUTOFFS (the last one is the test split), `lr` is retrained and goes through the promotion
  gate, and both versions score the post-drift test date and are evaluated on its realised labels.

Printed: per run the alerting features per monitored date, the detection delay (first alerting
as-of date minus DRIFT_DAY, in days; 1 is the earliest possible), false alarms, and the stale vs
retrained AUC on the post-drift test date. `--seeds 0` runs the drift run only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines.config import ClickmlConfig, load_config  # noqa: E402

START = dt.date(2024, 1, 1)
DRIFT_DAY = dt.date(2024, 1, 9)
PRE_CUTOFFS = [dt.date(2024, 1, d) for d in range(4, 9)]     # label windows end before DRIFT_DAY
POST_CUTOFFS = [dt.date(2024, 1, d) for d in range(10, 15)]  # after it; the last one is the test split
MONITORED = [DRIFT_DAY + dt.timedelta(days=k) for k in range(3)]  # D (clean), D + 1, D + 2
DRIFT = {"mobile_share_shift": 0.5, "device_effects": {"desktop": -1.0, "mobile": 0.3, "tablet": 0.0}}
AFFECTED = {"u_top_device_1d", "u_top_device_3d"}
SCORE = "score"
JOB = "propensity"


@dataclass
class RunResult:
    seed: int
    drift: bool
    alerts: dict[dt.date, list[str]] = field(default_factory=dict)
    """Per monitored as-of date, the features (and `score`) whose status is alert."""
    warns: dict[dt.date, list[str]] = field(default_factory=dict)
    rows: dict[dt.date, int] = field(default_factory=dict)
    """Scored rows per monitored date."""
    stale_version: str = ""
    stale_test_auc: float | None = None
    """The stale model's own (pre-drift) test AUC."""
    auc: dict[str, float] = field(default_factory=dict)
    """Post-drift test AUC: `stale`, `retrained`."""
    promoted: bool | None = None
    """Whether the promotion gate made the retrained model champion."""
    profile: str | None = None
    """The stale model's reference profile (JSON; for the null simulation)."""
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds per step: pipeline (generate..training set), train, monitor (score + monitor, all dates), retrain."""

    @property
    def delay(self) -> int | None:
        """Days from DRIFT_DAY to the first monitored as-of date with an alert on an affected feature."""
        for date in sorted(self.alerts):
            if date > DRIFT_DAY and AFFECTED & set(self.alerts[date]):
                return (date - DRIFT_DAY).days
        return None

    def false_alarms(self) -> list[tuple[dt.date, str]]:
        """Alerts that should not be: any before drifted data, and on unaffected features after it
        (the score's alert after drift is prediction drift, not a false alarm)."""
        out = []
        for date, names in sorted(self.alerts.items()):
            drifted = self.drift and date > DRIFT_DAY
            out += [(date, n) for n in names if not drifted or n not in AFFECTED | {SCORE}]
        return out


def overrides(workdir: Path, seed: int, users: int, drift: bool, days: int) -> list[str]:
    """The config of one run: its own lake and MLflow store, stationary short windows, lr only."""
    out = [
        f"lake.root={workdir / 'lakehouse'}", f"landing.root={workdir / 'landing'}",
        f"mlflow.tracking_uri=sqlite:///{workdir / 'mlflow.db'}", f"mlflow.artifact_root={workdir / 'mlruns'}",
        "spark.master=local[2]", "spark.shuffle_partitions=2",
        f"generator.seed={seed}", f"generator.users={users}", f"generator.days={days}",
        f"generator.start_date={START.isoformat()}", "generator.bad_records.share=0", "generator.late_share=0",
        "features.windows_days=[1, 3]",
        "training_sets.propensity.horizon_days=1", "training_sets.propensity.lookback_days=3",
        "training_sets.propensity.min_history_days=3",
        f"training_sets.propensity.cutoffs={json.dumps([c.isoformat() for c in PRE_CUTOFFS])}",
        "training.default_jobs=[propensity]",
        "training.jobs.propensity.models.lr.search.method=none",
        "training.jobs.propensity.models.lr.params.maxIter=20",
    ]
    if drift:
        out += [f"generator.drift.start_date={DRIFT_DAY.isoformat()}",
                f"generator.drift.mobile_share_shift={DRIFT['mobile_share_shift']}",
                f"generator.drift.device_effects={json.dumps(DRIFT['device_effects'])}"]
    return out


def make_config(workdir: Path, seed: int, users: int, drift: bool, days: int, *extra: str) -> ClickmlConfig:
    return load_config(profile="local", overrides=[*overrides(workdir, seed, users, drift, days), *extra], env={})


def build_and_train(config: ClickmlConfig, spark, timings: dict[str, float]) -> tuple[str, float | None]:
    """generate -> ingest -> silver -> features -> training set -> lr: (registered version, its test AUC)."""
    from pipelines import generate, ingest, silver
    from pipelines.features import stage as features_stage
    from pipelines.training_sets import stage as training_sets_stage

    gen = config.generator
    begin = dt.datetime.combine(gen.start_date, dt.time(), dt.timezone.utc)
    mark = time.time()
    generate.run(config, spark)
    ingest.run(config, spark, None, begin, begin + dt.timedelta(days=gen.days + 1))
    silver.run(config, spark)
    features_stage.run(config, spark)
    training_sets_stage.run(config, spark)
    timings["pipeline"] = time.time() - mark
    mark = time.time()
    version, test_auc, _ = train(config, spark)
    timings["train"] = time.time() - mark
    return version, test_auc


def reference_profile(config: ClickmlConfig, version: str) -> str:
    """The reference profile JSON the training run of `version` logged."""
    import mlflow
    from mlflow import MlflowClient

    from pipelines.train.stage import REFERENCE_PROFILE
    from pipelines.train.tracking import configure

    configure(config)
    run_id = MlflowClient().get_model_version(config.training.jobs[JOB].registry.name, version).run_id
    return mlflow.artifacts.load_text(f"runs:/{run_id}/{REFERENCE_PROFILE}")


def null_simulation(profile_json: str, sizes: list[tuple[int, int]], draws: int = 200, seed: int = 0) -> list[str]:
    """Without drift, how often the default thresholds alert at a sample size: reference and current
    cells drawn (multinomial) from the same distribution - the reference profile's cell proportions,
    feature by feature - judged by the monitor's own PSI / chi-square / JS, thresholds and rule
    (`pipelines.monitor.drift`, `judge`: PSI and JS count when their cells' chi-square is
    significant). KS is left out (its p-value gate keeps it quiet)."""
    import numpy as np

    from pipelines.config.monitoring import DriftThresholds
    from pipelines.monitor.drift import DriftStat, chi_square, js_distance, psi
    from pipelines.monitor.judge import ALERT, judge
    from pipelines.monitor.profile import ReferenceProfile

    profile = ReferenceProfile.from_json(profile_json)
    t = DriftThresholds()
    rng = np.random.default_rng(seed)
    cells = {f.name: [*f.bin_counts, f.missing] for f in profile.numeric}
    cells.update({f.name: f.cell_counts() for f in profile.categorical})
    lines = []
    for n_ref, n_cur in sizes:
        any_alert = np.zeros(draws, dtype=bool)
        by_stat = {"psi": 0, "js": 0, "chi2": 0}
        median_js = []
        for counts in cells.values():
            p = np.asarray(counts, dtype=float) / sum(counts)
            js_values = []
            for i in range(draws):
                r, c = rng.multinomial(n_ref, p), rng.multinomial(n_cur, p)
                js = js_distance(r, c)
                _, p_value = chi_square(r, c)
                stats = {k: DriftStat("f", "numeric", k, v, p_value, n_ref, n_cur)
                         for k, v in (("psi", psi(r, c)), ("js", js), ("chi2", 0.0))}
                hits = {k: judge(stat, t, js).status == ALERT for k, stat in stats.items()}
                for k, hit in hits.items():
                    by_stat[k] += bool(hit)
                any_alert[i] |= any(hits.values())
                js_values.append(js)
            median_js.append(float(np.median(js_values)))
        n = draws * len(cells)
        lines.append(f"reference {n_ref:>5} / current {n_cur:>5} rows: P(some feature alerts) {any_alert.mean():.2f}; "
                     f"per feature P(alert) PSI {by_stat['psi'] / n:.3f}, JS {by_stat['js'] / n:.3f}, chi-square "
                     f"{by_stat['chi2'] / n:.3f}; largest median JS distance {max(median_js):.3f}")
    return lines


NULL_SIZES = [(300, 100), (1200, 400), (3000, 1000), (4500, 1500)]


def train(config: ClickmlConfig, spark) -> tuple[str, float | None, bool]:
    """Train lr on the current training set: (registered version, test AUC, promoted to champion)."""
    from pipelines.train import stage as train_stage

    (model,) = train_stage.run(config, spark, jobs=[JOB], models=["lr"]).models
    if model.decision is None:
        raise RuntimeError(f"{JOB}/lr was not registered: {model.promotion()}")
    return str(model.decision.version), model.metrics.get("roc_auc"), bool(model.decision.promoted)


def monitor(config: ClickmlConfig, spark, version: str, result: RunResult, dates: list[dt.date]) -> None:
    """Score each as-of date of `dates` with `version` and monitor it; alerting features into `result`."""
    from pipelines.monitor import stage as monitor_stage
    from pipelines.monitor.judge import ALERT, WARN
    from pipelines.score import stage as score_stage

    for date in dates:
        scored = score_stage.run(config, spark, JOB, as_of=date, version=version)
        checked = monitor_stage.run(config, spark, JOB, as_of=date, version=version)
        result.rows[date] = scored.rows
        result.alerts[date] = checked.features_with(ALERT)
        result.warns[date] = checked.features_with(WARN)


def retrain_and_compare(config: ClickmlConfig, spark, stale: str, result: RunResult) -> None:
    """Rebuild the training set on POST_CUTOFFS, retrain, and evaluate both versions on the test cutoff."""
    from pyspark.sql import functions as F

    from pipelines.lake import Lake
    from pipelines.monitor import performance
    from pipelines.score import stage as score_stage
    from pipelines.training_sets import stage as training_sets_stage

    post = config.model_copy(deep=True)
    post.training_sets.propensity.cutoffs = list(POST_CUTOFFS)
    training_sets_stage.run(post, spark)
    retrained, _, result.promoted = train(post, spark)
    test_date = POST_CUTOFFS[-1]
    for version in (stale, retrained):
        score_stage.run(post, spark, JOB, as_of=test_date, version=version)
    scored = Lake(post, spark).read(post.tables.predictions).where(
        (F.col("job") == JOB) & (F.col("as_of_date") == F.lit(test_date)))
    name = post.training.jobs[JOB].registry.name
    evaluated = {p.model_version: p.metrics["roc_auc"] for p in performance.evaluate(post, spark, JOB, scored, name, 1.0)}
    result.auc = {"stale": evaluated[stale], "retrained": evaluated[retrained]}


def run_once(spark, workdir: Path, seed: int, users: int, drift: bool, dates: list[dt.date] = MONITORED,
             retrain: bool = True) -> RunResult:
    """One run (see the module docstring) monitoring `dates`; a drift run also retrains and compares
    (unless `retrain` is false)."""
    started = time.time()
    # One day more than the last date needs: the generator leaves out sessions that would run past
    # the end of the period, so the last day is thinner (its as-of date warned on recency features).
    days = (POST_CUTOFFS[-1] - START).days + 1 if drift and retrain else (max(dates) - START).days + 1
    config = make_config(workdir, seed, users, drift, days)
    result = RunResult(seed, drift)
    result.stale_version, result.stale_test_auc = build_and_train(config, spark, result.timings)
    result.profile = reference_profile(config, result.stale_version)
    mark = time.time()
    monitor(config, spark, result.stale_version, result, dates)
    result.timings["monitor"] = time.time() - mark
    if drift and retrain:
        mark = time.time()
        retrain_and_compare(config, spark, result.stale_version, result)
        result.timings["retrain"] = time.time() - mark
    result.seconds = time.time() - started
    return result


def _names(names: list[str]) -> str:
    return ", ".join(n.removeprefix("u_") for n in names) or "-"


def report(results: list[RunResult]) -> str:
    """The table: per run and monitored date the alerting features; delay, false alarms, AUCs."""
    lines = [f"monitored as-of dates {', '.join(d.isoformat() for d in MONITORED)}; drift from {DRIFT_DAY} "
             f"(first as-of date that sees it: {DRIFT_DAY + dt.timedelta(days=1)}); affected: {', '.join(sorted(AFFECTED))}",
             f"{'seed':>5} {'drift':>5} " + " ".join(f"{'alerts ' + d.strftime('%m-%d'):<34}" for d in MONITORED)
             + f" {'delay':>5} {'false':>5} {'rows':>5} {'s':>5}"]
    for r in results:
        cells = " ".join(f"{_names(r.alerts.get(d, [])):<34}" for d in MONITORED)
        delay = "-" if not r.drift else ("none" if r.delay is None else f"{r.delay}d")
        lines.append(f"{r.seed:>5} {'yes' if r.drift else 'no':>5} {cells} {delay:>5} {len(r.false_alarms()):>5} "
                     f"{min(r.rows.values(), default=0):>5} {r.seconds:>5.0f}")
    clean = [r for r in results if not r.drift]
    if clean:
        alarmed = [r for r in clean if r.false_alarms()]
        checks = sum(len(r.alerts) for r in clean)
        dated = sum(1 for r in clean for names in r.alerts.values() if names)
        lines.append(f"no drift: {len(alarmed)}/{len(clean)} seeds with any alert (false-alarm rate "
                     f"{len(alarmed) / len(clean):.2f} per seed, {dated}/{checks} = {dated / checks:.3f} per monitored date)")
    for r in results:
        if r.drift:
            pre = [f"{d}: {_names(r.alerts[d])}" for d in MONITORED if d <= DRIFT_DAY]
            lines.append(f"drift seed {r.seed}: detection delay {'none' if r.delay is None else f'{r.delay} day(s)'}; "
                         f"false alarms {len(r.false_alarms())} {r.false_alarms() or ''}; clean dates {'; '.join(pre)}")
            test = f"{r.stale_test_auc:.4f}" if r.stale_test_auc is not None else "n/a"
            lines.append(f"  AUC on the post-drift test date {POST_CUTOFFS[-1]}: stale v{r.stale_version} "
                         f"{r.auc.get('stale', float('nan')):.4f} (its pre-drift test AUC {test}), retrained "
                         f"{r.auc.get('retrained', float('nan')):.4f} (promotion gate: "
                         f"{'champion' if r.promoted else 'stayed challenger'})")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20, help="no-drift seeds (default 20)")
    parser.add_argument("--first-seed", type=int, default=1, help="the no-drift seeds are first-seed .. first-seed + seeds - 1")
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--drift-seed", type=int, default=1000, help="seed of the drift run")
    parser.add_argument("--no-drift-run", action="store_true", help="only the no-drift seeds")
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="start no new run after this many minutes; the report covers the runs done")
    parser.add_argument("--null-profile", help="only the null simulation, on this reference_profile.json")
    parser.add_argument("--workdir", help="default: a temporary folder")
    parser.add_argument("--keep", action="store_true", help="keep each run's lake and MLflow store")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.null_profile:
        print("\n".join(null_simulation(Path(args.null_profile).read_text(), NULL_SIZES)))
        return
    from pipelines.spark import build_session

    root = Path(args.workdir or tempfile.mkdtemp(prefix="clickml-drift-"))
    spark = build_session(make_config(root / "session", 0, args.users, False, 10),
                          extra={"spark.ui.enabled": "false", "spark.databricks.delta.log.cacheSize": "20"})
    spark.sparkContext.setLogLevel("ERROR")
    plan = ([] if args.no_drift_run else [(args.drift_seed, True)]) + [(s, False) for s in range(args.first_seed, args.first_seed + args.seeds)]
    results = []
    started = time.time()
    for seed, drift in plan:
        if args.max_minutes is not None and time.time() - started > 60 * args.max_minutes:
            print(f"--max-minutes {args.max_minutes:g} reached: {len(results)} of {len(plan)} runs done")
            break
        workdir = root / f"{'drift' if drift else 'clean'}-{seed}"
        result = run_once(spark, workdir, seed, args.users, drift)
        results.append(result)
        print(f"[{time.time() - started:.0f}s] seed {seed} {'drift' if drift else 'no drift'}: alerts "
              f"{ {d.isoformat(): r for d, r in result.alerts.items()} } warns { {d.isoformat(): r for d, r in result.warns.items()} }"
              f"{' AUC ' + str(result.auc) if drift else ''} ({result.seconds:.0f}s: "
              f"{', '.join(f'{k} {v:.0f}' for k, v in result.timings.items())})", flush=True)
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print()
    print(f"drift detection, {args.users} users, {len(results)} runs in {time.time() - started:.0f}s")
    print(report(results))
    if results and results[0].profile:
        print(f"\nno drift, simulated (the reference profile of seed {results[0].seed}, {args.users} users: "
              f"{min(results[0].rows.values(), default=0)} scored rows per date):")
        print("\n".join(null_simulation(results[0].profile, NULL_SIZES)))
    spark.stop()


if __name__ == "__main__":
    main()
