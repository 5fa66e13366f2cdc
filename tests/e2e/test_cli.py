"""The `clickml` command as a user runs it (subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.lake import Lake
from tests.conftest import CONF_DIR, make_config


def clickml(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "--conf-dir", str(CONF_DIR), *args],
        capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})},
    )


SPARK_START = 300  # `lake history` and `lake vacuum` start a SparkSession (Delta's DESCRIBE HISTORY, VACUUM)


def test_config_show_masks_secrets():
    # Bug guard: the password in serving.redis_url was printed as is.
    proc = clickml("--profile", "cluster", "config", "show", env={"AWS_SECRET_ACCESS_KEY": "hunter2", "AWS_ACCESS_KEY_ID": "AKIAX",
                                                                  "CLICKML_REDIS_URL": "redis://app:s3cret@cache:6379/0"})
    assert proc.returncode == 0, proc.stderr
    shown = json.loads(proc.stdout)
    assert shown["profile"] == "cluster"
    assert shown["lake"]["storage"]["secret_access_key"] == "***"
    assert shown["serving"]["redis_url"] == "redis://***@cache:6379/0"
    assert "hunter2" not in proc.stdout and "AKIAX" not in proc.stdout and "s3cret" not in proc.stdout


def test_config_error_exits_2_with_the_key_path():
    proc = clickml("--set", "spark.mastr=local[1]", "config", "show")
    assert proc.returncode == 2
    assert "--set: spark.mastr: unknown key; allowed keys here:" in proc.stderr


@pytest.mark.slow
def test_lake_history_files_and_vacuum(spark, tmp_path):
    lake = Lake(make_config(tmp_path), spark)
    location = lake.location("demo.cli")
    lake.write(spark.createDataFrame([(1,), (2,), (3,)], "id long").coalesce(1), "demo.cli")
    lake.write(spark.createDataFrame([(4,)], "id long").coalesce(1), "demo.cli", mode="overwrite")
    (old_file,) = lake.snapshot("demo.cli", version=0).files
    lake_root = f"lake.root={tmp_path / 'lakehouse'}"

    logs = tmp_path / "logs"
    history = clickml("--set", lake_root, "--set", f"logging.dir={logs}", "--set", "logging.spark_level=INFO",
                      "lake", "history", "demo.cli", timeout=SPARK_START)
    assert history.returncode == 0, history.stderr
    # Spark's own lines (here its INFO lines) go to the command's log file, not the console.
    (log,) = logs.glob("clickml-lake-*.log")
    assert f"clickml: full log (with Spark's): {log}" in history.stderr
    assert " INFO    org.apache.spark." in log.read_text() and "org.apache.spark" not in history.stderr
    lines = history.stdout.strip().splitlines()
    assert lines[0].split() == ["version", "committed", "(UTC)", "rows", "added", "operation"]
    assert [line.split()[0] for line in lines[1:]] == ["1", "0"]
    assert [line.split()[3:] for line in lines[1:]] == [["1", "WRITE"], ["3", "WRITE"]]

    files = clickml("--set", lake_root, "lake", "files", "demo.cli", "--version", "0")
    assert files.returncode == 0 and "version 0, 1 file(s)" in files.stdout
    assert old_file.path in files.stdout and "3 rows" in files.stdout

    vacuum = clickml("--set", lake_root, "lake", "vacuum", "demo.cli", "--dry-run", "--retention-hours", "0",
                     timeout=SPARK_START)
    assert vacuum.returncode == 0, vacuum.stderr
    out = vacuum.stdout.strip().splitlines()
    assert out[0] == f"{location}: would delete 1 file(s) unreferenced for over 0h"
    assert len(out) == 2 and out[1].strip().endswith(old_file.path)
    assert Path(old_file.uri).is_file()  # a dry run deletes nothing

    missing = clickml("--set", lake_root, "lake", "history", "demo.nothing", timeout=SPARK_START)
    assert missing.returncode == 1 and "table demo.nothing" in missing.stderr and "does not exist" in missing.stderr
    assert Path(location.uri, "_delta_log").is_dir()
