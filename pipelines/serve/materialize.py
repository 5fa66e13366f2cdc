"""`clickml materialize JOB`: the latest gold features (or top-k recommendations) of a job into Redis.

- Binary jobs (trained on `tables.propensity_training`, unit `user`): the feature rows batch
  scoring builds for the as-of date (`pipelines.score.stage.propensity_frame`: the same users and
  the same point-in-time features), one hash per user.
- Recommendation jobs: the rows `clickml score` wrote into `tables.recommendations` for the job,
  the as-of date and the model version behind `alias` (default champion) or `version`, one hash
  per user and version with the items in rank order. That version becomes the one served without
  an experiment; `run_experiment` materializes the version of each variant of an experiment
  (`clickml materialize JOB --experiment E`) and leaves that default alone.

The Spark tasks write (`foreachPartition`, pipelined MULTI/EXEC batches of
`serving.write_batch_size` users); nothing but one row of defaults and a count comes back to the
driver. The meta key is written last, so it names an as-of date only once all its users are in.
Incremental: when the store already holds the as-of date (or a later one) nothing is written
unless `force`. Key layout and value encoding: pipelines/serve/online.py.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from dataclasses import dataclass
from functools import partial

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pipelines.config import ClickmlConfig
from pipelines.serve.online import (
    OnlineStore,
    OnlineStoreError,
    connect,
    encode,
    masked_url,
    type_kind,
    write_features,
    write_meta,
    write_recommendations,
    zero_of,
)

log = logging.getLogger(__name__)

DEFAULT_ALIAS = "champion"
QUANTILE_ACCURACY = 10_000
"""`percentile_approx` accuracy of the medians (relative rank error 1 / 10,000)."""


class MaterializeError(ValueError):
    """A job cannot be materialized as asked; the message names the job, table or store."""


@dataclass
class MaterializeResult:
    job: str
    kind: str
    """`features` or `recommendations`."""
    as_of: dt.date
    store: str
    """The Redis URL (password masked) and key prefix."""
    users: int = 0
    columns: int = 0
    model_version: str | None = None
    previous_as_of: dt.date | None = None
    skipped: bool = False
    forced: bool = False
    default_moved: bool = False
    """A skipped recommendation version was made the default (it was materialized before)."""
    seconds: float = 0.0

    def report(self) -> str:
        what = f"{self.kind} of {self.job} as of {self.as_of}" + (f" (model v{self.model_version})" if self.model_version else "")
        if self.skipped:
            moved = "; now the default version" if self.default_moved else ""
            return (f"materialize {what}: {self.store} already holds as-of {self.previous_as_of}; nothing written "
                    f"(--force rewrites){moved} ({self.seconds:.1f}s)")
        detail = f"{self.users:,} users" + (f" x {self.columns} features" if self.kind == "features" else "")
        again = " (forced)" if self.forced else ""
        return f"materialize {what}: {detail} -> {self.store}{again} ({self.seconds:.1f}s)"


# -- pure parts ------------------------------------------------------------------------------

def feature_columns(frame: DataFrame) -> list[str]:
    """The columns of a scoring frame stored per user: all but the keys and the examples' metadata."""
    from pipelines.training_sets.propensity import META_COLUMNS

    return [c for c in frame.columns if c not in ("user_id", "product_id", *META_COLUMNS)]


def defaults_of(frame: DataFrame, columns: list[str]) -> dict[str, str]:
    """Column -> encoded default: the approximate median of numeric columns, the mode of the
    others, zero (0, false, "") where a column is all null. One aggregation; one row comes back."""
    types = dict(frame.dtypes)
    aggregates = []
    for i, column in enumerate(columns):
        kind = type_kind(types[column])
        value = (F.percentile_approx(F.col(column), 0.5, QUANTILE_ACCURACY) if kind in ("float", "int")
                 else F.mode(F.col(column)))
        aggregates.append(value.alias(f"d{i}"))
    if not aggregates:
        return {}
    row = frame.agg(*aggregates).first()  # bounded: one row with a value per column
    result = {}
    for i, column in enumerate(columns):
        value = row[f"d{i}"]
        result[column] = encode(value if value is not None else zero_of(type_kind(types[column])))
    return result


def should_skip(held: dt.date | None, held_kind: str | None, held_version: str | None, as_of: dt.date, kind: str,
                version: str | None, force: bool) -> bool:
    """Nothing to write: the store holds this as-of date (or a later one) of the same kind and
    model version, and no `force`."""
    if force or held is None or held_kind != kind or (version is not None and held_version != version):
        return False
    return held >= as_of


# -- the stage -------------------------------------------------------------------------------

