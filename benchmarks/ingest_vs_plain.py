"""Benchmark of `clickml ingest` against a plain Spark JSON-to-Parquet copy of the same files.

    .venv/bin/python benchmarks/ingest_vs_plain.py --smoke                    # 200k events, a few minutes
    .venv/bin/python benchmarks/ingest_vs_plain.py                            # 1M and 10M events
    .venv/bin/python benchmarks/ingest_vs_plain.py --events 1000000 --workdir /data/bench --keep

For each size in --events, in one SparkSession: the generator writes the landing files once
(`bad_records.share` 0.01, users x days picked with `pipelines.generate.estimate` to reach about
that many events), then two jobs read the same files:

  ingest  `pipelines.ingest.run(config, spark, "clickstream", start, end)` over the whole generated
          interval (start = generator.start_date, end = start + days + 3 days, so the late
          arrivals are included): parse, validate, quarantine, deduplicate, commit Delta tables
          bronze.events + bronze.quarantine + bronze.ingest_audit;
  plain   `spark.read.json(landing).write.mode("overwrite").parquet(tmp)`: the floor, no checks

(ingest first; --plain-first swaps the order), and prints a table: size, lines, seconds and lines
per second of each, and the ratio (ingest lines/s / plain lines/s). Target: ratio >= 0.8 at 10M
events. Progress lines go to stdout as it runs. Not a test.

--breakdown then times, on the same files, the pieces the ingest is made of, each on its own
(Spark's no-op sink unless a write is named), and prints them as a share of the plain copy: where
the time goes, and the floor any design with these steps has.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import math
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines.config import load_config  # noqa: E402
from pipelines.generate import estimate, generate_landing  # noqa: E402
from pipelines.spark import build_session  # noqa: E402

SMOKE_EVENTS = 200_000
TARGET_RATIO = 0.8
TARGET_EVENTS = 10_000_000
BAD_SHARE = 0.01
LATE_DAYS = 3
"""Days after the generated period that the ingest interval covers (late arrivals: up to 48 h)."""


@dataclass
class Row:
    """One size's measurements."""

    target: int
    users: int
    days: int
    lines: int
    events: int
    generate_s: float
    ingest_s: float
    ingest_read: int
    bronze: int
    quarantined: int
    plain_s: float
    plain_rows: int
    parts: list[tuple[str, float]] = field(default_factory=list)
    """--breakdown: (component, seconds)."""
    order: str = "ingest first"
    """Which job ran first on the files (the first job of a fresh JVM pays its warm-up)."""

    @property
    def ingest_rate(self) -> float:
        return self.lines / self.ingest_s if self.ingest_s else math.nan

    @property
    def plain_rate(self) -> float:
        return self.lines / self.plain_s if self.plain_s else math.nan

    @property
    def ratio(self) -> float:
        return self.ingest_rate / self.plain_rate if self.plain_rate else math.nan


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def sizes(text: str, allow_none: bool = False) -> list[int]:
    """`--events`: comma-separated sizes >= 1000 (`allow_none`: 0 means none)."""
    try:
        values = [int(float(part)) for part in text.replace("_", "").split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--events must be comma-separated numbers, got {text!r}") from None
    if allow_none:
        values = [v for v in values if v]
    if (not values and not allow_none) or any(v < 1000 for v in values):
        raise argparse.ArgumentTypeError("--events sizes must be >= 1000" + (" (or 0 for none)" if allow_none else ""))
    return values


def pick_users(target: int, days: int, base_overrides: list[str]) -> int:
    """Users such that users x days gives about `target` valid events (volume is linear in users)."""
    probe = load_config(profile="local", overrides=[*base_overrides, "generator.users=1000", f"generator.days={days}"],
                        env={})
    per_user = estimate(probe.generator).events / 1000
    return max(1, round(target / per_user))


def bench_config(root: Path, users: int, days: int, args: argparse.Namespace, *extra: str):
    """The local profile with the lakehouse and landing zone under `root` and the generator sized."""
    return load_config(
        profile="local",
        overrides=[
            f"lake.root={root / 'lakehouse'}",
            f"landing.root={root / 'landing'}",
            f"spark.master={args.master}",
            f"spark.driver_memory={args.driver_memory}",
            f"generator.users={users}",
            f"generator.days={days}",
            f"generator.bad_records.share={BAD_SHARE}",
            *extra,
            *args.set,
        ],
        env={},
    )


def config_for(workdir: Path, target: int, users: int, days: int, args: argparse.Namespace):
    root = workdir / f"events-{target}"
    return bench_config(root, users, days, args), root


def measure(spark, args: argparse.Namespace, workdir: Path, target: int, base_overrides: list[str]) -> list[Row]:
    from pipelines import ingest

    days = args.days
    users = pick_users(target, days, base_overrides)
    config, root = config_for(workdir, target, users, days, args)
    gen = config.generator
    plan = estimate(gen)
    progress(f"size {target:,}: generating {users:,} users x {days} days (expected ~{plan.events:,.0f} events, "
             f"~{plan.lines:,.0f} lines) under {root}")
    started = time.monotonic()
    landed = generate_landing(config, spark)
    generate_s = time.monotonic() - started
    progress(f"size {target:,}: generated {landed.lines:,} lines ({landed.events:,} valid events, {landed.bad_lines:,} bad) "
             f"in {landed.files:,} files, {generate_s:.1f}s")

    start = dt.datetime.combine(gen.start_date, dt.time(), tzinfo=dt.timezone.utc)
    end = start + dt.timedelta(days=days + LATE_DAYS)

    def run_ingest(cfg) -> tuple[float, list]:
        progress(f"size {target:,}: ingest [{start:%Y-%m-%d}, {end:%Y-%m-%d}) into {cfg.lake.root} ...")
        started = time.monotonic()
        results = ingest.run(cfg, spark, "clickstream", start, end)
        seconds = time.monotonic() - started
        for result in results:
            progress(f"size {target:,}: ingest {seconds:.1f}s: {result.report()}")
        return seconds, results

    plain_out = root / "plain-parquet"

    def run_plain() -> tuple[float, int]:
        progress(f"size {target:,}: plain spark.read.json(...).write.parquet(...) ...")
        started = time.monotonic()
        spark.read.json(landed.path).write.mode("overwrite").parquet(str(plain_out))
        seconds = time.monotonic() - started
        rows = spark.read.parquet(str(plain_out)).count()  # not timed: a check that it read everything
        progress(f"size {target:,}: plain {seconds:.1f}s ({rows:,} rows written)")
        return seconds, rows

    # --both-orders: the same files twice, ingest first then plain first; the second ingest writes
    # a lakehouse of its own (into the same one it would find the batch done and skip it).
    orders = [False, True] if args.both_orders else [args.plain_first]
    measured: list[Row] = []
    for round_no, plain_first in enumerate(orders):
        cfg = config if round_no == 0 else config.model_copy(
            update={"lake": config.lake.model_copy(update={"root": str(root / f"lakehouse-{round_no + 1}")})}
        )
        if plain_first:
            plain_s, plain_rows = run_plain()
            ingest_s, results = run_ingest(cfg)
        else:
            ingest_s, results = run_ingest(cfg)
            plain_s, plain_rows = run_plain()
        parts = breakdown(spark, cfg, landed.path, end, root) if args.breakdown and round_no == 0 else []
        read = sum(r.records_read for r in results)
        if read != landed.lines:
            progress(f"size {target:,}: WARNING ingest read {read:,} records, the generator wrote {landed.lines:,} lines")

        row = Row(
            target=target, users=users, days=days, lines=landed.lines, events=landed.events, generate_s=generate_s,
            ingest_s=ingest_s, ingest_read=read, bronze=sum(r.bronze_written for r in results),
            quarantined=sum(r.quarantined for r in results), plain_s=plain_s, plain_rows=plain_rows, parts=parts,
            order="plain first" if plain_first else "ingest first",
        )
        progress(f"size {target:,} ({row.order}): ingest {row.ingest_rate:,.0f} lines/s, plain {row.plain_rate:,.0f} "
                 f"lines/s, ratio {row.ratio:.2f}")
        measured.append(row)
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    return measured


def breakdown(spark, config, landing: str, end: dt.datetime, root: Path) -> list[tuple[str, float]]:
    """Time the ingest's pieces on their own over the same landing files (see the module doc)."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    from pipelines.ingest import stage
    from pipelines.ingest.parse import parse_fields
    from pipelines.ingest.reader import list_landing_files, read_raw
    from pipelines.sources import load_source

    source = load_source(config.conf_dir, "clickstream")
    start = dt.datetime.combine(config.generator.start_date, dt.time(), tzinfo=dt.timezone.utc)
    files = list_landing_files(config, source, start, end)
    uris = [f.spark_uri for f in files]
    fields = sorted(set(source.columns.values()))
    strings = T.StructType([T.StructField(f, T.StringType()) for f in fields])
    out = root / "breakdown-parquet"

    def noop(frame) -> None:
        frame.write.format("noop").mode("overwrite").save()

    raw_holder = []

    def numbering() -> None:
        # Reads the files' lines; numbering by block runs its pass over the text here.
        raw_holder.append(read_raw(spark, files, source))

    def parsed():
        return parse_fields(raw_holder[0].frame, source)

    def classified():
        return stage.classify_records(config, source, raw_holder[0].frame, end)

    def staged_without_dedup() -> None:
        frame = classified().withColumn("outcome", F.coalesce("reason", F.lit(stage.OUTCOME_BRONZE)))
        rows = stage.staged_rows(frame, source, "breakdown", F.current_timestamp())
        with raw_holder[0].scan_settings(spark):
            rows.write.mode("overwrite").partitionBy("event_date").parquet(str(out))

    def consume(frame_of):
        def step() -> None:
            with raw_holder[0].scan_settings(spark):
                noop(frame_of())
        return step

    steps = [
        ("text scan (spark.read.text, no-op sink)", lambda: noop(spark.read.text(uris))),
        ("JSON data source, fields as strings (no-op)", lambda: noop(spark.read.schema(strings).json(uris))),
        ("plain with the schema given (no inference)",
         lambda: spark.read.schema(strings).json(uris).write.mode("overwrite").parquet(str(out))),
        ("ingest: reading the lines (numbering pass)", numbering),
        ("ingest: text + from_json (no-op)", consume(parsed)),
        ("ingest: parse + classify (no-op)", consume(classified)),
        ("ingest: parse + classify + staged write, no dedup", staged_without_dedup),
    ]
    parts = []
    for name, step in steps:
        started = time.monotonic()
        step()
        parts.append((name, time.monotonic() - started))
        progress(f"breakdown: {name}: {parts[-1][1]:.1f}s")
    shutil.rmtree(out, ignore_errors=True)
    return parts


def table(rows: list[Row]) -> str:
    header = (f"{'size':>12} {'order':>13} {'lines':>12} {'ingest s':>9} {'ingest ev/s':>12} {'plain s':>9} "
              f"{'plain ev/s':>12} {'ratio':>6}  target")
    out = [header, "-" * len(header)]
    for row in rows:
        if row.target >= TARGET_EVENTS:
            verdict = "ok" if row.ratio >= TARGET_RATIO else "MISSED"
            target = f">= {TARGET_RATIO} {verdict}"
        else:
            target = f"(>= {TARGET_RATIO} at {TARGET_EVENTS / 1e6:.0f}M)"
        out.append(
            f"{row.target:>12,} {row.order:>13} {row.lines:>12,} {row.ingest_s:>9.1f} {row.ingest_rate:>12,.0f} {row.plain_s:>9.1f} "
            f"{row.plain_rate:>12,.0f} {row.ratio:>6.2f}  {target}"
        )
    out.append("events/s = landing lines (valid + bad) per second; ratio = ingest ev/s / plain ev/s")
    for row in rows:
        if row.parts:
            out.append("")
            out.append(f"breakdown at {row.target:,} (share of the plain copy's {row.plain_s:.1f} s; "
                       f"ratio {TARGET_RATIO} allows the ingest {row.plain_s / TARGET_RATIO:.1f} s)")
            for name, seconds in [("full ingest", row.ingest_s), *row.parts]:
                out.append(f"  {name:<52} {seconds:>7.1f} s {seconds / row.plain_s:>6.2f}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=sizes, default=sizes("1000000,10000000"),
                        help="comma-separated sizes in valid events (default 1000000,10000000)")
    parser.add_argument("--smoke", action="store_true", help=f"shortcut for --events {SMOKE_EVENTS}")
    parser.add_argument("--days", type=int, default=7, help="generated days (users are picked to reach the size)")
    parser.add_argument("--workdir", default=None, help="scratch directory (default: a temporary one, removed after)")
    parser.add_argument("--keep", action="store_true", help="keep each size's files under --workdir")
    parser.add_argument("--master", default="local[*]")
    parser.add_argument("--driver-memory", default="4g")
    parser.add_argument("--set", action="append", default=[], help="extra config overrides KEY=VALUE")
    parser.add_argument("--plain-first", action="store_true", help="time the plain copy before the ingest")
    parser.add_argument("--both-orders", action="store_true",
                        help="time both orders on the same files (ingest first, then plain first into a fresh lakehouse)")
    parser.add_argument("--verbose", action="store_true", help="show the pipelines' INFO logs")
    parser.add_argument("--breakdown", action="store_true", help="also time the ingest's pieces on their own")
    args = parser.parse_args(argv)
    if args.smoke:
        args.events = [SMOKE_EVENTS]
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("pipelines").setLevel(logging.INFO if args.verbose else logging.WARNING)

    temporary = args.workdir is None
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="clickml-ingest-bench-")).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    base_overrides = [f"lake.root={workdir / 'lakehouse'}", f"landing.root={workdir / 'landing'}",
                      f"generator.bad_records.share={BAD_SHARE}", *args.set]
    first, _ = config_for(workdir, args.events[0], 1, args.days, args)
    progress(f"sizes {', '.join(f'{s:,}' for s in args.events)} events; master {args.master}; workdir {workdir}")
    spark = build_session(first)
    if not args.verbose:
        logging.getLogger("pipelines").setLevel(logging.WARNING)  # build_session may configure logging
    rows: list[Row] = []
    try:
        for target in args.events:
            rows.extend(measure(spark, args, workdir, target, base_overrides))
    finally:
        spark.stop()
        if temporary and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print()
    print(f"ingest vs plain JSON -> Parquet ({args.master}, {args.days} days, bad_records.share {BAD_SHARE})")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
