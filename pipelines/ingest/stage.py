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

from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.window import Window

from pipelines.config import ClickmlConfig
from pipelines.ingest import reasons
from pipelines.ingest.parse import classify, parse_fields
from pipelines.ingest.reader import (
    LandingFile,
    NumberingError,
    RawRecords,
    list_landing_files,
    read_raw,
    session_settings,
    source_location,
)
from pipelines.ingest.staging import StagedRows, commit_staged, delete_folder, new_folder, write_parquet
from pipelines.lake import Lake, Txn
from pipelines.sources import SourceConfig, load_source

log = logging.getLogger(__name__)

APP_ID = "clickml-ingest"
BRONZE_COLUMNS = (
    "event_id", "event_time", "event_type", "user_id", "session_id", "product_id", "category", "brand",
    "price", "currency", "device", "referrer", "country", "experiment_id", "variant", "model_version",
    "source", "source_file", "source_line", "batch_id",
    "ingested_at", "event_date",
)
OFFSET_RANGE = T.StructType(
    [
        T.StructField("topic", T.StringType()),
        T.StructField("partition", T.IntegerType()),
        T.StructField("start_offset", T.LongType()),
        T.StructField("end_offset", T.LongType()),
        T.StructField("records", T.LongType()),
    ]
)
"""A stream batch's slice of one topic partition: offsets [start_offset, end_offset)."""
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
        T.StructField("offsets", T.ArrayType(OFFSET_RANGE)),
        T.StructField("started_at", T.TimestampType()),
        T.StructField("finished_at", T.TimestampType()),
        T.StructField("seconds", T.DoubleType()),
    ]
)


class IngestUsageError(ValueError):
    """The ingest was asked for something its sources do not allow (an interval of a Kafka source)."""


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
    offsets: list[dict] = field(default_factory=list)
    """Kafka batches: per topic partition, `topic`, `partition`, `start_offset`, `end_offset`
    (exclusive) and `records`; empty for files."""
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
    follow: bool = False,
) -> list[IngestResult]:
    """Ingest a source: the interval [start, end) when given, else incrementally (availableNow).
    A Kafka source is read as a stream: availableNow, or with `follow` until SIGTERM.

    The work runs in a child session (same SparkContext, own session state): the stage counts
    records with `DataFrame.observe`, after which Spark 4.1 fails every MLlib fit or model
    selection in that session ("Task not serializable: ObservationManager"). The caller's session
    stays usable.
    """
    names = [source] if source else list(config.ingest.sources)
    specs = [load_source(config.conf_dir, name) for name in names]
    if follow and (len(specs) != 1 or specs[0].kind != "kafka"):
        raise IngestUsageError(f"--follow runs one Kafka source; got {', '.join(f'{s.name} ({s.kind})' for s in specs)}")
    spark = spark.newSession()
    lake = (lake or Lake(config)).with_session(spark)
    ensure_added_columns(spark, lake, config)  # once per run, not per batch: a schema read
    results: list[IngestResult] = []
    for spec in specs:
        if spec.kind == "kafka":
            if start is not None or end is not None:
                raise IngestUsageError(
                    f"source {spec.name} is a Kafka source: it is ingested as a stream from its checkpoint, "
                    "not by interval (drop --start/--end)"
                )
            from pipelines.ingest.kafka import ingest_kafka

            results.extend(ingest_kafka(config, spark, lake, spec, follow=follow))
        elif start is not None and end is not None:
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
        offsets=[o.asDict() for o in row.get("offsets") or []], seconds=row["seconds"], skipped=True,
    )


OUTCOME_BRONZE = "bronze"
OUTCOME_DUPLICATE = "duplicate_in_batch"
OUTCOMES = (OUTCOME_BRONZE, OUTCOME_DUPLICATE, *reasons.ALL)
"""`outcome` of a record: bronze, a duplicate within the batch, or its quarantine reason code."""
QUARANTINE_COLUMNS = ("raw", "source", "source_file", "source_line", "reason", "batch_id", "ingested_at", "batch_date")

