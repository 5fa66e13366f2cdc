"""Quality benchmark of the propensity models (a report, not a test).

    .venv/bin/python benchmarks/model_quality.py       # 4,000 users x 120 days, windows 7/30/90 days
    .venv/bin/python benchmarks/model_quality.py --days 60 --windows 1,7,30 --min-history 30 --workdir /tmp/mq --keep

Runs the pipeline on generated data - generate, ingest, silver, features, training sets - with the
test cutoff at the generator's oracle window (purchase in (cutoff, cutoff + 7 days]) and one
validation cutoff a horizon before it (train cutoffs before that, embargoed), trains the
configured LR, RF and GBT with `clickml train`'s code, and prints, side by side:

- the generator's known best AUC for that window, users with history. Two figures:
  - the ex-ante probability (`ex_ante_window_probability`): the user's purchase probability
    implied by its latent attributes (propensity, session rate, home device) at the cutoff, the
    best any predictor at the cutoff can do, even one that knew every latent attribute exactly.
    Scored on exactly the models' test examples and labels, it is the target; over every user
    with history (`ex_ante_window_auc`) it is printed for reference.
  - `oracle_window_auc`: scores that also know the window's future sessions (how many, device,
    referrer); no predictor at the cutoff can know them, so this is an upper bound only;
- each model's test AUC and training time; target: the best within 0.02 AUC of the known best;
- LightGBM trained on the same training set (early stopping on the validation split), scored on
  the same test split; target: GBT within 0.01 AUC of it. LightGBM is installed for this script
  only (`pip install lightgbm`), it is not a dependency of the package.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines import generate, ingest, silver
from pipelines.config import load_config
from pipelines.generate import ex_ante_window_auc, ex_ante_window_probability, oracle_window_auc
from pipelines.generate.latent import auc, default_window
from pipelines.lake import Lake
from pipelines.spark import build_session
from pipelines.train import stage as train_stage
from pipelines.training_sets import stage as training_sets_stage

HORIZON = 7
AUC_GAP_ORACLE = 0.02
AUC_GAP_LIGHTGBM = 0.01


def cutoffs(test_cutoff: dt.date, first_day: dt.date, min_history: int) -> list[dt.date]:
    """Train cutoffs every day up to two horizons before the test cutoff, one validation cutoff
    one horizon before it, and the test cutoff (the embargo then holds exactly)."""
    validation = test_cutoff - dt.timedelta(days=HORIZON)
    last_train = validation - dt.timedelta(days=HORIZON)
    first = first_day + dt.timedelta(days=min_history)
    if last_train < first:
        raise SystemExit(f"not enough days: the last train cutoff {last_train} is before {first}; use more --days")
    train = [first + dt.timedelta(days=k) for k in range((last_train - first).days + 1)]
    return [*train, validation, test_cutoff]


def lightgbm_auc(frame, seed: int) -> tuple[float, float]:
    """(test AUC, seconds) of LightGBM on the same training set (pandas; benchmark only)."""
    try:
        import lightgbm as lgb
    except ImportError:
        print("lightgbm is not installed: `pip install lightgbm` to compare (benchmark only)")
        return float("nan"), float("nan")
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    data = frame.toPandas()  # the benchmark's training set: bounded by --users
    features = [c for c in data.columns if c not in ("example_id", "cutoff", "label", "split", "user_id", "product_id")]
    for c in features:
        if not (pd.api.types.is_numeric_dtype(data[c]) or pd.api.types.is_bool_dtype(data[c])):
            data[c] = data[c].astype("category")
    parts = {s: data[data["split"] == s] for s in ("train", "validation", "test")}
    started = time.time()
    model = lgb.LGBMClassifier(n_estimators=2000, learning_rate=0.03, num_leaves=31, min_child_samples=20,
                               subsample=0.8, subsample_freq=1, colsample_bytree=0.8, random_state=seed, verbose=-1)
    model.fit(parts["train"][features], parts["train"]["label"],
              eval_set=[(parts["validation"][features], parts["validation"]["label"])], eval_metric="auc",
              callbacks=[lgb.early_stopping(100, verbose=False)])
    seconds = time.time() - started
    auc = roc_auc_score(parts["test"]["label"], model.predict_proba(parts["test"][features])[:, 1])
    return float(auc), seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=4000)
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--min-history", type=int, default=90,
                        help="days of data before the first train cutoff (default: the longest feature window, "
                             "so train and test examples see full windows)")
    parser.add_argument("--windows", default="7,30,90",
                        help="feature windows in days (features.windows_days), e.g. 7,30,90: longer history "
                             "estimates each user's latent propensity better")
    parser.add_argument("--workdir", help="default: a temporary folder")
    parser.add_argument("--keep", action="store_true", help="keep the workdir")
    args = parser.parse_args()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="clickml-quality-"))
    base = load_config(profile="local", overrides=[
        f"lake.root={workdir / 'lakehouse'}", f"landing.root={workdir / 'landing'}",
        f"generator.users={args.users}", f"generator.days={args.days}",
        "generator.bad_records.share=0", "generator.late_share=0",
    ])
    test_cutoff, horizon = default_window(base.generator)
    if horizon != HORIZON:
        raise SystemExit(f"the oracle horizon is {horizon} days; this benchmark expects {HORIZON} (use --days >= 14)")
    chosen = cutoffs(test_cutoff, base.generator.start_date, args.min_history)
    share = 0.99 / len(chosen)
    config = load_config(profile="local", overrides=[
        f"lake.root={workdir / 'lakehouse'}", f"landing.root={workdir / 'landing'}",
        f"generator.users={args.users}", f"generator.days={args.days}",
        "generator.bad_records.share=0", "generator.late_share=0",
        f"training_sets.propensity.horizon_days={HORIZON}",
        f"features.windows_days=[{args.windows}]",
        f"training_sets.propensity.cutoffs={json.dumps([c.isoformat() for c in chosen])}",
        f"training_sets.propensity.validation_share={share}", f"training_sets.propensity.test_share={share}",
        "training.jobs.propensity.registry=null", "training.default_jobs=[propensity]",
    ])
    spark = build_session(config)
    lake = Lake(config, spark)
    try:
        t0 = time.time()
        generated = generate.run(config, spark, lake=lake)
        start = dt.datetime.combine(config.generator.start_date, dt.time(), dt.UTC)
        ingest.run(config, spark, "clickstream", start, start + dt.timedelta(days=args.days + 3), lake=lake)
        silver.run(config, spark, lake=lake)
        sets = training_sets_stage.run(config, spark, lake=lake)
        prepared = time.time() - t0
        truth_sessions = lake.read(config.tables.truth_sessions)
        truth_users = lake.read(config.tables.truth_users)
        seeing = oracle_window_auc(truth_sessions, test_cutoff, HORIZON)
        history = ex_ante_window_auc(truth_users, truth_sessions, test_cutoff, HORIZON, config.generator)
        # The target: the ex-ante probability scored on exactly the models' test examples and labels.
        test = lake.read(config.tables.propensity_training).where("split = 'test'").select("user_id", "label")
        ex_ante = ex_ante_window_probability(truth_users, test_cutoff, HORIZON, config.generator)
        oracle = auc(test.join(ex_ante, "user_id"), "p_ex_ante", "label")
        trained = train_stage.run(config, spark)
        print(trained.table(), flush=True)
        lgb_auc, lgb_seconds = lightgbm_auc(lake.read(config.tables.propensity_training), config.training.jobs["propensity"].data.seed)
    finally:
        spark.stop()
        if not args.keep and not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)

    print()
    print(f"model quality: {args.users:,} users x {args.days} days, {generated.events:,} events; "
          f"test cutoff {test_cutoff}, horizon {HORIZON} days; data prepared in {prepared:.0f}s")
    print(f"  {sets.report()}")
    print(f"  {'model':<14} {'test AUC':>9} {'vs best':>10} {'train s':>8}")
    print(f"  {'known best':<14} {oracle:>9.4f} {'':>10} {'':>8}   ex ante: latent attributes at the cutoff")
    print(f"  {'(all history)':<14} {history:>9.4f} {history - oracle:>+10.4f} {'':>8}   the same, users with any history")
    print(f"  {'future-aware':<14} {seeing:>9.4f} {seeing - oracle:>+10.4f} {'':>8}   also sees the window's sessions (bound)")
    for m in trained.models:
        print(f"  {m.model:<14} {m.metrics['roc_auc']:>9.4f} {m.metrics['roc_auc'] - oracle:>+10.4f} {m.seconds:>8.1f}")
    print(f"  {'lightgbm':<14} {lgb_auc:>9.4f} {lgb_auc - oracle:>+10.4f} {lgb_seconds:>8.1f}")
    best = max(m.metrics["roc_auc"] for m in trained.models)
    gbt = next((m.metrics["roc_auc"] for m in trained.models if m.algorithm == "gbt"), float("nan"))
    ok_oracle = oracle - best <= AUC_GAP_ORACLE
    ok_lgb = lgb_auc - gbt <= AUC_GAP_LIGHTGBM
    print(f"  best model within {AUC_GAP_ORACLE} of the known best: {'yes' if ok_oracle else 'NO'} ({best - oracle:+.4f})")
    print(f"  GBT within {AUC_GAP_LIGHTGBM} of LightGBM: {'yes' if ok_lgb else 'NO'} ({gbt - lgb_auc:+.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
