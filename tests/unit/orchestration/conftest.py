"""Orchestration unit tests: a private AIRFLOW_HOME, and the DAG settings of a tmp lakehouse."""

from __future__ import annotations

import os
import tempfile

import pytest

# Airflow reads AIRFLOW_HOME when it is first imported: keep its files out of the user's home.
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="clickml-airflow-home-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

from pipelines.orchestration.settings import load_dag_settings
from tests.conftest import CONF_DIR


@pytest.fixture
def dag_settings(tmp_path):
    """DAG settings of the local profile with the lakehouse and landing zone under tmp_path."""
    def make(*overrides: str):
        return load_dag_settings(profile="local", conf_dir=str(CONF_DIR), overrides=[
            f"lake.root={tmp_path / 'lakehouse'}", f"landing.root={tmp_path / 'landing'}", *overrides])
    return make