# The staged layout. One Spark write stages every record of a batch in bronze's columns,
# partitioned by event_date only (one sort column: Spark sorts a task's rows by it with a radix
# sort before writing). Bronze rows are complete. The other records have no event_date and no
# ingested_at, carry their outcome in OUTCOME_CARRIER, quarantined ones their raw text in
# RAW_CARRIER, and all their source file and line. The folders of event dates hold exactly the
# files to commit to bronze.events; the null-date folder (about 1% of a batch) is read once, to
# count the outcomes and move the quarantined records to bronze.quarantine's layout, and deleted.
OUTCOME_CARRIER = "event_type"
RAW_CARRIER = "event_id"
STAGED_MARK = "ingested_at"
"""Non-null exactly on bronze rows (a valid event without an event time is bronze with a null
event_date, so the null-date folder can hold such rows)."""


@dataclass
class StagedBatch:
    """A classified batch written to a staging folder and counted from the written files."""

    records: int
    """Records read (counted from the lines, independently of the outcomes)."""
    bronze: StagedRows
    quarantine: StagedRows
    quarantined_by_reason: dict[str, int]
    duplicates_in_batch: int
    duplicates_in_bronze: int
    folder: str = ""
    """The staging folder holding both (deleted when the batch ends)."""

    def discard(self, spark: SparkSession) -> None:
        if self.folder:
            delete_folder(spark, self.folder)


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
    txn: Txn | None = None,
    offsets: list[dict] | None = None,
) -> IngestResult:
    """Classify and deduplicate the batch in one Spark job that writes every outcome, check the
    accounting identity on the written files, then commit quarantine, bronze, audit.

    `txn` is the batch's Delta transaction (default: one per batch id); a stream passes its
    query's id and the epoch. `offsets` (stream batches) go into the audit row; their records add
    up to the records read, which the identity then ties to bronze + quarantine + duplicates."""
    done = completed_batch(lake, config, batch_id)
    if done is not None:
        log.info("ingest %s: already complete; nothing to do", batch_id)
        return done
    started = time.time()
    started_at = dt.datetime.now(dt.timezone.utc)
    result = IngestResult(batch_id, source.name, mode, start, end, files=len(files), offsets=list(offsets or []))
    if raw is None and not files:
        _write_audit(spark, lake, config, result, [], started_at, txn or Txn.for_batch(APP_ID, batch_id))
        return result
    given = raw is not None
    raw = raw if given else read_raw(spark, files, source)
    try:
        batch = stage_batch(config, spark, lake, source, raw, batch_id, reference_time, started_at)
    except NumberingError as exc:
        if given:
            raise
        log.warning("ingest %s: %s; numbering the lines by block instead", batch_id, exc)
        batch = stage_batch(
            config, spark, lake, source, read_raw(spark, files, source, per_file=False), batch_id, reference_time,
            started_at,
        )
    try:
        result.records_read = batch.records
        result.bronze_written = batch.bronze.rows
        result.quarantined_by_reason = dict(batch.quarantined_by_reason)
        result.quarantined = sum(result.quarantined_by_reason.values())
        result.duplicates_in_batch = batch.duplicates_in_batch
        result.duplicates_in_bronze = batch.duplicates_in_bronze
        result.event_dates = batch.bronze.partition_values("event_date")
        accounted = result.bronze_written + result.quarantined + result.duplicates_in_batch + result.duplicates_in_bronze
        in_offsets = sum(o["end_offset"] - o["start_offset"] for o in result.offsets)
        if result.offsets and in_offsets != result.records_read:
            raise AccountingError(
                f"ingest {batch_id}: the batch's offset ranges hold {in_offsets} messages but {result.records_read} "
                "records were read; nothing was committed"
            )
        if accounted != result.records_read or batch.quarantine.rows != result.quarantined:
            raise AccountingError(
                f"ingest {batch_id}: read {result.records_read} records but accounted for {accounted} "
                f"(bronze {result.bronze_written} + quarantine {result.quarantined} + duplicates "
                f"{result.duplicates_in_batch + result.duplicates_in_bronze}; {batch.quarantine.rows} rows staged "
                "for the quarantine); nothing was committed"
            )
    except BaseException:
        batch.discard(spark)  # nothing was committed: the staged files go
        raise
    # Each table's commit is keyed by the batch's transaction id: after a crash between the two,
    # the re-run skips the committed one and finishes the other (the audit row is written last).
    txn = txn or Txn.for_batch(APP_ID, batch_id)
    try:
        _commit(lake, batch.quarantine, txn, result.quarantined)
        _commit(lake, batch.bronze, txn, result.bronze_written)
    finally:
        batch.discard(spark)
    result.seconds = time.time() - started
    _write_audit(spark, lake, config, result, [f.relative for f in files], started_at, txn)
    log.info("ingest %s", result.report())
    return result


