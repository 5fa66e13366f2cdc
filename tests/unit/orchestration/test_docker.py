"""docker/: what can be checked without a Docker engine (none runs on the build machines).

The compose file parses, every file it and the Dockerfiles reference exists, the images install
the package with the pinned constraints, the services of the deployment are all there, and the
Airflow Spark connection it sets resolves to the standalone master; the Kafka broker is a KRaft node
that the clickml containers reach at kafka:9092, and volumes, ports and dependencies add up."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest
import yaml

from pipelines.config import load_config
from pipelines.sources import load_source
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
            "airflow-triggerer", "kafka"} <= set(services)
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


def _defaults(value) -> str:
    """A compose value with each `${VAR:-default}` replaced by its default."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", str(value))


def _clickml_services(compose) -> dict[str, dict]:
    return {name: s for name, s in compose["services"].items() if str(s.get("image", "")).startswith("clickml")}


def test_the_kafka_service_is_a_single_kraft_node(compose):
    kafka = compose["services"]["kafka"]
    image, tag = _defaults(kafka["image"]).split(":")
    assert image == "apache/kafka" and tag.split(".")[0] == "4", kafka["image"]  # KRaft only, no ZooKeeper
    env = {key: _defaults(value) for key, value in kafka["environment"].items()}
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller" and env["KAFKA_NODE_ID"] == "1"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@kafka:9093" and env["KAFKA_CONTROLLER_LISTENER_NAMES"] == "CONTROLLER"
    # The cluster id the image formats the volume with: 16 bytes as 22 URL-safe base64 characters.
    assert len(env["CLUSTER_ID"]) == 22 and len(base64.urlsafe_b64decode(env["CLUSTER_ID"] + "==")) == 16
    for key in ("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
                "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR"):
        assert env[key] == "1", key  # one broker
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"  # as `make up`'s broker: topics are created explicitly

    def listeners(key: str) -> dict[str, str]:
        return dict(item.split("://") for item in env[key].split(","))

    bound, advertised = listeners("KAFKA_LISTENERS"), listeners("KAFKA_ADVERTISED_LISTENERS")
    protocols = dict(item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert set(bound) == set(protocols) and set(advertised) < set(bound) and "CONTROLLER" not in advertised
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] in advertised
    assert bound["CONTROLLER"] == ":9093" and bound["PLAINTEXT"] == ":9092"
    assert advertised["PLAINTEXT"] == "kafka:9092"  # other containers: CLICKML_KAFKA_BOOTSTRAP
    # The host's listener: published on loopback only, advertised as the address the host dials.
    [published] = [_defaults(p) for p in kafka["ports"]]
    host_ip, host_port, container_port = published.split(":")
    assert host_ip == "127.0.0.1" and [name for name, address in bound.items() if address == f":{container_port}"] == ["HOST"]
    assert advertised["HOST"] == f"127.0.0.1:{host_port}" == "127.0.0.1:9092"

    [volume] = kafka["volumes"]
    name, target = volume.split(":")
    assert name in compose["volumes"] and target == env["KAFKA_LOG_DIRS"]
    check = kafka["healthcheck"]
    assert check["test"][0] in ("CMD", "CMD-SHELL") and "kafka-broker-api-versions.sh" in " ".join(check["test"])
    assert "--bootstrap-server kafka:9092" in " ".join(check["test"]) and check["retries"] >= 1


def test_every_clickml_container_reaches_kafka(compose):
    clickml = _clickml_services(compose)
    assert {"mlflow", "spark-master", "spark-worker", "airflow-init", "airflow-scheduler", "airflow-apiserver"} <= set(clickml)
    for name, service in {**clickml, "spark-worker-gpu": compose["services"]["spark-worker-gpu"]}.items():
        assert service["environment"].get("CLICKML_KAFKA_BOOTSTRAP") == "kafka:9092", name
    for name in ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"):
        assert compose["services"][name]["depends_on"]["kafka"] == {"condition": "service_healthy"}, name
    # What the Kafka source config resolves to in the containers.
    env = {k: str(v) for k, v in compose["services"]["airflow-scheduler"]["environment"].items()}
    assert load_source(CONF_DIR, "clickstream_kafka").kafka.servers(env) == "kafka:9092"


def test_the_redis_service_is_the_online_store_of_every_clickml_container(compose):
    redis = compose["services"]["redis"]
    image, tag = _defaults(redis["image"]).split(":")
    assert image == "redis" and tag.startswith("7.2"), redis["image"]  # the BSD-licensed line
    [published] = [_defaults(p) for p in redis["ports"]]
    assert published == "127.0.0.1:6379:6379"
    command = " ".join(redis["command"])
    assert "--requirepass" in command and "--appendonly yes" in command
    [volume] = redis["volumes"]
    assert volume.split(":")[0] in compose["volumes"] and volume.split(":")[1] == "/data"
    assert "redis-cli ping" in " ".join(redis["healthcheck"]["test"])
    for name, service in {**_clickml_services(compose), "spark-worker-gpu": compose["services"]["spark-worker-gpu"]}.items():
        url = _defaults(service["environment"].get("CLICKML_REDIS_URL"))
        assert url == f"redis://:{_defaults(redis['environment']['REDIS_PASSWORD'])}@redis:6379/0", name
    for name in ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"):
        assert compose["services"][name]["depends_on"]["redis"] == {"condition": "service_healthy"}, name
    # What serving.redis_url resolves to in the containers.
    env = {k: str(v) for k, v in compose["services"]["airflow-scheduler"]["environment"].items()}
    config = load_config(profile="cluster", conf_dir=CONF_DIR, env={**env, "CLICKML_REDIS_URL": _defaults(env["CLICKML_REDIS_URL"])})
    assert config.serving.redis_url == "redis://:change-me-redis@redis:6379/0"


def test_services_volumes_and_dependencies_are_consistent(compose):
    services, volumes = compose["services"], compose["volumes"]
    used = set()
    for name, service in services.items():
        depends = service.get("depends_on", [])
        for target in depends:
            assert target in services and target != name, (name, target)
            if isinstance(depends, dict) and depends[target]["condition"] == "service_healthy":
                assert "healthcheck" in services[target], f"{name} waits for {target} to be healthy: it has no healthcheck"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in volumes, (name, volume)
                used.add(source)
    assert used == set(volumes), f"declared but unused volumes: {set(volumes) - used}"
    host_ports = [_defaults(p).rsplit(":", 1)[0] for s in services.values() for p in s.get("ports", [])]
    assert len(host_ports) == len(set(host_ports)), f"a host port is published twice: {host_ports}"
