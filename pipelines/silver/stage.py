"""The silver stage: bronze.events -> silver.events, silver.sessions, silver.bot_users.

Incremental by event date: the dates touched by ingest batches that silver has not processed yet
(from the ingest audit) are rebuilt, together with the days a session through them can reach
(`silver.max_session_hours`, in whole days: one by default), so late events and sessions crossing
midnight are handled; as many days again on each side are read as context, so that a session
that starts before the rebuilt range keeps its id and the bot flags of those days apply to the
sessions crossing into it. A session longer than `max_session_hours` may be cut at the edge of
the context, and a `giant_session` flag on the context's outermost day may see only part of its
session.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from dataclasses import dataclass, field

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pipelines.config import ClickmlConfig
from pipelines.lake import Lake, Txn
from pipelines.silver.bots import flag_bots
from pipelines.silver.dedup import first_copy_per_event
from pipelines.silver.sessionize import sessionize, summarize_sessions

log = logging.getLogger(__name__)

EVENT_COLUMNS = (
    "event_id", "event_time", "event_type", "user_id", "session_id", "session_start", "client_session_id",
    "product_id", "category", "brand", "price", "currency", "device", "referrer", "country", "source", "event_date",
)
EXPOSURE_COLUMNS = (
    "experiment_id", "variant", "user_id", "request_id", "model_version", "exposure_time", "event_id", "source",
    "event_date",
)
EXPOSURE = "exposure"
EXPOSURE_FIELDS = ("experiment_id", "variant", "model_version")
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
    exposures_written: int = 0
    sessions_written: int = 0
    bot_user_days: int = 0
    seconds: float = 0.0

    def report(self) -> str:
        if not self.dates:
            return "silver: nothing to do (no new ingest batches)"
        span = f"{self.dates[0]}..{self.dates[-1]}" if len(self.dates) > 1 else str(self.dates[0])
        return (
            f"silver: rebuilt {len(self.dates)} day(s) {span} for {self.batches} new batch(es): "
            f"{self.events_written:,} events, {self.sessions_written:,} sessions, {self.exposures_written:,} exposures, "
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
    wanted = set(touched)
    for _ in range(MAX_PLAN_ROUNDS):
        rebuild, _context, bronze = plan_rebuild(lake, config, sorted(wanted))
        events, exposures = split_exposures(first_copy_per_event(bronze))
        events = events.withColumnRenamed("session_id", "client_session_id")
        sessionized = sessionize(events, config.silver.session_gap_minutes).persist(StorageLevel.MEMORY_AND_DISK)
        # Flags of every day read: a bot's events on a context day leave the sessions that cross
        # into the rebuilt days as they do in a full build. Only the rebuilt days are written.
        bots = flag_bots(sessionized, config.silver.bots).persist(StorageLevel.MEMORY_AND_DISK)
        near = days_near_changed_flags(lake, config, bots, rebuild)
        if not near:
            break
        log.info("silver: bot flags changed on rebuilt days; their sessions may reach %s, rebuilt too",
                 ", ".join(str(d) for d in near))
        bots.unpersist()
        sessionized.unpersist()
        wanted |= near
    else:
        raise RuntimeError(f"silver: the days to rebuild still grew after {MAX_PLAN_ROUNDS} rounds; run with --full-refresh")
    log.info("silver: %d new batch(es) touch %d day(s); rebuilding %s..%s", len(batches), len(touched), rebuild[0], rebuild[-1])
    try:
        flagged = bots.select("user_id", "event_date")
        clean = sessionized.join(F.broadcast(flagged), ["user_id", "event_date"], "left_anti")
        rebuilt_days = [{"event_date": d} for d in rebuild]
        written = lake.write(
            bots.where(F.col("event_date").isin(rebuild)).select("user_id", "rules", "events", "event_date"),
            tables.silver_bot_users,
            mode="overwrite_partitions", partition_by=["event_date"], replace_partitions=rebuilt_days,
        )
        result.bot_user_days = written.rows_added
        written = lake.write(
            clean.where(F.col("event_date").isin(rebuild)).select(*EVENT_COLUMNS), tables.silver_events,
            mode="overwrite_partitions", partition_by=["event_date"], replace_partitions=rebuilt_days,
        )
        result.events_written = written.rows_added
        written = lake.write(
            exposure_rows(exposures.join(F.broadcast(flagged), ["user_id", "event_date"], "left_anti"))
            .where(F.col("event_date").isin(rebuild)), tables.silver_exposures,
            mode="overwrite_partitions", partition_by=["event_date"], replace_partitions=rebuilt_days,
        )
        result.exposures_written = written.rows_added
        sessions = summarize_sessions(clean).where(F.col("session_date").isin(rebuild)).select(*SESSION_COLUMNS)
        written = lake.write(
            sessions, tables.silver_sessions, mode="overwrite_partitions", partition_by=["session_date"],
            replace_partitions=[{"session_date": d} for d in rebuild],
        )
        result.sessions_written = written.rows_added
    finally:
        bots.unpersist()
        sessionized.unpersist()
    _record_progress(spark, lake, config, batches)
    result.dates, result.batches, result.seconds = rebuild, len(batches), time.time() - started
    log.info("%s", result.report())
    return result


MAX_PLAN_ROUNDS = 10


def split_exposures(events: DataFrame) -> tuple[DataFrame, DataFrame]:
    """(what users did, the model server's exposures). Exposures are not user activity: they stay
    out of sessions, bot rules and features. Bronze written before exposures existed lacks their
    columns: they read as null."""
    for name in EXPOSURE_FIELDS:
        if name not in events.columns:
            events = events.withColumn(name, F.lit(None).cast("string"))
    is_exposure = F.col("event_type") == EXPOSURE
    return events.where(~is_exposure), events.where(is_exposure)


def exposure_rows(exposures: DataFrame) -> DataFrame:
    """silver.exposures rows; the request id is the event id without the server's `exp-` prefix."""
    return exposures.select(
        "experiment_id", "variant", "user_id",
        F.regexp_replace("event_id", "^exp-", "").alias("request_id"),
        "model_version", F.col("event_time").alias("exposure_time"), "event_id", "source", "event_date",
    ).select(*EXPOSURE_COLUMNS)


def plan_rebuild(lake: Lake, config: ClickmlConfig, touched: list[dt.date]):
    """(days to rebuild, days to read, bronze of the days to read) for the touched days.

    An event id that bronze holds on two dates (a source re-sent it with another time, further
    apart than the ingest's `bronze_dedup_days`) is kept once, by `first_copy_per_event`. When one
    of its copies is on a rebuilt day, which copy wins may have changed (a new, earlier copy), so
    the days of its other copies are rebuilt as well: otherwise the copy kept there by an earlier
    run would stay beside the one kept now. Each round adds those days and reads again.
    """
    wanted = set(touched)
    for _ in range(MAX_PLAN_ROUNDS):
        rebuild, context = rebuild_days(sorted(wanted), config.silver.max_session_hours)
        bronze = lake.read(
            config.tables.bronze_events, partition_filters=[("event_date", "in", [d.isoformat() for d in context])]
        )
        others = days_of_other_copies(bronze, rebuild)
        if not others:
            return rebuild, context, bronze
        log.info("silver: event ids on the rebuilt days have copies on %s; rebuilding those days too",
                 ", ".join(str(d) for d in others))
        wanted |= others
    raise RuntimeError(f"silver: the days to rebuild still grew after {MAX_PLAN_ROUNDS} rounds (through {max(wanted)}); "
                       "run with --full-refresh")


def days_near_changed_flags(lake: Lake, config: ClickmlConfig, bots: DataFrame, rebuild: list[dt.date]) -> set[dt.date]:
    """Days outside `rebuild` within a session's reach of a rebuilt day whose bot flags differ
    from the stored ones: a user flagged or cleared there changes the sessions that cross from
    that day into days this run would not rewrite (the copy stored there would stay).
    Bounded: at most one row per rebuilt day."""
    table = config.tables.silver_bot_users
    if not lake.exists(table):
        return set()
    days = [d.isoformat() for d in rebuild]
    stored = lake.read(table, partition_filters=[("event_date", "in", days)]).select("user_id", "event_date")
    new = bots.where(F.col("event_date").isin(rebuild)).select("user_id", "event_date")
    changed = stored.exceptAll(new).unionByName(new.exceptAll(stored)).select("event_date").distinct().collect()
    reach = _reach_days(config.silver.max_session_hours)
    one = dt.timedelta(days=1)
    return {r["event_date"] + k * one for r in changed for k in range(-reach, reach + 1)} - set(rebuild)


def days_of_other_copies(bronze: DataFrame, rebuild: list[dt.date]) -> set[dt.date]:
    """Days outside `rebuild` that hold a copy of an event id that also has a copy on a rebuilt day."""
    copies = (
        bronze.where(F.col("event_date").isNotNull())
        .groupBy("event_id").agg(F.collect_set("event_date").alias("dates"))
        .where(F.size("dates") > 1)
        .where(F.arrays_overlap("dates", F.array(*[F.lit(d) for d in rebuild])))
    )
    # Bounded: at most one row per day read.
    rows = copies.select(F.explode("dates").alias("day")).where(~F.col("day").isin(rebuild)).distinct().collect()
    return {r["day"] for r in rows}


def rebuild_days(touched: list[dt.date], max_session_hours: float) -> tuple[list[dt.date], list[dt.date]]:
    """(days to rebuild, days to read): the touched days and the days a session through them can
    reach (`max_session_hours` rounded up to whole days), then as many days again as context."""
    reach = _reach_days(max_session_hours)
    one = dt.timedelta(days=1)
    rebuild = sorted({d + k * one for d in touched for k in range(-reach, reach + 1)})
    context = sorted({d + k * one for d in rebuild for k in range(-reach, reach + 1)})
    return rebuild, context


def _reach_days(max_session_hours: float) -> int:
    """Whole days a session can reach from its start (`max_session_hours` rounded up)."""
    return math.ceil(max_session_hours / 24)


def _record_progress(spark: SparkSession, lake: Lake, config: ClickmlConfig, batches: list[str]) -> None:
    now = dt.datetime.now(dt.timezone.utc)
    frame = spark.createDataFrame([(b, now) for b in batches], "batch_id string, processed_at timestamp")
    txn = Txn.for_batch("clickml-silver", f"{batches[0]}..{batches[-1]}#{len(batches)}")
    lake.write(frame, config.tables.silver_progress, mode="append", txn=txn)
