"""ClickmlSparkSubmitOperator: the jars of a local master go on the driver classpath, not --jars."""

from __future__ import annotations

import json
import os

import pytest

from pipelines.orchestration.submit import spark_job


def _command(settings, monkeypatch, master: str) -> list[str]:
    """The spark-submit command the `build_silver` task would run against a connection to `master`."""
    host, _, port = master.rpartition(":") if master.startswith("spark://") else (master, "", "")
    connection = {"conn_type": "spark", "host": host, **({"port": int(port)} if port else {})}
    monkeypatch.setenv(f"AIRFLOW_CONN_{settings.config.orchestration.spark_submit.conn_id.upper()}", json.dumps(connection))
    task = spark_job(settings, "build_silver", "build_silver", [], timeout_minutes=5)
    hook = task._get_hook()
    assert hook._connection["master"] == master  # the connection was read, not a default
    return hook._build_spark_submit_command(task.application)


def _value(command: list[str], flag: str) -> str | None:
    return command[command.index(flag) + 1] if flag in command else None


@pytest.mark.parametrize("master", ["local[2]", "local[*]"])
def test_a_local_master_gets_the_jars_on_the_driver_classpath(dag_settings, monkeypatch, master):
    # Regression: with --jars every task's JVM first copied all jars (638 MB) into its temp folder.
    settings = dag_settings("orchestration.spark_submit.jars=/opt/a.jar,/opt/b.jar")
    command = _command(settings, monkeypatch, master)
    assert "--jars" not in command
    assert _value(command, "--driver-class-path") == os.pathsep.join(["/opt/a.jar", "/opt/b.jar"])


def test_a_remote_cluster_master_still_ships_the_jars(dag_settings, monkeypatch):
    settings = dag_settings("orchestration.spark_submit.jars=/opt/a.jar,/opt/b.jar")
    command = _command(settings, monkeypatch, "spark://spark-master:7077")
    assert _value(command, "--jars") == "/opt/a.jar,/opt/b.jar"
    assert "--driver-class-path" not in command and "spark.executor.extraClassPath" not in " ".join(command)


def test_the_standalone_master_on_loopback_reads_the_jars_where_they_lie(dag_settings, monkeypatch):
    # `make up`'s cluster: its worker is on this host; a given executor classpath comes first
    settings = dag_settings("orchestration.spark_submit.jars=/opt/a.jar,/opt/b.jar",
                            "orchestration.spark_submit.conf={'spark.executor.extraClassPath': '/opt/x.jar'}")
    command = _command(settings, monkeypatch, "spark://127.0.0.1:7077")
    assert "--jars" not in command
    assert _value(command, "--driver-class-path") == os.pathsep.join(["/opt/a.jar", "/opt/b.jar"])
    confs = [command[i + 1] for i, arg in enumerate(command) if arg == "--conf"]
    assert f"spark.executor.extraClassPath={os.pathsep.join(['/opt/x.jar', '/opt/a.jar', '/opt/b.jar'])}" in confs


def test_the_resolved_jars_of_make_jars_on_a_local_master(dag_settings, monkeypatch):
    monkeypatch.delenv("SPARK_HOME", raising=False)
    command = _command(dag_settings(), monkeypatch, "local[2]")
    classpath = _value(command, "--driver-class-path")
    assert classpath and "--jars" not in command
    assert any(os.path.basename(j).startswith("delta-spark_") for j in classpath.split(os.pathsep))