def run(config: ClickmlConfig, spark: SparkSession, job: str, as_of: dt.date | None = None, force: bool = False,
        alias: str | None = DEFAULT_ALIAS, version: str | int | None = None, set_default: bool = True) -> MaterializeResult:
    """Materialize `job` as of `as_of` (default: the latest built, or scored for recommendations).

    Recommendation jobs: `set_default` makes the version the one `/recommendations` serves without
    an experiment (the job's meta key); False writes only the version's own keys and meta."""
    from pipelines.lake import Lake
    from pipelines.score.stage import kind_of

    started = time.time()
    if job not in config.training.jobs:
        raise MaterializeError(f"unknown training job {job!r}; configured: {', '.join(config.training.jobs) or 'none'}")
    spec = config.training.jobs[job]
    kind = "features" if kind_of(config, job, spec) == "binary" else "recommendations"
    serving = config.serving
    where = f"{masked_url(serving.redis_url)} (prefix {serving.key_prefix})"
    client = connect(serving.redis_url)
    try:
        client.ping()
    except Exception as exc:  # noqa: BLE001 - any connection failure: one clear line
        raise MaterializeError(f"cannot reach Redis at {masked_url(serving.redis_url)} (serving.redis_url): {exc}") from exc
    store = OnlineStore(serving, client=client)
    lake = Lake(config, spark)
    if kind == "features":
        if config.training_sets.propensity.unit != "user":
            raise MaterializeError(f"job {job}: online features are per user; training_sets.propensity.unit is "
                                   f"{config.training_sets.propensity.unit}")
        date, model_version = _features_as_of(config, lake, as_of), None
    else:
        date = _recommendations_as_of(config, lake, job, as_of)
        model_version = str(version) if version is not None else _resolve_version(config, job, alias)
    held = store.meta(job, fresh=True, model_version=model_version if kind == "recommendations" else None)
    result = MaterializeResult(job, kind, date, where, model_version=model_version, forced=force,
                               previous_as_of=held["as_of_date"] if held else None)
    if should_skip(result.previous_as_of, held.get("kind") if held else None, held.get("model_version") if held else None,
                   date, kind, model_version, force):
        result.skipped = True
        if kind == "recommendations" and set_default:
            result.default_moved = _point_default_at(client, serving, job, model_version)
        result.seconds = time.time() - started
        log.info("%s", result.report())
        return result

    ttl = int(serving.feature_ttl_hours * 3600)
    written = spark.sparkContext.accumulator(0)
    options = dict(url=serving.redis_url, prefix=serving.key_prefix, job=job, as_of=date.isoformat(),
                   ttl_seconds=ttl, batch_size=serving.write_batch_size, counter=written)
    meta = {"kind": kind, "job": job, "as_of_date": date.isoformat(),
            "materialized_at": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()}
    log.info("materialize %s of %s as of %s into %s", kind, job, date, where)
    if kind == "features":
        frame = _features_rows(config, lake, date).persist()
        try:
            columns = feature_columns(frame)
            types = dict(frame.dtypes)
            defaults = defaults_of(frame, columns)
            frame.foreachPartition(partial(write_features, columns=columns, **options))
        finally:
            frame.unpersist()
        result.columns = len(columns)
        meta.update(schema=json.dumps({c: type_kind(types[c]) for c in columns}), defaults=json.dumps(defaults),
                    source=config.tables.user_features)
    else:
        items = _recommendation_items(config, lake, job, date, model_version)
        items.foreachPartition(partial(write_recommendations, model_version=model_version, **options))
        meta.update(model_version=model_version, source=config.tables.recommendations)
    result.users = int(written.value)
    if result.users == 0:
        raise MaterializeError(f"materialize {job} as of {date}: no user to write (no active user in {meta['source']}); "
                               f"the store keeps as-of {result.previous_as_of}")
    meta["users"] = str(result.users)
    if kind == "recommendations":
        write_meta(client, serving.key_prefix, job, meta, ttl, model_version=model_version)
    if kind == "features" or set_default:
        write_meta(client, serving.key_prefix, job, meta, ttl)
    result.seconds = time.time() - started
    log.info("%s", result.report())
    return result


def _point_default_at(client, serving, job: str, model_version: str) -> bool:
    """Make the materialized `model_version` the job's default (its meta copied to the job's meta
    key) when the default names another version or as-of date; True when it moved."""
    from pipelines.serve.online import meta_key

    prefix = serving.key_prefix
    wanted, current = client.hgetall(meta_key(prefix, job, model_version)), client.hgetall(meta_key(prefix, job))
    if not wanted or all(current.get(k) == wanted.get(k) for k in ("model_version", "as_of_date")):
        return False
    write_meta(client, prefix, job, wanted, int(serving.feature_ttl_hours * 3600))
    log.info("%s: the default recommendations are now v%s (as of %s)", job, model_version, wanted.get("as_of_date"))
    return True


