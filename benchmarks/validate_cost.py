"""Cost of a validation gate against reading the same table.

    .venv/bin/python benchmarks/validate_cost.py                    # 1M rows
    .venv/bin/python benchmarks/validate_cost.py --rows 10000000    # the target size
    .venv/bin/python benchmarks/validate_cost.py --rows 200000 --compare-naive

Generates N rows of a silver.events-like table (the columns and types of pipelines/silver/stage.py
EVENT_COLUMNS, 7 event dates, unique event ids, sessions that start before their events) and
commits it as a Delta table through `Lake`. Then, in one SparkSession, after a warm-up:

  count   `lake.read(table).count()`: the plain read-and-count of the same table (the target's unit)
  scan    `lake.read(table).select(<columns the suite reads>)` written to the `noop` sink: one full
          scan that decodes every value the suite looks at (the floor for any real check)
  suite   `pipelines.validate.run(config, spark, table)`: the shipped conf/expectations/silver.events.yaml
          suite end to end (row-count rule, GX checks, JSON summary, Data Docs), with its phases
  naive   (--compare-naive) the same GX suite run the GX-default way: the whole DataFrame, GX's own
          persist, default result format (20 unexpected examples per check, computed always)

Each is run --repeat times; the report gives the minimum wall-clock seconds, the minimum CPU
seconds (driver JVM, which runs the executors in local mode, plus this Python process: steadier
than wall time on a shared machine) and the Spark jobs of one run. Target: suite <= 2 x count at
10M rows. Not a test.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from pipelines.config import load_config
from pipelines.lake import Lake
from pipelines.silver.stage import EVENT_COLUMNS
from pipelines.spark import build_session

TABLE = "silver.events"
TARGET_RATIO = 2.0
TARGET_ROWS = 10_000_000
DAYS = 7
EVENT_TYPES = ("page_view", "search", "product_view", "add_to_cart", "remove_from_cart", "purchase")


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def events_frame(spark: SparkSession, rows: int):
    """A silver.events-like frame of `rows` rows, built on the executors."""
    users = max(1, rows // 30)
    start = int(dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc).timestamp())

    def pick(values, salt: int):
        return F.element_at(F.array(*[F.lit(v) for v in values]), (F.abs(F.hash("id", F.lit(salt))) % len(values) + 1).cast("int"))

    def digest(*parts):
        return F.substring(F.sha2(F.concat_ws("|", *parts), 256), 1, 32)

    event_type = pick(EVENT_TYPES, 1)
    product_event = event_type.isin("product_view", "add_to_cart", "remove_from_cart", "purchase")
    event_time = (F.lit(start) + (F.col("id") * (DAYS * 86400) / rows).cast("long")).cast("timestamp")
    user = F.concat(F.lit("u"), (F.abs(F.hash("id", F.lit(2))) % users).cast("string"))
    session_start = event_time - F.make_dt_interval(F.lit(0), F.lit(0), (F.abs(F.hash("id", F.lit(3))) % 30).cast("int"))
    frame = spark.range(rows).select(
        digest(F.col("id").cast("string")).alias("event_id"),
        event_time.alias("event_time"),
        event_type.alias("event_type"),
        user.alias("user_id"),
        digest(user, session_start.cast("string")).alias("session_id"),
        session_start.alias("session_start"),
        digest(F.lit("client"), user, (F.col("id") / 20).cast("long").cast("string")).alias("client_session_id"),
        F.when(product_event, F.concat(F.lit("p"), (F.abs(F.hash("id", F.lit(4))) % 5000).cast("string"))).alias("product_id"),
        F.when(product_event, pick(("shoes", "books", "phones", "garden", "toys"), 5)).alias("category"),
        F.when(product_event, pick(("acme", "globex", "initech", "umbrella"), 6)).alias("brand"),
        F.when(product_event, F.round((F.abs(F.hash("id", F.lit(7))) % 50000) / 100.0, 2)).alias("price"),
        F.when(product_event, F.lit("USD")).alias("currency"),
        pick(("desktop", "mobile", "tablet"), 8).alias("device"),
        pick(("direct", "search", "social", "email", "ads"), 9).alias("referrer"),
        pick(("FR", "DE", "US", "GB", "ES"), 10).alias("country"),
        F.lit("clickstream").alias("source"),
    ).withColumn("event_date", F.to_date("event_time"))
    return frame.select(*EVENT_COLUMNS)


def cpu_seconds(jvm_pid: int) -> float:
    """CPU time used so far by the driver JVM (local mode: all executors) plus this Python process."""
    with open(f"/proc/{jvm_pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks + time.process_time()


@dataclass
class Measurement:
    wall: float
    """Minimum wall-clock seconds over the repeats."""
    cpu: float
    """Minimum CPU seconds (JVM + Python) over the repeats: steadier than wall time on a shared machine."""
    jobs: int
    value: object


def timed(spark: SparkSession, label: str, action, repeat: int) -> Measurement:
    """Run `action` `repeat` times; wall and CPU seconds, Spark jobs of one run, last return value."""
    sc = spark.sparkContext
    jvm_pid = int(sc._jvm.java.lang.ProcessHandle.current().pid())
    best = Measurement(float("inf"), float("inf"), 0, None)
    for attempt in range(repeat):
        group = f"bench-{label}-{attempt}"
        sc.setJobGroup(group, label)
        cpu, started = cpu_seconds(jvm_pid), time.perf_counter()
        value = action()
        seconds, used = time.perf_counter() - started, cpu_seconds(jvm_pid) - cpu
        sc.setLocalProperty("spark.jobGroup.id", None)
        jobs = len(sc.statusTracker().getJobIdsForGroup(group))
        progress(f"{label}: {seconds:.2f}s wall, {used:.2f}s CPU ({jobs} Spark jobs)")
        best = Measurement(min(best.wall, seconds), min(best.cpu, used), jobs, value)
    return best


def naive_run(spark: SparkSession, frame, suite) -> bool:
    """The suite the GX-default way: whole frame, GX's own persist, default result format."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    batch_definition = (
        context.data_sources.add_spark(name="naive").add_dataframe_asset(name="events")
        .add_batch_definition_whole_dataframe("all")
    )
    gx_suite = context.suites.add(suite.to_gx())
    definition = context.validation_definitions.add(gx.ValidationDefinition(name="naive", data=batch_definition, suite=gx_suite))
    try:
        return definition.run(batch_parameters={"dataframe": frame}).success
    finally:
        frame.unpersist()  # GX persists the batch and never releases it


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the table (default 1,000,000)")
    parser.add_argument("--repeat", type=int, default=2, help="timed runs of each measurement (minimum reported)")
    parser.add_argument("--master", default="local[*]")
    parser.add_argument("--driver-memory", default="4g")
    parser.add_argument("--workdir", help="where the lakehouse goes (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the workdir")
    parser.add_argument("--compare-naive", action="store_true", help="also time the suite run the GX-default way")
    parser.add_argument("--verbose", action="store_true", help="show the pipelines' INFO logs")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="clickml-validate-bench-"))
    config = load_config(
        profile="local",
        overrides=[
            f"lake.root={workdir / 'lakehouse'}", f"landing.root={workdir / 'landing'}", f"spark.master={args.master}",
            f"spark.driver_memory={args.driver_memory}", "spark.ui_enabled=false", f"spark.local_dir={workdir / 'scratch'}",
            *args.overrides,
        ],
    )
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("pipelines").setLevel(logging.INFO if args.verbose else logging.WARNING)
    spark = build_session(config)
    try:
        from pipelines import validate
        from pipelines.validate.suites import load_suite

        lake = Lake(config, spark)
        progress(f"writing {args.rows:,} rows of {TABLE} under {workdir}")
        started = time.perf_counter()
        lake.write(events_frame(spark, args.rows), TABLE, mode="overwrite", partition_by=["event_date"])
        snapshot = lake.snapshot(TABLE)
        size_mb = sum(f.size for f in snapshot.files) / 1e6
        progress(f"written in {time.perf_counter() - started:.1f}s: {len(snapshot.files)} files, {size_mb:.1f} MB")

        suite = load_suite(TABLE, config)
        columns = [c for c in EVENT_COLUMNS if c in (suite.data_columns() or EVENT_COLUMNS)]
        progress("warm-up (JVM, Great Expectations import, a first suite run)")
        lake.read(TABLE).count()
        validate.run(config, spark, TABLE, lake=lake)

        measured = {
            "count": timed(spark, "count", lambda: lake.read(TABLE).count(), args.repeat),
            "scan": timed(spark, "scan", lambda: lake.read(TABLE).select(*columns).write.format("noop").mode("overwrite").save(),
                          args.repeat),
            "suite": timed(spark, "suite", lambda: validate.run(config, spark, TABLE, lake=lake), args.repeat),
        }
        if args.compare_naive:
            measured["naive"] = timed(spark, "naive", lambda: naive_run(spark, lake.read(TABLE), suite), args.repeat)

        count, result = measured["count"], measured["suite"].value
        print()
        print(f"validate_cost: {measured['count'].value:,} rows, {len(snapshot.files)} files ({size_mb:.1f} MB), "
              f"master {args.master}, {spark.sparkContext.defaultParallelism} cores, load average "
              f"{os.getloadavg()[0]:.1f}; suite {TABLE}: {len(suite.entries)} GX checks + row count, values of "
              f"{len(columns)}/{len(EVENT_COLUMNS)} columns; minimum of {args.repeat} runs")
        print(f"{'':<8} {'wall s':>8} {'x count':>8} {'CPU s':>8} {'x count':>8} {'jobs':>5}")
        for name, m in measured.items():
            print(f"{name:<8} {m.wall:>8.2f} {m.wall / count.wall:>8.2f} {m.cpu:>8.2f} {m.cpu / count.cpu:>8.2f} {m.jobs:>5}")
        phases = ", ".join(f"{k} {v:.2f}s" for k, v in result.timings.items())
        print(f"suite phases (last run): {phases}; passed: {result.success}")
        ratio = measured["suite"].wall / count.wall
        verdict = "met" if ratio <= TARGET_RATIO else "NOT met"
        print(f"target suite <= {TARGET_RATIO:.0f} x count at {TARGET_ROWS:,} rows: wall ratio {ratio:.2f}, CPU ratio "
              f"{measured['suite'].cpu / count.cpu:.2f} at {measured['count'].value:,} rows ({verdict})")
    finally:
        spark.stop()
        if not args.keep and not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
