"""The silver stage: bronze.events -> silver.events, silver.sessions, silver.bot_users.

Incremental by event date: the dates touched by ingest batches that silver has not processed yet
(from the ingest audit) are rebuilt, together with their neighbouring days, so late events and
sessions crossing midnight are handled; one more day on each side is read as context so that a
session that starts before the rebuilt range keeps its id. Sessions longer than a day (bots) may
be cut at the edge of the context; the bot filter removes such users anyway.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field

from pyspark import StorageLevel
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from pipelines.config import ClickmlConfig
from pipelines.lake import Lake, Txn
from pipelines.silver.bots import flag_bots
from pipelines.silver.sessionize import sessionize, summarize_sessions

log = logging.getLogger(__name__)

EVENT_COLUMNS = (
    "event_id", "event_time", "event_type", "user_id", "session_id", "session_start", "client_session_id",
    "product_id", "category", "brand", "price", "currency", "device", "referrer", "country", "source", "event_date",
)
SESSION_COLUMNS = (
    "session_id", "user_id", "session_start", "session_end", "duration_seconds", "events", "page_views", "searches",
    "product_views", "add_to_carts", "remove_from_carts", "purchases", "distinct_products", "converted", "revenue",
    "device", "referrer", "country", "session_date",
)


@dataclass
class SilverResult:
    dates: list[dt.date] = field(default_factory=list)
    """Event dates rebuilt."""
    batches: int = 0
    """Ingest batches newly covered."""
    events_written: int = 0
    sessions_written: int = 0
    bot_user_days: int = 0
    seconds: float = 0.0

    def report(self) -> str:
        if not self.dates:
            return "silver: nothing to do (no new ingest batches)"
        span = f"{self.dates[0]}..{self.dates[-1]}" if len(self.dates) > 1 else str(self.dates[0])
        return (
            f"silver: rebuilt {len(self.dates)} day(s) {span} for {self.batches} new batch(es): "
            f"{self.events_written:,} events, {self.sessions_written:,} sessions, "
            f"{self.bot_user_days:,} bot user-day(s) removed ({self.seconds:.1f}s)"
        )


def pending_dates(lake: Lake, config: ClickmlConfig, full_refresh: bool) -> tuple[list[str], list[dt.date]]:
    """(ingest batch ids not processed yet, the event dates they touched). Bounded: audit rows."""
    tables = config.tables
    audit = lake.read(tables.ingest_audit).select("batch_id", "event_dates")
    if lake.exists(tables.silver_progress) and not full_refresh:
        done = lake.read(tables.silver_progress).select("batch_id")
        audit = audit.join(done, "batch_id", "left_anti")
    rows = audit.collect()  # bounded: one small row per ingest batch
    dates = sorted({d for r in rows for d in (r["event_dates"] or [])})
    return sorted(r["batch_id"] for r in rows), dates


def run(config: ClickmlConfig, spark: SparkSession, lake: Lake | None = None, full_refresh: bool = False) -> SilverResult:
    """Rebuild the silver tables for the event dates that new ingest batches touched."""
    lake = lake or Lake(config, spark)
    tables = config.tables
    started = time.time()
    result = SilverResult()
    if not lake.exists(tables.ingest_audit) or not lake.exists(tables.bronze_events):
        log.info("silver: no bronze data yet")
        return result
    batches, touched = pending_dates(lake, config, full_refresh)
    if not touched:
        if batches:
            _record_progress(spark, lake, config, batches)
        log.info("silver: nothing to rebuild")
        return result
    one = dt.timedelta(days=1)
    rebuild = sorted({d + k * one for d in touched for k in (-1, 0, 1)})
    context = sorted({d + k * one for d in rebuild for k in (-1, 0, 1)})
    log.info("silver: %d new batch(es) touch %d day(s); rebuilding %s..%s", len(batches), len(touched), rebuild[0], rebuild[-1])

    bronze = lake.read(tables.bronze_events, partition_filters=[("event_date", "in", [d.isoformat() for d in context])])
    events = (
        bronze.dropDuplicates(["event_id"])
        .withColumnRenamed("session_id", "client_session_id")
    )
    sessionized = sessionize(events, config.silver.session_gap_minutes).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        bots = flag_bots(sessionized, config.silver.bots).where(F.col("event_date").isin(rebuild))
        bots = bots.persist(StorageLevel.MEMORY_AND_DISK)
        flagged = bots.select("user_id", "event_date")
        clean = sessionized.join(F.broadcast(flagged), ["user_id", "event_date"], "left_anti")
        rebuilt_days = [{"event_date": d} for d in rebuild]
        written = lake.write(
            bots.select("user_id", "rules", "events", "event_date"), tables.silver_bot_users,
            mode="overwrite_partitions", partition_by=["event_date"], replace_partitions=rebuilt_days,
        )
        result.bot_user_days = written.rows_added
        written = lake.write(
            clean.where(F.col("event_date").isin(rebuild)).select(*EVENT_COLUMNS), tables.silver_events,
            mode="overwrite_partitions", partition_by=["event_date"], replace_partitions=rebuilt_days,
        )
        result.events_written = written.rows_added
        sessions = summarize_sessions(clean).where(F.col("session_date").isin(rebuild)).select(*SESSION_COLUMNS)
        written = lake.write(
            sessions, tables.silver_sessions, mode="overwrite_partitions", partition_by=["session_date"],
            replace_partitions=[{"session_date": d} for d in rebuild],
        )
        result.sessions_written = written.rows_added
        bots.unpersist()
    finally:
        sessionized.unpersist()
    _record_progress(spark, lake, config, batches)
    result.dates, result.batches, result.seconds = rebuild, len(batches), time.time() - started
    log.info("%s", result.report())
    return result


def _record_progress(spark: SparkSession, lake: Lake, config: ClickmlConfig, batches: list[str]) -> None:
    now = dt.datetime.now(dt.timezone.utc)
    frame = spark.createDataFrame([(b, now) for b in batches], "batch_id string, processed_at timestamp")
    txn = Txn.for_batch("clickml-silver", f"{batches[0]}..{batches[-1]}#{len(batches)}")
    lake.write(frame, config.tables.silver_progress, mode="append", txn=txn)
