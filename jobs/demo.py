"""spark-submit entry point: the demo pipeline (what `make demo` runs), on any Spark master.

    spark-submit jobs/demo.py --profile standalone
"""

import sys

from pipelines import demo
from pipelines.jobs import start_job


def main(argv=None) -> int:
    config, spark, _ = start_job("Run the clickml demo pipeline.", argv)
    print(demo.format_summary(demo.run(config, spark)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
