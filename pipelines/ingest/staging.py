"""Staged writes: Spark writes Parquet into a table's folder now, the commit comes later.

The ingest stage writes every outcome of a batch in one Spark job, checks the accounting identity
on the written files' footers, and only then commits. `Lake.write` writes and commits in one
call, so this module splits the lake's delta-rs write protocol (docs/architecture.md) in two,
with the lake layer's own pieces: the files go to a fresh `write-<id>/` folder inside the table
(invisible until committed; `vacuum` removes the files of a write that never commits), their
footers are described into add actions, and `commit_staged` commits them in one transaction
keyed by the batch's transaction id, or, for sessions with the Delta jars, hands them to
`Lake.write`.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from functools import reduce
from typing import Sequence
from urllib.parse import unquote

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from pipelines.config import ClickmlConfig
from pipelines.lake import CommitResult, Lake, Txn, deltalog
from pipelines.lake.filesystem import filesystem_for, hidden_path, list_files
from pipelines.lake.location import TableLocation
from pipelines.lake.spark_io import STAGING_PREFIX, arrow_schema_of, describe_files, spark_schema_of
from pipelines.lake.stats import DataFile

log = logging.getLogger(__name__)


@dataclass
class StagedFiles:
    """Parquet files written into a table's folder and not committed yet."""

    table: str
    """Logical table name."""
    location: TableLocation
    schema: pa.Schema
    """The table schema the files are committed under (data columns, then partition columns)."""
    partition_by: list[str]
    files: list[DataFile] = field(default_factory=list)
    """Paths relative to the table root, partition values, footer row counts and statistics."""
    write_id: str = ""

    @property
    def rows(self) -> int:
        return sum(f.num_records for f in self.files)

    def frame(self, spark: SparkSession) -> DataFrame:
        """The staged rows, partition columns typed from the files' partition values."""
        schema = spark_schema_of(self.schema)
        if not self.files:
            return spark.createDataFrame([], schema)
        data = T.StructType([f for f in schema.fields if f.name not in self.partition_by])
        groups: dict[tuple, list[str]] = {}
        for f in self.files:
            key = tuple(f.partition_values.get(c) for c in self.partition_by)
            groups.setdefault(key, []).append(self.location.spark_child(f.path))
        parts = []
        for key, uris in sorted(groups.items(), key=lambda item: [str(v) for v in item[0]]):
            part = spark.read.schema(data).parquet(*uris)
            for column, value in zip(self.partition_by, key):
                part = part.withColumn(column, F.lit(value).cast(schema[column].dataType))
            parts.append(part.select(*[F.col(f"`{f.name}`") for f in schema.fields]))
        return reduce(DataFrame.unionByName, parts)


def new_folder() -> tuple[str, str]:
    """A fresh staging folder name inside a table and its write id."""
    write_id = uuid.uuid4().hex
    return f"{STAGING_PREFIX}{write_id}", write_id


def table_schema_of(df: DataFrame, columns: Sequence[str]) -> pa.Schema:
    """The Delta schema of `df`'s `columns`, in that order, all nullable."""
    return arrow_schema_of(df.select(*[f"`{c}`" for c in columns]))


def check_against_table(location: TableLocation, schema: pa.Schema, partition_by: Sequence[str]) -> None:
    """Fail before writing anything when the staged files could not be committed to the table."""
    table = deltalog.open_table(location)
    if table is None:
        return
    deltalog.check_readable(table, location)
    deltalog.check_schema(
        location, deltalog.table_schema(table), schema, list(table.metadata().partition_columns), list(partition_by)
    )


def write_parquet(df: DataFrame, location: TableLocation, folder: str, partition_by: Sequence[str], compression: str) -> None:
    """Spark writes `df` as Parquet into `<table>/<folder>/` (hive-style partition folders)."""
    writer = df.write.mode("errorifexists").option("compression", compression)
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    log.info("%s: writing Parquet files to %s/", location, folder)
    writer.parquet(location.spark_child(folder))


def list_parquet(location: TableLocation, folder: str) -> list[str]:
    """The Parquet files below `<table>/<folder>/`, relative to the table root, sorted."""
    fs, base = filesystem_for(location)
    prefix = f"{base}/"
    relative = (info.path[len(prefix):] for info in list_files(fs, f"{base}/{folder}") if info.path.endswith(".parquet"))
    return sorted(p for p in relative if not hidden_path(p))


def folder_value(relative_path: str, key: str) -> str | None:
    """The value of a hive-style `key=value` folder in a path (decoded), None when absent."""
    for segment in relative_path.split("/")[:-1]:
        name, sep, value = segment.partition("=")
        if sep and name == key:
            return unquote(value)
    return None


def describe(spark: SparkSession, location: TableLocation, relative_paths: Sequence[str], partition_by: Sequence[str]) -> list[DataFile]:
    """Footer statistics and partition values of written files (the lake's add-action records)."""
    if not relative_paths:
        return []
    return describe_files(spark, location, list(relative_paths), list(partition_by))


def delete_files(location: TableLocation, relative_paths: Sequence[str]) -> None:
    """Best effort: files left behind are unreferenced and `vacuum` removes them."""
    fs, base = filesystem_for(location)
    for path in relative_paths:
        try:
            fs.delete_file(f"{base}/{path}")
        except OSError as exc:  # pragma: no cover - cleanup only
            log.warning("%s: could not delete staged file %s: %s", location, path, exc)


def delete_folder(location: TableLocation, folder: str) -> None:
    fs, base = filesystem_for(location)
    try:
        fs.delete_dir_contents(f"{base}/{folder}", missing_dir_ok=True)
        fs.delete_dir(f"{base}/{folder}")
    except OSError as exc:  # pragma: no cover - cleanup only
        log.warning("%s: could not delete staging folder %s: %s", location, folder, exc)


def commit_staged(spark: SparkSession, lake: Lake, config: ClickmlConfig, staged: StagedFiles, txn: Txn) -> CommitResult:
    """Append the staged files to their table in one transaction keyed by `txn` (a no-op when
    `txn` is already recorded: the staged files are then deleted)."""
    if lake.writer == "delta-spark":
        # The Delta jars write their own files; the staged ones are read back and removed.
        result = lake.write(staged.frame(spark), staged.table, mode="append", partition_by=staged.partition_by, txn=txn)
        delete_files(staged.location, [f.path for f in staged.files])
        return result
    result = deltalog.commit(
        staged.location, staged.files, staged.schema, mode="append", partition_by=staged.partition_by, txn=txn,
        retries=config.lake.commit_retries, backoff_seconds=config.lake.commit_backoff_seconds,
        write_id=staged.write_id or None, operation="WRITE append",
    )
    if result.skipped:
        delete_files(staged.location, [f.path for f in staged.files])
    return result


def parquet_compression(config: ClickmlConfig) -> str:
    return "uncompressed" if config.lake.parquet_compression == "none" else config.lake.parquet_compression
