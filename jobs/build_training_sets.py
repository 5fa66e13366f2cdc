"""spark-submit entry point: silver + gold features -> gold.propensity_training, gold.implicit_training.

    spark-submit jobs/build_training_sets.py --profile standalone
    spark-submit jobs/build_training_sets.py --set training_sets.propensity.horizon_days=7
"""

import sys

from pipelines.jobs import start_job
from pipelines.training_sets import stage


def main(argv=None) -> int:
    config, spark, _ = start_job("Build the training sets (propensity, implicit feedback).", argv)
    print(stage.run(config, spark).report())
    return 0


if __name__ == "__main__":
    sys.exit(main())
