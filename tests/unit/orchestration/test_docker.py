"""docker/: what can be checked without a Docker engine (none runs on the build machines).

The compose file parses, every file it and the Dockerfiles reference exists, the images install
the package with the pinned constraints, the services of the deployment are all there, and the
Airflow Spark connection it sets resolves to the standalone master."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from pipelines.config import load_config
from tests.conftest import CONF_DIR, REPO_ROOT

DOCKER = REPO_ROOT / "docker"
COMPOSE = DOCKER / "compose.yaml"
DOCKERFILES = [DOCKER / "Dockerfile", DOCKER / "spark" / "gpu.Dockerfile"]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_has_the_deployment_services(compose):
    services = compose["services"]
    assert {"postgres", "minio", "minio-init", "mlflow", "spark-master", "spark-worker", "spark-worker-gpu",
            "airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
            "airflow-triggerer"} <= set(services)
    assert services["spark-worker-gpu"]["profiles"] == ["gpu"]
    gpu = services["spark-worker-gpu"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["driver"] == "nvidia" and "gpu" in gpu["capabilities"]
    for name in ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"):
        command = services[name]["command"]
        assert command[0] == "airflow" and command[1] in ("api-server", "scheduler", "dag-processor", "triggerer")
        env = services[name]["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
        assert env["CLICKML_PROFILE"] == "cluster"
    mlflow = services["mlflow"]["environment"]
    assert mlflow["MLFLOW_BACKEND_STORE_URI"].startswith("postgresql") and mlflow["MLFLOW_ARTIFACTS_DESTINATION"].startswith("s3://")
    for port in (p for s in services.values() for p in s.get("ports", [])):
        assert port.startswith("127.0.0.1:"), f"{port}: published ports bind to loopback only"


def test_every_referenced_file_exists(compose):
    for name, service in compose["services"].items():
        build = service.get("build")
        if build:
            context = (DOCKER / build["context"]).resolve()
            assert (context / build["dockerfile"]).is_file(), (name, build)
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DOCKER / source).exists(), (name, volume)
    for dockerfile in DOCKERFILES:
        for line in dockerfile.read_text().splitlines():
            if line.startswith("COPY "):
                sources = line.split()[1:-1]
                for source in sources:
                    assert (REPO_ROOT / source).exists(), (dockerfile.name, line)


def test_images_install_the_package_with_the_constraints():
    for dockerfile in DOCKERFILES:
        text = dockerfile.read_text()
        assert re.search(r"pip install .*-c \S*constraints\S* -e \"\.\[", text), dockerfile
        assert "openjdk-17-jre-headless" in text
    assert "clickml-entrypoint" in (DOCKER / "Dockerfile").read_text()
    entrypoint = (DOCKER / "entrypoint.sh").read_text()
    for command in ("spark-master)", "spark-worker)", "mlflow)"):
        assert command in entrypoint


def test_the_spark_connection_resolves_to_the_standalone_master(compose, monkeypatch):
    env = compose["services"]["airflow-scheduler"]["environment"]
    monkeypatch.setenv("AIRFLOW_CONN_CLICKML_SPARK", env["AIRFLOW_CONN_CLICKML_SPARK"])
    from airflow.providers.apache.spark.hooks.spark_submit import SparkSubmitHook

    connection = SparkSubmitHook(conn_id="clickml_spark")._resolve_connection()
    assert connection["master"] == "spark://spark-master:7077"
    assert connection["deploy_mode"] == "client"


def test_the_cluster_profile_the_containers_load(compose):
    env = {k: str(v) for k, v in compose["services"]["airflow-scheduler"]["environment"].items()}
    overrides = [item for item in env["CLICKML_DAG_OVERRIDES"].split(";") if item]
    config = load_config(profile="cluster", conf_dir=CONF_DIR, overrides=overrides, env=env)
    assert config.lake.root == "s3a://clickml-lakehouse/prod" and config.landing.root.startswith("s3a://")
    assert config.lake.storage.endpoint == "http://minio:9000"
    assert "spark.jars.packages" not in config.spark.conf  # jars come from jvm/pom.xml, never from Ivy at run time
    assert config.orchestration.spark_submit.archives is None
    assert json.loads(env["AIRFLOW_CONN_CLICKML_SPARK"])["conn_type"] == "spark"


def test_shell_scripts_are_executable():
    for script in [DOCKER / "entrypoint.sh", *DOCKER.rglob("*.sh")]:
        assert script.stat().st_mode & 0o111, f"{script} is not executable"
        assert Path(script).read_text().startswith("#!/usr/bin/env bash")
