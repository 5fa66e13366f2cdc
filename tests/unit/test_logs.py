"""Console and log file (pipelines/logs.py): the console shows clickml's lines, the file everything."""

from __future__ import annotations

import datetime as dt
import io
import logging
import sys
from pathlib import Path

import pytest

from pipelines.logs import LOG4J_CONFIG, configure_logging, log_file, spark_log_settings


@pytest.fixture
def fresh_root():
    """The root logger without clickml's handlers, restored afterwards."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level, logging.getLogger("pipelines").level)
    for handler in [h for h in root.handlers if getattr(h, "_clickml", None)]:
        root.removeHandler(handler)
    yield root
    for handler in [h for h in root.handlers if getattr(h, "_clickml", None)]:
        root.removeHandler(handler)
        handler.close()
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    logging.getLogger("pipelines").setLevel(saved[2])


def test_the_console_shows_clickml_and_warnings_the_file_everything(fresh_root, tmp_path, capsys):
    path = tmp_path / "logs" / "run.log"
    configure_logging("INFO", path)
    logging.getLogger("pipelines.demo").info("demo 1/9: generating")
    logging.getLogger("somelib.store").info("creating tables")  # a library's INFO: file only
    logging.getLogger("somelib.store").warning("a library warning")
    logging.getLogger("mlflow.pyfunc").warning("Passing a Python object as `python_model` causes it to be serialized")
    logging.getLogger("py4j.clientserver").info("closing connection")  # too chatty even for the file
    # Great Expectations' import registers its API: ~100 INFO lines per command that validates
    logging.getLogger("great_expectations._docs_decorators").info("Skipping registering function get_context")
    logging.getLogger("great_expectations.datasource.fluent.config").info("Loading 'datasources' ->")
    for handler in fresh_root.handlers:
        handler.flush()
    console = capsys.readouterr().err
    written = path.read_text()
    assert "demo 1/9: generating" in console and "a library warning" in console
    assert "creating tables" not in console
    assert "python_model" not in console and "python_model" in written  # advice for the file only
    assert {"demo 1/9: generating", "creating tables", "a library warning"} <= {
        line.split(": ", 1)[1] for line in written.splitlines()}
    assert "closing connection" not in written
    assert "Skipping registering" not in written and "Loading 'datasources'" not in written
    # A second call (a second command in one process) moves to the new file, with one console.
    configure_logging("INFO", tmp_path / "logs" / "second.log")
    assert sum(getattr(h, "_clickml", None) == "console" for h in fresh_root.handlers) == 1
    assert sum(getattr(h, "_clickml", None) == "file" for h in fresh_root.handlers) == 1


def test_the_console_follows_a_replaced_stderr(fresh_root, monkeypatch):
    """Regression: the handler kept the stderr of its creation and, once pytest's capture had
    closed that stream, every later line gave "--- Logging error --- I/O operation on closed file"."""
    first = io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    configure_logging("INFO")
    first.close()
    second = io.StringIO()
    monkeypatch.setattr(sys, "stderr", second)
    monkeypatch.setattr(logging, "raiseExceptions", True)
    logging.getLogger("pipelines.demo").info("after the swap")
    assert "after the swap" in second.getvalue() and "Logging error" not in second.getvalue()


def test_log_file_names_the_command_time_and_process():
    path = log_file("/var/log/clickml", "demo", dt.datetime(2026, 12, 6, 4, 5, 6, tzinfo=dt.timezone.utc))
    assert path.parent == Path("/var/log/clickml")
    assert path.name.startswith("clickml-demo-20261206-040506-") and path.suffix == ".log"


def test_spark_log_settings_keep_the_drivers_other_java_options(tmp_path):
    alone = spark_log_settings(tmp_path / "x.log")["spark.driver.extraJavaOptions"]
    assert alone == f"-Dlog4j2.configurationFile={LOG4J_CONFIG.as_uri()} -Dclickml.log.file={(tmp_path / 'x.log').resolve()}"
    merged = spark_log_settings(tmp_path / "x.log", "-Xss4m")["spark.driver.extraJavaOptions"]
    assert merged == f"-Xss4m {alone}"
    assert LOG4J_CONFIG.is_file() and "${sys:clickml.log.file}" in LOG4J_CONFIG.read_text()



def test_mlflow_log_lines_go_to_the_log_file(fresh_root, tmp_path, capsys):
    mlflow_logger = logging.getLogger("mlflow")
    mlflow_logger.addHandler(logging.StreamHandler())  # what MLflow's import sets up
    path = tmp_path / "run.log"
    configure_logging("INFO", path)
    assert not mlflow_logger.handlers and mlflow_logger.propagate
    logging.getLogger("mlflow.store.db.utils").info("Creating initial MLflow database tables...")
    for handler in fresh_root.handlers:
        handler.flush()
    console, written = capsys.readouterr().err, path.read_text()
    assert "Creating initial MLflow database tables" in written and "Creating initial" not in console
