"""Training data: load the table a job describes (Delta, Parquet, CSV) and split it.

Splits, in order of preference: the rows' own `split_column` (train / validation / test); by
time on `time_column` (the latest rows test, the ones before validation); `split` (random by a
hash of each row, optionally stratified by the label); or Spark's `randomSplit` with the job's
seed and shares. The Delta version read is returned for lineage.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pipelines.config import ClickmlConfig
from pipelines.config.models import DataSpec, TrainJobSpec
from pipelines.lake import Lake
from pipelines.train.errors import TrainingDataError

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")




@dataclass
class Dataset:
    source: str
    """Table name or path, as configured."""
    version: int | None
    """Delta version read (None for Parquet/CSV)."""
    splits: dict[str, DataFrame]
    """train, test and (when present) validation."""


def resolve_path(config: ClickmlConfig, path: str) -> str:
    """A URI or absolute path as is; a relative path from the project root."""
    if "://" in path or path.startswith("/"):
        return path
    return str(Path(config.project_root) / path)


def load_table(config: ClickmlConfig, spark: SparkSession, spec: DataSpec, lake: Lake) -> tuple[DataFrame, str, int | None]:
    """(frame, source, Delta version or None)."""
    if spec.table is not None:
        if not lake.exists(spec.table):
            raise TrainingDataError(f"training table {spec.table} does not exist ({lake.location(spec.table).uri})")
        version = spec.version if spec.version is not None else lake.version(spec.table)
        return lake.read(spec.table, version=version), spec.table, version
    path = resolve_path(config, spec.path)
    if spec.format == "delta":
        version = spec.version if spec.version is not None else lake.version(path)
        return lake.read(path, version=version), path, version
    reader = spark.read
    if spec.format == "csv":
        reader = reader.options(**spec.csv_options)
        return reader.csv(path), path, None
    return reader.parquet(path), path, None


def split(frame: DataFrame, job: TrainJobSpec, source: str) -> dict[str, DataFrame]:
    spec = job.data
    how = ""
    if spec.split_column:
        _require(frame, spec.split_column, source, "data.split_column")
        values = [r[0] for r in frame.select(spec.split_column).distinct().limit(10).collect()]  # bounded: <= 10 values
        unknown = sorted(str(v) for v in values if v not in SPLITS)
        if unknown:
            raise TrainingDataError(f"{source}: column {spec.split_column} has value(s) {unknown}; expected {list(SPLITS)}")
        parts = {s: frame.where(F.col(spec.split_column) == s) for s in SPLITS if s in values}
    elif spec.time_column:
        _require(frame, spec.time_column, source, "data.time_column")
        t = _time_value(frame, spec.time_column)
        cuts = frame.select(t.alias("__t")).approxQuantile(
            "__t", [1 - spec.test_share - spec.validation_share, 1 - spec.test_share], 0.001
        )
        if len(cuts) < 2:  # no row with a time
            raise TrainingDataError(f"{source}: no rows with a {spec.time_column} to split on (data.time_column)")
        cut_val, cut_test = cuts
        how = (f" (data.time_column {spec.time_column}: the split points fall on {cut_val:g} and {cut_test:g}; "
               "too few distinct times for test_share and validation_share - use a finer time column or split_column)")
        parts = {"train": frame.where(t < cut_val), "test": frame.where(t >= cut_test)}
        if spec.validation_share > 0:
            parts["validation"] = frame.where((t >= cut_val) & (t < cut_test))
    elif spec.split is not None:
        parts = random_split(frame, spec.split, job.label if spec.split.stratify else None, source)
    else:
        weights = [1 - spec.validation_share - spec.test_share, spec.validation_share, spec.test_share]
        names = [s for s, w in zip(SPLITS, weights) if w > 0]
        parts = dict(zip(names, frame.randomSplit([w for w in weights if w > 0], seed=spec.seed)))
    for required in ("train", "test"):
        if required not in parts:
            raise TrainingDataError(f"{source}: no {required} rows after splitting")
    for name, part in parts.items():
        if part.isEmpty():  # cheap where there are rows: stops at the first one
            raise TrainingDataError(f"{source}: the {name} split has no rows{how}")
    return parts


MAX_STRATA = 1000
"""Most label values a stratified split accepts (a classification label, not a continuous one)."""
_U, _LOW, _HIGH = "__split_u", "__split_test", "__split_validation"


def row_uniform(frame: DataFrame, seed: int):
    """A number in [0, 1) per row from a hash of the row's values and `seed`: the same row gets the
    same number in every run, however the table is partitioned (identical rows share it, so
    duplicates never straddle two splits). Map columns cannot be hashed and are left out."""
    columns = [F.col(f"`{f.name}`") for f in frame.schema.fields if f.dataType.typeName() != "map"]
    return F.pmod(F.xxhash64(F.lit(seed), *columns), F.lit(1 << 53)).cast("double") / float(1 << 53)


def random_split(frame: DataFrame, spec, stratify_by: str | None, source: str) -> dict[str, DataFrame]:
    """Rows to test / validation / train by `row_uniform` and the shares of `spec` (a
    `RandomSplitSpec`). Stratified (`stratify_by`, the label): the cut points are the shares'
    quantiles of the uniform within each label value, so every split keeps each class's share
    (to within a row, up to a million rows per class)."""
    test, validation = spec.test, spec.validation
    framed = frame.withColumn(_U, row_uniform(frame, spec.seed))
    if stratify_by is None:
        framed = framed.withColumn(_LOW, F.lit(test)).withColumn(_HIGH, F.lit(test + validation))
        below = F.col(_U) < F.col(_LOW), F.col(_U) < F.col(_HIGH)
    else:
        _require(frame, stratify_by, source, "label (data.split.stratify)")
        cuts = (
            framed.groupBy(F.col(stratify_by).alias("__stratum"))
            .agg(F.percentile_approx(_U, [test, test + validation], 1_000_000).alias("q"))
            .limit(MAX_STRATA + 1)
            .collect()  # bounded: one row per label value, at most MAX_STRATA + 1
        )
        if len(cuts) > MAX_STRATA:
            raise TrainingDataError(f"{source}: data.split.stratify: label {stratify_by!r} has more than {MAX_STRATA} "
                                    "values; stratify a classification label (or set stratify: false)")
        label_type = frame.schema[stratify_by].dataType
        from pyspark.sql.types import DoubleType, StructField, StructType

        schema = StructType([StructField("__stratum", label_type), StructField(_LOW, DoubleType()),
                             StructField(_HIGH, DoubleType())])
        # Validation share 0: both cut points are the same quantile, and no row is validation.
        rows = [(r["__stratum"], float(r["q"][0]), float(r["q"][1] if validation > 0 else r["q"][0])) for r in cuts]
        table = frame.sparkSession.createDataFrame(rows, schema)
        framed = framed.join(F.broadcast(table), framed[stratify_by].eqNullSafe(table["__stratum"]), "left").drop("__stratum")
        below = F.col(_U) <= F.col(_LOW), F.col(_U) <= F.col(_HIGH)
    which = F.when(below[0], "test").when(below[1], "validation").otherwise("train")
    labelled = framed.withColumn("__split", which).drop(_U, _LOW, _HIGH)
    names = ["train", "test"] + (["validation"] if validation > 0 else [])
    log.info("training data: %s split at random%s (test %.3g, validation %.3g, seed %d)", source,
             f", stratified by {stratify_by}" if stratify_by else "", test, validation, spec.seed)
    return {name: labelled.where(F.col("__split") == name).drop("__split") for name in names}


def _time_value(frame: DataFrame, column: str):
    """The time column as a double (microseconds for dates and timestamps)."""
    if dict(frame.dtypes)[column] in ("date", "timestamp", "timestamp_ntz"):
        return F.unix_micros(F.to_timestamp(F.col(column))).cast("double")
    return F.col(column).cast("double")


def _require(frame: DataFrame, column: str, source: str, key: str) -> None:
    if column not in frame.columns:
        raise TrainingDataError(f"{source}: {key} {column!r} is not a column (columns: {', '.join(frame.columns)})")


def load(config: ClickmlConfig, spark: SparkSession, job: TrainJobSpec, lake: Lake) -> Dataset:
    frame, source, version = load_table(config, spark, job.data, lake)
    for key, column in (("label", job.label), ("weight", job.weight)):
        if column:
            _require(frame, column, source, key)
    if job.task == "recommendation":
        _require(frame, job.user_column, source, "user_column")
        _require(frame, job.item_column, source, "item_column")
    if job.positive is not None:
        frame = positive_label(frame, job.label, job.positive, source)
    log.info("training data: %s%s", source, f" (Delta version {version})" if version is not None else "")
    return Dataset(source, version, split(frame, job, source))


def positive_label(frame: DataFrame, label: str, positive, source: str) -> DataFrame:
    """`label` as 1 where it equals `positive` (compared as text, case-insensitively: yes, TRUE,
    1; a YAML boolean matches its usual spellings), 0 for any other value, null where null."""
    raw = F.col(label)
    as_text = F.lower(F.trim(raw.cast("string")))
    if isinstance(positive, bool):
        # YAML reads an unquoted yes / no / on / true as a boolean: match any of its spellings.
        wanted = ["true", "yes", "y", "on", "1"] if positive else ["false", "no", "n", "off", "0"]
    elif isinstance(positive, float) and positive.is_integer():
        wanted = [str(int(positive)), str(positive)]
    else:
        wanted = [str(positive).strip().lower()]
    mapped = F.when(raw.isNull(), F.lit(None)).when(as_text.isin(*wanted), F.lit(1)).otherwise(F.lit(0))
    return frame.withColumn(label, mapped.cast("int"))
