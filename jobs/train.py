"""spark-submit entry point: train, evaluate, log to MLflow, register and promote.

    spark-submit jobs/train.py --profile standalone                      # every configured job
    spark-submit jobs/train.py propensity --model gbt                    # one model
    spark-submit jobs/train.py propensity --model gbt --no-promote --run-group R   # parallel tasks; then
    spark-submit jobs/promote.py propensity --run-group R                          # decides the champion
"""

import sys

from pipelines.jobs import start_job
from pipelines.train import stage


def _arguments(parser):
    parser.add_argument("jobs", nargs="*", help="training jobs (training.jobs); default: all")
    parser.add_argument("--model", dest="models", action="append", help="only this model (repeatable)")
    parser.add_argument("--no-promote", dest="promote", action="store_false",
                        help="register as challenger only; jobs/promote.py decides the champion (parallel tasks)")
    parser.add_argument("--run-group", help="tag for the models registered with --no-promote (e.g. the Airflow run id)")


def main(argv=None) -> int:
    config, spark, args = start_job("Train, evaluate, register and promote models.", argv, _arguments)
    print(stage.run(config, spark, jobs=args.jobs or None, models=args.models, promote=args.promote,
                    run_group=args.run_group).report())
    return 0


if __name__ == "__main__":
    sys.exit(main())
