"""The `clickml` command: every stage and maintenance task, configured by conf/ and --set.

    clickml [--profile P] [--conf-dir D] [--set KEY=VALUE ...] COMMAND ...

Commands: demo, generate, ingest, produce, silver, features build|list, training-sets, validate, train, promote, score,
materialize, serve, monitor, experiment analyze|update-bandit, config show, lake history|show|files|vacuum.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
from collections.abc import Sequence

from pipelines.config import ClickmlConfig, ConfigError
from pipelines.jobs import config_arguments, config_from_args

SECRET_KEYS = ("secret", "password", "token", "access_key")
URL_CREDENTIALS = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@")


def _parser() -> argparse.ArgumentParser:
    parser = config_arguments(argparse.ArgumentParser(prog="clickml", description=__doc__.split("\n\n")[0]))
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser("demo", help="generate a clickstream and run the pipeline on it (make demo)")
    commands.add_parser("generate", help="write a synthetic clickstream into the landing zone")

    ingest = commands.add_parser("ingest", help="landing files -> bronze.events / bronze.quarantine / audit")
    ingest.add_argument("--source", help="source name (conf/sources/<name>.yaml); default: ingest.sources")
    ingest.add_argument("--start", type=_timestamp, help="interval start (UTC), e.g. 2024-01-01T00:00; with --end")
    ingest.add_argument("--end", type=_timestamp, help="interval end (UTC, exclusive); without both: incremental")
    ingest.add_argument("--follow", action="store_true",
                        help="Kafka source: keep ingesting every kafka.follow_interval until SIGTERM / Ctrl-C")

    produce = commands.add_parser("produce", help="replay a files source's records into a Kafka topic (one message per line)")
    produce.add_argument("--from", dest="from_source", default="clickstream", metavar="SOURCE",
                         help="files source to replay (conf/sources/<name>.yaml; default: clickstream)")
    produce.add_argument("--to", dest="to_source", default="clickstream_kafka", metavar="KAFKA_SOURCE",
                         help="Kafka source whose topic and brokers receive the records (default: clickstream_kafka)")
    produce.add_argument("--path", help="replay this file or folder (path or URI) instead of the source's landing files")
    produce.add_argument("--topic", help="write to this topic instead of the Kafka source's")
    produce.add_argument("--bootstrap-servers", dest="bootstrap", metavar="HOST:PORT,...",
                         help="brokers to write to instead of the Kafka source's")
    produce.add_argument("--rate", type=_positive(float), help="events per second (default: as fast as possible)")
    produce.add_argument("--limit", type=_positive(int), help="stop after this many records")
    produce.add_argument("--timestamps", choices=["arrival", "now"], default="arrival",
                         help="message timestamps: the end of each file's arrival hour (default; historical data "
                              "stays inside the ingest's time window) or the send time")

    silver = commands.add_parser("silver", help="bronze -> silver.events / silver.sessions (incremental)")
    silver.add_argument("--full-refresh", action="store_true", help="rebuild every event date, not only new ones")

    features = commands.add_parser("features", help="gold feature tables (point-in-time, per as-of date)")
    features_sub = features.add_subparsers(dest="features_command", required=True)
    build = features_sub.add_parser("build", help="silver -> gold features for as-of dates whose inputs changed")
    build.add_argument("--as-of", dest="as_of", type=_date, action="append", help="as-of date (repeatable); default: the configured range")
    build.add_argument("--full-refresh", action="store_true", help="rebuild every requested as-of date")
    listing = features_sub.add_parser("list", help="print the feature registry")
    listing.add_argument("--markdown", action="store_true", help="as docs/features.md")

    commands.add_parser("training-sets", help="build gold.propensity_training and gold.implicit_training")

    gate = commands.add_parser("validate", help="run the Great Expectations gate of tables (conf/expectations/)")
    gate.add_argument("tables", nargs="+", help="logical tables, e.g. silver.sessions (comma-separated or repeated)")
    gate.add_argument("--version", type=int, help="the table version to validate (one table only; default: latest)")

    train = commands.add_parser("train", help="train, evaluate, log to MLflow, register and promote models")
    train.add_argument("jobs", nargs="*", help="training jobs (training.jobs); default: training.default_jobs or all")
    train.add_argument("--model", dest="models", action="append", help="train only this model of the jobs (repeatable)")
    train.add_argument("--no-promote", dest="promote", action="store_false",
                       help="register as challenger only, tagged with --run-group; `clickml promote` decides later")
    train.add_argument("--run-group", help="tag for models registered with --no-promote (e.g. an Airflow run id)")

    promote = commands.add_parser("promote", help="promote the best model of a run group if it beats the champion")
    promote.add_argument("jobs", nargs="*", help="training jobs (training.jobs); default: training.default_jobs or all")
    promote.add_argument("--run-group", required=True, help="the run group the models were registered with")

    score = commands.add_parser("score", help="score an as-of date's features with a registered model into gold.predictions")
    score.add_argument("job", help="training job (training.jobs) whose registered model scores")
    score.add_argument("--as-of", dest="as_of", type=_date, help="as-of date of the features (default: the latest built)")
    which = score.add_mutually_exclusive_group()
    which.add_argument("--alias", default="champion", help="model alias (default: champion)")
    which.add_argument("--version", help="model version (instead of an alias)")

    materialize = commands.add_parser("materialize", help="a job's latest gold features (or top-k recommendations) into Redis")
    materialize.add_argument("job", help="training job (training.jobs): binary -> user features, recommendation -> top-k")
    materialize.add_argument("--as-of", dest="as_of", type=_date, help="as-of date (default: the latest built or scored)")
    materialize.add_argument("--force", action="store_true", help="rewrite even when the store holds this as-of date")
    recs_model = materialize.add_mutually_exclusive_group()
    recs_model.add_argument("--alias", default="champion", help="recommendation jobs: whose scored rows (default: champion)")
    recs_model.add_argument("--version", help="recommendation jobs: model version (instead of an alias)")
    recs_model.add_argument("--experiment", help="recommendation jobs: the version of every variant of this experiment "
                            "(the default version stays)")

    serve = commands.add_parser("serve", help="the model server: online features, experiments, exposures (until stopped)")
    serve.add_argument("--host", help="interface to listen on (default: serving.host)")
    serve.add_argument("--port", type=int, help="port (default: serving.port)")
    serve.add_argument("--reload-seconds", dest="reload_seconds", type=float, default=30.0,
                       help="how often aliases are re-resolved; a moved alias is loaded, then swapped in (default: 30)")
    serve.add_argument("--no-access-log", dest="access_log", action="store_false",
                       help="no log line per request (requests are still counted in /metrics)")

    monitor = commands.add_parser("monitor", help="drift of a job's scored population against its training reference")
    monitor.add_argument("job", help="training job (training.jobs) whose scores are monitored")
    monitor.add_argument("--as-of", dest="as_of", type=_date, help="scored as-of date (default: the latest scored)")
    monitor.add_argument("--version", help="model version (default: the one scored as champion that day)")

    experiment = commands.add_parser("experiment", help="online experiments: analyse a look, update a bandit's weights")
    experiment_sub = experiment.add_subparsers(dest="experiment_command", required=True)
    analyze = experiment_sub.add_parser(
        "analyze", help="exposures + silver events -> experiments.results, an HTML report and the decision rule")
    analyze.add_argument("experiment", help="experiment id (experiments:)")
    analyze.add_argument("--as-of", dest="as_of", type=_date,
                         help="analyse the exposures up to this date (default: the last day with exposures)")
    analyze.add_argument("--promote", action=argparse.BooleanOptionalAction, default=None,
                         help="move the champion alias to a winner (default: the experiment's decision.promote)")
    update_bandit = experiment_sub.add_parser("update-bandit", help="a bandit's arm weights from observed conversions -> Redis")
    update_bandit.add_argument("experiment", help="experiment id (experiments:, kind bandit)")

    config_cmd = commands.add_parser("config", help="inspect the resolved configuration")
    config_sub = config_cmd.add_subparsers(dest="config_command", required=True)
    config_sub.add_parser("show", help="print the resolved configuration as JSON (secrets masked)")

    lake = commands.add_parser("lake", help="inspect and maintain lakehouse tables")
    lake_sub = lake.add_subparsers(dest="lake_command", required=True)
    history = lake_sub.add_parser("history", help="commits of a table, newest first")
    history.add_argument("table", help="logical name (bronze.events) or path")
    history.add_argument("--limit", type=int, default=20)
    show = lake_sub.add_parser("show", help="print rows of a table")
    show.add_argument("table")
    show.add_argument("--version", type=int, help="time travel to this version")
    show.add_argument("--rows", type=int, default=20)
    files = lake_sub.add_parser("files", help="the data files of a table version")
    files.add_argument("table")
    files.add_argument("--version", type=int)
    vac = lake_sub.add_parser("vacuum", help="delete unreferenced files older than the retention")
    vac.add_argument("table")
    vac.add_argument("--retention-hours", type=float, help="default: lake.vacuum_retention_hours")
    vac.add_argument("--dry-run", action="store_true", help="list what would be deleted")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
    except ConfigError as exc:
        print(f"clickml: configuration error: {exc}", file=sys.stderr)
        return 2
    global _LOG_FILE
    _LOG_FILE = _start_log_file(config, args.command)
    if (getattr(args, "start", None) is None) != (getattr(args, "end", None) is None):
        parser.error("--start and --end go together (an interval), or neither (incremental)")
    handler = {
        "demo": _demo, "generate": _generate, "ingest": _ingest, "produce": _produce, "silver": _silver,
        "features": _features,
        "training-sets": _training_sets, "validate": _validate, "train": _train, "promote": _promote, "score": _score,
        "materialize": _materialize, "serve": _serve, "monitor": _monitor, "experiment": _experiment,
        "config": _config, "lake": _lake,
    }[args.command]
    from pipelines.features.stage import FeaturesError
    from pipelines.lake import LakeError
    from pipelines.spark.storage import StorageError
    from pipelines.train import TrainError
    from pipelines.training_sets import TrainingSetError

    try:
        return handler(config, args)
    except (LakeError, FeaturesError, TrainingSetError, TrainError, StorageError) as exc:
        print(f"clickml: {exc}", file=sys.stderr)
        return 1
    finally:
        if _LOG_FILE is not None and args.command != "demo":  # the demo prints it in its summary
            print(f"clickml: full log (with Spark's): {_LOG_FILE}", file=sys.stderr)


_LOG_FILE = None
"""This command's log file (`logging.dir`), None without one."""
QUIET_COMMANDS = ("config",)
"""Commands that print machine-readable output and start no Spark: no log file."""


