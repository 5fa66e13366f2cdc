"""`make demo`: the pipeline on an embedded default, stage by stage.

Now: generate a clickstream into the landing zone, load it raw into `tables.demo_events` and
read it back through the lake layer and through delta-rs alone; ingest it into bronze (quarantine,
duplicates, audit), build silver (sessions, bot filter), the gold feature tables and the training
sets; validate every layer with its Great Expectations gate; train LR, RF, GBT, ALS and the deep
model (embeddings + MLP on Spark executors: TorchDistributor, 2 CPU processes, a few epochs; see
docs/deep_learning.md), evaluate, register and promote them in MLflow.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import Counter
from dataclasses import dataclass, field

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
    ingest_reports: list[str] = field(default_factory=list)
    silver_report: str = ""
    features_report: str = ""
    training_sets_report: str = ""
    gate_reports: list[str] = field(default_factory=list)
    data_docs: str | None = None
    training_table: str = ""
    mlflow_ui: str = ""
    bronze_rows: int = 0
    quarantine_by_reason: dict[str, int] = field(default_factory=dict)


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
    log.info("demo 1/9: generating the clickstream (%d users, %d days)", config.generator.users, config.generator.days)
    generated = generate.run(config, spark, lake=lake)

    log.info("demo 2/9: loading %s into %s", generated.landing_path, config.tables.demo_events)
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

    log.info("demo 3/9: reading %s back", config.tables.demo_events)
    location = lake.location(config.tables.demo_events)
    rows_spark = lake.read(config.tables.demo_events).count()
    from deltalake import DeltaTable

    rows_rs = DeltaTable(location.uri, storage_options=location.storage_options or None).to_pyarrow_table().num_rows

    from pipelines import ingest, silver

    log.info("demo 4/9: ingesting the landing files into %s", config.tables.bronze_events)
    start = dt.datetime.combine(config.generator.start_date, dt.time(), dt.timezone.utc)
    # A few days past the generated period, so late arrivals are taken too.
    end = start + dt.timedelta(days=config.generator.days + 3)
    ingested = ingest.run(config, spark, config.generator.source, start, end, lake=lake)
    quarantine_by_reason = sum((Counter(batch.quarantined_by_reason) for batch in ingested), Counter())
    log.info("demo 5/9: building silver sessions")
    built = silver.run(config, spark, lake=lake)
    from pipelines.features import stage as features_stage
    from pipelines.training_sets import stage as training_sets_stage

    log.info("demo 6/9: building the gold feature tables")
    features = features_stage.run(config, spark, lake=lake)
    log.info("demo 7/9: building the training sets")
    training_sets = training_sets_stage.run(config, spark, lake=lake)
    log.info("demo 8/9: validating every layer")
    gates = validate_layers(config, spark, lake)
    log.info("demo 9/9: training, evaluating, registering and promoting models (MLlib and the deep model)")
    from pipelines.train import stage as train_stage

    trained = train_stage.run(config, spark)
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
        ingest_reports=[r.report() for r in ingested],
        silver_report=built.report(),
        features_report=features.report(),
        training_sets_report=training_sets.report(),
        gate_reports=[_gate_line(g) for g in gates],
        data_docs=next((g.data_docs_index for g in gates if g.data_docs_index), None),
        training_table=trained.table(),
        mlflow_ui=trained.tracking.ui_command if trained.tracking else "",
        bronze_rows=lake.read(config.tables.bronze_events).count(),
        quarantine_by_reason=dict(quarantine_by_reason),
    )


def gated_tables(config: ClickmlConfig) -> list[str]:
    """Every table the demo (and the DAGs) validate, layer by layer."""
    t = config.tables
    return [
        t.bronze_events, t.bronze_quarantine, t.ingest_audit, t.silver_events, t.silver_sessions,
        t.user_features, t.product_features, t.category_features, t.user_category_features,
        t.propensity_training, t.implicit_training,
    ]


def validate_layers(config: ClickmlConfig, spark: SparkSession, lake: Lake) -> list:
    """Run each table's gate; the first failure raises `ValidationError` listing what failed."""
    from pipelines import validate

    return [validate.run(config, spark, table, lake=lake) for table in gated_tables(config)]


def _gate_line(result) -> str:
    rows = f"{result.rows:,} rows" if result.rows is not None else "? rows"
    state = f"passed {len(result.expectations)}/{len(result.expectations)}" if result.success else "FAILED"
    return f"{result.subject:<34} {state:<14} {rows:>14}  {result.duration_seconds:5.1f}s"


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
        "",
        "ingest (landing -> bronze)",
        *[f"  {line}" for line in summary.ingest_reports],
        f"  bronze.events now holds {summary.bronze_rows:,} events",
        "  quarantined by reason: "
        + (", ".join(f"{k} {v:,}" for k, v in sorted(summary.quarantine_by_reason.items())) or "none"),
        "",
        "silver (bronze -> sessions)",
        f"  {summary.silver_report}",
        "",
        "gold (silver -> features -> training sets)",
        f"  {summary.features_report}",
        f"  {summary.training_sets_report}",
        "",
        "validation gates (Great Expectations)",
        *[f"  {line}" for line in summary.gate_reports],
        f"  Data Docs: {summary.data_docs}" if summary.data_docs else None,
        "",
        "models (trained, evaluated on the test split, registered)",
        *[f"  {line}" for line in summary.training_table.splitlines()],
        "",
        f"MLflow UI: {summary.mlflow_ui}" if summary.mlflow_ui else None,
        f"took                   {summary.seconds:.1f}s",
        "",
        f"inspect: clickml lake history {summary.table}    clickml lake show silver.sessions",
    ]
    return "\n".join(line for line in lines if line is not None)
