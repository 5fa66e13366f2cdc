"""What every spark-submit entry point in `jobs/` shares: arguments, config, logging, session."""

from __future__ import annotations

import argparse
from typing import Sequence

from pipelines.config import ClickmlConfig, load_config
from pipelines.logs import configure_logging


def config_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add --profile, --conf-dir and --set to a parser."""
    parser.add_argument("--profile", help="config profile: local, standalone, cluster (default: $CLICKML_PROFILE or local)")
    parser.add_argument("--conf-dir", help="config directory holding base.yaml (default: $CLICKML_CONF_DIR or ./conf)")
    parser.add_argument("--config", dest="user_config", metavar="FILE",
                        help="your YAML file merged over base + profile, e.g. a training job for your own table "
                             "(default: $CLICKML_CONFIG)")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a config value, e.g. --set spark.master=local[2] (repeatable)",
    )
    return parser


def config_from_args(args: argparse.Namespace) -> ClickmlConfig:
    config = load_config(profile=args.profile, conf_dir=args.conf_dir, overrides=args.overrides,
                         user_config=getattr(args, "user_config", None))
    configure_logging(config.logging.level)
    return config


def start_job(description: str, argv: Sequence[str] | None = None, extra_arguments=None):
    """Parse a job's arguments, load its config and build its SparkSession.

    Returns (config, spark, args). Under spark-submit the submitted session's settings win.
    """
    from pipelines.spark import build_session

    parser = config_arguments(argparse.ArgumentParser(description=description))
    if extra_arguments is not None:
        extra_arguments(parser)
    args = parser.parse_args(argv)
    config = config_from_args(args)
    spark = build_session(config)
    from pipelines.spark.storage import check_roots

    check_roots(config, spark)  # fail the task with one line naming the root, before any work
    return config, spark, args
