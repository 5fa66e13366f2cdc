"""A local S3-compatible server for tests: moto's standalone server on 127.0.0.1.

    def test_x(s3_server):
        bucket = s3_server.create_bucket("lake")        # s3a://lake/...
        config = make_config(tmp_path, *s3_server.config_overrides(f"s3a://{bucket}/lakehouse"))

The server is a separate process (not moto's in-process mock): Spark's S3A client and delta-rs
talk to it over HTTP, and delta-rs holds the GIL during some calls, which would starve a
threaded in-process server. One server per test session (`s3_server`); `s3_bucket` gives each
test a fresh bucket on it.

The server checks credentials (an IAM user's key pair, see `_enable_authentication`), so tests
can see what wrong credentials do; moto's default accepts any key.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.processes import free_ports, stop_process

BOOTSTRAP_KEY = "testing"
"""moto's open-door credentials, used only to create the IAM user before authentication is on."""
REGION = "us-east-1"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0


@dataclass
class S3Server:
    """A running S3-compatible endpoint and what a client needs to reach it."""

    endpoint: str
    """`http://127.0.0.1:<port>`"""
    access_key_id: str
    secret_access_key: str
    """An IAM user's key pair: the server checks signatures, so other credentials get 403."""
    log_path: Path
    region: str = REGION
    buckets: list[str] = field(default_factory=list)
    _names: itertools.count = field(default_factory=itertools.count, repr=False)

    def client(self):
        """A boto3 S3 client on this endpoint."""
        import boto3

        return boto3.client(
            "s3", endpoint_url=self.endpoint, aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key, region_name=self.region,
        )

    def create_bucket(self, name: str | None = None) -> str:
        """Create a bucket (a fresh `clickml-<n>` when no name is given) and return its name."""
        name = name or f"clickml-{next(self._names)}"
        self.client().create_bucket(Bucket=name)
        self.buckets.append(name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        """Every object key under `prefix` in `bucket`."""
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return [obj["Key"] for page in pages for obj in page.get("Contents", [])]

    def storage_overrides(self, access_key_id: str | None = None, secret_access_key: str | None = None) -> list[str]:
        """Dotted config overrides (`lake.storage.*`) that point the lakehouse at this server."""
        return [
            f"lake.storage.endpoint={self.endpoint}",
            f"lake.storage.region={self.region}",
            # quoted: the override value is read as YAML, and a secret is any string
            f"lake.storage.access_key_id={json.dumps(access_key_id or self.access_key_id)}",
            f"lake.storage.secret_access_key={json.dumps(secret_access_key or self.secret_access_key)}",
            "lake.storage.allow_http=true",
            "lake.storage.path_style=true",
        ]

    def env(self) -> dict[str, str]:
        """Environment for boto3-based clients (MLflow's S3 artifact store) to use this server."""
        return {
            "MLFLOW_S3_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
        }


def _wait_until_up(server: subprocess.Popen, endpoint: str, log_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(endpoint, timeout=1).close()
            return
        except Exception:
            if server.poll() is not None:
                raise RuntimeError(
                    f"moto S3 server exited ({server.returncode}) before answering on {endpoint}: "
                    f"{log_path.read_text(errors='replace')[-2000:]}"
                ) from None
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"moto S3 server did not answer on {endpoint} within {timeout:.0f}s: "
                    f"{log_path.read_text(errors='replace')[-2000:]}"
                ) from None
            time.sleep(0.2)


def _enable_authentication(endpoint: str) -> tuple[str, str]:
    """Create an IAM user allowed everything, then make the server check every request's
    credentials (moto's `INITIAL_NO_AUTH_ACTION_COUNT`, reset at runtime to 0): a wrong key pair
    gets 403 as it would on AWS. Returns the user's (access key id, secret access key)."""
    import boto3

    iam = boto3.client(
        "iam", endpoint_url=endpoint, aws_access_key_id=BOOTSTRAP_KEY, aws_secret_access_key=BOOTSTRAP_KEY,
        region_name=REGION,
    )
    iam.create_user(UserName="clickml-test")
    key = iam.create_access_key(UserName="clickml-test")["AccessKey"]
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    iam.put_user_policy(UserName="clickml-test", PolicyName="everything", PolicyDocument=json.dumps(policy))
    request = urllib.request.Request(
        f"{endpoint}/moto-api/reset-auth", data=b"0", method="POST", headers={"Content-Type": "text/plain"}
    )
    urllib.request.urlopen(request, timeout=10).close()
    return key["AccessKeyId"], key["SecretAccessKey"]


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A moto S3 server on a free port of 127.0.0.1 for the whole test session."""
    pytest.importorskip("moto.server", reason="moto[server] is installed by the dev extra")
    pytest.importorskip("boto3", reason="boto3 is installed by the dev extra")
    port = free_ports()[0]
    log_path = tmp_path_factory.mktemp("moto") / "moto.log"
    endpoint = f"http://127.0.0.1:{port}"
    # No AWS settings of the developer's shell may leak into the server.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
        )
        try:
            try:
                _wait_until_up(server, endpoint, log_path, START_TIMEOUT_S)
            except RuntimeError as exc:
                pytest.fail(str(exc))
            access_key_id, secret_access_key = _enable_authentication(endpoint)
            yield S3Server(endpoint, access_key_id, secret_access_key, log_path)
        finally:
            stop_process(server, STOP_TIMEOUT_S)


@pytest.fixture
def s3_bucket(s3_server) -> str:
    """A fresh, empty bucket on the session's S3 server."""
    return s3_server.create_bucket()
