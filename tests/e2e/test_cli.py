"""The `clickml` command as a user runs it (subprocess; commands that need no Spark)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs

from pipelines.lake import deltalog
from pipelines.lake.location import table_location
from tests.conftest import CONF_DIR, make_config
from tests.lakehelpers import write_files


def clickml(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "--conf-dir", str(CONF_DIR), *args],
        capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})},
    )


def test_config_show_masks_secrets():
    proc = clickml("--profile", "cluster", "config", "show", env={"AWS_SECRET_ACCESS_KEY": "hunter2", "AWS_ACCESS_KEY_ID": "AKIAX"})
    assert proc.returncode == 0, proc.stderr
    shown = json.loads(proc.stdout)
    assert shown["profile"] == "cluster"
    assert shown["lake"]["storage"]["secret_access_key"] == "***"
    assert "hunter2" not in proc.stdout and "AKIAX" not in proc.stdout


def test_config_error_exits_2_with_the_key_path():
    proc = clickml("--set", "spark.mastr=local[1]", "config", "show")
    assert proc.returncode == 2
    assert "--set: spark.mastr: unknown key; allowed keys here:" in proc.stderr


def test_lake_history_files_and_vacuum(tmp_path):
    config = make_config(tmp_path)
    location = table_location(config.lake, "demo.cli")
    schema = pa.schema([("id", pa.int64())])
    for ids in ([1, 2, 3], [4]):
        files = write_files(pafs.LocalFileSystem(), location.uri, pa.table({"id": ids}, schema=schema), [])
        deltalog.commit(location, files, schema)
    lake_root = f"lake.root={tmp_path / 'lakehouse'}"

    history = clickml("--set", lake_root, "lake", "history", "demo.cli")
    assert history.returncode == 0, history.stderr
    lines = history.stdout.strip().splitlines()
    assert lines[0].split() == ["version", "committed", "(UTC)", "rows", "added", "operation"]
    assert [line.split()[0] for line in lines[1:]] == ["1", "0"]
    assert lines[2].split()[3] == "3"

    files = clickml("--set", lake_root, "lake", "files", "demo.cli", "--version", "0")
    assert files.returncode == 0 and "version 0, 1 file(s)" in files.stdout

    vacuum = clickml("--set", lake_root, "lake", "vacuum", "demo.cli", "--dry-run")
    assert vacuum.returncode == 0 and "would delete 0 file(s)" in vacuum.stdout

    missing = clickml("--set", lake_root, "lake", "history", "demo.nothing")
    assert missing.returncode == 1 and "table demo.nothing" in missing.stderr and "does not exist" in missing.stderr
    assert Path(location.uri, "_delta_log").is_dir()
