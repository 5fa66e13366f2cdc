"""Incremental ingestion: Spark's file source with a checkpoint and `availableNow`.

Each file is taken exactly once: the stream's checkpoint records which files every micro-batch
holds before the batch runs, and a batch that dies is re-run after a restart with the same epoch
id and the same files. The batch id is the stream's query id (kept in the checkpoint) plus the
epoch id, so the Delta transaction ids make the re-run finish the batch without duplicating what
it had committed, and a new checkpoint (its epochs start at 0 again) never meets the batch ids of
an old one.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pipelines.config import ClickmlConfig
from pipelines.ingest.reader import LandingFile, RawRecords, raw_records_from_text, read_raw_parquet_frame, source_location
from pipelines.ingest.stage import IngestResult, process_batch
from pipelines.lake import Lake
from pipelines.lake.location import path_location
from pipelines.sources import SourceConfig

log = logging.getLogger(__name__)


QUERY_ID_WAIT_SECONDS = 120


def stream_batch_id(source: str, query_id: str, epoch_id: int) -> str:
    """`<source>:stream:<query id>:<epoch>`: the query id lives in the checkpoint, so a re-run of
    an epoch gets the same id and a new checkpoint gets new ones."""
    return f"{source}:stream:{query_id}:{epoch_id:06d}"


BATCH_TIME = "__batch_time"


def batch_time(batch: DataFrame) -> dt.datetime:
    """The micro-batch's timestamp: the reference of the time window for records without an arrival
    time (flat layouts) and the quarantine's batch date. Spark keeps it in the checkpoint's offset
    log, so a batch re-run after a crash classifies exactly as the first attempt did; the wall
    clock would not."""
    rows = batch.select(F.unix_micros(BATCH_TIME)).limit(1).collect()  # bounded: one row
    if not rows:  # an empty micro-batch: nothing is classified
        return dt.datetime.now(dt.timezone.utc)
    return dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(microseconds=rows[0][0])


def checkpoint_location(config: ClickmlConfig, source: SourceConfig) -> str:
    """The stream's checkpoint, in Spark's spelling (`s3://` becomes `s3a://`, a local path absolute)."""
    root = config.ingest.checkpoint_root or f"{config.lake.root.rstrip('/')}/_checkpoints/ingest"
    return f"{path_location(config.lake, root).spark_uri.rstrip('/')}/{source.name}"


def ingest_incremental(config: ClickmlConfig, spark: SparkSession, lake: Lake, source: SourceConfig) -> list[IngestResult]:
    """Ingest every landing file not taken yet, in micro-batches, then stop."""
    location = source_location(config, source)
    reader = (
        spark.readStream.option("maxFilesPerTrigger", config.ingest.max_files_per_trigger)
        .option("recursiveFileLookup", "true")
        .option("pathGlobFilter", "[!_.]*")
    )
    if source.format == "parquet":
        schema = spark.read.option("recursiveFileLookup", "true").parquet(location.spark_uri).schema
        stream = reader.schema(schema).parquet(location.spark_uri)
    else:
        stream = reader.format("text").load(location.spark_uri)
    stream = stream.select(
        "*", F.col("_metadata.file_path").alias("source_file"), F.col("_metadata.file_block_start").alias("source_block"),
        F.current_timestamp().alias(BATCH_TIME),  # the micro-batch's timestamp, not the wall clock
    )
    results: list[IngestResult] = []
    query_id: list[str] = []
    started = threading.Event()

    def each_batch(batch: DataFrame, epoch_id: int) -> None:
        # The query id is known once start() returns, which can be just after the first batch began.
        if not started.wait(timeout=QUERY_ID_WAIT_SECONDS):
            raise RuntimeError(f"ingest {source.name}: the stream's query id was not known after {QUERY_ID_WAIT_SECONDS}s")
        batch_id = stream_batch_id(source.name, query_id[0], epoch_id)
        reference_time = batch_time(batch)
        batch = batch.drop(BATCH_TIME)
        if source.format == "parquet":
            frame = read_raw_parquet_frame(batch.drop("source_file", "source_block"), F.col("source_file"), batch)
            raw = RawRecords(frame, frame.count())
        else:
            raw = raw_records_from_text(batch.select("value", "source_file", "source_block"), source)
        # Bounded: the files of one micro-batch (at most ingest.max_files_per_trigger).
        names = sorted(r[0] for r in batch.select("source_file").distinct().collect())
        files = [LandingFile(relative=name, spark_uri=name, size=0) for name in names]
        log.info("ingest %s: micro-batch of %d file(s)", batch_id, len(files))
        results.append(
            process_batch(
                config, spark, lake, source, files, batch_id, "incremental", None, None,
                reference_time=reference_time, raw=raw,
            )
        )

    checkpoint = checkpoint_location(config, source)
    log.info("ingest %s incrementally from %s (checkpoint %s)", source.name, location, checkpoint)
    query = (
        stream.writeStream.foreachBatch(each_batch)
        .option("checkpointLocation", checkpoint)
        .trigger(availableNow=True)
        .queryName(f"ingest-{source.name}")
        .start()
    )
    query_id.append(str(query.id))
    started.set()
    query.awaitTermination()
    if query.exception() is not None:  # pragma: no cover - awaitTermination raises already
        raise RuntimeError(f"ingest {source.name}: {query.exception()}")
    if not results:
        log.info("ingest %s: no new files", source.name)
    return results
