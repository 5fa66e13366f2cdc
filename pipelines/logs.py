"""Logging set-up for commands and jobs: timestamps, logger names, one line per event.

The console gets the `pipelines.*` logs (stages, progress, summaries) and other libraries'
warnings. A `clickml` command also writes a full log file (`logging.dir`): the same lines plus
other libraries' INFO lines and, through the Log4j configuration `spark_log_settings` gives the
Spark driver JVM it starts, Spark's own log lines, which then stay off the console (errors apart).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import sys
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
LOG4J_CONFIG = Path(__file__).parent / "spark" / "log4j2-clickml.properties"
QUIET = ("py4j", "urllib3", "botocore", "s3transfer", "git", "alembic",
         # Great Expectations' API registration at import (~100 lines) and its per-validation
         # "Loading 'datasources'": pipelines.validate logs what each validation did
         "great_expectations._docs_decorators", "great_expectations.datasource.fluent.config")
"""Libraries whose INFO lines are noise even in the log file."""


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is when a line is logged. A handler that kept the stream it
    was created with writes to a closed file once that stream is replaced and closed (pytest's
    capture does this between tests; so can an embedding application)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ / setStream: always the current stderr
        pass


FILE_ONLY_WARNINGS = (
    # MLflow's advice on every pyfunc logged from a Python object (the deep model's wrapper, our
    # own class): about loading models from untrusted sources, nothing the user of a run can act on
    ("mlflow.pyfunc", "Passing a Python object as `python_model`"),
)
"""(logger, message start) of library warnings kept out of the console; the log file has them."""


class _ConsoleFilter(logging.Filter):
    """Console: `pipelines.*` at the configured level, everything else from WARNING (less
    `FILE_ONLY_WARNINGS`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("pipelines"):
            return True
        if record.levelno < logging.WARNING:
            return False
        message = record.getMessage()
        return not any(record.name == name and message.startswith(start) for name, start in FILE_ONLY_WARNINGS)


def configure_logging(level: str = "INFO", file: str | Path | None = None) -> None:
    """Send `pipelines.*` logs to stderr at `level` (other loggers from WARNING); with `file`,
    also everything from INFO (or `level`, if lower) to that file."""
    root = logging.getLogger()
    console = next((h for h in root.handlers if getattr(h, "_clickml", None) == "console"), None)
    if console is None:
        console = _StderrHandler()
        console.setFormatter(logging.Formatter(FORMAT, "%H:%M:%S"))
        console.addFilter(_ConsoleFilter())
        console._clickml = "console"  # type: ignore[attr-defined]
        root.addHandler(console)
    file_level = min(logging.INFO, logging.getLevelName(level))
    if file is not None:
        for handler in [h for h in root.handlers if getattr(h, "_clickml", None) == "file"]:
            root.removeHandler(handler)
            handler.close()
        Path(file).parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(file, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
        handler._clickml = "file"  # type: ignore[attr-defined]
        root.addHandler(handler)
        root.setLevel(file_level)
    elif not any(getattr(h, "_clickml", None) == "file" for h in root.handlers):
        root.setLevel(logging.WARNING)
    logging.getLogger("pipelines").setLevel(level)
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
    if file is not None:
        # MLflow gives its logger a stderr handler of its own (INFO lines such as "Creating initial
        # MLflow database tables"); without it, its lines go through ours: INFO to the file only.
        os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")
        mlflow_logger = logging.getLogger("mlflow")
        for handler in list(mlflow_logger.handlers):
            mlflow_logger.removeHandler(handler)
        mlflow_logger.propagate = True


def log_file(log_dir: str | Path, command: str, now: dt.datetime | None = None) -> Path:
    """A new log file's path for one run of `command`: <log_dir>/clickml-<command>-<UTC time>-<pid>.log."""
    stamp = (now or dt.datetime.now(dt.timezone.utc)).strftime("%Y%m%d-%H%M%S")
    return Path(log_dir) / f"clickml-{command}-{stamp}-{os.getpid()}.log"


def spark_log_settings(file: str | Path, current: str | None = None) -> dict[str, str]:
    """Spark settings that point the driver JVM's Log4j at `file` (appending to it), keeping any
    driver Java options in `current`. Only a JVM started with them uses them."""
    options = f"-Dlog4j2.configurationFile={LOG4J_CONFIG.as_uri()} -Dclickml.log.file={Path(file).resolve()}"
    return {"spark.driver.extraJavaOptions": f"{current} {options}".strip() if current else options}
