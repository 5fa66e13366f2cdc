"""Streaming ingest from Kafka: a `kind: kafka` source -> bronze, through the shared batch code.

Spark Structured Streaming reads the topic (spark-sql-kafka, from the pinned jars); each
micro-batch becomes raw records (`raw_records_from_messages`) and goes through `process_batch`
like a batch of landing files: same classification, quarantine reasons, deduplication, accounting
identity and audit. A message's place is its `source_file` (`kafka:<topic>/<partition>`) and
`source_line` (its offset); its Kafka timestamp is the arrival time of the time window.

Exactly once: the checkpoint records each micro-batch's offsets before it runs, so a batch cut
short (kill -9, a lost broker) is re-run with the same epoch and the same offsets after a
restart; its Delta commits carry the query's id as `txnAppId` and the epoch as `txnVersion`, so
what it had committed is skipped and the rest finished.

Accounting per micro-batch, before anything is committed: per topic partition the batch holds
offsets [start, end) with `end - start` messages (a hole inside is a gap), and `start` is where
the previous batch of this checkpoint ended (the audit rows say where). Offsets deleted by
retention before they were read fail the query (`failOnDataLoss`); either way the ingest stops
loudly instead of skipping data.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable, Mapping

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pipelines.config import ClickmlConfig
from pipelines.ingest import reasons
from pipelines.ingest.incremental import BATCH_TIME, MicroBatch, run_micro_batches
from pipelines.ingest.parse import RAW_REASON
from pipelines.ingest.reader import LandingFile, RawRecords
from pipelines.ingest.stage import IngestResult
from pipelines.lake import Lake
from pipelines.sources import SourceConfig

log = logging.getLogger(__name__)

SOURCE_PREFIX = "kafka:"
BASE64_PREFIX = "base64:"


class OffsetGapError(RuntimeError):
    """Offsets of a topic partition are missing between or inside micro-batches: data was lost
    (retention, a compacted topic) or skipped. Nothing of the batch was committed."""


def partition_name(topic: str, partition: int) -> str:
    """`kafka:<topic>/<partition>`: the `source_file` of a partition's messages ('/' is not allowed
    in topic names, so the split is unambiguous)."""
    return f"{SOURCE_PREFIX}{topic}/{partition}"


def kafka_stream(spark: SparkSession, source: SourceConfig, env: Mapping[str, str] | None = None) -> DataFrame:
    """The source's topic as a stream of `value`, `topic`, `partition`, `offset`, `timestamp`."""
    options = source.kafka
    assert options is not None, "a kafka source has a kafka section (validated at load)"
    reader = spark.readStream.format("kafka").options(**options.client_options(source.name, env))
    reader = reader.option("subscribe", options.topic) if options.topic else reader.option("subscribePattern", options.pattern)
    reader = reader.option("startingOffsets", options.starting_offsets).option("failOnDataLoss", "true")
    if options.max_offsets_per_trigger:
        reader = reader.option("maxOffsetsPerTrigger", str(options.max_offsets_per_trigger))
    return reader.load().select(
        "value", "topic", "partition", "offset", "timestamp",
        F.current_timestamp().alias(BATCH_TIME),  # the micro-batch's timestamp (kept in the offset log)
    )


def raw_records_from_messages(messages: DataFrame, max_bytes: int) -> DataFrame:
    """Kafka messages -> raw records: `raw`, `source_file`, `source_line`, `arrival_time`, and
    `raw_reason` for a message refused before parsing.

    Refused: no value or only blanks (`empty_record`), more than `max_bytes` bytes
    (`record_too_large`), not UTF-8 (`invalid_encoding`, its text is `base64:<bytes>` so nothing
    is lost). Every message is one record; blank messages are records too (they took an offset).
    """
    size = F.coalesce(F.octet_length("value"), F.lit(0))
    text = F.col("value").cast("string")
    valid_text = F.is_valid_utf8(text)
    refused = (
        F.when(size > max_bytes, F.lit(reasons.TOO_LARGE))
        .when(~valid_text, F.lit(reasons.INVALID_ENCODING))
        .when(F.coalesce(text, F.lit("")).rlike(r"^\s*$"), F.lit(reasons.EMPTY))
    )
    raw = F.when(~F.coalesce(valid_text, F.lit(True)), F.concat(F.lit(BASE64_PREFIX), F.base64("value"))).otherwise(
        F.coalesce(text, F.lit(""))
    )
    return messages.select(
        raw.alias("raw"),
        F.concat(F.lit(SOURCE_PREFIX), F.col("topic"), F.lit("/"), F.col("partition").cast("string")).alias("source_file"),
        F.col("offset").cast("long").alias("source_line"),
        F.col("timestamp").cast("timestamp").alias("arrival_time"),
        refused.alias(RAW_REASON),
    )


