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
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pipelines.config import ClickmlConfig
from pipelines.ingest.reader import LandingFile, RawRecords, raw_records_from_text, read_raw_parquet_frame, source_location
from pipelines.ingest.stage import APP_ID, IngestResult, process_batch
from pipelines.lake import Lake, Txn
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

    def prepare(batch: DataFrame, batch_id: str) -> MicroBatch:
        if source.format == "parquet":
            frame = read_raw_parquet_frame(batch.drop("source_file", "source_block"), F.col("source_file"), batch)
            raw = RawRecords(frame, frame.count())
        else:
            raw = raw_records_from_text(batch.select("value", "source_file", "source_block"), source)
        # Bounded: the files of one micro-batch (at most ingest.max_files_per_trigger).
        names = sorted(r[0] for r in batch.select("source_file").distinct().collect())
        log.info("ingest %s: micro-batch of %d file(s)", batch_id, len(names))
        return MicroBatch(raw, [LandingFile(relative=name, spark_uri=name, size=0) for name in names])

    log.info("ingest %s incrementally from %s", source.name, location)
    return run_micro_batches(config, spark, lake, source, stream, prepare, mode="incremental")


@dataclass
class MicroBatch:
    """What a stream's micro-batch hands to the shared batch code: its raw records and its parts
    (files, or `kafka:<topic>/<partition>` slices), plus offsets for the audit where there are any."""

    raw: RawRecords
    files: list[LandingFile]
    offsets: list[dict] = field(default_factory=list)


def stream_txn(source: str, query_id: str, epoch_id: int) -> Txn:
    """The Delta application transaction of a micro-batch: the query (its id lives in the
    checkpoint) is the application, the epoch its version. A replayed epoch is skipped by every
    table it had reached; a new checkpoint is a new application."""
    return Txn(app_id=f"{APP_ID}/{source}:stream:{query_id}", version=epoch_id)


def run_micro_batches(
    config: ClickmlConfig,
    spark: SparkSession,
    lake: Lake,
    source: SourceConfig,
    stream: DataFrame,
    prepare: Callable[[DataFrame, str], MicroBatch],
    mode: str,
    follow_interval: str | None = None,
    stop: threading.Event | None = None,
    on_batch: Callable[[IngestResult], None] | None = None,
) -> list[IngestResult]:
    """Run `stream` through the shared batch code (`process_batch`), one micro-batch at a time.

    Without `follow_interval`, everything available now is taken, then the query stops
    (`availableNow`). With it, a micro-batch starts every interval until `stop` is set (SIGTERM or
    SIGINT in the main thread sets it): the query is stopped between batches, and a batch cut
    short anyway is re-run from the checkpoint with the same id and transaction.
    """
    results: list[IngestResult] = [] if follow_interval is None else deque(maxlen=FOLLOW_RESULTS_KEPT)  # type: ignore[assignment]
    query_id: list[str] = []
    started = threading.Event()

    def each_batch(batch: DataFrame, epoch_id: int) -> None:
        # The query id is known once start() returns, which can be just after the first batch began.
        if not started.wait(timeout=QUERY_ID_WAIT_SECONDS):
            raise RuntimeError(f"ingest {source.name}: the stream's query id was not known after {QUERY_ID_WAIT_SECONDS}s")
        batch_id = stream_batch_id(source.name, query_id[0], epoch_id)
        reference_time = batch_time(batch)
        micro = prepare(batch.drop(BATCH_TIME), batch_id)
        result = process_batch(
            config, spark, lake, source, micro.files, batch_id, mode, None, None,
            reference_time=reference_time, raw=micro.raw, txn=stream_txn(source.name, query_id[0], epoch_id),
            offsets=micro.offsets,
        )
        results.append(result)
        if on_batch is not None:
            on_batch(result)

    checkpoint = checkpoint_location(config, source)
    writer = stream.writeStream.foreachBatch(each_batch).option("checkpointLocation", checkpoint).queryName(f"ingest-{source.name}")
    writer = writer.trigger(processingTime=follow_interval) if follow_interval else writer.trigger(availableNow=True)
    log.info("ingest %s: %s stream, checkpoint %s", source.name, "following" if follow_interval else "availableNow", checkpoint)
    query = writer.start()
    query_id.append(str(query.id))
    started.set()
    if follow_interval is None:
        query.awaitTermination()
    else:
        _follow(query, source.name, stop or threading.Event())
    if query.exception() is not None:  # pragma: no cover - awaitTermination raises already
        raise RuntimeError(f"ingest {source.name}: {query.exception()}")
    if not results:
        log.info("ingest %s: nothing new", source.name)
    return list(results)


FOLLOW_RESULTS_KEPT = 1000
"""A following stream returns the results of its last this-many micro-batches (it may run for weeks)."""
STOP_WAIT_SECONDS = 600


def _follow(query, name: str, stop: threading.Event) -> None:
    """Wait until the query fails or `stop` is set (by SIGTERM / SIGINT when called from the main
    thread); then let a running micro-batch finish (bounded) and stop the query."""
    handlers = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            handlers[sig] = signal.signal(sig, lambda signum, frame: stop.set())
    try:
        while not stop.is_set():
            if query.awaitTermination(timeout=1):  # ended on its own: failed (awaitTermination raised) or stopped
                return
        log.info("ingest %s: stop requested; letting the running micro-batch finish", name)
        deadline = time.monotonic() + STOP_WAIT_SECONDS
        while query.isActive and query.status.get("isTriggerActive") and time.monotonic() < deadline:
            time.sleep(0.5)
        query.stop()
        log.info("ingest %s: stream stopped", name)
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
