"""The one writer: Delta through Spark (`format("delta")`), and Delta's own table operations.

Idempotent writes use Delta's application transactions (`txnAppId` / `txnVersion`): Delta skips
a write whose version it already holds. Concurrent commits are detected by Delta's optimistic
concurrency control and retried here with backoff. Each commit carries our write id in its
`userMetadata`, so the commit (version, rows, files) is found again in the table's history.
"""

from __future__ import annotations

import json
import logging
import random
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Sequence

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from pipelines.lake import deltalog
from pipelines.lake.deltalog import CommitResult, HistoryEntry, Txn, WriteMode
from pipelines.lake.errors import CommitConflictError, LakeError, SchemaMismatchError, TableNotFoundError
from pipelines.lake.location import TableLocation
from pipelines.spark.session import SKIP_EMPTY_COMMITS

log = logging.getLogger(__name__)

COMMIT_LOOKBACK = deltalog.COMMIT_LOOKBACK


def _conflicts() -> tuple[type[BaseException], ...]:
    """Delta's concurrent-modification exceptions (the Python classes need the delta-spark package)."""
    from delta import exceptions as dx

    return (
        dx.DeltaConcurrentModificationException, dx.ConcurrentWriteException, dx.MetadataChangedException,
        dx.ProtocolChangedException, dx.ConcurrentAppendException, dx.ConcurrentDeleteReadException,
        dx.ConcurrentDeleteDeleteException, dx.ConcurrentTransactionException,
    )


def write_delta_spark(
    df: DataFrame,
    location: TableLocation,
    mode: WriteMode,
    partition_by: Sequence[str],
    txn: Txn | None,
    overwrite_schema: bool,
    retries: int,
    backoff_seconds: float,
    replace_partitions: Sequence[dict] = (),
) -> CommitResult:
    """Write `df` in one Delta commit; see `Lake.write` for the modes."""
    unknown = [c for c in partition_by if c not in df.columns]
    if unknown:
        raise SchemaMismatchError(str(location), f"partition column(s) {', '.join(unknown)} not in the data")
    spark = df.sparkSession
    if txn is not None:
        done = transaction_version(spark, location, txn.app_id)
        if done is not None and done >= txn.version:
            log.info("%s: transaction %s v%s already committed; skipping the write", location, txn.app_id, txn.version)
            return CommitResult(str(location), None, skipped=True)
    write_id = uuid.uuid4().hex
    writer = df.write.format("delta").option("userMetadata", json.dumps({deltalog.COMMIT_WRITE_ID: write_id}))
    if mode == "append":
        writer = writer.mode("append")
    else:
        writer = writer.mode("overwrite")
        if mode == "overwrite_partitions" and replace_partitions:
            # Explicit partitions (some may receive no rows): a replaceWhere over their values.
            writer = writer.option("replaceWhere", _replace_where(replace_partitions, df))
        elif mode == "overwrite_partitions":
            writer = writer.option("partitionOverwriteMode", "dynamic")
        if overwrite_schema:
            writer = writer.option("overwriteSchema", "true")
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    if txn is not None:
        writer = writer.option("txnAppId", txn.app_id).option("txnVersion", str(txn.version))

    from pyspark.errors import AnalysisException

    # A write that adds and removes nothing (no rows, no partition to clear) still commits, so
    # that its write id is found below; Delta skips recording such commits by default.
    if spark.conf.get(SKIP_EMPTY_COMMITS, "true") != "false":
        spark.conf.set(SKIP_EMPTY_COMMITS, "false")
    conflicts = _conflicts()
    attempt = 0
    while True:
        attempt += 1
        try:
            writer.save(location.spark_uri)
            break
        except conflicts as exc:
            if attempt > retries:
                raise CommitConflictError(str(location), f"still conflicting after {attempt} attempts: {_first_line(exc)}") from exc
            delay = backoff_seconds * (2 ** (attempt - 1)) * (0.5 + random.random())
            log.warning("%s: concurrent commit (attempt %d): %s; retrying in %.2fs", location, attempt, _first_line(exc), delay)
            time.sleep(delay)
        except AnalysisException as exc:
            if _is_schema_error(exc):
                raise SchemaMismatchError(str(location), _schema_message(exc, df, location, partition_by)) from exc
            raise LakeError(str(location), f"Delta write failed: {_first_line(exc)}") from exc
    commit = find_commit(spark, location, write_id)
    if commit is None:
        if txn is not None:
            # Delta skips a write whose txnAppId/txnVersion it already holds (another writer got
            # there between our check and our write): no commit of ours.
            log.info("%s: transaction %s v%s was committed by another writer; nothing written", location, txn.app_id, txn.version)
            return CommitResult(str(location), None, skipped=True, attempts=attempt)
        raise LakeError(str(location), f"no commit with write id {write_id} among its last {COMMIT_LOOKBACK} commits")
    result = _commit_result(location, commit, write_id)
    result.attempts = attempt
    return result


