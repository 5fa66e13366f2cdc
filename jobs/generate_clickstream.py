"""spark-submit entry point: write a synthetic clickstream into the landing zone.

    spark-submit jobs/generate_clickstream.py --profile standalone [--set generator.users=100000]
"""

import sys

from pipelines import generate
from pipelines.jobs import start_job


def main(argv=None) -> int:
    config, spark, _ = start_job("Generate a synthetic clickstream into the landing zone.", argv)
    result = generate.run(config, spark)
    print(result.report() if hasattr(result, "report") else result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
