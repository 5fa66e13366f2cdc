"""spark-submit entry point: ingest landing files into bronze.

    spark-submit jobs/ingest_clickstream.py --source clickstream --start 2024-01-01T00:00 --end 2024-01-01T01:00
    spark-submit jobs/ingest_clickstream.py --source rees46          # incremental (availableNow)
"""

import datetime as dt
import sys

from pipelines import ingest
from pipelines.jobs import start_job


def _arguments(parser):
    parser.add_argument("--source", help="conf/sources/<name>.yaml; default: every source in ingest.sources")
    parser.add_argument("--start", type=dt.datetime.fromisoformat, help="data interval start (UTC)")
    parser.add_argument("--end", type=dt.datetime.fromisoformat, help="data interval end (UTC, exclusive)")


def main(argv=None) -> int:
    config, spark, args = start_job("Ingest landing files into bronze.", argv, _arguments)
    if (args.start is None) != (args.end is None):
        raise SystemExit("--start and --end go together (an interval), or neither (incremental)")
    for result in ingest.run(config, spark, args.source, args.start, args.end):
        print(result.report())
    return 0


if __name__ == "__main__":
    sys.exit(main())
