"""The ingest stage: landing files -> bronze.events + bronze.quarantine + bronze.ingest_audit.

Every record read ends in exactly one place: bronze (a valid, new event), quarantine (with a
reason code), or the duplicate count (same event id within the batch or already in bronze). The
identity `read == bronze + quarantine + duplicates` is checked before anything is committed.

Each batch has a deterministic id (source + interval, or source + streaming epoch), and all three
tables are written with that id as their Delta application transaction. The audit row is written
last and marks the batch complete, so a re-run of a complete batch does nothing, and a re-run
after a crash (kill -9 at any point) finishes the batch without duplicating what was committed.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import asdict, dataclass, field

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.window import Window

from pipelines.config import ClickmlConfig
from pipelines.ingest.parse import classify, parse_fields
from pipelines.ingest.reader import LandingFile, RawRecords, list_landing_files, read_raw, source_location
from pipelines.lake import Lake, Txn
from pipelines.sources import SourceConfig, load_source

log = logging.getLogger(__name__)

APP_ID = "clickml-ingest"
BRONZE_COLUMNS = (
    "event_id", "event_time", "event_type", "user_id", "session_id", "product_id", "category", "brand",
    "price", "currency", "device", "referrer", "country", "source", "source_file", "source_line", "batch_id",
    "ingested_at", "event_date",
)
AUDIT_SCHEMA = T.StructType(
    [
        T.StructField("batch_id", T.StringType()),
        T.StructField("source", T.StringType()),
        T.StructField("mode", T.StringType()),
        T.StructField("interval_start", T.TimestampType()),
        T.StructField("interval_end", T.TimestampType()),
        T.StructField("files", T.LongType()),
        T.StructField("file_list", T.ArrayType(T.StringType())),
        T.StructField("records_read", T.LongType()),
        T.StructField("bronze_written", T.LongType()),
        T.StructField("quarantined", T.LongType()),
        T.StructField("quarantined_by_reason", T.MapType(T.StringType(), T.LongType())),
        T.StructField("duplicates_in_batch", T.LongType()),
        T.StructField("duplicates_in_bronze", T.LongType()),
        T.StructField("event_dates", T.ArrayType(T.DateType())),
        T.StructField("started_at", T.TimestampType()),
        T.StructField("finished_at", T.TimestampType()),
        T.StructField("seconds", T.DoubleType()),
    ]
)


class AccountingError(RuntimeError):
    """`read == bronze + quarantine + duplicates` does not hold: nothing was committed."""


@dataclass
class IngestResult:
    """What one batch did (also the audit row)."""

    batch_id: str
    source: str
    mode: str
    interval_start: dt.datetime | None
    interval_end: dt.datetime | None
    files: int
    records_read: int = 0
    bronze_written: int = 0
    quarantined: int = 0
    quarantined_by_reason: dict[str, int] = field(default_factory=dict)
    duplicates_in_batch: int = 0
    duplicates_in_bronze: int = 0
    event_dates: list[dt.date] = field(default_factory=list)
    """Event dates of the rows written to bronze (the partitions the silver stage must refresh)."""
    seconds: float = 0.0
    skipped: bool = False
    """True when the batch had already been ingested completely (nothing was written)."""

    def report(self) -> str:
        reasons_text = ", ".join(f"{k}={v}" for k, v in sorted(self.quarantined_by_reason.items())) or "none"
        state = " (already ingested; nothing written)" if self.skipped else ""
        return (
            f"batch {self.batch_id}{state}: {self.files} file(s), {self.records_read:,} read -> "
            f"{self.bronze_written:,} bronze, {self.quarantined:,} quarantined ({reasons_text}), "
            f"{self.duplicates_in_batch:,} duplicates in batch, {self.duplicates_in_bronze:,} already in bronze"
        )


def batch_id_for_interval(source: str, start: dt.datetime, end: dt.datetime) -> str:
    return f"{source}:{start:%Y-%m-%dT%H:%M}:{end:%Y-%m-%dT%H:%M}"


def run(
    config: ClickmlConfig,
    spark: SparkSession,
    source: str | None = None,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    lake: Lake | None = None,
) -> list[IngestResult]:
    """Ingest a source: the interval [start, end) when given, else incrementally (availableNow)."""
    lake = lake or Lake(config, spark)
    names = [source] if source else list(config.ingest.sources)
    results: list[IngestResult] = []
    for name in names:
        spec = load_source(config.conf_dir, name)
        if start is not None and end is not None:
            results.append(ingest_interval(config, spark, lake, spec, start, end))
        else:
            from pipelines.ingest.incremental import ingest_incremental

            results.extend(ingest_incremental(config, spark, lake, spec))
    return results


def ingest_interval(
    config: ClickmlConfig, spark: SparkSession, lake: Lake, source: SourceConfig, start: dt.datetime, end: dt.datetime
) -> IngestResult:
    """Ingest the files that arrived in [start, end) (Airflow's data interval)."""
    start, end = _utc(start), _utc(end)
    if end <= start:
        raise ValueError(f"interval end {end} must be after its start {start}")
    batch_id = batch_id_for_interval(source.name, start, end)
    files = list_landing_files(config, source, start, end)
    log.info("ingest %s: %d file(s) in %s", batch_id, len(files), source_location(config, source))
    return process_batch(config, spark, lake, source, files, batch_id, "interval", start, end, reference_time=end)


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value.astimezone(dt.timezone.utc)


def completed_batch(lake: Lake, config: ClickmlConfig, batch_id: str) -> IngestResult | None:
    """The audit row of a batch that was ingested completely, if any."""
    table = config.tables.ingest_audit
    if not lake.exists(table):
        return None
    # Bounded: at most one audit row per batch id.
    rows = lake.read(table).where(F.col("batch_id") == batch_id).limit(1).collect()
    if not rows:
        return None
    row = rows[0].asDict()
    return IngestResult(
        batch_id=row["batch_id"], source=row["source"], mode=row["mode"], interval_start=row["interval_start"],
        interval_end=row["interval_end"], files=row["files"], records_read=row["records_read"],
        bronze_written=row["bronze_written"], quarantined=row["quarantined"],
        quarantined_by_reason=dict(row["quarantined_by_reason"] or {}), duplicates_in_batch=row["duplicates_in_batch"],
        duplicates_in_bronze=row["duplicates_in_bronze"], event_dates=list(row["event_dates"] or []),
        seconds=row["seconds"], skipped=True,
    )


def process_batch(
    config: ClickmlConfig,
    spark: SparkSession,
    lake: Lake,
    source: SourceConfig,
    files: list[LandingFile],
    batch_id: str,
    mode: str,
    start: dt.datetime | None,
    end: dt.datetime | None,
    reference_time: dt.datetime,
    raw: RawRecords | None = None,
) -> IngestResult:
    """Classify, deduplicate, check the accounting identity, then commit quarantine, bronze, audit."""
    done = completed_batch(lake, config, batch_id)
    if done is not None:
        log.info("ingest %s: already complete; nothing to do", batch_id)
        return done
    started = time.time()
    started_at = dt.datetime.now(dt.timezone.utc)
    result = IngestResult(batch_id, source.name, mode, start, end, files=len(files))
    if raw is None and not files:
        _write_audit(spark, lake, config, result, [], started_at)
        return result
    raw = raw if raw is not None else read_raw(spark, files, source)
    result.records_read = raw.count
    outcomes = label_outcomes(spark, lake, config, source, raw.frame, batch_id, reference_time)
    outcomes = outcomes.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        # Bounded: one row per (outcome, reason).
        counts = {(r["outcome"], r["reason"]): r["count"] for r in outcomes.groupBy("outcome", "reason").count().collect()}
        result.bronze_written = counts.get(("bronze", None), 0)
        result.duplicates_in_batch = counts.get(("duplicate_in_batch", None), 0)
        result.duplicates_in_bronze = counts.get(("duplicate_in_bronze", None), 0)
        result.quarantined_by_reason = {reason: n for (outcome, reason), n in counts.items() if outcome == "quarantine"}
        result.quarantined = sum(result.quarantined_by_reason.values())
        # Bounded: the distinct event dates of one batch.
        result.event_dates = sorted(
            r[0] for r in outcomes.where(F.col("outcome") == "bronze").select("event_date").distinct().collect()
        )
        accounted = result.bronze_written + result.quarantined + result.duplicates_in_batch + result.duplicates_in_bronze
        if accounted != result.records_read:
            raise AccountingError(
                f"ingest {batch_id}: read {result.records_read} records but accounted for {accounted} "
                f"(bronze {result.bronze_written} + quarantine {result.quarantined} + duplicates "
                f"{result.duplicates_in_batch + result.duplicates_in_bronze}); nothing was committed"
            )
        ingested_at = F.lit(started_at).cast("timestamp")
        txn = Txn.for_batch(APP_ID, batch_id)
        quarantine = outcomes.where(F.col("outcome") == "quarantine").select(
            "raw", F.lit(source.name).alias("source"), "source_file", "source_line", "reason",
            F.lit(batch_id).alias("batch_id"), ingested_at.alias("ingested_at"),
            F.lit(reference_time.date()).alias("batch_date"),
        )
        _commit(lake, quarantine, config.tables.bronze_quarantine, ["batch_date"], txn, result.quarantined)
        bronze = outcomes.where(F.col("outcome") == "bronze").select(
            *[F.lit(source.name).alias(c) if c == "source" else F.lit(batch_id).alias(c) if c == "batch_id"
              else ingested_at.alias(c) if c == "ingested_at" else F.col(c) for c in BRONZE_COLUMNS]
        )
        _commit(lake, bronze, config.tables.bronze_events, ["event_date"], txn, result.bronze_written)
    finally:
        outcomes.unpersist()
    result.seconds = time.time() - started
    _write_audit(spark, lake, config, result, [f.relative for f in files], started_at)
    log.info("ingest %s", result.report())
    return result


def _commit(lake: Lake, df: DataFrame, table: str, partition_by: list[str], txn: Txn, expected: int) -> None:
    committed = lake.write(df, table, mode="append", partition_by=partition_by, txn=txn)
    if not committed.skipped and committed.rows_added != expected:
        raise AccountingError(
            f"{table}: committed {committed.rows_added} rows for batch {txn.app_id} but {expected} were planned; "
            "the audit row was not written, so a re-run will finish the batch"
        )


def _write_audit(spark, lake: Lake, config: ClickmlConfig, result: IngestResult, files: list[str], started_at) -> None:
    row = {
        **{k: v for k, v in asdict(result).items() if k in AUDIT_SCHEMA.fieldNames()},
        "file_list": files,
        "started_at": started_at,
        "finished_at": dt.datetime.now(dt.timezone.utc),
    }
    frame = spark.createDataFrame([tuple(row[f] for f in AUDIT_SCHEMA.fieldNames())], AUDIT_SCHEMA)
    lake.write(frame, config.tables.ingest_audit, mode="append", txn=Txn.for_batch(APP_ID, result.batch_id))


def label_outcomes(
    spark: SparkSession,
    lake: Lake,
    config: ClickmlConfig,
    source: SourceConfig,
    raw: DataFrame,
    batch_id: str,
    reference_time: dt.datetime,
) -> DataFrame:
    """Every raw record with `outcome`: bronze, quarantine, duplicate_in_batch, duplicate_in_bronze."""
    classified = classify(
        parse_fields(raw, source), source, config.ingest.max_event_age_hours,
        config.ingest.future_tolerance_minutes, F.lit(reference_time).cast("timestamp"),
    )
    # Only quarantined records keep their text: valid ones need none, and this keeps the dedup
    # shuffle and the cache narrow.
    classified = classified.withColumn("raw", F.when(F.col("reason").isNotNull(), F.col("raw")))
    first = Window.partitionBy("event_id").orderBy("source_file", "source_line")
    ranked = classified.withColumn(
        "__rank", F.when(F.col("reason").isNull(), F.row_number().over(first))
    )
    ranked = mark_existing(lake, config, ranked, batch_id)
    outcome = (
        F.when(F.col("reason").isNotNull(), "quarantine")
        .when(F.col("__rank") > 1, "duplicate_in_batch")
        .when(F.col("__existing"), "duplicate_in_bronze")
        .otherwise("bronze")
    )
    return ranked.withColumn("outcome", outcome).drop("__rank", "__existing")


def mark_existing(lake: Lake, config: ClickmlConfig, frame: DataFrame, batch_id: str) -> DataFrame:
    """Add `__existing`: the event id is already in bronze from another batch (same event date)."""
    table = config.tables.bronze_events
    if not lake.exists(table):
        return frame.withColumn("__existing", F.lit(False))
    # Bounded: the distinct event dates of one batch.
    dates = [r[0] for r in frame.where(F.col("reason").isNull()).select("event_date").distinct().collect()]
    if not dates:
        return frame.withColumn("__existing", F.lit(False))
    existing = (
        lake.read(table, partition_filters=[("event_date", "in", [d.isoformat() for d in dates])])
        .where(F.col("batch_id") != batch_id)
        .select("event_date", "event_id")
        .distinct()
        .withColumn("__existing", F.lit(True))
    )
    joined = frame.join(existing, on=["event_date", "event_id"], how="left")
    return joined.withColumn("__existing", F.coalesce(F.col("__existing"), F.lit(False)))