_SCHEMA_CONDITIONS = ("DELTA_FAILED_TO_MERGE_FIELDS", "DELTA_METADATA_MISMATCH", "_SCHEMA_", "PARTITION")


def _is_schema_error(exc: BaseException) -> bool:
    """Delta's schema and partitioning mismatches, by error condition (or by its first line)."""
    condition = ""
    for getter in ("getCondition", "getErrorClass"):
        if hasattr(exc, getter):
            condition = getattr(exc, getter)() or ""
            break
    if any(part in condition for part in _SCHEMA_CONDITIONS):
        return True
    first = _first_line(exc).lower()
    return "schema" in first or "partition" in first


def _schema_message(exc: BaseException, df: DataFrame, location: TableLocation, partition_by: Sequence[str]) -> str:
    """Delta's first line, then what differs: columns added, missing or retyped, and partitioning."""
    parts = [_first_line(exc)]
    try:
        table = read_delta_spark(df.sparkSession, location, None)
        ours = {f.name: f.dataType.simpleString() for f in df.schema.fields}
        theirs = {f.name: f.dataType.simpleString() for f in table.schema.fields}
        added = [c for c in ours if c not in theirs]
        missing = [c for c in theirs if c not in ours]
        retyped = [f"{c} ({theirs[c]} in the table, {ours[c]} in the data)" for c in ours if c in theirs and ours[c] != theirs[c]]
        if added:
            parts.append("column(s) not in the table: " + ", ".join(added))
        if missing:
            parts.append("column(s) missing from the data: " + ", ".join(missing))
        if retyped:
            parts.append("type changed: " + "; ".join(retyped))
        table_partitions = _partition_columns(df.sparkSession, location)
        if partition_by and list(partition_by) != table_partitions:
            parts.append(f"partitioned by {', '.join(partition_by)}; the table by {', '.join(table_partitions) or 'nothing'}")
    except Exception:  # the message must not hide the original error
        log.debug("could not compare schemas for %s", location, exc_info=True)
    return "; ".join(parts)


def _partition_columns(spark: SparkSession, location: TableLocation) -> list[str]:
    target = "delta.`" + location.spark_uri.replace("`", "``") + "`"
    row = spark.sql(f"DESCRIBE DETAIL {target}").select("partitionColumns").first()  # bounded: one row
    return list(row[0]) if row is not None else []


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _replace_where(partitions: Sequence[dict], df: DataFrame) -> str:
    """A predicate matching exactly the listed partitions and those present in `df`'s rows."""
    keys = sorted({k for p in partitions for k in p})
    present = [r.asDict() for r in df.select(*keys).distinct().collect()]  # bounded: one row per partition
    clauses = []
    for p in list(partitions) + present:
        terms = [f"`{k}` IS NULL" if p.get(k) is None else f"`{k}` = {_sql_string(p.get(k))}" for k in keys]
        clauses.append("(" + " AND ".join(terms) + ")")
    return " OR ".join(sorted(set(clauses)))


