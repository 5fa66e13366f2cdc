"""spark-submit entry point: bronze -> silver.events / silver.sessions / silver.bot_users.

    spark-submit jobs/build_silver.py --profile standalone            # the days new batches touched
    spark-submit jobs/build_silver.py --profile standalone --full-refresh
"""

import sys

from pipelines import silver
from pipelines.jobs import start_job


def _arguments(parser):
    parser.add_argument("--full-refresh", action="store_true", help="rebuild every event date")


def main(argv=None) -> int:
    config, spark, args = start_job("Build the silver tables from bronze.", argv, _arguments)
    print(silver.run(config, spark, full_refresh=args.full_refresh).report())
    return 0


if __name__ == "__main__":
    sys.exit(main())
