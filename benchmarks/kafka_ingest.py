"""Benchmark of the Kafka streaming ingest against a plain Structured Streaming Kafka -> Parquet copy.

    .venv/bin/python benchmarks/kafka_ingest.py --smoke                       # 100k events, a few minutes
    .venv/bin/python benchmarks/kafka_ingest.py                               # 1M and 10M events
    .venv/bin/python benchmarks/kafka_ingest.py --events 1000000 --workdir /data/bench --keep
    .venv/bin/python benchmarks/kafka_ingest.py --events 0 --follow-latency --rate 2000 --seconds 60

A real single-node broker (`pipelines.orchestration.kafka.LocalKafka`, on 127.0.0.1, on the same
machine as Spark: it competes for the same cores) runs for the whole benchmark. For each size in
--events, in one SparkSession: the generator writes the landing files once (`bad_records.share`
0.01, users x days picked with `pipelines.generate.estimate`; `generator.start_date` is --days
before today and `ingest.max_event_age_hours` covers the period, so the events are in the time
window of a message's Kafka timestamp, which is now), `pipelines.ingest.produce.run` replays them
into a new topic with --partitions partitions (keyed by user id, stamped with the send time:
`timestamps="now"`), then two availableNow queries read the whole topic:

  ingest  `pipelines.ingest.kafka.ingest_kafka(config, spark, lake, source)`: offsets accounted,
          parse, validate, quarantine, deduplicate, Delta bronze.events + quarantine + audit;
  plain   `spark.readStream.format("kafka")...load().select(value, topic, partition, offset,
          timestamp).writeStream.format("parquet").trigger(availableNow=True)`: the floor, no
          parsing, no checks (--plain-json adds a variant that parses the value with `from_json`
          into string columns, to show the parse cost)

(ingest first; --plain-first swaps the order). Both use the same maxOffsetsPerTrigger
(--max-offsets, default 2,000,000). Prints a table: messages, seconds and messages per second of
each, and the ratio (ingest ev/s / plain ev/s).

--follow-latency: a follow-mode ingest (`ingest_kafka(..., follow=True)`, a micro-batch every
--interval) runs in a thread on a new topic and lakehouse; --warmup seconds after its first
micro-batch (Spark runs an empty one when the query starts, which pays its start-up), generated
events are produced at --rate events/s for --seconds seconds, each event's send time kept by
event id. When a micro-batch has committed, `on_batch` records the wall time: its rows are then
visible in bronze. Afterwards bronze's (event_id, batch_id) give each event's latency = batch
visible time - send time; prints count, p50, p95, max and the micro-batches' sizes and durations.
Progress lines go to stdout as it runs. Not a test.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import math
import os
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.ingest_vs_plain import bench_config, pick_users, progress, sizes  # noqa: E402
from pipelines.generate import estimate, generate_landing  # noqa: E402
from pipelines.spark import build_session  # noqa: E402

SMOKE_EVENTS = 100_000
FIRST_BATCH_WAIT_SECONDS = 300
BAD_SHARE = 0.01
PLAIN_FIELDS = ("event_id", "event_time", "event_type", "user_id", "session_id", "product_id", "category", "brand",
                "price", "currency", "device", "referrer", "country")


@dataclass
class Row:
    """One size's measurements."""

    target: int
    lines: int
    events: int
    partitions: int
    generate_s: float
    produce_s: float
    produced: int
    ingest_s: float
    ingest_read: int
    bronze: int
    quarantined: int
    batches: int
    plain_s: float
    plain_rows: int
    json_s: float | None = None
    json_rows: int = 0
    order: str = "ingest first"

    def rate(self, seconds: float | None) -> float:
        return self.produced / seconds if seconds else math.nan

    @property
    def ratio(self) -> float:
        return self.rate(self.ingest_s) / self.rate(self.plain_s)


