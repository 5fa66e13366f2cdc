"""Staged writes: Spark writes a batch's records as Parquet once, the Delta commits come later.

The ingest stage writes every outcome of a batch in one Spark job into a staging folder outside
the tables (`<lake root>/_staging/ingest/<write id>/`), counts the staged rows per partition from
those files, checks the accounting identity, and only then commits them to their tables with
`Lake.write` (delta-spark, one transaction per table keyed by the batch id). Counting reads only
the partition columns of the staged files (Parquet row counts), so the check is cheap and the
counted rows are exactly the rows committed: the staged files do not change between the two.

The staging folder is deleted when the batch ends, committed or not; a batch killed mid-way
leaves it behind, and the next run of the same batch replaces it (`clickml lake` tools list the
folder under `_staging/`, which no table reads).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from typing import Any, Sequence

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from pipelines.config import ClickmlConfig
from pipelines.lake import CommitResult, Lake, Txn
from pipelines.lake.hadoop_fs import delete_path, exists
from pipelines.lake.location import path_location

log = logging.getLogger(__name__)

STAGING_FOLDER = "_staging"


@dataclass
class StagedRows:
    """Rows written to a staging folder (or a selection of them) and not committed yet."""

    table: str
    """Logical name of the table they are committed to."""
    folder: str
    """Spark URI of the staged Parquet folder (hive-style partition folders below it)."""
    schema: T.StructType
    """The table's columns, in order (partition columns included)."""
    partition_by: list[str]
    where: Column | None = None
    """The selection of the folder's rows that belongs to the table (None: all of them)."""
    counts: dict[tuple, int] = field(default_factory=dict)
    """Rows per partition value tuple (bounded: one entry per partition)."""
    anti_join: tuple[DataFrame, Column] | None = None
    """Rows matching this (frame, condition) are left out (events bronze already holds)."""

    @property
    def rows(self) -> int:
        return sum(self.counts.values())

    def partition_values(self, column: str) -> list[Any]:
        i = self.partition_by.index(column)
        return sorted({key[i] for key in self.counts if key[i] is not None})

    def frame(self, spark: SparkSession) -> DataFrame:
        """The staged rows in the table's columns."""
        if self.folder and exists(spark, self.folder):
            frame = spark.read.schema(self.schema).parquet(self.folder)
        else:  # a write of no rows may leave no folder
            frame = spark.createDataFrame([], self.schema)
        if self.where is not None:
            frame = frame.where(self.where)
        if self.anti_join is not None:
            other, condition = self.anti_join
            frame = frame.join(other, condition, "left_anti")
        return frame.select(*[F.col(f"`{f.name}`") for f in self.schema.fields])

    def count_partitions(self, spark: SparkSession) -> None:
        """Set `counts` from the staged files (reads the partition columns only)."""
        frame = self.frame(spark)
        # Bounded collect: one row per partition of the batch.
        rows = frame.groupBy(*[F.col(f"`{c}`") for c in self.partition_by]).count().collect()
        self.counts = {tuple(r[c] for c in self.partition_by): int(r["count"]) for r in rows}


def staging_root(config: ClickmlConfig) -> str:
    """The Spark URI of the lake's staging area (no table lives there)."""
    return path_location(config.lake, f"{config.lake.root.rstrip('/')}/{STAGING_FOLDER}").spark_uri


def new_folder(config: ClickmlConfig, stage: str) -> str:
    """A fresh staging folder URI for one write of `stage`."""
    return f"{staging_root(config)}/{stage}/{uuid.uuid4().hex}"


def write_parquet(df: DataFrame, folder: str, partition_by: Sequence[str]) -> None:
    """Spark writes `df` as Parquet into `folder` (hive-style partition folders)."""
    writer = df.write.mode("errorifexists")
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    log.info("staging Parquet files in %s", folder)
    writer.parquet(folder)


def delete_folder(spark: SparkSession, folder: str) -> None:
    """Best effort: a folder left behind is under `_staging/`, which no table reads."""
    try:
        delete_path(spark, folder)
    except Exception as exc:  # pragma: no cover - cleanup only
        log.warning("could not delete staging folder %s: %s", folder, exc)


def commit_staged(spark: SparkSession, lake: Lake, staged: StagedRows, txn: Txn) -> CommitResult:
    """Append the staged rows to their table in one Delta transaction keyed by `txn` (a no-op
    when `txn` is already recorded)."""
    return lake.write(staged.frame(spark), staged.table, mode="append", partition_by=staged.partition_by, txn=txn)
