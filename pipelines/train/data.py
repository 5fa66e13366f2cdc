"""Training data: load the table a job describes (Delta, Parquet, CSV) and split it.

Splits, in order of preference: the rows' own `split_column` (train / validation / test); by
time on `time_column` (the latest rows test, the ones before validation); or random with the
job's seed. The Delta version read is returned for lineage.
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
    log.info("training data: %s%s", source, f" (Delta version {version})" if version is not None else "")
    return Dataset(source, version, split(frame, job, source))
