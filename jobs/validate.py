"""spark-submit entry point: Great Expectations gates on lakehouse tables.

    spark-submit jobs/validate.py --profile standalone --table bronze.events,bronze.quarantine
    spark-submit jobs/validate.py --profile standalone --table silver.sessions --version 12
    spark-submit jobs/validate.py --table silver.events --table silver.sessions

Each table is validated against `<validation.suites_dir>/<table>.yaml` (its latest version unless
--version). Every table is checked even when an earlier one fails; the exit status is 1 when a
gate failed, 2 when a table or suite could not be used.
"""

import sys

from pipelines.jobs import start_job
from pipelines.validate.gates import gate_tables


def _arguments(parser):
    parser.add_argument(
        "--table", dest="tables", action="append", required=True, metavar="NAME",
        help="logical table (silver.sessions) or tables key (silver_sessions); repeatable or comma-separated",
    )
    parser.add_argument("--version", type=int, help="table version to validate (one table only; default: the latest)")


def main(argv=None) -> int:
    config, spark, args = start_job("Validate lakehouse tables against their expectation suites.", argv, _arguments)
    return gate_tables(config, spark, args.tables, version=args.version)


if __name__ == "__main__":
    sys.exit(main())
