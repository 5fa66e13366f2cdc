"""Incremental ingestion: Spark's file source with a checkpoint and `availableNow`.

Each file is taken exactly once: the stream's checkpoint records which files every micro-batch
holds before the batch runs, and a batch that dies is re-run after a restart with the same epoch
id and the same files. The epoch id is part of the batch id, so the Delta transaction ids make
the re-run finish the batch without duplicating what it had committed.
"""

from __future__ import annotations

import datetime as dt
import logging

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pipelines.config import ClickmlConfig
from pipelines.ingest.reader import LandingFile, RawRecords, raw_records_from_text, read_raw_parquet_frame, source_location
from pipelines.ingest.stage import IngestResult, process_batch
from pipelines.lake import Lake
from pipelines.sources import SourceConfig

log = logging.getLogger(__name__)


def checkpoint_location(config: ClickmlConfig, source: SourceConfig) -> str:
    root = config.ingest.checkpoint_root or f"{config.lake.root.rstrip('/')}/_checkpoints/ingest"
    return f"{root.rstrip('/')}/{source.name}"


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
        "*", F.col("_metadata.file_path").alias("source_file"), F.col("_metadata.file_block_start").alias("source_block")
    )
    results: list[IngestResult] = []

    def each_batch(batch: DataFrame, epoch_id: int) -> None:
        batch_id = f"{source.name}:stream:{epoch_id:06d}"
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
                reference_time=dt.datetime.now(dt.timezone.utc), raw=raw,
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
    query.awaitTermination()
    if query.exception() is not None:  # pragma: no cover - awaitTermination raises already
        raise RuntimeError(f"ingest {source.name}: {query.exception()}")
    if not results:
        log.info("ingest %s: no new files", source.name)
    return results
