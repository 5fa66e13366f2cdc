"""The writer and reader for sessions with the Delta Spark jars (clusters): `format("delta")`."""

from __future__ import annotations

import json
import logging
import random
import time
import uuid
from typing import Sequence

from pyspark.sql import DataFrame, SparkSession

from pipelines.lake import deltalog
from pipelines.lake.deltalog import CommitResult, Txn, WriteMode
from pipelines.lake.errors import CommitConflictError, LakeError, SchemaMismatchError
from pipelines.lake.location import TableLocation

log = logging.getLogger(__name__)


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
    """Write with the Delta data source; idempotency through Delta's txnAppId/txnVersion options."""
    if txn is not None:
        done = deltalog.transaction_version(location, txn.app_id)
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

    from delta.exceptions import ConcurrentModificationException  # needs the delta-spark package
    from pyspark.errors import AnalysisException

    for attempt in range(1, retries + 2):
        try:
            writer.save(location.spark_uri)
            break
        except ConcurrentModificationException as exc:
            if attempt > retries:
                raise CommitConflictError(str(location), f"still conflicting after {attempt} attempts: {exc}") from exc
            delay = backoff_seconds * (2 ** (attempt - 1)) * (0.5 + random.random())
            log.warning("%s: concurrent commit (attempt %d): %s; retrying in %.2fs", location, attempt, exc, delay)
            time.sleep(delay)
        except AnalysisException as exc:
            text = str(exc)
            if "schema" in text.lower() or "partition" in text.lower():
                raise SchemaMismatchError(str(location), text.splitlines()[0]) from exc
            raise LakeError(str(location), f"Delta write failed: {text.splitlines()[0]}") from exc
    try:
        result = deltalog.spark_commit_result(location, write_id)
    except LakeError:
        done = deltalog.transaction_version(location, txn.app_id) if txn is not None else None
        if txn is None or done is None or done < txn.version:
            raise
        # Delta skips a write whose txnAppId/txnVersion it already holds (another writer got
        # there first): no commit of ours.
        log.info("%s: transaction %s v%s was committed by another writer; nothing written", location, txn.app_id, done)
        return CommitResult(str(location), None, skipped=True, attempts=attempt)
    result.attempts = attempt
    return result


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


def read_delta_spark(spark: SparkSession, location: TableLocation, version: int | None) -> DataFrame:
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    return reader.load(location.spark_uri)
