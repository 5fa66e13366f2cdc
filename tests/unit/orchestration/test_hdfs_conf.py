"""The local HDFS's configuration (pipelines/orchestration/hdfs.py), without starting a JVM."""

from __future__ import annotations

import socket
import xml.etree.ElementTree as ET

import pytest

from pipelines.orchestration.hdfs import HdfsError, LocalHdfs, PortTakenError, main


def _properties(path) -> dict[str, str]:
    return {p.findtext("name"): p.findtext("value") for p in ET.parse(path).getroot().iter("property")}


def test_every_address_is_loopback_and_every_port_distinct(tmp_path):
    service = LocalHdfs(tmp_path / "h", port=19300, classpath="unused")
    service.write_conf()
    core = _properties(service.conf_dir / "core-site.xml")
    site = _properties(service.conf_dir / "hdfs-site.xml")
    assert core["fs.defaultFS"] == service.uri == "hdfs://127.0.0.1:19300"
    addresses = {k: v for k, v in site.items() if k.endswith(("address", "-address"))}
    assert addresses and all(v.startswith("127.0.0.1:") for v in addresses.values()), addresses
    assert site["dfs.datanode.hostname"] == "127.0.0.1" and site["dfs.replication"] == "1"
    assert site["dfs.permissions.enabled"] == "false" and site["dfs.namenode.safemode.extension"] == "0"
    ports = list(service.ports.named().values())
    assert len(set(ports)) == 5 and service.ports.namenode == 19300
    assert site["dfs.namenode.name.dir"] == (tmp_path / "h" / "name").resolve().as_uri()
    assert (service.conf_dir / "webapps" / "hdfs").is_dir()  # the NameNode's HTTP server needs it
    command = service.command("org.example.Main")
    assert command[-1] == "org.example.Main" and command[command.index("-cp") + 1].startswith(str(service.conf_dir))
    assert any(a.startswith("-Xmx") for a in command)


def test_a_taken_web_port_is_named(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        taken = holder.getsockname()[1]
        with pytest.raises(PortTakenError, match=f"namenode http port 127.0.0.1:{taken} is already in use"):
            LocalHdfs(tmp_path / "h", http_port=taken, classpath="unused").start()


def test_cli_down_and_status_without_state(tmp_path, capsys):
    assert main(["down", "--dir", str(tmp_path / "none")]) == 0
    assert "nothing to stop" in capsys.readouterr().out
    assert main(["status", "--dir", str(tmp_path / "none")]) == 1
    with pytest.raises(HdfsError, match="state.json"):
        LocalHdfs.from_folder(tmp_path / "none")


def test_clients_ask_again_after_20_ms_whether_a_closed_file_is_complete(tmp_path):
    # Hadoop's 400 ms first wait after closing a file cost ~1 s per small Delta append here.
    service = LocalHdfs(tmp_path / "h", port=19301, classpath="unused")
    service.write_conf()
    key = "dfs.client.block.write.locateFollowingBlock.initial.delay.ms"
    assert service.client_settings()[key] == "20"
    assert _properties(service.conf_dir / "hdfs-site.xml")[key] == "20"  # for clients that read the conf dir