def _start_log_file(config: ClickmlConfig, command: str):
    """The log file of this command (None when `logging.dir` is null), with logging sent to it."""
    from pathlib import Path

    from pipelines.logs import configure_logging, log_file

    if config.logging.dir is None or command in QUIET_COMMANDS:
        return None
    path = log_file(Path(config.logging.dir), command)  # absolute: the loader resolved it
    try:
        configure_logging(config.logging.level, path)
    except OSError as exc:
        print(f"clickml: cannot write the log file {path} ({exc}); logging to the console only", file=sys.stderr)
        return None
    return path


def _spark(config: ClickmlConfig):
    from pipelines.spark import build_session
    from pipelines.spark.storage import check_roots

    spark = build_session(config, log_file=_LOG_FILE)
    check_roots(config, spark)  # a missing bucket, bad credentials or a NameNode away: one clear line
    return spark


def _demo(config: ClickmlConfig, args: argparse.Namespace) -> int:
    from pipelines import demo

    summary = demo.run(config, _spark(config))
    print(demo.format_summary(summary))
    if _LOG_FILE is not None:
        print(f"Full log (stages, Spark's own lines): {_LOG_FILE}")
    return 0


def _generate(config: ClickmlConfig, args: argparse.Namespace) -> int:
    from pipelines import generate

    result = generate.run(config, _spark(config))
    print(result.report() if hasattr(result, "report") else result)
    return 0


