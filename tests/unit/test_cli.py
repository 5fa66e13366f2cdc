"""`clickml` commands in-process (the subprocess runs are in tests/e2e/test_cli.py)."""

from __future__ import annotations

import pytest

from pipelines import cli


@pytest.mark.parametrize("command", [["history", "demo.nothing"], ["vacuum", "demo.nothing", "--dry-run"],
                                     ["show", "demo.nothing"]])
def test_a_missing_local_table_is_an_error_before_spark_starts(tmp_path, monkeypatch, capsys, command):
    def no_spark(config):
        raise AssertionError("Spark was started for a table that is not there")

    monkeypatch.setattr(cli, "_spark", no_spark)
    rc = cli.main(["--set", f"lake.root={tmp_path / 'lakehouse'}", "--set", f"logging.dir={tmp_path / 'logs'}",
                   "lake", *command])
    assert rc == 1
    err = capsys.readouterr().err
    assert f"demo.nothing ({tmp_path / 'lakehouse'}" in err and "does not exist" in err, err