def _sql_string(value) -> str:
    """`value` as a Spark SQL string literal (backslashes and quotes escaped)."""
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def read_delta_spark(
    spark: SparkSession, location: TableLocation, version: int | None, partition_filters: Sequence[tuple] | None = None
) -> DataFrame:
    """The table (at `version`), with `partition_filters` as a predicate Delta prunes files by."""
    if not is_delta_table(spark, location):
        raise TableNotFoundError.missing(location)
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    from pyspark.errors import AnalysisException

    try:
        frame = reader.load(location.spark_uri)
    except AnalysisException as exc:
        raise TableNotFoundError(str(location), _first_line(exc)) from exc
    predicate = filters_predicate(partition_filters or ())
    return frame if predicate is None else frame.where(predicate)


def filters_predicate(filters: Sequence[tuple[str, str, Any]]) -> Column | None:
    """delta-rs style conjunctions `[(column, op, value)]` as one Spark predicate."""
    predicate = None
    for column, op, value in filters:
        col = F.col(f"`{column}`")
        if op in ("=", "=="):
            term = col.isNull() if value is None else col == F.lit(value)
        elif op == "!=":
            term = col.isNotNull() if value is None else col != F.lit(value)
        elif op == "in":
            term = col.isin(list(value)) if value else F.lit(False)
        elif op == "not in":
            term = ~col.isin(list(value)) if value else F.lit(True)
        elif op in ("<", "<=", ">", ">="):
            term = {"<": col < value, "<=": col <= value, ">": col > value, ">=": col >= value}[op]
        else:
            raise ValueError(f"unsupported partition filter operator {op!r} on {column}")
        predicate = term if predicate is None else predicate & term
    return predicate


def is_delta_table(spark: SparkSession, location: TableLocation) -> bool:
    from delta.tables import DeltaTable

    return bool(DeltaTable.isDeltaTable(spark, location.spark_uri))


def _delta_table(spark: SparkSession, location: TableLocation):
    from delta.tables import DeltaTable

    if not is_delta_table(spark, location):
        raise TableNotFoundError.missing(location)
    return DeltaTable.forPath(spark, location.spark_uri)


def history_rows(spark: SparkSession, location: TableLocation, limit: int | None) -> list[dict[str, Any]]:
    """`DESCRIBE HISTORY` rows, newest first (bounded by `limit`)."""
    table = _delta_table(spark, location)
    frame = table.history(limit) if limit else table.history()
    columns = ["version", "timestamp", "operation", "operationParameters", "operationMetrics", "userMetadata"]
    # Bounded: one row per commit, at most `limit` (the commit lookback).
    return [r.asDict() for r in frame.select(*columns).collect()]


def history(spark: SparkSession, location: TableLocation, limit: int | None = None) -> list[HistoryEntry]:
    """Commits newest first, from Delta's `DESCRIBE HISTORY`."""
    entries = []
    for row in history_rows(spark, location, limit):
        metrics = row.get("operationMetrics") or {}
        rows = metrics.get("numOutputRows")
        if row["operation"] == "MERGE":
            rows = metrics.get("numTargetRowsInserted", rows)
        stamp = row["timestamp"]
        entries.append(
            HistoryEntry(
                version=int(row["version"]),
                timestamp_ms=int(stamp.timestamp() * 1000) if stamp is not None else 0,
                operation=str(row["operation"]),
                rows_added=None if rows is None else int(rows),
                write_id=deltalog.write_id_of({"userMetadata": row.get("userMetadata")}),
                parameters=dict(row.get("operationParameters") or {}),
            )
        )
    return entries


def latest_version(spark: SparkSession, location: TableLocation) -> int:
    rows = history_rows(spark, location, 1)
    return int(rows[0]["version"])