def _timestamp(text: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO timestamp: {text!r} (e.g. 2024-01-01T00:00)") from None
    return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value


def _ingest(config: ClickmlConfig, args: argparse.Namespace) -> int:
    from pipelines import ingest
    from pipelines.ingest.stage import IngestUsageError

    try:
        results = ingest.run(config, _spark(config), args.source, args.start, args.end, follow=args.follow)
    except IngestUsageError as exc:
        print(f"clickml: {exc}", file=sys.stderr)
        return 2
    for result in results:
        print(result.report())
    return 0


def _positive(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = 0
        if value <= 0:
            raise argparse.ArgumentTypeError(f"not a positive number: {text!r}")
        return value

    return parse


def _produce(config: ClickmlConfig, args: argparse.Namespace) -> int:
    from pipelines.ingest import produce

    try:
        result = produce.run(config, args.from_source, args.to_source, path=args.path, topic=args.topic,
                             bootstrap=args.bootstrap, rate=args.rate, limit=args.limit, timestamps=args.timestamps)
    except (ConfigError, produce.ProduceError) as exc:
        print(f"clickml: {exc}", file=sys.stderr)
        return 1
    print(result.report())
    if result.interrupted:
        return 130
    if not result.ok:
        print(f"clickml: {result.failed:,} of {result.records:,} record(s) not delivered to {result.topic}; "
              f"first error: {result.first_error}", file=sys.stderr)
        return 1
    return 0


def _silver(config: ClickmlConfig, args: argparse.Namespace) -> int:
    from pipelines import silver

    print(silver.run(config, _spark(config), full_refresh=args.full_refresh).report())
    return 0


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO date: {text!r} (e.g. 2024-01-15)") from None


def _features(config: ClickmlConfig, args: argparse.Namespace) -> int:
    from pipelines.features.registry import markdown, registry

    windows = config.features.windows_days
    if args.features_command == "list":
        if args.markdown:
            print(markdown(windows))
        else:
            for f in registry(windows):
                print(f"{f.entity:<14} {f.name:<28} {f.dtype:<7} {f.description}")
        return 0
    from pipelines.features import stage

    print(stage.run(config, _spark(config), as_of_dates=args.as_of, full_refresh=args.full_refresh).report())
    return 0


def _training_sets(config: ClickmlConfig, args: argparse.Namespace) -> int:
    from pipelines.training_sets import stage

    print(stage.run(config, _spark(config)).report())
    return 0


def _validate(config: ClickmlConfig, args: argparse.Namespace) -> int:
    from pipelines.validate.gates import gate_tables

    return gate_tables(config, _spark(config), args.tables, version=args.version)


def _train(config: ClickmlConfig, args: argparse.Namespace) -> int:
    from pipelines.train import stage

    print(stage.run(config, _spark(config), jobs=args.jobs or None, models=args.models, promote=args.promote,
                    run_group=args.run_group).report())
    return 0


def _promote(config: ClickmlConfig, args: argparse.Namespace) -> int:
    from pipelines.train import stage

    decisions = stage.promote(config, _spark(config), jobs=args.jobs or None, run_group=args.run_group)
    print(stage.promotion_report(decisions, args.run_group))
    return 0


def _score(config: ClickmlConfig, args: argparse.Namespace) -> int:
    from pipelines.score import stage

    print(stage.run(config, _spark(config), args.job, as_of=args.as_of, alias=args.alias, version=args.version).report())
    return 0


def _materialize(config: ClickmlConfig, args: argparse.Namespace) -> int:
    from pipelines.serve import materialize
    from pipelines.serve.online import OnlineStoreError

    try:
        if args.experiment:
            results = materialize.run_experiment(config, _spark(config), args.experiment, as_of=args.as_of,
                                                 force=args.force, job=args.job)
        else:
            results = [materialize.run(config, _spark(config), args.job, as_of=args.as_of, force=args.force,
                                       alias=args.alias, version=args.version)]
    except (materialize.MaterializeError, OnlineStoreError) as exc:
        print(f"clickml: {exc}", file=sys.stderr)
        return 1
    for result in results:
        print(result.report())
    return 0


def _serve(config: ClickmlConfig, args: argparse.Namespace) -> int:
    from pipelines.serve import app
    from pipelines.serve.online import OnlineStoreError

    try:
        app.run(config, host=args.host, port=args.port, reload_seconds=args.reload_seconds, access_log=args.access_log)
    except (app.ServingError, OnlineStoreError, ValueError) as exc:
        print(f"clickml: {exc}", file=sys.stderr)
        return 1
    return 0


def _experiment(config: ClickmlConfig, args: argparse.Namespace) -> int:
    if args.experiment_command == "update-bandit":
        from pipelines.experiments import bandit

        print(bandit.update(config, _spark(config), args.experiment).report())
        return 0
    from pipelines.experiments import stage

    result = stage.run(config, _spark(config), args.experiment, as_of=args.as_of, promote=args.promote)
    print(result.report())
    print(f"report: {result.report_path}")
    return 0


def _monitor(config: ClickmlConfig, args: argparse.Namespace) -> int:
    from pipelines.monitor import stage

    result = stage.run(config, _spark(config), args.job, as_of=args.as_of, version=args.version)
    print(result.report())
    print(f"report: {result.report_path}")
    return 0


def _config(config: ClickmlConfig, args: argparse.Namespace) -> int:
    print(json.dumps(_masked(config.model_dump(mode="json")), indent=2, sort_keys=False))
    return 0


def _masked(value):
    """Secrets out of a config dump: values of secret-named keys, and `user:password@` in URLs
    (e.g. `serving.redis_url`)."""
    if isinstance(value, dict):
        return {
            k: ("***" if v and any(s in k.lower() for s in SECRET_KEYS) else _masked(v)) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_masked(v) for v in value]
    if isinstance(value, str):
        return URL_CREDENTIALS.sub(r"\1***@", value)
    return value


def _lake(config: ClickmlConfig, args: argparse.Namespace) -> int:
    from pipelines.lake import Lake

    if args.lake_command in ("history", "vacuum", "show"):
        _refuse_missing_local_table(Lake(config), args.table)
    if args.lake_command == "history":
        lake = Lake(config, _spark(config))  # Delta's DESCRIBE HISTORY
        print(f"{'version':>7}  {'committed (UTC)':19}  {'rows added':>10}  operation")
        for entry in lake.history(args.table, args.limit):
            when = dt.datetime.fromtimestamp(entry.timestamp_ms / 1000, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
            rows = "" if entry.rows_added is None else f"{entry.rows_added:,}"
            print(f"{entry.version:>7}  {when}  {rows:>10}  {entry.operation}")
        return 0
    if args.lake_command == "files":
        snap = Lake(config).snapshot(args.table, args.version)
        print(f"{snap.location}: version {snap.version}, {len(snap.files)} file(s), partitioned by {snap.partition_columns or '-'}")
        for f in snap.files:
            print(f"  {f.path}  {f.size:,} bytes  {f.num_records if f.num_records is not None else '?'} rows  {f.partition_values}")
        return 0
    if args.lake_command == "vacuum":
        result = Lake(config, _spark(config)).vacuum(args.table, args.retention_hours, args.dry_run)
        verb = "would delete" if args.dry_run else "deleted"
        print(f"{result.table}: {verb} {len(result.files_deleted)} file(s) unreferenced for over {result.retention_hours:g}h")
        for path in result.files_deleted:
            print(f"  {path}")
        return 0
    lake = Lake(config, _spark(config))
    df = lake.read(args.table, args.version)
    df.show(args.rows, truncate=False)
    return 0


def _refuse_missing_local_table(lake, table: str) -> None:
    """A table on local disk that is not there is an error before Spark starts (a JVM start is
    ~10 s for a typo). Remote tables are left to Spark: its error says whether the table is
    missing or the store refused the credentials, which a plain existence check cannot tell."""
    from pipelines.lake import TableNotFoundError

    location = lake.location(table)
    if location.is_local and not lake.exists(table):
        raise TableNotFoundError.missing(location)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
