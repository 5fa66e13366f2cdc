"""spark-submit entry point: train, evaluate, log to MLflow, register and promote.

    spark-submit jobs/train.py --profile standalone                      # every configured job
    spark-submit jobs/train.py propensity --model gbt                    # one model (parallel Airflow tasks)
"""

import sys

from pipelines.jobs import start_job
from pipelines.train import stage


def _arguments(parser):
    parser.add_argument("jobs", nargs="*", help="training jobs (training.jobs); default: all")
    parser.add_argument("--model", dest="models", action="append", help="only this model (repeatable)")


def main(argv=None) -> int:
    config, spark, args = start_job("Train, evaluate, register and promote models.", argv, _arguments)
    print(stage.run(config, spark, jobs=args.jobs or None, models=args.models).report())
    return 0


if __name__ == "__main__":
    sys.exit(main())