def offset_ranges(messages: DataFrame) -> list[dict]:
    """Per topic partition of a micro-batch: first offset, end offset (exclusive), messages, bytes.

    Bounded: one row per topic partition."""
    rows = (
        messages.groupBy("topic", "partition")
        .agg(
            F.min("offset").alias("first"), F.max("offset").alias("last"), F.count(F.lit(1)).alias("records"),
            F.sum(F.coalesce(F.octet_length("value"), F.lit(0))).alias("bytes"),
        )
        .collect()
    )
    return sorted(
        (
            {"topic": r["topic"], "partition": int(r["partition"]), "start_offset": int(r["first"]),
             "end_offset": int(r["last"]) + 1, "records": int(r["records"]), "bytes": int(r["bytes"] or 0)}
            for r in rows
        ),
        key=lambda o: (o["topic"], o["partition"]),
    )


def previous_ends(lake: Lake, config: ClickmlConfig, batch_id: str) -> dict[tuple[str, int], int]:
    """Where the other micro-batches of this batch's checkpoint (same query id) ended, per topic
    partition, from the audit rows. Only the last epoch can be re-run (its audit row may exist when
    it is), so the batch's own row is left out. Bounded: one row per topic partition."""
    prefix = batch_id.rsplit(":", 1)[0] + ":"
    table = config.tables.ingest_audit
    if not lake.exists(table):
        return {}
    audit = lake.read(table)
    if "offsets" not in audit.columns:
        return {}
    rows = (
        audit
        .where(F.col("batch_id").startswith(prefix) & (F.col("batch_id") != batch_id))
        .select(F.explode("offsets").alias("o"))
        .groupBy("o.topic", "o.partition")
        .agg(F.max("o.end_offset").alias("end"))
        .collect()
    )
    return {(r["topic"], int(r["partition"])): int(r["end"]) for r in rows}


def check_offsets(batch_id: str, ranges: list[dict], before: dict[tuple[str, int], int]) -> None:
    """Raise OffsetGapError unless every partition's slice is contiguous inside the batch and
    starts where the previous batch of the checkpoint ended."""
    problems = []
    for r in ranges:
        name = partition_name(r["topic"], r["partition"])
        span = r["end_offset"] - r["start_offset"]
        if span != r["records"]:
            problems.append(
                f"{name}: offsets {r['start_offset']}..{r['end_offset'] - 1} hold {r['records']} messages, "
                f"{span - r['records']} missing inside the batch"
            )
        ended = before.get((r["topic"], r["partition"]))
        if ended is not None and ended != r["start_offset"]:
            what = "missing" if r["start_offset"] > ended else "read twice"
            problems.append(
                f"{name}: the previous batch ended at offset {ended} but this one starts at {r['start_offset']} "
                f"({abs(r['start_offset'] - ended)} offsets {what})"
            )
    if problems:
        raise OffsetGapError(
            f"ingest {batch_id}: offset gap(s): " + "; ".join(problems)
            + ". Nothing of the batch was committed. Messages deleted by retention cannot be read again: re-produce "
            "them, or start a new checkpoint (ingest.checkpoint_root) to skip them knowingly."
        )


def ingest_kafka(
    config: ClickmlConfig,
    spark: SparkSession,
    lake: Lake,
    source: SourceConfig,
    follow: bool = False,
    stop: threading.Event | None = None,
    env: Mapping[str, str] | None = None,
    on_batch: Callable[[IngestResult], None] | None = None,
) -> list[IngestResult]:
    """Ingest the source's topic: everything available now (availableNow), or, with `follow`, a
    micro-batch every `kafka.follow_interval` until SIGTERM / SIGINT (or `stop`)."""
    options = source.kafka
    assert options is not None
    stream = kafka_stream(spark, source, env)

    def prepare(batch: DataFrame, batch_id: str) -> MicroBatch:
        ranges = offset_ranges(batch)
        check_offsets(batch_id, ranges, previous_ends(lake, config, batch_id))
        parts = [partition_name(r["topic"], r["partition"]) for r in ranges]
        messages = sum(r["records"] for r in ranges)
        log.info("ingest %s: %d message(s) from %d partition(s)", batch_id, messages, len(parts))
        raw = RawRecords(raw_records_from_messages(batch, options.max_message_bytes), count=messages)
        raw.input_bytes = sum(r.pop("bytes") for r in ranges)  # sizes the deduplication shuffle
        return MicroBatch(raw, [LandingFile(relative=p, spark_uri=p, size=0) for p in parts], ranges)

    where = options.topic or f"pattern {options.pattern}"
    log.info("ingest %s from Kafka %s (%s)", source.name, options.servers(env), where)
    return run_micro_batches(
        config, spark, lake, source, stream, prepare, mode="stream",
        follow_interval=options.follow_interval if follow else None, stop=stop, on_batch=on_batch,
    )