@dataclass
class Latency:
    rate: float
    seconds: float
    interval: str
    produced: int = 0
    produce_s: float = 0.0
    measured: int = 0
    missing: int = 0
    latencies: list[float] = field(default_factory=list)
    batches: list[tuple[int, float, float]] = field(default_factory=list)
    """Per micro-batch with records: (records read, process seconds, visible at - first batch's start)."""


def load() -> str:
    """The machine's load averages: the broker, Spark and anything else share its cores."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.1f} {five:.1f} {fifteen:.1f}"


def event_sizes(text: str) -> list[int]:
    return sizes(text, allow_none=True)


def start_date(days: int) -> dt.date:
    """The generated period ends today at 00:00 UTC: every event is before now, within the age window."""
    return dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=days)


def window_overrides(days: int) -> list[str]:
    return [f"generator.start_date={start_date(days).isoformat()}",
            f"ingest.max_event_age_hours={(days + 3) * 24}"]


def config_for(root: Path, users: int, days: int, args: argparse.Namespace):
    return bench_config(root, users, days, args, *window_overrides(days))


def kafka_source(config, bootstrap: str, topic: str, **options):
    """conf/sources/clickstream_kafka.yaml pointed at the benchmark's broker and topic."""
    from pipelines.sources import load_source

    base = load_source(config.conf_dir, "clickstream_kafka")
    assert base.kafka is not None
    return base.model_copy(update={
        "kafka": base.kafka.model_copy(update={"bootstrap_servers": bootstrap, "topic": topic, **options}),
    })


def generate(spark, args: argparse.Namespace, root: Path, target: int, label: str):
    days = args.days
    users = pick_users(target, days, [f"generator.bad_records.share={BAD_SHARE}", *window_overrides(days), *args.set])
    config = config_for(root, users, days, args)
    plan = estimate(config.generator)
    progress(f"{label}: generating {users:,} users x {days} days from {config.generator.start_date} "
             f"(expected ~{plan.events:,.0f} events, ~{plan.lines:,.0f} lines) under {root}")
    started = time.monotonic()
    landed = generate_landing(config, spark)
    seconds = time.monotonic() - started
    progress(f"{label}: generated {landed.lines:,} lines ({landed.events:,} valid events, {landed.bad_lines:,} bad) "
             f"in {landed.files:,} files, {seconds:.1f}s")
    return config, landed, seconds