def stage_batch(
    config: ClickmlConfig,
    spark: SparkSession,
    lake: Lake,
    source: SourceConfig,
    raw: RawRecords,
    batch_id: str,
    reference_time: dt.datetime,
    started_at: dt.datetime,
) -> StagedBatch:
    """One Spark job reads, parses, classifies and deduplicates the batch and writes every record
    once into a staging folder (the staged layout above). Then the null-date records are counted
    by outcome and the quarantined ones written in bronze.quarantine's layout, the bronze rows
    are counted per event date, and rows already in bronze are taken out of the selection."""
    ingested_at = F.lit(started_at).cast("timestamp")
    outcomes = label_outcomes(spark, lake, config, source, raw.frame, batch_id, reference_time)
    staged_frame = staged_rows(outcomes, source, batch_id, ingested_at)
    folder = new_folder(config, "ingest")
    try:
        with raw.scan_settings(spark), session_settings(spark, write_settings(spark, raw.input_bytes)):
            write_parquet(staged_frame, f"{folder}/records", ["event_date"])
        records = raw.records()
        bronze = StagedRows(
            config.tables.bronze_events, f"{folder}/records", _nullable(staged_frame.schema), ["event_date"],
            where=F.col(STAGED_MARK).isNotNull(),
        )
        counts, quarantine = split_undated(spark, config, source, bronze, f"{folder}/quarantine", batch_id, ingested_at, reference_time)
        bronze.count_partitions(spark)
        duplicates_in_bronze = drop_existing(spark, lake, config, bronze, batch_id)
    except BaseException:
        delete_folder(spark, folder)
        raise
    return StagedBatch(
        records=records, bronze=bronze, quarantine=quarantine,
        quarantined_by_reason={r: counts[r] for r in reasons.ALL if counts.get(r)},
        duplicates_in_batch=counts.get(OUTCOME_DUPLICATE, 0), duplicates_in_bronze=duplicates_in_bronze,
        folder=folder,
    )


def _nullable(schema: T.StructType) -> T.StructType:
    return T.StructType([T.StructField(f.name, f.dataType, True) for f in schema.fields])


DEDUP_PARTITION_BYTES = 32 * 1024 * 1024
"""Landing bytes per partition of the in-batch deduplication shuffle: small enough that a
partition's sort stays in memory (a shuffle sized by `spark.sql.shuffle.partitions` alone spilled
gigabytes at 10M events); adaptive execution coalesces partitions that turn out small."""
CONCURRENT_WRITERS = 64
"""Open Parquet writers per task for the partitioned write (one per event date of the task)."""


