"""`make up LAKE=s3`: the stack's S3 server starts on loopback with its buckets, and Spark writes
the lakehouse of the `s3-standalone` profile there."""

from __future__ import annotations

import pytest

from pipelines.config import load_config
from pipelines.orchestration.stack import S3_BUCKETS, S3_CREDENTIALS, S3_SERVICE, Ports, Stack
from tests.conftest import CONF_DIR
from tests.processes import free_ports

boto3 = pytest.importorskip("boto3", reason="boto3 is installed by the dev extra")


@pytest.fixture
def s3_stack(tmp_path):
    (port,) = free_ports(1)
    stack = Stack(tmp_path / "state", ports=Ports(s3=port), lakehouse=tmp_path / "lake", lake_on_s3=True)
    try:
        stack.up([S3_SERVICE], timeout=60, echo=lambda _: None)
        yield stack
    finally:
        stack.down([S3_SERVICE], echo=lambda _: None, grace=5)


def test_the_s3_server_starts_with_the_buckets_and_the_profile_points_at_it(s3_stack):
    assert s3_stack.profile == "s3-standalone"
    assert s3_stack.service_names(["spark-master", "mlflow"]) == [S3_SERVICE, "spark-master", "mlflow"]
    client = boto3.client("s3", endpoint_url=s3_stack.s3_endpoint, aws_access_key_id="x", aws_secret_access_key="y",
                          region_name="us-east-1")
    assert {b["Name"] for b in client.list_buckets()["Buckets"]} >= set(S3_BUCKETS)
    env = s3_stack.s3_env()
    assert env["CLICKML_S3_ENDPOINT"] == s3_stack.s3_endpoint and env["AWS_ACCESS_KEY_ID"] == S3_CREDENTIALS["AWS_ACCESS_KEY_ID"]
    config = load_config(profile="s3-standalone", conf_dir=CONF_DIR, env=env)
    assert config.lake.root == "s3a://clickml-lakehouse/local"
    assert config.landing.root == "s3a://clickml-landing/clickstream"
    assert config.lake.storage.endpoint == s3_stack.s3_endpoint and config.lake.storage.allow_http
    assert config.spark.master == s3_stack.master_url
    assert "s3-standalone" in s3_stack.summary() or "s3a://clickml-lakehouse/local" in s3_stack.summary()


def test_down_stops_the_s3_server(tmp_path):
    (port,) = free_ports(1)
    stack = Stack(tmp_path / "state", ports=Ports(s3=port), lakehouse=tmp_path / "lake", lake_on_s3=True)
    stack.up([S3_SERVICE], timeout=60, echo=lambda _: None)
    pid = stack.running(S3_SERVICE)
    assert pid
    stack.down([S3_SERVICE], echo=lambda _: None, grace=5)
    assert stack.running(S3_SERVICE) is None
