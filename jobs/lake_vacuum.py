"""spark-submit / cron entry point: vacuum lakehouse tables (no Spark needed).

    python jobs/lake_vacuum.py bronze.events silver.events [--retention-hours 168]
"""

import argparse
import sys

from pipelines.jobs import config_arguments, config_from_args
from pipelines.lake import Lake


def main(argv=None) -> int:
    parser = config_arguments(argparse.ArgumentParser(description="Vacuum lakehouse tables."))
    parser.add_argument("tables", nargs="+", help="logical table names")
    parser.add_argument("--retention-hours", type=float)
    args = parser.parse_args(argv)
    lake = Lake(config_from_args(args))
    for table in args.tables:
        result = lake.vacuum(table, args.retention_hours)
        print(f"{table}: deleted {len(result.files_deleted)} file(s), {len(result.staging_dirs_deleted)} write folder(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
