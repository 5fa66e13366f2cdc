"""The delta-rs commit-and-read path against a local S3-compatible server (moto, on loopback).

Files are written without Spark (pyarrow's S3 filesystem), committed with the lake layer's
delta-rs committer, and read back both through the snapshot's file list and by delta-rs.
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request

import pyarrow as pa
import pyarrow.dataset as pads
import pytest

from pipelines.lake import deltalog
from pipelines.lake.deltalog import Txn
from pipelines.lake.filesystem import filesystem_for
from pipelines.lake.location import table_location
from tests.conftest import make_config
from tests.lakehelpers import write_files
from tests.processes import free_ports

moto_server = pytest.importorskip("moto.server", reason="moto[server] is installed by the dev extra")
boto3 = pytest.importorskip("boto3", reason="boto3 is installed by the dev extra")

BUCKET = "clickml-test"
SCHEMA = pa.schema([("id", pa.int64()), ("day", pa.string())])


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory):
    # A separate process: delta-rs holds the GIL during some calls, which would starve an
    # in-process (threaded) server.
    port = free_ports()[0]
    log_path = tmp_path_factory.mktemp("moto") / "moto.log"
    log = open(log_path, "wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    try:
        while True:  # bounded wait for the server to answer
            try:
                urllib.request.urlopen(endpoint, timeout=1)
                break
            except Exception:
                if server.poll() is not None or time.time() > deadline:
                    pytest.fail(f"moto S3 server did not start on {endpoint}: {log_path.read_text()[-2000:]}")
                time.sleep(0.2)
        client = boto3.client(
            "s3", endpoint_url=endpoint, aws_access_key_id="testing", aws_secret_access_key="testing",
            region_name="us-east-1",
        )
        client.create_bucket(Bucket=BUCKET)
        yield endpoint
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.fixture
def location(s3_endpoint, tmp_path, request):
    config = make_config(
        tmp_path,
        f"lake.root=s3a://{BUCKET}/{request.node.name}",
        f"lake.storage.endpoint={s3_endpoint}",
        "lake.storage.region=us-east-1",
        "lake.storage.access_key_id=testing",
        "lake.storage.secret_access_key=testing",
        "lake.storage.allow_http=true",
    )
    return table_location(config.lake, "bronze.events")


def commit(location, ids, day="2024-01-01", **kwargs):
    fs, base = filesystem_for(location)
    table = pa.table({"id": pa.array(ids, pa.int64()), "day": [day] * len(ids)}, schema=SCHEMA)
    files = write_files(fs, base, table, ["day"])
    return deltalog.commit(location, files, SCHEMA, partition_by=["day"], **kwargs)


def read_snapshot_with_pyarrow(location, version=None) -> list[int]:
    snap = deltalog.snapshot(location, version)
    fs, _ = filesystem_for(location)
    paths = [f.uri.split("://", 1)[1] for f in snap.files]
    if not paths:
        return []
    return sorted(pads.dataset(paths, filesystem=fs, format="parquet").to_table()["id"].to_pylist())


def test_commit_and_read_on_s3(location):
    assert location.uri.startswith("s3://") and location.spark_uri.startswith("s3a://")
    first = commit(location, [1, 2, 3])
    second = commit(location, [4], day="2024-01-02")
    assert (first.version, second.version) == (0, 1)
    assert read_snapshot_with_pyarrow(location) == [1, 2, 3, 4]
    assert read_snapshot_with_pyarrow(location, version=0) == [1, 2, 3]
    from deltalake import DeltaTable

    table = DeltaTable(location.uri, storage_options=location.storage_options).to_pyarrow_table()
    assert sorted(table["id"].to_pylist()) == [1, 2, 3, 4]


def test_idempotent_and_overwrite_on_s3(location):
    txn = Txn.for_batch("ingest", "b1")
    commit(location, [1, 2], txn=txn)
    assert commit(location, [1, 2], txn=txn).skipped
    commit(location, [9], day="2024-01-01", mode="overwrite_partitions")
    assert read_snapshot_with_pyarrow(location) == [9]
    assert [e.version for e in deltalog.history(location)] == [1, 0]


def test_conflict_retry_on_s3(location):
    commit(location, [1])

    def race(attempt):
        if attempt == 1:
            commit(location, [50], day="2024-01-02")

    result = commit(location, [2], before_commit=race, backoff_seconds=0.01)
    assert result.attempts == 2
    assert read_snapshot_with_pyarrow(location) == [1, 2, 50]