def write_settings(spark: SparkSession, input_bytes: int) -> dict[str, str]:
    """Session settings for the staged write: the deduplication shuffle sized by the input, and
    the partitioned write without a second sort (the window leaves the rows sorted by event id;
    concurrent writers, one per event date, take them in that order)."""
    partitions = max(int(spark.conf.get("spark.sql.shuffle.partitions") or 1), -(-input_bytes // DEDUP_PARTITION_BYTES))
    return {
        "spark.sql.shuffle.partitions": str(partitions),
        "spark.sql.optimizer.plannedWrite.enabled": "false",
        "spark.sql.maxConcurrentOutputFileWriters": str(CONCURRENT_WRITERS),
    }


def staged_rows(outcomes: DataFrame, source: SourceConfig, batch_id: str, ingested_at: F.Column) -> DataFrame:
    """Records in the staged layout: bronze's columns, partitioned by event_date."""
    bronze = F.col("outcome") == OUTCOME_BRONZE
    quarantined = F.col("outcome").isin(*reasons.ALL)
    constants = {"source": F.lit(source.name), "batch_id": F.lit(batch_id), "ingested_at": ingested_at}
    columns = []
    for name in BRONZE_COLUMNS:
        if name in ("source_file", "source_line"):
            value = F.col(name)
        elif name == RAW_CARRIER:
            value = F.when(bronze, F.col(name)).when(quarantined, F.col("raw"))
        elif name == OUTCOME_CARRIER:
            value = F.when(bronze, F.col(name)).otherwise(F.col("outcome"))
        else:
            value = F.when(bronze, constants.get(name, F.col(name)))
        columns.append(value.alias(name))
    return outcomes.select(*columns)


def split_undated(
    spark: SparkSession,
    config: ClickmlConfig,
    source: SourceConfig,
    bronze: StagedRows,
    folder: str,
    batch_id: str,
    ingested_at: F.Column,
    reference_time: dt.datetime,
) -> tuple[dict[str, int], StagedRows]:
    """Read the null-date staged records once (partition pruning: the null-date folder only):
    count them by outcome while writing the quarantined ones into `folder` in bronze.quarantine's
    layout. Valid events without an event time stay there as bronze rows (the bronze selection
    reads them by their mark).

    Returns the counts by outcome and the staged quarantine, counted from its files."""
    rows = spark.read.schema(bronze.schema).parquet(bronze.folder).where(F.col("event_date").isNull())
    is_bronze = F.col(STAGED_MARK).isNotNull()
    outcome = F.col(OUTCOME_CARRIER)
    observation = Observation("ingest-outcomes")
    known = [o for o in OUTCOMES if o != OUTCOME_BRONZE]
    observed = rows.observe(
        observation,
        F.count(F.lit(1)).alias("rows"),
        F.sum(is_bronze.cast("long")).alias(OUTCOME_BRONZE),
        *[F.sum((~is_bronze & (outcome == o)).cast("long")).alias(o) for o in known],
    )
    frame = observed.where(~is_bronze & outcome.isin(*reasons.ALL)).select(
        F.col(RAW_CARRIER).alias("raw"), F.lit(source.name).alias("source"), "source_file", "source_line",
        outcome.alias("reason"), F.lit(batch_id).alias("batch_id"), ingested_at.alias("ingested_at"),
        F.lit(reference_time.date()).alias("batch_date"),
    ).select(*QUARANTINE_COLUMNS)
    write_parquet(frame, folder, ["batch_date"])
    metrics = observation.get
    counts = {o: int(metrics.get(o) or 0) for o in OUTCOMES}
    if sum(counts.values()) != int(metrics.get("rows") or 0):
        raise AccountingError(
            f"ingest {batch_id}: {int(metrics.get('rows') or 0) - sum(counts.values())} staged record(s) without a "
            "known outcome; nothing was committed"
        )
    quarantine = StagedRows(config.tables.bronze_quarantine, folder, _nullable(frame.schema), ["batch_date"])
    quarantine.count_partitions(spark)
    return counts, quarantine


def drop_existing(spark: SparkSession, lake: Lake, config: ClickmlConfig, staged: StagedRows, batch_id: str) -> int:
    """Take out of the staged bronze rows those whose event id bronze already holds from another
    batch with an event date at most `ingest.bronze_dedup_days` from theirs; returns how many.

    Only those event dates of one bronze version are read (partition pruning; event_id and
    event_date), and the selection's per-date counts are corrected by the rows found, so the
    counts stay exactly what the commit writes.
    """
    table = config.tables.bronze_events
    dates = staged.partition_values("event_date")
    if not dates or not lake.exists(table):
        return 0
    reach = config.ingest.bronze_dedup_days
    around = sorted({(d + dt.timedelta(days=k)).isoformat() for d in dates for k in range(-reach, reach + 1)})
    version = lake.version(table)
    existing = (
        lake.read(table, version=version, partition_filters=[("event_date", "in", around)])
        .where(F.col("batch_id") != batch_id)
        .select(F.col("event_id").alias("__id"), F.col("event_date").alias("__date"))
    )
    same_event = (F.col("event_id") == F.col("__id")) & (F.abs(F.datediff("event_date", "__date")) <= reach)
    # Bounded: one row per event date of the batch.
    hits = {
        r["event_date"]: r["count"]
        for r in staged.frame(spark).select("event_date", "event_id").join(existing, same_event, "left_semi")
        .groupBy("event_date").count().collect()
    }
    if not hits:
        return 0
    staged.anti_join = (existing, same_event)
    for day, n in hits.items():
        left = staged.counts.get((day,), 0) - n
        if left > 0:
            staged.counts[(day,)] = left
        else:
            staged.counts.pop((day,), None)
    dropped = sum(hits.values())
    log.info("%s: %d staged row(s) already in bronze (version %d) are left out", table, dropped, version)
    return dropped


def _commit(lake: Lake, staged: StagedRows, txn: Txn, expected: int) -> None:
    assert lake.spark is not None
    committed = commit_staged(lake.spark, lake, staged, txn)
    if not committed.skipped and committed.rows_added != expected:
        raise AccountingError(
            f"{staged.table}: committed {committed.rows_added} rows for batch {txn.app_id} but {expected} were planned; "
            "the audit row was not written, so a re-run will finish the batch"
        )


def _write_audit(spark, lake: Lake, config: ClickmlConfig, result: IngestResult, files: list[str], started_at, txn: Txn) -> None:
    row = {
        **{k: v for k, v in asdict(result).items() if k in AUDIT_SCHEMA.fieldNames()},
        "file_list": files,
        "started_at": started_at,
        "finished_at": dt.datetime.now(dt.timezone.utc),
    }
    frame = spark.createDataFrame([tuple(row[f] for f in AUDIT_SCHEMA.fieldNames())], AUDIT_SCHEMA)
    lake.write(frame, config.tables.ingest_audit, mode="append", txn=txn)


BRONZE_ADDED_COLUMNS = T.StructType([T.StructField(name, T.StringType()) for name in ("experiment_id", "variant", "model_version")])
"""bronze.events columns added after its first release (exposure events)."""


def ensure_added_columns(spark: SparkSession, lake: Lake, config: ClickmlConfig) -> None:
    """Add the columns that tables written by an older clickml lack (the audit's `offsets`,
    bronze's exposure columns), with Delta's ALTER TABLE ADD COLUMNS (a metadata-only commit;
    old rows read them as null)."""
    add_missing_columns(spark, lake, config.tables.ingest_audit, AUDIT_SCHEMA)
    add_missing_columns(spark, lake, config.tables.bronze_events, BRONZE_ADDED_COLUMNS)


def add_missing_columns(spark: SparkSession, lake: Lake, table: str, schema: T.StructType) -> None:
    """ALTER TABLE ADD COLUMNS for the fields of `schema` that the existing `table` lacks."""
    if not lake.exists(table):
        return
    present = set(lake.read(table).columns)
    missing = [f for f in schema.fields if f.name not in present]
    if not missing:
        return
    columns = ", ".join(f"`{f.name}` {f.dataType.simpleString()}" for f in missing)
    log.info("%s: adding column(s) %s", table, ", ".join(f.name for f in missing))
    spark.sql(f"ALTER TABLE delta.`{lake.location(table).spark_uri}` ADD COLUMNS ({columns})")


def classify_records(config: ClickmlConfig, source: SourceConfig, raw: DataFrame, reference_time: dt.datetime) -> DataFrame:
    """Raw records parsed and classified (`reason` null for a valid event). Only quarantined
    records keep their text: valid ones need none, and this keeps the deduplication shuffle narrow."""
    classified = classify(
        parse_fields(raw, source), source, config.ingest.max_event_age_hours,
        config.ingest.future_tolerance_minutes, F.lit(reference_time).cast("timestamp"),
    )
    return classified.withColumn("raw", F.when(F.col("reason").isNotNull(), F.col("raw")))


def label_outcomes(
    spark: SparkSession,
    lake: Lake,
    config: ClickmlConfig,
    source: SourceConfig,
    raw: DataFrame,
    batch_id: str,
    reference_time: dt.datetime,
) -> DataFrame:
    """Every raw record with `outcome`: bronze, duplicate_in_batch, or its quarantine reason code.

    In-batch duplicates: among valid records with the same event id, the first in (file, line)
    order is kept. Duplicates of rows already in bronze are found after the write
    (`drop_existing`).
    """
    classified = classify_records(config, source, raw, reference_time)
    valid = F.col("reason").isNull()
    # Valid records rank by event id; a quarantined one is a partition of its own (its file and
    # line), so quarantined records spread over the shuffle and never count as an occurrence of an
    # event id. The event id leads the sort before the window (the sort compares its prefix).
    ranked = (
        classified.withColumn("__valid", valid)
        .withColumn("__own_file", F.when(~valid, F.col("source_file")))
        .withColumn("__own_line", F.when(~valid, F.col("source_line")))
    )
    first = Window.partitionBy("event_id", "__valid", "__own_file", "__own_line").orderBy("source_file", "source_line")
    ranked = ranked.withColumn("__rank", F.row_number().over(first))
    outcome = (
        F.when(~F.col("__valid"), F.col("reason"))
        .when(F.col("__rank") > 1, OUTCOME_DUPLICATE)
        .otherwise(OUTCOME_BRONZE)
    )
    return ranked.withColumn("outcome", outcome).drop("__valid", "__own_file", "__own_line", "__rank")
