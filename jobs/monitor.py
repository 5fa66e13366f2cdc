"""spark-submit entry point: drift of a job's scored population against its training reference
(into monitor.drift); exits 3 when a feature or the score alerts, so an orchestrator can act on it.

    spark-submit jobs/monitor.py propensity                     # the latest scored as-of date
    spark-submit jobs/monitor.py propensity --as-of 2024-01-10 --version 3
"""

import datetime as dt
import sys

from pipelines.jobs import start_job
from pipelines.monitor import stage

ALERT_EXIT = 3


def _arguments(parser):
    parser.add_argument("job", help="training job (training.jobs) whose scores are monitored")
    parser.add_argument("--as-of", dest="as_of", type=dt.date.fromisoformat, help="scored as-of date (default: the latest)")
    parser.add_argument("--version", help="model version (default: the one scored as champion that day)")
    parser.add_argument("--exit-code-on-alert", action="store_true", help=f"exit {ALERT_EXIT} when drift alerts")


def main(argv=None) -> int:
    config, spark, args = start_job("Drift of a scored population against the training reference.", argv, _arguments)
    result = stage.run(config, spark, args.job, as_of=args.as_of, version=args.version)
    print(result.report())
    return ALERT_EXIT if args.exit_code_on_alert and result.alert else 0


if __name__ == "__main__":
    sys.exit(main())
