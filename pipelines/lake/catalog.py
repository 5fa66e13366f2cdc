"""`Lake`: the one way every stage reads and writes tables, by logical name."""

from __future__ import annotations

import copy
import logging
from typing import Any, Sequence

from pyspark.sql import DataFrame, SparkSession

from pipelines.config import ClickmlConfig
from pipelines.lake import delta_spark, deltalog
from pipelines.lake.delta_spark import VacuumResult, read_delta_spark, write_delta_spark
from pipelines.lake.deltalog import WRITE_MODES, CommitResult, HistoryEntry, Snapshot, Txn, WriteMode
from pipelines.lake.errors import WriterUnavailableError
from pipelines.lake.location import TableLocation, path_location, table_location
from pipelines.spark import delta_extension_loaded

log = logging.getLogger(__name__)


class Lake:
    """Read and write Delta tables under the configured lakehouse root.

    `name` arguments are logical names (`bronze.events`) resolved under `lake.root`; a name that
    contains `/` or a URI scheme is taken as a path to a table anywhere.
    """

    def __init__(self, config: ClickmlConfig, spark: SparkSession | None = None):
        self.config = config
        self.spark = spark
        self._checked = False

    def with_session(self, spark: SparkSession) -> Lake:
        """The same lake (config, writer choice) read and written through another session."""
        other = copy.copy(self)
        other.spark = spark
        return other

    # -- locations ---------------------------------------------------------------------------
    def location(self, name: str) -> TableLocation:
        if "/" in name or "://" in name:
            return path_location(self.config.lake, name)
        return table_location(self.config.lake, name)

    def _session(self) -> SparkSession:
        if self.spark is None:
            raise RuntimeError("this Lake was created without a SparkSession; pass one to read or write DataFrames")
        return self.spark

    # -- writes ------------------------------------------------------------------------------
    def write(
        self,
        df: DataFrame,
        name: str,
        mode: WriteMode = "append",
        partition_by: Sequence[str] = (),
        txn: Txn | None = None,
        overwrite_schema: bool = False,
        replace_partitions: Sequence[dict[str, Any]] = (),
    ) -> CommitResult:
        """Write `df` to the table in one atomic Delta commit.

        mode: `append`, `overwrite` (whole table) or `overwrite_partitions` (the partitions present
        in `df`, plus those listed in `replace_partitions`, which end up holding exactly `df`'s rows).
        `txn` makes the write idempotent: re-running it commits nothing.
        """
        if replace_partitions and mode != "overwrite_partitions":
            raise ValueError("replace_partitions goes with mode='overwrite_partitions'")
        if mode not in WRITE_MODES:
            raise ValueError(f"mode must be one of {', '.join(WRITE_MODES)}, got {mode!r}")
        self._check_writer(df.sparkSession)
        lake = self.config.lake
        return write_delta_spark(
            df, self.location(name), mode, partition_by, txn, overwrite_schema, lake.commit_retries,
            lake.commit_backoff_seconds, replace_partitions,
        )

    def _check_writer(self, spark: SparkSession) -> None:
        if not self._checked:
            if not delta_extension_loaded(spark):
                raise WriterUnavailableError(
                    "*", "the Delta extension is not loaded in this Spark session: run `make jars` "
                    "(or give spark-submit the jars of jvm/pom.xml with --jars; see 'Jars on a cluster' in docs/operations.md)",
                )
            self._checked = True

    # -- reads -------------------------------------------------------------------------------
    def read(self, name: str, version: int | None = None, partition_filters=None) -> DataFrame:
        """The table (or its `version`: time travel) as a Spark DataFrame.

        `partition_filters` are conjunctions like `[("event_date", "in", ["2024-01-01"])]`; Delta
        prunes files by them before anything is read.
        """
        spark = self._session()
        return read_delta_spark(spark, self.location(name), version, partition_filters)

    def exists(self, name: str) -> bool:
        location = self.location(name)
        if self.spark is not None:
            return delta_spark.is_delta_table(self.spark, location)
        return deltalog.open_table(location) is not None

    def version(self, name: str) -> int:
        """The latest version of the table."""
        location = self.location(name)
        if self.spark is not None:
            return delta_spark.latest_version(self.spark, location)
        return deltalog.snapshot(location).version

    def history(self, name: str, limit: int | None = None) -> list[HistoryEntry]:
        """Commits newest first (Delta's DESCRIBE HISTORY; the log through delta-rs without a session)."""
        location = self.location(name)
        if self.spark is not None:
            return delta_spark.history(self.spark, location, limit)
        return deltalog.history(location, limit)

    def snapshot(self, name: str, version: int | None = None, partition_filters=None) -> Snapshot:
        """The table's schema and exact file list at `version`, read from the log by delta-rs
        (for plain-Python readers: the deep-learning shards, `clickml lake files`, row counts)."""
        return deltalog.snapshot(self.location(name), version, partition_filters)

    # -- maintenance -------------------------------------------------------------------------
    def vacuum(self, name: str, retention_hours: float | None = None, dry_run: bool = False) -> VacuumResult:
        """Delta VACUUM: delete unreferenced files older than the retention (default
        `lake.vacuum_retention_hours`)."""
        hours = self.config.lake.vacuum_retention_hours if retention_hours is None else retention_hours
        return delta_spark.vacuum(self._session(), self.location(name), hours, dry_run)

    def optimize(self, name: str, where: str | None = None) -> dict[str, Any]:
        """Delta OPTIMIZE (compaction) of the table, or of the partitions matching `where`."""
        return delta_spark.optimize(self._session(), self.location(name), where)
