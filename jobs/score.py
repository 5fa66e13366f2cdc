"""spark-submit entry point: batch scoring with a registered model into gold.predictions
(binary jobs) or gold.recommendations (recommendation jobs).

    spark-submit jobs/score.py propensity                          # champion, latest as-of date
    spark-submit jobs/score.py propensity --as-of 2024-01-10 --alias challenger
    spark-submit jobs/score.py recommender --version 3
"""

import datetime as dt
import sys

from pipelines.jobs import start_job
from pipelines.score import stage


def _arguments(parser):
    parser.add_argument("job", help="training job (training.jobs) whose registered model scores")
    parser.add_argument("--as-of", dest="as_of", type=dt.date.fromisoformat,
                        help="as-of date of the features (default: the latest built)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--alias", default=stage.DEFAULT_ALIAS, help="model alias (default: champion)")
    which.add_argument("--version", help="model version (instead of an alias)")


def main(argv=None) -> int:
    config, spark, args = start_job("Score the features of an as-of date with a registered model.", argv, _arguments)
    print(stage.run(config, spark, args.job, as_of=args.as_of, alias=args.alias, version=args.version).report())
    return 0


if __name__ == "__main__":
    sys.exit(main())
