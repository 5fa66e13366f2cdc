"""`dags/` imports in a DagBag with no errors, and parsing touches neither Spark nor a database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from tests.conftest import REPO_ROOT

# Runs in a fresh interpreter: sqlite3 and socket connections raise, so any database or network
# access while the DAG files are parsed fails the import; then we look at what got imported.
PARSE = textwrap.dedent("""
    import json, socket, sqlite3, sys
    def refuse(*args, **kwargs):
        raise RuntimeError("database or network access while parsing DAG files")
    sqlite3.connect = refuse
    socket.socket.connect = refuse
    from airflow.dag_processing.dagbag import DagBag
    bag = DagBag(dag_folder=sys.argv[1])
    print(json.dumps({
        "errors": {k: str(v) for k, v in bag.import_errors.items()},
        "dags": sorted(bag.dag_ids),
        "spark_modules": sorted(m for m in sys.modules if m.startswith(("pyspark", "py4j", "deltalake"))),
    }))
""")


def test_dagbag_imports_without_errors_spark_or_database(tmp_path):
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "airflow"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "CLICKML_CONF_DIR": str(REPO_ROOT / "conf"), "CLICKML_PROFILE": "local",
           "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path / 'never-created.db'}"}
    proc = subprocess.run([sys.executable, "-c", PARSE, str(REPO_ROOT / "dags")], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=180, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["errors"] == {}
    assert result["dags"] == ["clickstream_etl_features", "clickstream_ingest", "model_monitoring", "model_training"]
    assert result["spark_modules"] == [], "DAG parsing imported Spark or delta-rs modules"
    assert not (tmp_path / "never-created.db").exists()


def test_a_config_error_is_an_import_error_naming_the_key(tmp_path):
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "airflow"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "CLICKML_CONF_DIR": str(REPO_ROOT / "conf"), "CLICKML_DAG_OVERRIDES": "orchestration.ingest.cronn=x"}
    proc = subprocess.run([sys.executable, "-c", PARSE, str(REPO_ROOT / "dags")], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=180, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    errors = json.loads(proc.stdout.strip().splitlines()[-1])["errors"]
    assert len(errors) == 5  # every DAG file (online_experiments.py too, though it builds no DAG without experiments)
    assert all("orchestration.ingest.cronn: unknown key" in e for e in errors.values()), errors
