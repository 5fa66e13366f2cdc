"""spark-submit entry point: one look at an online experiment (exposures + silver events ->
statistics -> experiments.results, an HTML report, and the decision rule, which can move the
registry's champion alias), or the bandit's reweighting.

    spark-submit jobs/analyze_experiment.py propensity_ab                      # latest day with exposures
    spark-submit jobs/analyze_experiment.py propensity_ab --as-of 2024-01-10 --no-promote
    spark-submit jobs/analyze_experiment.py propensity_bandit --update-bandit  # weights -> Redis
"""

import datetime as dt
import sys

from pipelines.jobs import start_job


def _arguments(parser):
    parser.add_argument("experiment", help="experiment id (experiments:)")
    parser.add_argument("--as-of", dest="as_of", type=dt.date.fromisoformat,
                        help="analyse the exposures up to this date (default: the last day with exposures)")
    parser.add_argument("--promote", dest="promote", action="store_true", default=None,
                        help="move the champion alias to a winner (default: the experiment's decision.promote)")
    parser.add_argument("--no-promote", dest="promote", action="store_false", help="report the decision only")
    parser.add_argument("--update-bandit", action="store_true",
                        help="instead of the analysis: recompute a bandit's arm weights and publish them to Redis")


def main(argv=None) -> int:
    config, spark, args = start_job("Analyse an online experiment, or update a bandit's weights.", argv, _arguments)
    if args.update_bandit:
        from pipelines.experiments import bandit

        print(bandit.update(config, spark, args.experiment).report())
        return 0
    from pipelines.experiments import stage

    result = stage.run(config, spark, args.experiment, as_of=args.as_of, promote=args.promote)
    print(result.report())
    print(f"report: {result.report_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
