"""The local Kafka service (pipelines/orchestration/kafka.py): a real KRaft broker JVM on 127.0.0.1.

Fast: one broker for the session (tests/services/kafka.py), one more for the CLI test; records go
through Kafka's own console producer and consumer."""

from __future__ import annotations

import json
import os
import socket
from collections import defaultdict
from pathlib import Path

import pytest

from pipelines.orchestration import kafka as kafka_module
from pipelines.orchestration.hdfs import port_taken
from pipelines.orchestration.kafka import KafkaError, LocalKafka, PortTakenError, fetch_metadata
from pipelines.orchestration.stack import _alive
from tests.processes import free_ports
from tests.services.kafka import unique_topic


def _processes_mentioning(folder: Path) -> list[int]:
    """Pids of live processes whose command line names `folder` (the broker JVM, a tool)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(folder) in cmdline and _alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def test_a_three_partition_topic_takes_keyed_records_and_gives_them_back(kafka):  # noqa: F811
    assert kafka.bootstrap == f"127.0.0.1:{kafka.port}" and kafka.ready()
    metadata = fetch_metadata(kafka.port)
    assert metadata.brokers == {1: ("127.0.0.1", kafka.port)} and metadata.cluster_id == kafka.cluster_id

    topic = unique_topic("clicks")
    kafka.create_topic(topic, partitions=3)
    described = kafka.topic(topic)
    assert sorted(described.partitions) == [0, 1, 2] and {p.leader for p in described.partitions.values()} == {1}

    sent = [(f"user-{i % 6}", f"event-{i}") for i in range(18)]
    kafka.produce(topic, sent)
    records = kafka.consume(topic, max_messages=len(sent), timeout=15)
    assert sorted((r.key, r.value) for r in records) == sorted(sent)
    # A key always lands on one partition; the six keys spread over more than one of the three;
    # within a partition, records come back in the order they were sent.
    partitions_of = defaultdict(set)
    for record in records:
        partitions_of[record.key].add(record.partition)
    assert all(len(p) == 1 for p in partitions_of.values())
    assert len({r.partition for r in records}) > 1
    for partition in {r.partition for r in records}:
        values = [r.value for r in records if r.partition == partition]
        assert values == [v for k, v in sent if v in values]

    # Topics are never created on first use.
    with pytest.raises(KafkaError, match=r"topic 'never-created' does not exist at 127\.0\.0\.1:\d+"):
        kafka.produce("never-created", ["x"])
    assert kafka.topic("never-created") is None and topic in kafka.topics()


@pytest.mark.parametrize("which", ["broker", "controller"])
def test_a_taken_port_is_a_clear_error_and_starts_nothing(tmp_path, which):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        service = LocalKafka(tmp_path / "kafka", **{"port" if which == "broker" else "controller_port": port})
        with pytest.raises(PortTakenError) as caught:
            service.start()
    message = str(caught.value)
    assert f"Kafka {which} port 127.0.0.1:{port} is already in use" in message
    assert "stop what holds it or pass another port" in message
    assert service.running() is None and not service.pid_file.exists() and not service.formatted()


@pytest.mark.slow  # 5-8 s: out of make test-fast (under 8 min); make test runs it
def test_cli_up_status_down_and_stop_leave_no_process(tmp_path, capsys):
    folder = tmp_path / "stack-kafka"
    port, controller_port = free_ports(2)
    args = ["--dir", str(folder), "--port", str(port), "--controller-port", str(controller_port)]
    try:
        assert kafka_module.main(["up", *args]) == 0
        assert f"kafka: ready at 127.0.0.1:{port}" in capsys.readouterr().out
        state = json.loads((folder / "state.json").read_text())
        assert state["bootstrap"] == f"127.0.0.1:{port}" and (folder / "bootstrap").read_text().strip() == state["bootstrap"]
        assert state["ports"] == {"broker": port, "controller": controller_port}
        first_pid = int((folder / "pids" / "kafka.pid").read_text().split()[0])
        assert _alive(first_pid)
        assert kafka_module.main(["up", *args]) == 0 and "already running" in capsys.readouterr().out
        assert kafka_module.main(["create-topic", "kept", "--partitions", "2", "--config", "retention.ms=-1",
                                  "--dir", str(folder)]) == 0
        assert "retention.ms=-1" in capsys.readouterr().out
        assert kafka_module.main(["status", "--dir", str(folder)]) == 0
        assert "topics: kept" in capsys.readouterr().out

        assert kafka_module.main(["down", "--dir", str(folder)]) == 0
        assert f"stopped (pid {first_pid})" in capsys.readouterr().out
        assert not _alive(first_pid) and _processes_mentioning(folder) == [] and not port_taken(port)
        assert kafka_module.main(["status", "--dir", str(folder)]) == 1

        # Up again on the same folder: same cluster, the topic is still there.
        assert kafka_module.main(["up", *args]) == 0
        service = LocalKafka.from_folder(folder)
        assert service.cluster_id == state["cluster_id"] and len(service.topic("kept").partitions) == 2
        pid = service.running()
        service.stop()
        assert not _alive(pid) and _processes_mentioning(folder) == [] and service.running() is None
        assert not service.pid_file.exists() and not port_taken(port) and not port_taken(controller_port)
    finally:
        kafka_module.main(["down", "--dir", str(folder)])
