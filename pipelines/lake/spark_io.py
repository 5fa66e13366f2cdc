"""Spark side of the delta-rs path: executors write Parquet, the driver commits; reads by snapshot.

Writes go to a fresh directory `write-<id>/` inside the table (hive-style partition folders
below it). Nothing there is visible until the driver commits the files' add actions in one
Delta transaction; files of a write that died before its commit stay unreferenced and
`vacuum` removes them.
"""

from __future__ import annotations

import logging
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Sequence

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema, to_arrow_schema
from pyspark.sql.types import BooleanType, StringType, StructField, StructType

from pipelines.lake import deltalog
from pipelines.lake.deltalog import CommitResult, Snapshot, Txn, WriteMode
from pipelines.lake.filesystem import filesystem_for, hidden_path, list_files
from pipelines.lake.location import TableLocation
from pipelines.lake.stats import DataFile, describe_file

log = logging.getLogger(__name__)

STAGING_PREFIX = "write-"
# Up to this many files, footers are read on the driver (threads); beyond, on the executors.
DRIVER_FOOTER_LIMIT = 64


def arrow_schema_of(df: DataFrame) -> pa.Schema:
    """The Delta table schema for a DataFrame: its columns, all nullable."""
    schema = to_arrow_schema(df.schema)
    return pa.schema([pa.field(f.name, f.type, nullable=True) for f in schema])


def write_and_commit(
    spark: SparkSession,
    df: DataFrame,
    location: TableLocation,
    mode: WriteMode,
    partition_by: Sequence[str],
    txn: Txn | None,
    overwrite_schema: bool,
    retries: int,
    backoff_seconds: float,
    compression: str,
    before_commit: Callable[[int], Any] | None = None,
    replace_partitions: Sequence[dict[str, Any]] = (),
) -> CommitResult:
    """Write `df` as Parquet into the table directory and commit it with delta-rs."""
    partition_by = list(partition_by)
    unknown = [c for c in partition_by if c not in df.columns]
    if unknown:
        raise deltalog.SchemaMismatchError(str(location), f"partition column(s) {', '.join(unknown)} not in the data")
    schema = arrow_schema_of(df)
    table = deltalog.open_table(location)
    if table is not None:
        if txn is not None:
            done = table.transaction_version(txn.app_id)
            if done is not None and done >= txn.version:
                log.info("%s: transaction %s v%s already committed; skipping the write", location, txn.app_id, txn.version)
                return CommitResult(str(location), None, skipped=True)
        if not (mode == "overwrite" and overwrite_schema):
            deltalog.check_readable(table, location)
            deltalog.check_schema(
                location, deltalog.table_schema(table), schema, list(table.metadata().partition_columns), partition_by
            )

    write_id = uuid.uuid4().hex
    staging = f"{STAGING_PREFIX}{write_id}"
    writer = df.write.mode("errorifexists").option("compression", compression)
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    log.info("%s: writing Parquet files to %s/", location, staging)
    writer.parquet(location.spark_child(staging))

    fs, base = filesystem_for(location)
    prefix = f"{base}/"
    relative = sorted(
        info.path[len(prefix):]
        for info in list_files(fs, f"{base}/{staging}")
        if info.path.endswith(".parquet") and not hidden_path(info.path[len(prefix):])
    )
    files = describe_files(spark, location, relative, partition_by)
    empty = [f for f in files if f.num_records == 0]
    for f in empty:  # Spark writes one empty file for an empty unpartitioned frame
        fs.delete_file(f"{base}/{f.path}")
    files = [f for f in files if f.num_records > 0]
    result = deltalog.commit(
        location, files, schema, mode=mode, partition_by=partition_by, txn=txn,
        overwrite_schema=overwrite_schema, retries=retries, backoff_seconds=backoff_seconds,
        write_id=write_id, before_commit=before_commit, operation=f"WRITE {mode}",
        replace_partitions=replace_partitions,
    )
    if result.skipped:
        fs.delete_dir_contents(f"{base}/{staging}", missing_dir_ok=True)
        fs.delete_dir(f"{base}/{staging}")
    return result


def describe_files(
    spark: SparkSession, location: TableLocation, relative_paths: Sequence[str], partition_by: Sequence[str]
) -> list[DataFile]:
    """Footer statistics of the written files: on driver threads when few, on executors when many."""
    partition_by = list(partition_by)
    if len(relative_paths) <= DRIVER_FOOTER_LIMIT:
        fs, base = filesystem_for(location)
        with ThreadPoolExecutor(max_workers=8) as pool:
            return list(pool.map(lambda p: describe_file(fs, base, p, partition_by), relative_paths))

    def describe_partition(paths):
        fs_, base_ = filesystem_for(location)
        for path in paths:
            yield describe_file(fs_, base_, path, partition_by)

    slices = max(1, min(len(relative_paths) // 16, spark.sparkContext.defaultParallelism * 4))
    # Bounded collect: one small record per written file.
    return spark.sparkContext.parallelize(list(relative_paths), slices).mapPartitions(describe_partition).collect()


def spark_schema_of(schema: pa.Schema) -> StructType:
    return from_arrow_schema(schema)


def read_snapshot(spark: SparkSession, snap: Snapshot) -> DataFrame:
    """Read exactly the snapshot's files with Spark, restoring typed partition columns."""
    table_schema = spark_schema_of(snap.schema)
    if not snap.files:
        return spark.createDataFrame([], table_schema)
    partition_columns = snap.partition_columns
    data_schema = StructType([f for f in table_schema.fields if f.name not in partition_columns])
    paths = [snap.location.spark_child(f.path) for f in snap.files]
    frame = spark.read.schema(data_schema).parquet(*paths)
    if not partition_columns:
        return frame.select(*[F.col(f"`{f.name}`") for f in table_schema.fields])

    root = _decoded_root_path(snap.location) + "/"
    path_col, matched_col = "__clickml_file", "__clickml_matched"
    # Spark's file path is a URI: decode it ('+' is literal in paths) and cut off the table root.
    decoded = F.expr("url_decode(replace(_metadata.file_path, '+', '%2B'))")
    start = F.instr(decoded, root) + F.lit(len(root))
    frame = frame.withColumn(path_col, decoded.substr(start, F.lit(1 << 20)))
    mapping_schema = StructType(
        [StructField(path_col, StringType(), False), StructField(matched_col, BooleanType(), False)]
        + [table_schema[c] for c in partition_columns]
    )
    # Bounded: one row per file of the snapshot, broadcast to the scan.
    rows = [tuple([f.path, True] + [f.partition_values.get(c) for c in partition_columns]) for f in snap.files]
    mapping = spark.createDataFrame(rows, mapping_schema)
    joined = frame.join(F.broadcast(mapping), on=path_col, how="left")
    # A row whose file path did not match fails the job loudly instead of being dropped.
    first = partition_columns[0]
    guarded = F.when(
        F.col(matched_col).isNull(),
        F.raise_error(F.concat(F.lit(f"table {snap.location}: cannot map file to its partition: "), F.col(path_col))),
    ).otherwise(F.col(f"`{first}`"))
    columns = [guarded.alias(f.name) if f.name == first else F.col(f"`{f.name}`") for f in table_schema.fields]
    return joined.select(*columns)


def _decoded_root_path(location: TableLocation) -> str:
    """The table root as it appears inside Spark's decoded file paths (no scheme)."""
    from urllib.parse import unquote, urlparse

    parsed = urlparse(location.spark_uri)
    path = unquote(parsed.path).rstrip("/")
    return f"{parsed.netloc}{path}" if parsed.netloc and parsed.scheme != "file" else path