def run_experiment(config: ClickmlConfig, spark: SparkSession, experiment_id: str, as_of: dt.date | None = None,
                   force: bool = False, job: str | None = None) -> list[MaterializeResult]:
    """Materialize the top-k of every model version the variants of a recommender experiment serve
    (each variant's alias resolved now, or its version); the job's default version stays as it is.
    `job`, when given (the command line's), must be the experiment's."""
    spec = config.experiments.get(experiment_id)
    if spec is None:
        raise MaterializeError(f"unknown experiment {experiment_id!r}; configured: {', '.join(config.experiments) or 'none'}")
    if job is not None and job != spec.job:
        raise MaterializeError(f"experiment {experiment_id} is on job {spec.job}, not {job}")
    if config.training.jobs[spec.job].task != "recommendation":
        raise MaterializeError(f"experiment {experiment_id} is on job {spec.job}, not a recommendation job: its variants "
                               f"share the user features (clickml materialize {spec.job})")
    versions: dict[str, list[str]] = {}
    for name, arm in spec.variants.items():
        version = str(arm.version) if arm.version is not None else _resolve_version(config, spec.job, arm.alias)
        versions.setdefault(version, []).append(name)
    results = []
    for version, names in versions.items():
        log.info("experiment %s: variant(s) %s serve %s v%s", experiment_id, ", ".join(names), spec.job, version)
        results.append(run(config, spark, spec.job, as_of=as_of, force=force, version=version, set_default=False))
    return results


def _features_as_of(config: ClickmlConfig, lake, as_of: dt.date | None) -> dt.date:
    from pipelines.score.stage import available_as_of_dates, pick_as_of

    return pick_as_of(available_as_of_dates(config, lake), as_of, config.tables.user_features)


def _features_rows(config: ClickmlConfig, lake, date: dt.date) -> DataFrame:
    """user_id (string) and the feature columns of batch scoring's frame for `date`."""
    from pipelines.score.stage import propensity_frame

    frame = propensity_frame(config, lake, date)
    return frame.select(F.col("user_id").cast("string").alias("user_id"), *feature_columns(frame))


def _recommendations_as_of(config: ClickmlConfig, lake, job: str, as_of: dt.date | None) -> dt.date:
    table = config.tables.recommendations
    if not lake.exists(table):
        raise MaterializeError(f"{table} does not exist: score the job first (clickml score {job})")
    scored = lake.read(table, partition_filters=[("job", "in", [job])])
    dates = sorted(r["as_of_date"] for r in scored.select("as_of_date").distinct().collect())  # bounded: dates
    if not dates:
        raise MaterializeError(f"{table} has no recommendations of {job}: score it first (clickml score {job})")
    if as_of is None:
        return dates[-1]
    if as_of not in dates:
        shown = ", ".join(d.isoformat() for d in dates[-10:])
        raise MaterializeError(f"{table} has no recommendations of {job} as of {as_of}; scored as-of dates: {shown}")
    return as_of


def _resolve_version(config: ClickmlConfig, job: str, alias: str | None) -> str:
    """The registered version behind `alias` (MLflow), whose scored rows are materialized."""
    from pipelines.score.stage import resolve_model
    from pipelines.train.tracking import configure

    registry = config.training.jobs[job].registry
    if registry is None:
        raise MaterializeError(f"job {job} has no registry (training.jobs.{job}.registry): give the model version (--version)")
    configure(config)
    return resolve_model(registry.name, alias or DEFAULT_ALIAS).version


def _recommendation_items(config: ClickmlConfig, lake, job: str, date: dt.date, version: str) -> DataFrame:
    """One row per user: user_id and items = [(product_id, score)] in rank order."""
    table = config.tables.recommendations
    rows = lake.read(table, partition_filters=[("job", "in", [job]), ("as_of_date", "in", [date.isoformat()])])
    rows = rows.where(F.col("model_version") == version)
    if rows.isEmpty():
        versions = sorted(r["model_version"] for r in lake.read(table, partition_filters=[
            ("job", "in", [job]), ("as_of_date", "in", [date.isoformat()])]).select("model_version").distinct().collect())
        raise MaterializeError(f"{table} has no recommendations of {job} as of {date} by model version {version} "
                               f"(scored versions: {', '.join(versions) or 'none'}): clickml score {job} --version {version}")
    ranked = F.sort_array(F.collect_list(F.struct("rank", "product_id", "score")))
    return (rows.groupBy("user_id")
            .agg(ranked.alias("ranked"))
            .select(F.col("user_id").cast("string").alias("user_id"),
                    F.transform("ranked", lambda r: F.struct(r["product_id"], r["score"])).alias("items")))


__all__ = ["MaterializeError", "MaterializeResult", "OnlineStoreError", "run", "run_experiment"]
