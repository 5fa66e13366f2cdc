"""Performance once labels mature: each scored as-of date whose label horizon has passed is joined
with its realized labels and evaluated like the model's test split.

The realized labels are the propensity training set's own (`tables.propensity_training`, label =
a purchase within `horizon_days` after the cutoff): a scored as-of date is evaluated once the
training set holds examples with that cutoff, i.e. once its horizon lies inside the observed
events. Same entities, same label definition as training, so the figures compare with the
model's test figures (its MLflow run), which are stored next to them in `tables.monitor_performance`.
An AUC more than `monitoring...thresholds.auc_drop` below the test AUC alerts.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from pipelines.config import ClickmlConfig
from pipelines.lake import Lake

log = logging.getLogger(__name__)

METRICS = ("roc_auc", "pr_auc", "log_loss", "calibration_error", "top_decile_lift", "base_rate", "rows")
PARTITIONS = ["job"]
SCHEMA = T.StructType([
    T.StructField("job", T.StringType()),
    T.StructField("as_of_date", T.DateType()),
    T.StructField("model_name", T.StringType()),
    T.StructField("model_version", T.StringType()),
    T.StructField("metric", T.StringType()),
    T.StructField("value", T.DoubleType()),
    T.StructField("test_value", T.DoubleType()),
    T.StructField("status", T.StringType()),
    T.StructField("evaluated_at", T.TimestampType()),
])


@dataclass(frozen=True)
class Performance:
    as_of: dt.date
    model_version: str
    metrics: dict[str, float]
    test: dict[str, float]
    status: str
    """`alert` when the AUC dropped more than the margin below the test AUC, else `ok`."""


def auc_status(value: float, test: float | None, drop: float) -> str:
    """`alert` when `value` is more than `drop` below the test AUC (NaN or no test figure: ok)."""
    if test is None or math.isnan(value) or math.isnan(test):
        return "ok"
    return "alert" if value < test - drop else "ok"


def evaluate(config: ClickmlConfig, spark: SparkSession, job: str, scored: DataFrame, model_name: str,
             drop: float) -> list[Performance]:
    """Every (as-of date, model version) of `scored` (the job's rows of `tables.predictions`) whose
    labels have matured, evaluated against them."""
    from pipelines.evaluate.binary import binary_metrics
    from pipelines.score.stage import run_metrics

    lake = Lake(config, spark)
    training = config.tables.propensity_training
    if not lake.exists(training):
        log.info("performance %s: %s does not exist; no labels yet", job, training)
        return []
    keys = ["user_id"] + (["product_id"] if config.training_sets.propensity.unit == "user_product" else [])
    labelled = lake.read(training)
    # Bounded: one row per cutoff of the training set / per scored (date, version).
    cutoffs = {r[0] for r in labelled.select("cutoff").distinct().collect()}
    slices = scored.groupBy("as_of_date", "model_version", "run_id", "threshold").count().collect()
    out = []
    for s in sorted(slices, key=lambda s: (s["as_of_date"], s["model_version"])):
        date, version = s["as_of_date"], s["model_version"]
        if date not in cutoffs:
            log.info("performance %s as of %s (v%s): labels not matured yet (no training examples with that cutoff)",
                     job, date, version)
            continue
        labels = labelled.where(F.col("cutoff") == F.lit(date)).select(
            *[F.col(k).cast("string").alias(k) for k in keys], F.col("label").cast("double").alias("label"))
        rows = scored.where((F.col("as_of_date") == F.lit(date)) & (F.col("model_version") == version)).select(*keys, "score")
        joined = rows.join(labels, keys, "inner")
        metrics = binary_metrics(joined, "label", "score", threshold=s["threshold"], table=f"{job} as of {date}").metrics
        test = run_metrics(s["run_id"])
        status = auc_status(metrics["roc_auc"], test.get("roc_auc"), drop)
        out.append(Performance(date, version, {m: float(metrics[m]) for m in METRICS}, test, status))
        log.info("performance %s as of %s (v%s): AUC %.4f (test %s), log loss %.4f, ECE %.4f -> %s", job, date, version,
                 metrics["roc_auc"], f"{test['roc_auc']:.4f}" if "roc_auc" in test else "n/a", metrics["log_loss"],
                 metrics["calibration_error"], status)
    return out


def write(config: ClickmlConfig, spark: SparkSession, job: str, model_name: str, results: list[Performance]) -> int | None:
    """The rows of `results` into `tables.monitor_performance`, replacing those of the same
    (job, as-of date, model version); returns the table version (None when nothing to write)."""
    if not results:
        return None
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    rows = [
        (job, p.as_of, model_name, p.model_version, m, p.metrics[m], p.test.get(m), p.status if m == "roc_auc" else "ok", now)
        for p in results for m in METRICS
    ]
    frame = spark.createDataFrame(rows, SCHEMA)
    lake = Lake(config, spark)
    table = config.tables.monitor_performance
    replace = [{"job": job, "as_of_date": p.as_of.isoformat(), "model_version": p.model_version} for p in results]
    if lake.exists(table):
        return lake.write(frame, table, mode="overwrite_partitions", partition_by=PARTITIONS, replace_partitions=replace).version
    return lake.write(frame, table, mode="overwrite", partition_by=PARTITIONS).version
