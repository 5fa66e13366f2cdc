"""The training-sets stage: silver + gold features -> gold.propensity_training, gold.implicit_training.

Both tables are rebuilt in full (overwrite) from the silver version read at the start, so a
training set is a pure function of (config, silver version) and its Delta version identifies it.
The class balance of each split is reported.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from pipelines.config import ClickmlConfig
from pipelines.features import stage as features_stage
from pipelines.lake import Lake
from pipelines.training_sets.implicit import first_test_date, implicit_feedback
from pipelines.training_sets.propensity import (
    TrainingSetError,
    assign_splits,
    derive_cutoffs,
    examples,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SplitBalance:
    split: str
    rows: int
    positives: int

    @property
    def rate(self) -> float:
        return self.positives / self.rows if self.rows else float("nan")


@dataclass
class TrainingSetsResult:
    cutoffs: dict[dt.date, str] = field(default_factory=dict)
    """cutoff -> split of the propensity examples."""
    balance: list[SplitBalance] = field(default_factory=list)
    implicit_rows: dict[str, int] = field(default_factory=dict)
    """Implicit-feedback pairs per split."""
    versions: dict[str, int] = field(default_factory=dict)
    """Delta versions read and written, by table: the lineage of this build."""
    seconds: float = 0.0

    def report(self) -> str:
        balance = "; ".join(f"{b.split} {b.rows:,} rows, {b.positives:,} positive ({b.rate:.1%})" for b in self.balance)
        implicit = ", ".join(f"{k} {v:,}" for k, v in self.implicit_rows.items())
        return (
            f"training sets: propensity over {len(self.cutoffs)} cutoff(s): {balance}; "
            f"implicit feedback pairs: {implicit} ({self.seconds:.1f}s)"
        )


def _dates(files: dict[dt.date, list[str]], start: dt.date, end: dt.date) -> list[str]:
    """ISO event dates in [start, end) that silver has (for partition pruning)."""
    return [d.isoformat() for d in sorted(files) if start <= d < end]


def run(config: ClickmlConfig, spark: SparkSession, lake: Lake | None = None) -> TrainingSetsResult:
    """Build both training sets from the current silver snapshot (features are brought up to date
    for the cutoffs first)."""
    lake = lake or Lake(config, spark)
    tables = config.tables
    cfg = config.training_sets.propensity
    started = time.time()
    if not lake.exists(tables.silver_events):
        raise TrainingSetError(f"{tables.silver_events} does not exist: run the silver stage first")
    silver_version, files = features_stage.silver_files_by_date(lake, tables.silver_events)
    splits = assign_splits(cfg, derive_cutoffs(cfg, list(files)))
    cutoffs = sorted(splits)
    result = TrainingSetsResult(cutoffs=splits, versions={tables.silver_events: silver_version})
    log.info(
        "training sets: %d cutoff(s) %s..%s (%s), horizon %d day(s), unit %s",
        len(cutoffs), cutoffs[0], cutoffs[-1],
        ", ".join(f"{s} {sum(1 for v in splits.values() if v == s)}" for s in ("train", "validation", "test")),
        cfg.horizon_days, cfg.unit,
    )
    features_stage.run(config, spark, lake, as_of_dates=cutoffs)
    as_of = [("as_of_date", "in", [c.isoformat() for c in cutoffs])]
    features = {}
    for entity, attr in features_stage.ENTITY_TABLES.items():
        name = getattr(tables, attr)
        version = lake.version(name)
        result.versions[name] = version
        features[entity] = lake.read(name, version=version, partition_filters=as_of)

    one = dt.timedelta(days=1)
    window = _dates(files, cutoffs[0] - cfg.lookback_days * one, cutoffs[-1] + cfg.horizon_days * one)
    events = lake.read(tables.silver_events, version=silver_version, partition_filters=[("event_date", "in", window)])
    frame = examples(cfg, events, features, splits, max(config.features.windows_days))
    written = lake.write(frame, tables.propensity_training, mode="overwrite", overwrite_schema=True)
    result.versions[tables.propensity_training] = written.version
    counts = (
        lake.read(tables.propensity_training, version=written.version)
        .groupBy("split").agg(F.count(F.lit(1)).alias("rows"), F.sum("label").alias("positives"))
        .collect()  # bounded: one row per split
    )
    order = {"train": 0, "validation": 1, "test": 2}
    result.balance = sorted(
        (SplitBalance(r["split"], int(r["rows"]), int(r["positives"] or 0)) for r in counts), key=lambda b: order[b.split]
    )
    for b in result.balance:
        log.info("training set %s: %s rows, %s positive (%.2f%%)", b.split, f"{b.rows:,}", f"{b.positives:,}", 100 * b.rate)

    everything = lake.read(tables.silver_events, version=silver_version)
    test_from = first_test_date(config.training_sets.implicit, max(files))
    written = lake.write(
        implicit_feedback(everything, config.training_sets.implicit, test_from), tables.implicit_training,
        mode="overwrite", overwrite_schema=True,
    )
    result.versions[tables.implicit_training] = written.version
    pairs = lake.read(tables.implicit_training, version=written.version).groupBy("split").count().collect()  # bounded: 2 rows
    result.implicit_rows = {r["split"]: int(r["count"]) for r in sorted(pairs, key=lambda r: r["split"])}
    result.seconds = time.time() - started
    log.info("%s", result.report())
    return result
