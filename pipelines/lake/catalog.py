"""`Lake`: the one way every stage reads and writes tables, by logical name."""

from __future__ import annotations

import copy
import logging
from typing import Any, Callable, Sequence

from pyspark.sql import DataFrame, SparkSession

from pipelines.config import ClickmlConfig
from pipelines.lake import deltalog
from pipelines.lake.delta_spark import read_delta_spark, write_delta_spark
from pipelines.lake.deltalog import WRITE_MODES, CommitResult, HistoryEntry, Snapshot, Txn, WriteMode
from pipelines.lake.errors import WriterUnavailableError
from pipelines.lake.location import TableLocation, path_location, table_location
from pipelines.lake.spark_io import read_snapshot, write_and_commit
from pipelines.lake.vacuum import VacuumResult, vacuum
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
        self._writer: str | None = None

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

    @property
    def writer(self) -> str:
        """`delta-spark` or `delta-rs`, resolved from `lake.writer` and the session."""
        if self._writer is None:
            choice = self.config.lake.writer
            loaded = self.spark is not None and delta_extension_loaded(self.spark)
            if choice == "delta-spark" and not loaded:
                raise WriterUnavailableError(
                    "*", "lake.writer is 'delta-spark' but the Delta extension is not loaded in this Spark session "
                    "(add the io.delta:delta-spark_4.1_2.13 jars, or set lake.writer: auto)",
                )
            self._writer = "delta-spark" if (choice == "delta-spark" or (choice == "auto" and loaded)) else "delta-rs"
            log.info("lake writer: %s", self._writer)
        return self._writer

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
        before_commit: Callable[[int], Any] | None = None,
        replace_partitions: Sequence[dict[str, Any]] = (),
    ) -> CommitResult:
        """Write `df` to the table in one atomic commit.

        mode: `append`, `overwrite` (whole table) or `overwrite_partitions` (the partitions present
        in `df`, plus those listed in `replace_partitions`, which end up holding exactly `df`'s rows).
        `txn` makes the write idempotent: re-running it commits nothing.
        """
        if replace_partitions and mode != "overwrite_partitions":
            raise ValueError("replace_partitions goes with mode='overwrite_partitions'")
        if mode not in WRITE_MODES:
            raise ValueError(f"mode must be one of {', '.join(WRITE_MODES)}, got {mode!r}")
        location = self.location(name)
        lake = self.config.lake
        if self.writer == "delta-spark":
            return write_delta_spark(
                df, location, mode, partition_by, txn, overwrite_schema, lake.commit_retries, lake.commit_backoff_seconds,
                replace_partitions,
            )
        compression = "uncompressed" if lake.parquet_compression == "none" else lake.parquet_compression
        return write_and_commit(
            self._session(), df, location, mode, partition_by, txn, overwrite_schema,
            lake.commit_retries, lake.commit_backoff_seconds, compression, before_commit, replace_partitions,
        )

    # -- reads -------------------------------------------------------------------------------
    def snapshot(self, name: str, version: int | None = None, partition_filters=None) -> Snapshot:
        """The table's schema and exact file list at `version` (latest when None)."""
        return deltalog.snapshot(self.location(name), version, partition_filters)

    def read(self, name: str, version: int | None = None, partition_filters=None) -> DataFrame:
        """The table (or its `version`: time travel) as a Spark DataFrame.

        `partition_filters` are delta-rs conjunctions like `[("event_date", "=", "2024-01-01")]`;
        they prune files before Spark sees them.
        """
        spark = self._session()
        location = self.location(name)
        if self.writer == "delta-spark" and not partition_filters:
            return read_delta_spark(spark, location, version)
        return read_snapshot(spark, deltalog.snapshot(location, version, partition_filters))

    def exists(self, name: str) -> bool:
        return deltalog.open_table(self.location(name)) is not None

    def version(self, name: str) -> int:
        """The latest version of the table."""
        return self.snapshot(name).version

    def history(self, name: str, limit: int | None = None) -> list[HistoryEntry]:
        """Commits newest first, for lineage."""
        return deltalog.history(self.location(name), limit)

    def vacuum(self, name: str, retention_hours: float | None = None, dry_run: bool = False) -> VacuumResult:
        """Delete unreferenced files older than the retention (default `lake.vacuum_retention_hours`)."""
        hours = self.config.lake.vacuum_retention_hours if retention_hours is None else retention_hours
        return vacuum(self.location(name), hours, dry_run)
