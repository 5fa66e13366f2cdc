"""Benchmark of `clickml generate`: events per second and driver memory for N users.

    .venv/bin/python benchmarks/generate_scale.py --users 20000 --days 14
    .venv/bin/python benchmarks/generate_scale.py --users 600000 --days 30 --master 'local[*]' --full

Writes the landing files (and with --full the truth tables through the lake) under a scratch
directory, then prints the volume, the throughput and the driver's peak memory (Python process
RSS and JVM heap). Driver memory should stay flat as --users grows: no rows reach the driver.
Not a test.
"""

from __future__ import annotations

import argparse
import logging
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines.config import load_config  # noqa: E402
from pipelines.generate import estimate, generate_landing, run  # noqa: E402
from pipelines.spark import build_session  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--bad-share", type=float, default=0.01)
    parser.add_argument("--gzip", action="store_true")
    parser.add_argument("--master", default="local[*]")
    parser.add_argument("--driver-memory", default="2g")
    parser.add_argument("--dir", default=None, help="scratch directory (default: a temporary one, removed after)")
    parser.add_argument("--full", action="store_true", help="run() with the truth tables and oracle AUCs")
    parser.add_argument("--set", action="append", default=[], help="extra config overrides KEY=VALUE")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    scratch = Path(args.dir or tempfile.mkdtemp(prefix="clickml-bench-"))
    config = load_config(
        profile="local",
        overrides=[
            f"lake.root={scratch / 'lakehouse'}",
            f"landing.root={scratch / 'landing'}",
            f"spark.master={args.master}",
            f"spark.driver_memory={args.driver_memory}",
            f"generator.users={args.users}",
            f"generator.days={args.days}",
            f"generator.bad_records.share={args.bad_share}",
            f"generator.gzip={str(args.gzip).lower()}",
            *args.set,
        ],
        env={},
    )
    plan = estimate(config.generator)
    print(f"expected: {plan.sessions:,.0f} sessions, {plan.events:,.0f} events, {plan.lines:,.0f} lines")
    spark = build_session(config)
    runtime = spark.sparkContext._jvm.java.lang.Runtime.getRuntime()
    started = time.monotonic()
    if args.full:
        result = run(config, spark)
        events, lines, files = result.events, result.lines, result.files
        print(result.report())
    else:
        landed = generate_landing(config, spark)
        events, lines, files = landed.events, landed.lines, landed.files
    seconds = time.monotonic() - started
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    heap_mb = (runtime.totalMemory() - runtime.freeMemory()) / 2**20
    print(f"users                 {args.users:,} x {args.days} days")
    print(f"valid events          {events:,} ({lines:,} lines in {files:,} files)")
    print(f"seconds               {seconds:.1f}")
    print(f"events per second     {events / seconds:,.0f}")
    print(f"driver python peak    {rss_mb:,.0f} MiB (RSS)")
    print(f"driver JVM heap now   {heap_mb:,.0f} MiB of {runtime.maxMemory() / 2**20:,.0f} MiB")
    spark.stop()
    if not args.dir:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
