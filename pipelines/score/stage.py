"""The scoring stage: `clickml score JOB` - the model behind an alias (default `champion`) or a
version scores the feature rows of one as-of date (default: the latest built) into the lake.

- Binary jobs trained on `tables.propensity_training`: the scoring frame is built by the training
  set's own `examples` (same entities, same point-in-time features, for one cutoff = the as-of
  date) without its label and split; each row gets `score` = P(1) and `decision` = score >=
  the model's threshold. The `predictions` suite (the job's `registry.prediction_suite`) gates the
  scores before anything is written. Rows go to `tables.predictions`.
- Recommendation jobs trained on `tables.implicit_training`: the top `k` (the job's `k`) items per
  user active as of the date (the same users the propensity examples take: an event within
  `lookback_days`) that the model has factors for, as (user_id, product_id, rank, score) rows in
  `tables.recommendations` (no suite: ALS scores are not probabilities).

Both tables are partitioned by (job, as_of_date). A run replaces the rows of its (job, as-of date,
model version) and nothing else (other versions, e.g. champion and challenger, sit side by side),
in a Delta transaction keyed by them: re-running the same version for the same date writes
nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from pipelines.config import ClickmlConfig
from pipelines.config.models import TrainJobSpec
from pipelines.lake import Lake, Txn
from pipelines.train.errors import TrainError

log = logging.getLogger(__name__)

DEFAULT_ALIAS = "champion"
DEFAULT_THRESHOLD = 0.5
DEFAULT_SUITE = "predictions"
TXN_APP = "clickml.score"
PARTITIONS = ["job", "as_of_date"]
MODEL_COLUMNS = ("model_name", "model_version", "model_alias", "run_id", "scored_at")


class ScoringError(TrainError):
    """A job cannot be scored as asked (unknown job, no model, no features for the date, a
    failed prediction gate); the message names what and where."""


@dataclass(frozen=True)
class ModelRef:
    """The registered model version a run scores with."""

    name: str
    version: str
    alias: str | None
    run_id: str | None
    uri: str
    """`models:/<name>/<version>` (the alias resolved once, so a concurrent promotion cannot swap
    the model between resolving and loading it)."""
    tags: dict[str, str]


@dataclass
class ScoreResult:
    job: str
    kind: str
    """`binary` (gold.predictions) or `recommendation` (gold.recommendations)."""
    as_of: dt.date
    table: str
    model: ModelRef
    rows: int = 0
    positives: int = 0
    """Binary: rows decided positive."""
    threshold: float | None = None
    threshold_source: str | None = None
    table_version: int | None = None
    skipped: bool = False
    """The same job, date and model version was already scored: nothing written."""
    seconds: float = 0.0

    def report(self) -> str:
        m = self.model
        by = f"{m.name} v{m.version}" + (f" ({m.alias})" if m.alias else "")
        head = f"score {self.job} as of {self.as_of} with {by}"
        if self.skipped:
            return f"{head}: already scored into {self.table}; nothing written ({self.seconds:.1f}s)"
        if self.kind == "binary":
            what = (f"{self.rows:,} rows, {self.positives:,} decided positive at threshold {self.threshold:.4g} "
                    f"({self.threshold_source})")
        else:
            what = f"{self.rows:,} recommendations"
        return f"{head}: {what} -> {self.table} v{self.table_version} ({self.seconds:.1f}s)"


# -- pure parts ------------------------------------------------------------------------------

def model_uri(name: str, alias: str | None = DEFAULT_ALIAS, version: str | int | None = None) -> str:
    """`models:/<name>/<version>` when a version is given, else `models:/<name>@<alias>`."""
    if version is not None:
        text = str(version).strip()
        if not text.isdigit():
            raise ScoringError(f"model version must be a number, got {version!r}")
        return f"models:/{name}/{int(text)}"
    if not alias:
        raise ScoringError("give a model alias or a version")
    return f"models:/{name}@{alias}"


def pick_as_of(available: Iterable[dt.date], requested: dt.date | None, table: str) -> dt.date:
    """The requested as-of date if `table` has it, else the latest; errors name the table and the
    dates it has."""
    dates = sorted(set(available))
    if not dates:
        raise ScoringError(f"{table} has no as-of date: build the features first (clickml features build)")
    if requested is None:
        return dates[-1]
    if requested not in dates:
        shown = ", ".join(d.isoformat() for d in dates[-10:]) + (f" (and {len(dates) - 10} earlier)" if len(dates) > 10 else "")
        raise ScoringError(f"{table} has no features as of {requested}; available as-of dates: {shown} "
                           f"(build it: clickml features build --as-of {requested})")
    return requested


def threshold_of(run_metrics: dict[str, float] | None, tags: dict[str, str] | None, model=None) -> tuple[float, str]:
    """(threshold, where it came from): the `threshold` metric of the model's training run (chosen
    on the validation split), else the version's `metric.threshold` tag, else the `threshold`
    param of the model (a deep model's, or the last pipeline stage that has one), else 0.5."""
    value = (run_metrics or {}).get("threshold")
    if value is not None:
        return float(value), "training run metric"
    tag = (tags or {}).get("metric.threshold")
    if tag is not None:
        return float(tag), "model version tag"
    if model is not None:
        if hasattr(model, "value") and not hasattr(model, "stages"):  # DeepTabularModel
            try:
                return float(model.value("threshold")), "model param"
            except Exception:  # noqa: BLE001 - no such param: fall through to the default
                pass
        for stage in reversed(getattr(model, "stages", [])):
            if hasattr(stage, "hasParam") and stage.hasParam("threshold"):
                param = stage.getParam("threshold")
                if stage.isDefined(param):
                    return float(stage.getOrDefault(param)), f"{type(stage).__name__} threshold param"
    return DEFAULT_THRESHOLD, "default"


def decide(frame: DataFrame, threshold: float, score: str = "score") -> DataFrame:
    """`decision` = score >= threshold (null where the score is null)."""
    return frame.withColumn("decision", F.col(score) >= F.lit(float(threshold)))


def ranked(recs: DataFrame, user: str, k: int) -> DataFrame:
    """`rank` 1..k per user by descending score (ties by item column order of `recs`' second
    column), keeping at most `k` rows per user."""
    item = [c for c in recs.columns if c not in (user, "score")][0]
    order = Window.partitionBy(user).orderBy(F.col("score").desc(), F.col(item))
    return recs.withColumn("rank", F.row_number().over(order)).where(F.col("rank") <= k)


def txn_for(job: str, as_of: dt.date, model: str, version: str) -> Txn:
    """The Delta application transaction of one (job, as-of date, model version)."""
    return Txn.for_batch(TXN_APP, f"{job}/{as_of.isoformat()}/{model}/{version}")


def kind_of(config: ClickmlConfig, name: str, job: TrainJobSpec) -> str:
    """`binary` or `recommendation`: which scoring frame the job gets; an error for jobs whose
    feature rows scoring cannot build."""
    tables = config.tables
    if job.task == "binary" and job.data.table == tables.propensity_training:
        return "binary"
    if job.task == "recommendation" and job.implicit and job.data.table == tables.implicit_training:
        return "recommendation"
    source = job.data.table or job.data.path
    raise ScoringError(
        f"job {name} ({job.task}, trained on {source}): scoring builds feature rows for binary jobs trained on "
        f"{tables.propensity_training} and implicit recommendation jobs trained on {tables.implicit_training}"
    )


# -- MLflow ----------------------------------------------------------------------------------

def resolve_model(name: str, alias: str | None = DEFAULT_ALIAS, version: str | int | None = None) -> ModelRef:
    """The registered version behind the alias (or the version itself), with its run id."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    asked = model_uri(name, alias, version)
    client = MlflowClient()
    try:
        mv = client.get_model_version(name, str(int(version))) if version is not None else \
            client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ScoringError(f"no model at {asked}: {first} (train and register it: clickml train)") from exc
    tags = dict(mv.tags or {})
    run_id = mv.run_id or tags.get("run_id")
    return ModelRef(name, str(mv.version), None if version is not None else alias, run_id,
                    f"models:/{name}/{mv.version}", tags)


def run_metrics(run_id: str | None) -> dict[str, float]:
    """The metrics of a training run ({} without a run id, or when it cannot be read: logged)."""
    if not run_id:
        return {}
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        return dict(MlflowClient().get_run(run_id).data.metrics)
    except MlflowException as exc:
        log.warning("cannot read the metrics of run %s (%s)", run_id, exc)
        return {}


# -- scoring frames --------------------------------------------------------------------------

def available_as_of_dates(config: ClickmlConfig, lake: Lake) -> list[dt.date]:
    """The as-of dates the feature tables are built for (from `tables.features_progress`)."""
    from pipelines.features.stage import built_fingerprints

    return sorted(built_fingerprints(lake, config))


def _features(config: ClickmlConfig, lake: Lake, as_of: dt.date) -> dict[str, DataFrame]:
    from pipelines.features.stage import ENTITY_TABLES

    where = [("as_of_date", "in", [as_of.isoformat()])]
    return {entity: lake.read(getattr(config.tables, attr), partition_filters=where) for entity, attr in ENTITY_TABLES.items()}


def propensity_frame(config: ClickmlConfig, lake: Lake, as_of: dt.date) -> DataFrame:
    """The feature rows of `as_of`, built as the training set builds an example for the cutoff
    `as_of` (`training_sets.propensity.examples`), without label and split. Only events before the
    as-of date are read (the pairs of the user_product unit), so no label can leak in."""
    from pipelines.training_sets.propensity import examples

    cfg = config.training_sets.propensity
    silver = config.tables.silver_events
    if cfg.unit == "user":
        events = lake.read(silver).where(F.lit(False))  # read for its schema only: labels need none
    else:
        days = [(as_of - dt.timedelta(days=d)).isoformat() for d in range(1, cfg.lookback_days + 1)]
        events = lake.read(silver, partition_filters=[("event_date", "in", days)])
    frame = examples(cfg, events, _features(config, lake, as_of), {as_of: "score"}, max(config.features.windows_days))
    return frame.drop("label", "split")


def active_users(config: ClickmlConfig, lake: Lake, as_of: dt.date) -> DataFrame:
    """user_id of the users with an event within `lookback_days` before `as_of` (the propensity
    examples' users)."""
    lookback = config.training_sets.propensity.lookback_days
    users = _features(config, lake, as_of)["user"]
    return users.where(F.col("days_since_last_event") <= lookback).select("user_id").distinct()


# -- the stage -------------------------------------------------------------------------------

def _stamp(frame: DataFrame, job: str, as_of: dt.date, model: ModelRef, scored_at: dt.datetime) -> DataFrame:
    return frame.select(
        F.lit(job).alias("job"), F.lit(as_of).cast("date").alias("as_of_date"), *frame.columns,
        F.lit(model.name).alias("model_name"), F.lit(model.version).alias("model_version"),
        F.lit(model.alias).cast("string").alias("model_alias"), F.lit(model.run_id).cast("string").alias("run_id"),
        F.lit(scored_at).cast("timestamp").alias("scored_at"),
    )


def _already_scored(lake: Lake, table: str, txn: Txn) -> bool:
    from pipelines.lake.delta_spark import transaction_version

    if not lake.exists(table):
        return False
    done = transaction_version(lake.spark, lake.location(table), txn.app_id)
    return done is not None and done >= txn.version


def run(
    config: ClickmlConfig,
    spark: SparkSession,
    job: str,
    as_of: dt.date | None = None,
    alias: str | None = DEFAULT_ALIAS,
    version: str | int | None = None,
) -> ScoreResult:
    """Score `job` as of `as_of` (default: the latest built) with the model behind `alias` or, when
    given, `version`; write the rows unless this (job, date, version) was scored already."""
    from pipelines.train.scoring import SCORE, load_model, score
    from pipelines.train.tracking import configure

    started = time.time()
    if job not in config.training.jobs:
        raise ScoringError(f"unknown training job {job!r}; configured: {', '.join(config.training.jobs) or 'none'}")
    spec = config.training.jobs[job]
    if spec.registry is None:
        raise ScoringError(f"job {job} has no registry (training.jobs.{job}.registry): no registered model to score with")
    kind = kind_of(config, job, spec)
    lake = Lake(config, spark)
    configure(config)
    model = resolve_model(spec.registry.name, alias, version)
    date = pick_as_of(available_as_of_dates(config, lake), as_of, config.tables.user_features)
    table = config.tables.predictions if kind == "binary" else config.tables.recommendations
    result = ScoreResult(job, kind, date, table, model)
    log.info("score %s as of %s with %s (%s, run %s) into %s", job, date, model.uri,
             model.alias or "by version", model.run_id, table)
    txn = txn_for(job, date, model.name, model.version)
    if _already_scored(lake, table, txn):
        result.skipped = True
        result.seconds = time.time() - started
        log.info("%s", result.report())
        return result

    loaded = load_model(model.uri)
    scored_at = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    if kind == "binary":
        frame = propensity_frame(config, lake, date)
        keys = ["user_id"] + (["product_id"] if config.training_sets.propensity.unit == "user_product" else [])
        threshold, source = threshold_of(run_metrics(model.run_id), model.tags, loaded)
        result.threshold, result.threshold_source = threshold, source
        log.info("score %s: threshold %.6g (%s)", job, threshold, source)
        scored = decide(score(loaded, frame, "binary"), threshold)
        out = scored.select(
            F.col("user_id").cast("string").alias("user_id"),
            (F.col("product_id") if "product_id" in keys else F.lit(None)).cast("string").alias("product_id"),
            F.col(SCORE).cast("double").alias("score"), "decision", F.lit(float(threshold)).alias("threshold"),
        )
    else:
        from pipelines.train.recommend import recommend

        users = active_users(config, lake, date).withColumn("user_id", F.col("user_id").cast("string"))
        recs = recommend(loaded, users.withColumnRenamed("user_id", spec.user_column), spec, spec.k)
        out = ranked(recs.select(F.col(spec.user_column).cast("string").alias("user_id"),
                                 F.col(spec.item_column).cast("string").alias("product_id"),
                                 F.col("score").cast("double").alias("score")), "user_id", spec.k)
        out = out.select("user_id", "product_id", F.col("rank").cast("int").alias("rank"), "score")
    rows = _stamp(out, job, date, model, scored_at).persist()
    try:
        counted = rows.agg(F.count(F.lit(1)).alias("n"),
                           F.sum(F.col("decision").cast("int")).alias("p") if kind == "binary" else F.lit(0).alias("p")).first()
        result.rows, result.positives = int(counted["n"]), int(counted["p"] or 0)
        if result.rows == 0:
            raise ScoringError(f"job {job} as of {date}: nothing to score (no active user in {config.tables.user_features}"
                               f"{' the model knows' if kind == 'recommendation' else ''}); nothing written to {table}")
        if kind == "binary":
            _gate(config, rows, job, spec, model, table)
        replace = [{"job": job, "as_of_date": date.isoformat(), "model_version": model.version}]
        if lake.exists(table):
            written = lake.write(rows, table, mode="overwrite_partitions", partition_by=PARTITIONS,
                                 replace_partitions=replace, txn=txn)
        else:
            written = lake.write(rows, table, mode="overwrite", partition_by=PARTITIONS, txn=txn)
    finally:
        rows.unpersist()
    result.skipped = written.skipped
    result.table_version = written.version
    result.seconds = time.time() - started
    log.info("%s", result.report())
    return result


def _gate(config: ClickmlConfig, rows: DataFrame, job: str, spec: TrainJobSpec, model: ModelRef, table: str) -> None:
    """The prediction suite on the scores; a failure raises before anything is written."""
    from pipelines.validate import validate_dataframe

    suite = (spec.registry.prediction_suite if spec.registry else None) or DEFAULT_SUITE
    result = validate_dataframe(config, rows.select("score"), suite, name=f"{model.name}.scores.{job}",
                                columns={"probability": "score"}, raise_on_failure=False)
    if not result.success:
        raise ScoringError(f"score {job} with {model.name} v{model.version}: the {suite} suite failed on the scores; "
                           f"nothing written to {table}: {result.failure_message()}")