def find_commit(spark: SparkSession, location: TableLocation, write_id: str) -> dict[str, Any] | None:
    """The history row carrying `write_id` among the last `COMMIT_LOOKBACK` commits, if any."""
    # Almost always the newest commit: read one row first, the lookback only when another
    # writer committed after ours.
    for limit in (1, COMMIT_LOOKBACK):
        found = _find_in_history(spark, location, write_id, limit)
        if found is not None:
            return found
    return None


def _find_in_history(spark: SparkSession, location: TableLocation, write_id: str, limit: int) -> dict[str, Any] | None:
    for row in history_rows(spark, location, limit):
        if deltalog.write_id_of({"userMetadata": row.get("userMetadata")}) == write_id:
            return row
    return None


def _commit_result(location: TableLocation, commit: dict[str, Any], write_id: str) -> CommitResult:
    metrics = commit.get("operationMetrics") or {}

    def metric(*names: str) -> int:
        for name in names:
            if metrics.get(name) is not None:
                return int(metrics[name])  # Delta writes its metrics as strings
        return 0

    return CommitResult(
        str(location), int(commit["version"]),
        files_added=metric("numFiles", "numAddedFiles", "numTargetFilesAdded"),
        files_removed=metric("numRemovedFiles", "numTargetFilesRemoved"),
        rows_added=metric("numTargetRowsInserted", "numOutputRows"),
        write_id=write_id,
    )


def transaction_version(spark: SparkSession, location: TableLocation, app_id: str) -> int | None:
    """The latest committed version of an application transaction, or None (no table, no txn).

    Read from the Delta log by delta-rs (a metadata read; Delta's Python API has no call for it).
    Delta itself enforces the same rule at commit time: this check only saves recomputing a
    write that would be skipped.
    """
    del spark  # the log is read without Spark
    return deltalog.transaction_version(location, app_id)


@dataclass
class VacuumResult:
    table: str
    files_deleted: list[str] = field(default_factory=list)
    dry_run: bool = False
    retention_hours: float = 0.0


def vacuum(spark: SparkSession, location: TableLocation, retention_hours: float, dry_run: bool = False) -> VacuumResult:
    """Delta's VACUUM: delete files no version inside the retention references (files removed by
    overwrites, and files of writes that died before their commit)."""
    _delta_table(spark, location)
    hours = max(0.0, float(retention_hours))
    check_key = "spark.databricks.delta.retentionDurationCheck.enabled"
    previous = spark.conf.get(check_key, "true")
    # The retention is the caller's decision (config `lake.vacuum_retention_hours`); Delta's own
    # guard against retentions under 7 days is lifted for this statement only.
    spark.conf.set(check_key, "false")
    try:
        target = "delta.`" + location.spark_uri.replace("`", "``") + "`"
        # Bounded: one row per deleted file on a dry run (files past the retention); one row otherwise.
        listed = [r[0] for r in spark.sql(f"VACUUM {target} RETAIN {hours} HOURS DRY RUN").collect()]
        if not dry_run and listed:
            spark.sql(f"VACUUM {target} RETAIN {hours} HOURS").collect()
    finally:
        spark.conf.set(check_key, previous)
    log.info("%s: vacuum%s: %d file(s) older than %sh unreferenced", location, " (dry run)" if dry_run else "", len(listed), hours)
    return VacuumResult(str(location), files_deleted=sorted(listed), dry_run=dry_run, retention_hours=hours)


def optimize(spark: SparkSession, location: TableLocation, where: str | None = None) -> dict[str, Any]:
    """Delta's OPTIMIZE (bin-packing compaction) of the table or the partitions matching `where`;
    returns Delta's metrics (files added and removed, ...)."""
    builder = _delta_table(spark, location).optimize()
    if where:
        builder = builder.where(where)
    row = builder.executeCompaction().select("metrics").first()  # bounded: one row
    metrics = row["metrics"].asDict(recursive=True) if row is not None else {}
    log.info("%s: optimize: %s file(s) removed, %s added", location, metrics.get("numFilesRemoved"), metrics.get("numFilesAdded"))
    return metrics
