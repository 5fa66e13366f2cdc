"""`make up`'s Kafka: the stack starts a real broker (LocalKafka, one JVM) on its ports, lists it,
gives clickml its address, and `down` stops it; the topics stay in `<state>/kafka/`."""

from __future__ import annotations

import shutil

import pytest

from pipelines.orchestration.kafka import LocalKafka, fetch_metadata
from pipelines.orchestration.stack import KAFKA_SERVICE, Ports, Stack, StackError, _port_open
from tests.processes import free_ports


@pytest.fixture
def stack(tmp_path):
    if not shutil.which("java"):
        pytest.skip("Kafka needs Java 17+ (no `java` on PATH)")
    broker, controller = free_ports(2)
    return Stack(tmp_path / "state", ports=Ports(kafka=broker, kafka_controller=controller), lakehouse=tmp_path / "lake")


@pytest.mark.slow  # 8-21 s: out of make test-fast (under 8 min); make test runs it
def test_up_starts_only_kafka_and_down_stops_it(stack):
    messages: list[str] = []
    try:
        stack.up([KAFKA_SERVICE], timeout=90, echo=messages.append)
        pid = stack.running(KAFKA_SERVICE)
        assert pid and messages[-1] == f"kafka: ready at 127.0.0.1:{stack.ports.kafka}"
        assert fetch_metadata(stack.ports.kafka).brokers == {1: ("127.0.0.1", stack.ports.kafka)}
        assert _port_open(stack.ports.kafka_controller)
        assert f"127.0.0.1:{stack.ports.kafka}  [up]" in stack.summary()
        assert stack.airflow_env()["CLICKML_KAFKA_BOOTSTRAP"] == f"127.0.0.1:{stack.ports.kafka}"
        # The same broker for `python -m pipelines.orchestration.kafka ... --dir <state>/kafka`: its state file.
        broker = LocalKafka.from_folder(stack.kafka_dir)
        assert broker.running() == pid and broker.bootstrap == stack.kafka_bootstrap
        broker.create_topic("clickstream", partitions=3)
        # A second `up` leaves it alone; no other service was started.
        stack.up([KAFKA_SERVICE], timeout=90, echo=messages.append)
        assert messages[-1] == f"kafka: already running (pid {pid})" and stack.running(KAFKA_SERVICE) == pid
        assert not any(stack.running(name) for name in ("spark-master", "spark-worker", "mlflow", "airflow"))
        with pytest.raises(StackError, match=rf"^kafka: port {stack.ports.kafka} on 127\.0\.0\.1 is taken"):
            Stack(stack.state_dir.parent / "other", ports=stack.ports, lakehouse=stack.lakehouse).up(
                [KAFKA_SERVICE], timeout=30, echo=lambda _: None)
    finally:
        stack.down([KAFKA_SERVICE], echo=messages.append, grace=20)
    assert messages[-1] == f"kafka: stopped (pid {pid})"
    assert stack.running(KAFKA_SERVICE) is None and not _port_open(stack.ports.kafka)
    assert "[down]" in stack.summary() and (stack.kafka_dir / "data" / "meta.properties").exists()

    # Started again from its folder: the topic is still there.
    try:
        stack.up([KAFKA_SERVICE], timeout=90, echo=lambda _: None)
        topic = stack.kafka().topic("clickstream")
        assert topic is not None and sorted(topic.partitions) == [0, 1, 2]
    finally:
        stack.down([KAFKA_SERVICE], echo=lambda _: None, grace=20)
    assert stack.running(KAFKA_SERVICE) is None
