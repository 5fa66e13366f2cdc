"""spark-submit entry point: a job's latest gold features (binary jobs) or scored top-k
recommendations (recommendation jobs) into the online store (Redis, `serving.redis_url`).

    spark-submit jobs/materialize.py propensity                      # latest as-of date, incremental
    spark-submit jobs/materialize.py propensity --as-of 2024-01-10 --force
    spark-submit jobs/materialize.py recommender --alias champion
    spark-submit jobs/materialize.py recommender --experiment recs_ab   # every variant's version
"""

import datetime as dt
import sys

from pipelines.jobs import start_job
from pipelines.serve import materialize


def _arguments(parser):
    parser.add_argument("job", help="training job (training.jobs): binary -> user features, recommendation -> top-k")
    parser.add_argument("--as-of", dest="as_of", type=dt.date.fromisoformat,
                        help="as-of date (default: the latest built, or scored for recommendations)")
    parser.add_argument("--force", action="store_true", help="rewrite even when the store holds this as-of date")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--alias", default=materialize.DEFAULT_ALIAS, help="recommendation jobs: model alias (default: champion)")
    which.add_argument("--version", help="recommendation jobs: model version (instead of an alias)")
    which.add_argument("--experiment", help="recommendation jobs: the version of every variant of this experiment")


def main(argv=None) -> int:
    config, spark, args = start_job("Materialize a job's online features or recommendations into Redis.", argv, _arguments)
    if args.experiment:
        results = materialize.run_experiment(config, spark, args.experiment, as_of=args.as_of, force=args.force,
                                             job=args.job)
    else:
        results = [materialize.run(config, spark, args.job, as_of=args.as_of, force=args.force, alias=args.alias,
                                   version=args.version)]
    for result in results:
        print(result.report())
    return 0


if __name__ == "__main__":
    sys.exit(main())
