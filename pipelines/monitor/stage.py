"""The monitoring stage: `clickml monitor JOB` - drift of a scored population against the model's
training reference.

For the job's scored as-of date (default: the latest in `tables.predictions`) and model version
(default: the one scored as `champion` that day, else the latest scored), the stage reads the
reference profile the training stage logged beside that version's model
(`monitor/reference_profile.json` in its MLflow run), rebuilds the feature rows of the date the way
scoring built them, joins the scores, and computes PSI, KS, chi-square and JS per feature and for
the score (`pipelines.monitor.drift`, counted in Spark). Each statistic is judged ok / warn /
alert against `monitoring` (`pipelines.monitor.judge`). The rows go to `tables.monitor_drift`,
partitioned by (job, as_of_date); a rerun replaces its (job, date, version) slice, so changed
thresholds take effect. The summary names the features that warn or alert.

Then every scored date of the job whose labels have matured is evaluated against them
(`pipelines.monitor.performance`) into `tables.monitor_performance`, next to the model's test
figures; an AUC drop beyond `auc_drop` on the latest evaluated date alerts too. The HTML report
(`pipelines.monitor.report`) goes beside the Data Docs and into the model's MLflow run.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from pipelines.config import ClickmlConfig
from pipelines.lake import Lake
from pipelines.monitor import performance
from pipelines.monitor.drift import compare
from pipelines.monitor.judge import ALERT, OK, RANK, WARN, Judged, feature_status, judge_all
from pipelines.monitor.performance import Performance
from pipelines.monitor.profile import ReferenceProfile
from pipelines.monitor.report import write_report
from pipelines.train.errors import TrainError

log = logging.getLogger(__name__)

PARTITIONS = ["job", "as_of_date"]
DRIFT_SCHEMA = T.StructType([
    T.StructField("job", T.StringType()),
    T.StructField("as_of_date", T.DateType()),
    T.StructField("model_name", T.StringType()),
    T.StructField("model_version", T.StringType()),
    T.StructField("feature", T.StringType()),
    T.StructField("kind", T.StringType()),
    T.StructField("statistic", T.StringType()),
    T.StructField("value", T.DoubleType()),
    T.StructField("p_value", T.DoubleType()),
    T.StructField("n_reference", T.LongType()),
    T.StructField("n_current", T.LongType()),
    T.StructField("approximate", T.BooleanType()),
    T.StructField("status", T.StringType()),
    T.StructField("reason", T.StringType()),
    T.StructField("monitored_at", T.TimestampType()),
])


class MonitorError(TrainError):
    """A job cannot be monitored as asked (not scored, no reference profile); the message says why."""


@dataclass
class MonitorResult:
    job: str
    as_of: dt.date
    model_name: str
    model_version: str
    judged: list[Judged] = field(default_factory=list)
    table_version: int | None = None
    performance: list[Performance] = field(default_factory=list)
    """Scored dates whose labels matured, evaluated (every version and date of the job)."""
    report_path: str | None = None
    """The HTML report (beside the Data Docs; also logged to the model's run)."""
    seconds: float = 0.0

    @property
    def statuses(self) -> dict[str, str]:
        return feature_status(self.judged)

    @property
    def alert(self) -> bool:
        """Drift alerted, or the latest evaluated date's AUC dropped below the test AUC by the margin."""
        latest = max(self.performance, key=lambda p: p.as_of, default=None)
        return ALERT in self.statuses.values() or (latest is not None and latest.status == ALERT)

    def features_with(self, status: str) -> list[str]:
        return sorted(f for f, s in self.statuses.items() if s == status)

    def report(self) -> str:
        statuses = self.statuses
        parts = []
        for status in (ALERT, WARN):
            names = self.features_with(status)
            if names:
                parts.append(f"{len(names)} {status} ({', '.join(names)})")
        parts.append(f"{sum(1 for s in statuses.values() if s == OK)} ok")
        latest = max(self.performance, key=lambda p: p.as_of, default=None)
        if latest is not None:
            test = latest.test.get("roc_auc")
            parts.append(f"AUC as of {latest.as_of} {latest.metrics['roc_auc']:.4f} (test "
                         f"{'n/a' if test is None else f'{test:.4f}'}, {latest.status})")
        return (f"monitor {self.job} as of {self.as_of} ({self.model_name} v{self.model_version}): "
                f"{'; '.join(parts)} -> drift {'ALERT' if self.alert else 'no alert'} ({self.seconds:.1f}s)")


def pick_scored(rows: list[dict], as_of: dt.date | None, version: str | None, table: str, job: str) -> tuple[dt.date, str, str | None]:
    """(as-of date, model version, run id) to monitor among the scored (date, version, alias,
    run id) rows of `job`: the requested or latest date; the requested version, else the one
    scored as champion that day, else the latest scored."""
    if not rows:
        raise MonitorError(f"{table} has no scores of job {job}: score it first (clickml score {job})")
    dates = sorted({r["as_of_date"] for r in rows})
    date = as_of or dates[-1]
    of_date = [r for r in rows if r["as_of_date"] == date]
    if not of_date:
        raise MonitorError(f"{table} has no scores of job {job} as of {date}; scored dates: "
                           f"{', '.join(d.isoformat() for d in dates[-10:])}")
    if version is not None:
        chosen = [r for r in of_date if r["model_version"] == str(version)]
        if not chosen:
            raise MonitorError(f"{table}: job {job} as of {date} was not scored by version {version} "
                               f"(scored by: {', '.join(sorted({r['model_version'] for r in of_date}))})")
    else:
        chosen = [r for r in of_date if r["model_alias"] == "champion"] or sorted(of_date, key=lambda r: r["scored_at"])[-1:]
    return date, chosen[-1]["model_version"], chosen[-1]["run_id"]


def load_profile(run_id: str | None, model: str, version: str) -> ReferenceProfile:
    """The reference profile logged in the model version's training run."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from pipelines.train.stage import REFERENCE_PROFILE

    if not run_id:
        raise MonitorError(f"{model} v{version} has no training run id: no reference profile to compare with")
    try:
        text = mlflow.artifacts.load_text(f"runs:/{run_id}/{REFERENCE_PROFILE}")
    except (MlflowException, OSError) as exc:
        raise MonitorError(f"{model} v{version} (run {run_id}) has no {REFERENCE_PROFILE}: it was trained before "
                           f"reference profiles were logged; retrain it (clickml train) ({str(exc).splitlines()[0]})") from exc
    return ReferenceProfile.from_json(text)


def drift_rows(spark: SparkSession, result: MonitorResult, monitored_at: dt.datetime) -> DataFrame:
    """The judged statistics as rows of `tables.monitor_drift` (one per feature and statistic)."""
    rows = [
        (result.job, result.as_of, result.model_name, result.model_version, j.stat.feature, j.stat.kind, j.stat.statistic,
         float(j.stat.value), j.stat.p_value, int(j.stat.n_reference), int(j.stat.n_current), bool(j.stat.approximate),
         j.status, j.reason, monitored_at)
        for j in result.judged
    ]
    return spark.createDataFrame(rows, DRIFT_SCHEMA)


def current_population(config: ClickmlConfig, lake: Lake, predictions: DataFrame, as_of: dt.date) -> DataFrame:
    """The feature rows of `as_of` (as scoring built them) with the scores of `predictions`."""
    from pipelines.score.stage import propensity_frame

    keys = ["user_id"] + (["product_id"] if config.training_sets.propensity.unit == "user_product" else [])
    features = propensity_frame(config, lake, as_of)
    for key in keys:
        features = features.withColumn(key, F.col(key).cast("string"))
    return features.join(predictions.select(*keys, "score"), keys, "inner")


def run(config: ClickmlConfig, spark: SparkSession, job: str, as_of: dt.date | None = None,
        version: str | None = None) -> MonitorResult:
    """Monitor `job`'s scored population as of `as_of` (default: the latest scored)."""
    from pipelines.train.tracking import configure

    started = time.time()
    spec = config.training.jobs.get(job)
    if spec is None:
        raise MonitorError(f"unknown training job {job!r}; configured: {', '.join(config.training.jobs) or 'none'}")
    if spec.task != "binary" or spec.registry is None:
        raise MonitorError(f"job {job}: drift monitoring covers registered binary jobs (this one is {spec.task}"
                           f"{', without a registry' if spec.registry is None else ''})")
    lake = Lake(config, spark)
    table = config.tables.predictions
    if not lake.exists(table):
        raise MonitorError(f"{table} does not exist: score the job first (clickml score {job})")
    scored = lake.read(table).where(F.col("job") == job)
    # Bounded: one row per (as-of date, model version) scored for the job.
    keys = scored.groupBy("as_of_date", "model_version", "model_alias", "run_id").agg(F.max("scored_at").alias("scored_at"))
    date, model_version, run_id = pick_scored([r.asDict() for r in keys.collect()], as_of, version, table, job)
    configure(config)
    profile = load_profile(run_id, spec.registry.name, model_version)
    predictions = scored.where((F.col("as_of_date") == F.lit(date)) & (F.col("model_version") == model_version))
    current = current_population(config, lake, predictions, date)
    log.info("monitor %s as of %s: %s v%s against its training reference (%d rows)", job, date, spec.registry.name,
             model_version, profile.count)
    result = MonitorResult(job, date, spec.registry.name, model_version)
    cells: dict = {}
    result.judged = judge_all(compare(profile, current, cells), config.monitoring.for_job(job))
    rows = drift_rows(spark, result, dt.datetime.now(dt.timezone.utc).replace(tzinfo=None))
    target = config.tables.monitor_drift
    replace = [{"job": job, "as_of_date": date.isoformat(), "model_version": model_version}]
    if lake.exists(target):
        written = lake.write(rows, target, mode="overwrite_partitions", partition_by=PARTITIONS, replace_partitions=replace)
    else:
        written = lake.write(rows, target, mode="overwrite", partition_by=PARTITIONS)
    result.table_version = written.version
    drop = config.monitoring.for_job(job).thresholds.auc_drop
    result.performance = performance.evaluate(config, spark, job, scored, spec.registry.name, drop)
    performance.write(config, spark, job, spec.registry.name, result.performance)
    history = []
    if lake.exists(config.tables.monitor_performance):
        # Bounded: the job's evaluated dates x a handful of metrics.
        history = [r.asDict() for r in lake.read(config.tables.monitor_performance)
                   .where((F.col("job") == job) & (F.col("metric") == "roc_auc")).collect()]
    result.report_path = write_report(config, result, cells, history, run_id)
    result.seconds = time.time() - started
    for j in sorted(result.judged, key=lambda j: -RANK[j.status]):
        if j.status != OK:
            log.warning("monitor %s: %s %s %s: %s", job, j.status.upper(), j.stat.feature, j.stat.statistic, j.reason)
    log.info("%s", result.report())
    return result
