"""`make demo`: the pipeline on an embedded default, stage by stage.

For now: generate a clickstream into the landing zone, load it into the Delta table
`tables.demo_events`, read it back through the lake layer and through delta-rs alone, and print
what happened. Later stages (ingest, silver, features, train, register) extend this.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from pipelines.config import ClickmlConfig
from pipelines.lake import Lake

log = logging.getLogger(__name__)

# The generator's JSON lines, read leniently: unparseable lines land in _corrupt_record.
LANDING_SCHEMA = T.StructType(
    [
        T.StructField("event_id", T.StringType()),
        T.StructField("event_time", T.StringType()),
        T.StructField("event_type", T.StringType()),
        T.StructField("user_id", T.StringType()),
        T.StructField("session_id", T.StringType()),
        T.StructField("product_id", T.StringType()),
        T.StructField("category", T.StringType()),
        T.StructField("brand", T.StringType()),
        T.StructField("price", T.DoubleType()),
        T.StructField("currency", T.StringType()),
        T.StructField("device", T.StringType()),
        T.StructField("referrer", T.StringType()),
        T.StructField("country", T.StringType()),
        T.StructField("_corrupt_record", T.StringType()),
    ]
)


@dataclass
class DemoSummary:
    landing_path: str
    events_generated: int
    lines_landed: int
    bad_lines: int
    rows_loaded: int
    rows_unparsed: int
    table: str
    table_uri: str
    version: int
    rows_read_spark: int
    rows_read_delta_rs: int
    seconds: float


def load_landing(spark: SparkSession, path: str) -> DataFrame:
    """Landing JSON lines as typed rows (event_time as a UTC timestamp, event_date partition)."""
    raw = (
        spark.read.schema(LANDING_SCHEMA)
        .option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", "_corrupt_record")
        .option("recursiveFileLookup", "true")
        .json(path)
    )
    # try_cast: Spark 4 runs with ANSI mode, where a bad timestamp would fail the whole job.
    return raw.withColumn("event_time", F.expr("try_cast(event_time AS TIMESTAMP)")).withColumn(
        "event_date", F.to_date("event_time")
    )


def run(config: ClickmlConfig, spark: SparkSession) -> DemoSummary:
    """Run the demo pipeline and return what it did (also printed by `clickml demo`)."""
    from pipelines import generate

    started = time.time()
    lake = Lake(config, spark)
    log.info("demo 1/3: generating the clickstream (%d users, %d days)", config.generator.users, config.generator.days)
    generated = generate.run(config, spark, lake=lake)

    log.info("demo 2/3: loading %s into %s", generated.landing_path, config.tables.demo_events)
    # The parsed frame is used twice (bad-line count and the write): cache it for this step only.
    parsed = load_landing(spark, generated.landing_path).cache()
    unparsed = parsed.where(F.col("_corrupt_record").isNotNull() | F.col("event_time").isNull()).count()
    good = parsed.where(F.col("_corrupt_record").isNull() & F.col("event_time").isNotNull()).drop("_corrupt_record")
    result = lake.write(
        good.repartition("event_date"),  # one file per day instead of one per landing file and day
        config.tables.demo_events,
        mode="overwrite",
        partition_by=["event_date"],
        overwrite_schema=True,
    )
    parsed.unpersist()

    log.info("demo 3/3: reading %s back", config.tables.demo_events)
    location = lake.location(config.tables.demo_events)
    rows_spark = lake.read(config.tables.demo_events).count()
    from deltalake import DeltaTable

    rows_rs = DeltaTable(location.uri, storage_options=location.storage_options or None).to_pyarrow_table().num_rows
    return DemoSummary(
        landing_path=generated.landing_path,
        events_generated=generated.events,
        lines_landed=generated.lines,
        bad_lines=generated.bad_lines,
        rows_loaded=result.rows_added,
        rows_unparsed=unparsed,
        table=config.tables.demo_events,
        table_uri=location.uri,
        version=lake.version(config.tables.demo_events),
        rows_read_spark=rows_spark,
        rows_read_delta_rs=rows_rs,
        seconds=time.time() - started,
    )


def format_summary(summary: DemoSummary, generated_report: str = "") -> str:
    lines = [
        "",
        "clickml demo",
        "============",
        generated_report,
        f"landing files          {summary.landing_path}",
        f"lines landed           {summary.lines_landed:,}  ({summary.events_generated:,} events, {summary.bad_lines:,} injected bad lines)",
        f"rows loaded            {summary.rows_loaded:,}  into {summary.table} (version {summary.version})",
        f"lines not parseable    {summary.rows_unparsed:,}  (the rest of the bad lines parse; the ingest stage quarantines them)",
        f"read back with Spark   {summary.rows_read_spark:,}",
        f"read with delta-rs     {summary.rows_read_delta_rs:,}",
        f"table location         {summary.table_uri}",
        f"took                   {summary.seconds:.1f}s",
        "",
        f"inspect: clickml lake history {summary.table}    clickml lake show {summary.table}",
    ]
    return "\n".join(line for line in lines if line is not None)
