"""spark-submit entry point: the champion decision for models registered without promotion.

    spark-submit jobs/train.py propensity --model lr --no-promote --run-group RUN   # in parallel
    spark-submit jobs/train.py propensity --model gbt --no-promote --run-group RUN
    spark-submit jobs/promote.py propensity --run-group RUN                         # then once
"""

import sys

from pipelines.jobs import start_job
from pipelines.train import stage


def _arguments(parser):
    parser.add_argument("jobs", nargs="*", help="training jobs (training.jobs); default: all")
    parser.add_argument("--run-group", required=True, help="the run group the models were registered with")


def main(argv=None) -> int:
    config, spark, args = start_job("Promote the best model of a run group if it beats the champion.", argv, _arguments)
    decisions = stage.promote(config, spark, jobs=args.jobs or None, run_group=args.run_group)
    print(stage.promotion_report(decisions, args.run_group))
    return 0


if __name__ == "__main__":
    sys.exit(main())