def measure(spark, kafka, args: argparse.Namespace, workdir: Path, target: int) -> Row:
    from pipelines.ingest import produce
    from pipelines.ingest.kafka import ingest_kafka
    from pipelines.lake import Lake

    root = workdir / f"events-{target}"
    config, landed, generate_s = generate(spark, args, root, target, f"size {target:,}")

    topic = f"bench-{target}-{int(time.time())}"
    kafka.create_topic(topic, partitions=args.partitions)
    progress(f"size {target:,}: producing into {topic} ({args.partitions} partitions) at {kafka.bootstrap} ...")
    # Stamped with the send time (a live feed): the generated period ends today, inside the widened
    # age window; its files' arrival hours (the default stamps) reach into tomorrow, which the
    # broker refuses (log.message.timestamp.after.max.ms, 1 h).
    produced = produce.run(config, "clickstream", "clickstream_kafka", topic=topic, bootstrap=kafka.bootstrap,
                           progress=False, env={}, timestamps="now")
    progress(f"size {target:,}: {produced.report()}")
    if not produced.ok:
        raise RuntimeError(f"producing failed: {produced.report()}")

    max_offsets = args.max_offsets or None
    source = kafka_source(config, kafka.bootstrap, topic, max_offsets_per_trigger=max_offsets)
    lake = Lake(config, spark)

    def run_ingest() -> tuple[float, list]:
        progress(f"size {target:,}: ingest_kafka (availableNow, maxOffsetsPerTrigger {max_offsets}) into "
                 f"{config.lake.root} ...")
        started = time.monotonic()
        results = ingest_kafka(config, spark, lake, source, env={})
        seconds = time.monotonic() - started
        for result in results:
            progress(f"size {target:,}: ingest {result.seconds:.1f}s {result.report()}")
        progress(f"size {target:,}: ingest {seconds:.1f}s in all, {len(results)} micro-batch(es)")
        return seconds, results

    def plain_stream():
        reader = (spark.readStream.format("kafka").option("kafka.bootstrap.servers", kafka.bootstrap)
                  .option("subscribe", topic).option("startingOffsets", "earliest").option("failOnDataLoss", "true"))
        if max_offsets:
            reader = reader.option("maxOffsetsPerTrigger", str(max_offsets))
        return reader.load()

    def run_copy(name: str, frame) -> tuple[float, int]:
        out, checkpoint = root / f"{name}-parquet", root / f"{name}-checkpoint"
        progress(f"size {target:,}: {name} Kafka -> Parquet (availableNow) ...")
        started = time.monotonic()
        query = (frame.writeStream.format("parquet").option("path", str(out))
                 .option("checkpointLocation", str(checkpoint)).trigger(availableNow=True).start())
        query.awaitTermination()
        seconds = time.monotonic() - started
        rows = spark.read.parquet(str(out)).count()  # not timed: a check that it read everything
        progress(f"size {target:,}: {name} {seconds:.1f}s ({rows:,} rows written)")
        return seconds, rows

    def run_plain() -> tuple[float, int]:
        return run_copy("plain", plain_stream().select("value", "topic", "partition", "offset", "timestamp"))

    def run_json() -> tuple[float, int]:
        from pyspark.sql import functions as F
        from pyspark.sql import types as T

        schema = T.StructType([T.StructField(f, T.StringType()) for f in PLAIN_FIELDS])
        frame = plain_stream().select(F.from_json(F.col("value").cast("string"), schema).alias("e"),
                                      "topic", "partition", "offset", "timestamp").select("e.*", "topic", "partition",
                                                                                           "offset", "timestamp")
        return run_copy("plain-json", frame)

    if args.plain_first:
        plain_s, plain_rows = run_plain()
        ingest_s, results = run_ingest()
    else:
        ingest_s, results = run_ingest()
        plain_s, plain_rows = run_plain()
    json_s, json_rows = run_json() if args.plain_json else (None, 0)

    read = sum(r.records_read for r in results)
    if read != produced.delivered:
        progress(f"size {target:,}: WARNING ingest read {read:,} messages, {produced.delivered:,} were produced")
    if plain_rows != produced.delivered:
        progress(f"size {target:,}: WARNING plain wrote {plain_rows:,} rows, {produced.delivered:,} were produced")
    row = Row(
        target=target, lines=landed.lines, events=landed.events, partitions=args.partitions, generate_s=generate_s,
        produce_s=produced.seconds, produced=produced.delivered, ingest_s=ingest_s, ingest_read=read,
        bronze=sum(r.bronze_written for r in results), quarantined=sum(r.quarantined for r in results),
        batches=len(results), plain_s=plain_s, plain_rows=plain_rows, json_s=json_s, json_rows=json_rows,
        order="plain first" if args.plain_first else "ingest first",
    )
    progress(f"size {target:,}: ingest {row.rate(row.ingest_s):,.0f} ev/s, plain {row.rate(row.plain_s):,.0f} ev/s, "
             f"ratio {row.ratio:.2f}; {load()}")
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    return row


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile of sorted `values`."""
    if not values:
        return math.nan
    return values[min(len(values) - 1, max(0, math.ceil(q / 100 * len(values)) - 1))]


def follow_latency(spark, kafka, args: argparse.Namespace, workdir: Path) -> Latency:
    from pyspark.sql import functions as F

    from pipelines.ingest import produce
    from pipelines.ingest.kafka import ingest_kafka
    from pipelines.lake import Lake

    out = Latency(rate=args.rate, seconds=args.seconds, interval=args.interval)
    target = int(args.rate * args.seconds * 1.05) + 1000
    root = workdir / "follow-latency"
    config, landed, _ = generate(spark, args, root, target, "latency")
    topic = f"bench-follow-{int(time.time())}"
    kafka.create_topic(topic, partitions=args.partitions)
    source = kafka_source(config, kafka.bootstrap, topic, follow_interval=args.interval, max_offsets_per_trigger=None)
    lake = Lake(config, spark)

    visible: dict[str, float] = {}
    batch_stats: list[tuple[int, float, float]] = []
    read_total = [0]
    first_batch = threading.Event()

    def on_batch(result) -> None:
        now = time.time()  # the batch's Delta commits are done: its rows are visible in bronze
        visible[result.batch_id] = now
        read_total[0] += result.records_read
        batch_stats.append((result.records_read, result.seconds, now))
        first_batch.set()
        progress(f"latency: micro-batch {result.batch_id.rsplit(':', 1)[-1]}: {result.records_read:,} read, "
                 f"{result.bronze_written:,} bronze, {result.seconds:.1f}s in process_batch")

    stop = threading.Event()
    failure: list[BaseException] = []

    def follow() -> None:
        try:
            ingest_kafka(config, spark, lake, source, follow=True, stop=stop, env={}, on_batch=on_batch)
        except BaseException as exc:  # reported by the main thread
            failure.append(exc)

    progress(f"latency: follow-mode ingest of {topic} ({args.partitions} partitions, a micro-batch every "
             f"{args.interval}); producing {args.rate:,.0f} ev/s for {args.seconds:.0f}s, {args.warmup:.0f}s after "
             "its first micro-batch")
    thread = threading.Thread(target=follow, name="follow-ingest", daemon=True)
    thread.start()
    # Spark runs a first, empty micro-batch when the query starts (the initial offsets): it pays
    # the query's and the tables' start-up, so producing begins after it (then --warmup seconds).
    if not first_batch.wait(timeout=FIRST_BATCH_WAIT_SECONDS):
        progress(f"latency: no micro-batch within {FIRST_BATCH_WAIT_SECONDS}s of the start; producing anyway")
    time.sleep(args.warmup)

    sent: dict[str, float] = {}
    fs, files = produce.input_files(config, produce.files_source(config, "clickstream"))
    lines = produce.replay_records(fs, files, False, produce._Cursor())

    def key_of(value: bytes) -> bytes | None:
        # Called by produce_lines after the rate limiter let the message go, just before it is sent.
        now = time.time()
        try:
            record = json.loads(value)
        except ValueError:
            return None
        if not isinstance(record, dict):
            return None
        event_id, user = record.get("event_id"), record.get("user_id")
        if isinstance(event_id, str):
            sent.setdefault(event_id, now)
        return user.strip().encode() if isinstance(user, str) and user.strip() else None

    limit = int(args.rate * args.seconds)
    result = produce.produce_lines(kafka.bootstrap, topic, lines, key_of, args.rate, limit=limit)
    out.produced, out.produce_s = result.delivered, result.seconds
    progress(f"latency: {result.report()}; {load()}")

    deadline = time.monotonic() + args.drain
    while read_total[0] < result.delivered and time.monotonic() < deadline and not failure and thread.is_alive():
        time.sleep(0.5)
    stop.set()
    thread.join(timeout=300)
    if failure:
        raise RuntimeError(f"follow-mode ingest failed: {failure[0]}") from failure[0]
    if read_total[0] < result.delivered:
        progress(f"latency: WARNING only {read_total[0]:,} of {result.delivered:,} messages ingested after "
                 f"{args.drain:.0f}s")

    # Bounded by the benchmark's size (rate x seconds rows of two short strings).
    rows = lake.read(config.tables.bronze_events).where(F.col("source_file").startswith(f"kafka:{topic}/")) \
        .select("event_id", "batch_id").collect()
    latencies = []
    for row in rows:
        at, seen = sent.get(row["event_id"]), visible.get(row["batch_id"])
        if at is not None and seen is not None:
            latencies.append(seen - at)
    out.latencies = sorted(latencies)
    out.measured = len(latencies)
    out.missing = len(sent) - len(latencies)
    first = min((v for v in visible.values()), default=0.0)
    out.batches = [(n, s, at - first) for n, s, at in batch_stats if n]
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    return out


def table(rows: list[Row]) -> str:
    header = (f"{'size':>11} {'order':>12} {'messages':>11} {'parts':>5} {'produce s':>9} {'ingest s':>9} "
              f"{'ingest ev/s':>11} {'plain s':>8} {'plain ev/s':>11} {'ratio':>6}")
    if any(r.json_s is not None for r in rows):
        header += f" {'json s':>7} {'json ev/s':>10}"
    out = [header, "-" * len(header)]
    for r in rows:
        line = (f"{r.target:>11,} {r.order:>12} {r.produced:>11,} {r.partitions:>5} {r.produce_s:>9.1f} "
                f"{r.ingest_s:>9.1f} {r.rate(r.ingest_s):>11,.0f} {r.plain_s:>8.1f} {r.rate(r.plain_s):>11,.0f} "
                f"{r.ratio:>6.2f}")
        if r.json_s is not None:
            line += f" {r.json_s:>7.1f} {r.rate(r.json_s):>10,.0f}"
        out.append(line)
    out.append("ev/s = messages (valid + bad lines) per second; ratio = ingest ev/s / plain ev/s")
    for r in rows:
        out.append(f"  {r.target:,}: ingest read {r.ingest_read:,} in {r.batches} micro-batch(es) -> "
                   f"{r.bronze:,} bronze, "
                   f"{r.quarantined:,} quarantined; plain wrote {r.plain_rows:,} rows; generate {r.generate_s:.1f}s, "
                   f"produce {r.rate(r.produce_s):,.0f} ev/s")
    return "\n".join(out)


def latency_report(lat: Latency) -> str:
    values = lat.latencies
    out = [
        f"produced {lat.produced:,} events in {lat.produce_s:.1f}s "
        f"({lat.produced / lat.produce_s if lat.produce_s else 0:,.0f}"
        f" ev/s, target {lat.rate:,.0f}); micro-batch every {lat.interval}",
        f"latency (event sent -> its micro-batch committed to bronze), {lat.measured:,} events "
        f"({lat.missing:,} sent ids not matched):",
        f"  p50 {percentile(values, 50):.2f}s  p95 {percentile(values, 95):.2f}s  p99 {percentile(values, 99):.2f}s  "
        f"max {values[-1] if values else math.nan:.2f}s  min {values[0] if values else math.nan:.2f}s",
    ]
    if lat.batches:
        sizes_ = [n for n, _, _ in lat.batches]
        secs = [s for _, s, _ in lat.batches]
        out.append(f"  {len(lat.batches)} micro-batches with records: {min(sizes_):,}..{max(sizes_):,} records "
                   f"(mean {sum(sizes_) / len(sizes_):,.0f}), processing {min(secs):.1f}..{max(secs):.1f}s "
                   f"(mean {sum(secs) / len(secs):.1f}s in process_batch)")
        at = [a for _, _, a in lat.batches]
        if len(at) > 1:
            gaps = [b - a for a, b in zip(at, at[1:])]
            out.append(f"  time between consecutive commits: {min(gaps):.1f}..{max(gaps):.1f}s "
                       f"(mean {sum(gaps) / len(gaps):.1f}s)")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=event_sizes, default=event_sizes("1000000,10000000"),
                        help="comma-separated sizes in valid events (default 1000000,10000000; 0: none)")
    parser.add_argument("--smoke", action="store_true", help=f"shortcut for --events {SMOKE_EVENTS}")
    parser.add_argument("--days", type=int, default=7, help="generated days (users are picked to reach the size)")
    parser.add_argument("--partitions", type=int, default=4, help="partitions of each topic (default 4)")
    parser.add_argument("--max-offsets", type=int, default=2_000_000,
                        help="maxOffsetsPerTrigger of both queries (default 2,000,000; 0: no limit)")
    parser.add_argument("--plain-json", action="store_true",
                        help="also time a copy that parses the value with from_json")
    parser.add_argument("--plain-first", action="store_true", help="time the plain copy before the ingest")
    parser.add_argument("--follow-latency", action="store_true",
                        help="then measure end-to-end latency of a follow-mode ingest at a fixed produce rate")
    parser.add_argument("--rate", type=float, default=2000.0, help="--follow-latency: events per second (2000)")
    parser.add_argument("--seconds", type=float, default=60.0, help="--follow-latency: seconds of producing (60)")
    parser.add_argument("--interval", default="1 second", help="--follow-latency: the source's follow_interval")
    parser.add_argument("--warmup", type=float, default=5.0,
                        help="--follow-latency: seconds between the stream's first (empty) micro-batch and "
                        "producing (5)")
    parser.add_argument("--drain", type=float, default=180.0,
                        help="--follow-latency: at most this many seconds to wait for the last events (180)")
    parser.add_argument("--workdir", default=None, help="scratch directory (default: a temporary one, removed after)")
    parser.add_argument("--keep", action="store_true", help="keep each size's files under --workdir")
    parser.add_argument("--master", default="local[*]")
    parser.add_argument("--driver-memory", default="4g")
    parser.add_argument("--broker-heap", default="1g", help="the Kafka broker's JVM heap (1g)")
    parser.add_argument("--set", action="append", default=[], help="extra config overrides KEY=VALUE")
    parser.add_argument("--verbose", action="store_true", help="show the pipelines' INFO logs")
    args = parser.parse_args(argv)
    if args.smoke:
        args.events = [SMOKE_EVENTS]
    if not args.events and not args.follow_latency:
        parser.error("nothing to do: --events 0 without --follow-latency")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("pipelines").setLevel(logging.INFO if args.verbose else logging.WARNING)

    from pipelines.orchestration.kafka import LocalKafka

    temporary = args.workdir is None
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="clickml-kafka-bench-")).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    first = config_for(workdir / "session", 1, args.days, args)
    progress(f"sizes {', '.join(f'{s:,}' for s in args.events) or 'none'} events"
             f"{'; follow latency' if args.follow_latency else ''}; master {args.master}, {os.cpu_count()} cores; "
             f"workdir {workdir}; {load()}")
    kafka = LocalKafka(workdir / "kafka", heap=args.broker_heap)
    rows: list[Row] = []
    lat: Latency | None = None
    spark = None
    try:
        kafka.start()
        progress(f"Kafka broker up at {kafka.bootstrap}")
        spark = build_session(first)
        if not args.verbose:
            logging.getLogger("pipelines").setLevel(logging.WARNING)  # build_session may configure logging
        for target in args.events:
            rows.append(measure(spark, kafka, args, workdir, target))
        if args.follow_latency:
            lat = follow_latency(spark, kafka, args, workdir)
    finally:
        if spark is not None:
            spark.stop()
        kafka.stop()
        if temporary and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    progress(f"done; {load()}")
    if rows:
        print()
        print(f"Kafka ingest vs plain Kafka -> Parquet ({args.master}, {args.days} days, "
              f"bad_records.share {BAD_SHARE}, "
              f"maxOffsetsPerTrigger {args.max_offsets or 'none'})")
        print(table(rows))
    if lat is not None:
        print()
        print(f"follow-mode latency ({args.master}, {args.partitions} partitions)")
        print(latency_report(lat))
    return 0


if __name__ == "__main__":
    sys.exit(main())
