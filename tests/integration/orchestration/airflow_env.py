"""Helpers for tests that run DAGs: a private Airflow home with a migrated SQLite database, and a
subprocess that builds the DAGs from config and runs them with `dag.test()`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.conftest import CONF_DIR, REPO_ROOT

VENV_BIN = Path(sys.executable).parent
_MIGRATED: dict[str, Path] = {}

# Builds the DAGs exactly as dags/*.py do and runs each requested one with dag.test().
RUN_DAGS = """
import datetime as dt, json, sys
from pipelines.orchestration.factory import build_dags
dags = build_dags()
results = []
for spec in json.loads(sys.argv[1]):
    kwargs = {}
    if spec.get("logical_date"):
        kwargs["logical_date"] = dt.datetime.fromisoformat(spec["logical_date"])
    if spec.get("run_after"):  # a run without a logical date (REST/CLI trigger without one)
        kwargs["logical_date"] = None
        kwargs["run_after"] = dt.datetime.fromisoformat(spec["run_after"])
    if spec.get("mark_success"):
        kwargs["mark_success_pattern"] = spec["mark_success"]
    run = dags[spec["dag_id"]].test(**kwargs)
    tasks = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    results.append({"dag_id": spec["dag_id"], "state": str(run.state), "tasks": tasks})
    print("DAGRUN " + json.dumps(results[-1]), flush=True)
print("RESULTS " + json.dumps(results), flush=True)
"""


def migrated_database() -> Path:
    """A migrated Airflow SQLite database, made once per test session and copied by each test."""
    if "db" not in _MIGRATED:
        home = Path(tempfile.mkdtemp(prefix="clickml-airflow-db-"))
        env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
               "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}"}
        proc = subprocess.run([str(VENV_BIN / "airflow"), "db", "migrate"], env=env, capture_output=True, text=True, check=False,
                              timeout=300)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        _MIGRATED["db"] = home / "airflow.db"
    return _MIGRATED["db"]


def airflow_env(tmp_path: Path, overrides: list[str], spark_host: str = "local[2]", path_prefix: str = "") -> dict[str, str]:
    """Environment of a process that builds and runs the DAGs against tmp_path's lakehouse."""
    home = tmp_path / "airflow"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(migrated_database(), home / "airflow.db")
    connection = {"conn_type": "spark", "host": spark_host}
    return {
        **os.environ,
        "PATH": f"{path_prefix}{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW_CONN_CLICKML_SPARK": json.dumps(connection),
        "CLICKML_PROFILE": "local",
        "CLICKML_CONF_DIR": str(CONF_DIR),
        "CLICKML_DAG_OVERRIDES": ";".join([
            f"lake.root={tmp_path / 'lakehouse'}", f"landing.root={tmp_path / 'landing'}",
            "orchestration.retry.retries=0", *overrides]),
        # The jobs (and the landing sensor, which loads the jobs' config) take the roots from here.
        "CLICKML_LAKEHOUSE": str(tmp_path / "lakehouse"),
        "CLICKML_LANDING": str(tmp_path / "landing"),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYSPARK_PYTHON": sys.executable,
    }


def run_dags(env: dict[str, str], runs: list[dict], timeout: float, log_to: Path) -> tuple[list[dict], str]:
    """Run `dag.test()` for each of `runs` ({dag_id, logical_date?, run_after?, mark_success?}) in one subprocess.

    A manual run's data interval is the last complete one before its logical date (hourly:
    logical date 11:00 -> [10:00, 11:00)). `run_after` instead of `logical_date` makes a run without
    a logical date (and so, in Airflow 3, without a data interval) due at that time. Returns the runs' states and the output, which holds
    the task logs (dag.test logs to the console).
    """
    with open(log_to, "w") as log:
        proc = subprocess.run([sys.executable, "-c", RUN_DAGS, json.dumps(runs)], env=env, cwd=REPO_ROOT,
                              stdout=log, stderr=subprocess.STDOUT, text=True, timeout=timeout, check=False)
    output = log_to.read_text(errors="replace")
    lines = [line for line in output.splitlines() if line.startswith("RESULTS ")]
    assert proc.returncode == 0 and lines, f"dag.test subprocess failed ({proc.returncode}); {log_to}:\n{output[-6000:]}"
    return json.loads(lines[-1][len("RESULTS "):]), output
