"""spark-submit entry point: silver.events -> gold feature tables (user, product, category, user x category).

    spark-submit jobs/build_features.py --profile standalone                 # the configured as-of range
    spark-submit jobs/build_features.py --as-of 2024-01-15 --as-of 2024-01-16   # e.g. Airflow's data interval end
"""

import datetime as dt
import sys

from pipelines.features import stage
from pipelines.jobs import start_job


def _arguments(parser):
    parser.add_argument("--as-of", dest="as_of", type=dt.date.fromisoformat, action="append",
                        help="as-of date, YYYY-MM-DD (repeatable); default: features.start_date..end_date")
    parser.add_argument("--full-refresh", action="store_true", help="rebuild the as-of dates even if unchanged")


def main(argv=None) -> int:
    config, spark, args = start_job("Build the gold feature tables.", argv, _arguments)
    print(stage.run(config, spark, as_of_dates=args.as_of, full_refresh=args.full_refresh).report())
    return 0


if __name__ == "__main__":
    sys.exit(main())
