"""spark-submit / cron entry point: vacuum lakehouse tables (Delta VACUUM).

    python jobs/lake_vacuum.py bronze.events silver.events [--retention-hours 168]
"""

import argparse
import sys

from pipelines.jobs import config_arguments, config_from_args
from pipelines.lake import Lake
from pipelines.spark import build_session


def main(argv=None) -> int:
    parser = config_arguments(argparse.ArgumentParser(description="Vacuum lakehouse tables."))
    parser.add_argument("tables", nargs="+", help="logical table names")
    parser.add_argument("--retention-hours", type=float)
    args = parser.parse_args(argv)
    config = config_from_args(args)
    lake = Lake(config, build_session(config))
    for table in args.tables:
        result = lake.vacuum(table, args.retention_hours)
        print(f"{table}: deleted {len(result.files_deleted)} file(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
