"""The local HDFS service (pipelines/orchestration/hdfs.py): real NameNode + DataNode JVMs on 127.0.0.1.

Fast: one HDFS for the session (tests/services/hdfs.py), one more for the CLI test."""

from __future__ import annotations

import http.client
import json
import socket
import time
import urllib.parse

import pytest

from pipelines.orchestration import hdfs as hdfs_module
from pipelines.orchestration.hdfs import LocalHdfs, PortTakenError
from pipelines.orchestration.stack import _alive
from tests.processes import free_ports
from tests.services.hdfs import hdfs, use_hdfs  # noqa: F401 - the session fixture


def _webhdfs(method: str, host_port: str, path: str, op: str, body: bytes | None = None, **params):
    """One WebHDFS call: (status, headers, body). Redirects are returned, not followed."""
    query = urllib.parse.urlencode({"op": op, "user.name": "clickml", **params})
    connection = http.client.HTTPConnection(host_port, timeout=30)
    try:
        connection.request(method, f"/webhdfs/v1{path}?{query}", body=body)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def _put_file(service: LocalHdfs, path: str, data: bytes) -> None:
    status, headers, _ = _webhdfs("PUT", f"127.0.0.1:{service.ports.namenode_http}", path, "CREATE", overwrite="true")
    assert status == 307, status  # the NameNode sends the data to its DataNode
    location = urllib.parse.urlsplit(headers["Location"])
    assert location.hostname == "127.0.0.1" and location.port == service.ports.datanode_http
    connection = http.client.HTTPConnection(location.netloc, timeout=30)
    try:
        connection.request("PUT", f"{location.path}?{location.query}", body=data)
        response = connection.getresponse()
        assert response.status == 201, (response.status, response.read())
    finally:
        connection.close()


def _read_file(service: LocalHdfs, path: str, attempts: int = 3) -> bytes:
    for attempt in range(attempts):
        status, headers, body = _webhdfs("GET", f"127.0.0.1:{service.ports.namenode_http}", path, "OPEN")
        assert status == 307, (status, body[:2000])
        location = urllib.parse.urlsplit(headers["Location"])
        status, _, body = _webhdfs_raw("GET", location)
        # Right after a NameNode restart the DataNode's own client may still hold the old connection
        # (one EOFException); a second request opens a new one.
        if status == 200 or b"EOFException" not in body or attempt == attempts - 1:
            break
        time.sleep(1)
    assert status == 200, (status, body[:2000])
    return body


def _webhdfs_raw(method: str, location):
    connection = http.client.HTTPConnection(location.netloc, timeout=30)
    try:
        connection.request(method, f"{location.path}?{location.query}")
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def test_namenode_and_datanode_take_a_file_and_give_it_back(hdfs):  # noqa: F811
    assert hdfs.uri.startswith("hdfs://127.0.0.1:") and hdfs.ready()
    state = hdfs.namenode_state()
    assert state["NumLiveDataNodes"] == 1 and state["FSState"] == "Operational"
    data = b"line one\nline two\n" * 1000
    _put_file(hdfs, "/service-test/hello.txt", data)
    assert _read_file(hdfs, "/service-test/hello.txt") == data
    status, _, body = _webhdfs("GET", f"127.0.0.1:{hdfs.ports.namenode_http}", "/service-test", "LISTSTATUS")
    listed = json.loads(body)["FileStatuses"]["FileStatus"]
    assert status == 200 and [(f["pathSuffix"], f["length"], f["replication"]) for f in listed] == [("hello.txt", len(data), 1)]


def test_spark_writes_and_reads_hdfs_uris(spark, hdfs):  # noqa: F811
    use_hdfs(spark, hdfs)
    target = f"{hdfs.uri}/service-test/numbers"
    spark.range(0, 1000, numPartitions=2).write.mode("overwrite").parquet(target)
    back = spark.read.parquet(target)
    assert back.count() == 1000 and back.agg({"id": "sum"}).first()[0] == sum(range(1000))
    # The JVM FileSystem sees the same files (and it is the HDFS client, not a local one).
    jvm = spark.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path(target)
    fs = path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    assert fs.getClass().getName() == "org.apache.hadoop.hdfs.DistributedFileSystem"
    parts = [s.getPath().getName() for s in fs.listStatus(path) if s.getPath().getName().startswith("part-")]
    assert len(parts) == 2


def test_a_taken_port_is_a_clear_error_and_starts_nothing(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        service = LocalHdfs(tmp_path / "hdfs", port=port)
        with pytest.raises(PortTakenError) as caught:
            service.start()
    message = str(caught.value)
    assert f"127.0.0.1:{port} is already in use" in message and "namenode port" in message
    assert "stop what holds it or pass another port" in message
    assert not service.pid_file("namenode").exists() and not service.pid_file("datanode").exists()
    assert service.running("namenode") is None and service.running("datanode") is None


@pytest.mark.slow
def test_cli_up_status_down_stop_exactly_what_up_started(tmp_path, capsys):
    folder = tmp_path / "stack-hdfs"
    port, http_port = free_ports(2)
    args = ["--dir", str(folder), "--port", str(port), "--http-port", str(http_port)]
    try:
        assert hdfs_module.main(["up", *args]) == 0
        out = capsys.readouterr().out
        uri = f"hdfs://127.0.0.1:{port}"
        assert f"CLICKML_LAKEHOUSE={uri}/clickml/lakehouse" in out
        assert (folder / "uri").read_text().strip() == uri
        assert json.loads((folder / "state.json").read_text())["uri"] == uri
        pids = [int((folder / "pids" / f"{d}.pid").read_text().split()[0]) for d in ("namenode", "datanode")]
        assert all(_alive(p) for p in pids)
        # `up` again is a no-op that says so
        assert hdfs_module.main(["up", *args]) == 0 and "already running" in capsys.readouterr().out
        assert hdfs_module.main(["status", "--dir", str(folder)]) == 0
        assert "live DataNodes 1" in capsys.readouterr().out

        # the NameNode comes back on the same port with the same namespace
        service = LocalHdfs.from_folder(folder)
        _put_file(service, "/kept.txt", b"survives a NameNode restart")
        service.restart_namenode()
        assert service.uri == uri and service.ready()
        assert _read_file(service, "/kept.txt") == b"survives a NameNode restart"
        pids = [service.running("namenode"), service.running("datanode")]
        service.write_state()
    finally:
        assert hdfs_module.main(["down", "--dir", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "namenode: stopped" in out and "datanode: stopped" in out
    assert not any(_alive(p) for p in pids)
    assert hdfs_module.main(["status", "--dir", str(folder)]) == 1
