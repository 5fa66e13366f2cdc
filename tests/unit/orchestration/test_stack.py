"""`make up`'s service supervisor, with stand-in services (sleeping processes)."""

from __future__ import annotations

import re
import socket
import subprocess
import sys

import pytest

from pipelines.orchestration import kafka as kafka_module
from pipelines.orchestration.kafka import KafkaError, LocalKafka, PortTakenError
from pipelines.orchestration.stack import (
    ALL_SERVICES,
    KAFKA_SERVICE,
    Ports,
    Service,
    Stack,
    StackError,
    _start_time,
)
from pipelines.orchestration.stack import main as stack_main
from tests.conftest import REPO_ROOT
from tests.processes import free_ports


def _service(name: str, ready: bool) -> Service:
    return Service(name=name, argv=[sys.executable, "-c", "import time; time.sleep(120)"], env={},
                   url=f"http://127.0.0.1/{name}", ready=lambda: ready, port=1)


def test_a_failed_up_stops_only_the_services_it_started(tmp_path, monkeypatch):
    # Bug: a failing `up` stopped every service it was asked for, including ones that an earlier
    # `make up` had started and that were serving.
    stack = Stack(tmp_path / "state", lakehouse=tmp_path / "lake")
    services = {"old": _service("old", ready=True), "new": _service("new", ready=False)}
    monkeypatch.setattr(stack, "services", lambda: services)
    try:
        stack.up(["old"], timeout=10, echo=lambda _: None)
        old_pid = stack.running("old")
        assert old_pid
        with pytest.raises(StackError, match="new did not answer"):
            stack.up(["old", "new"], timeout=1, echo=lambda _: None)
        assert stack.running("old") == old_pid
        assert stack.running("new") is None
    finally:
        stack.down(["old", "new"], echo=lambda _: None, grace=5)


# -- Kafka: LocalKafka wrapped as one of the stack's services (no broker starts here) -------------
def _listening() -> socket.socket:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    return holder


def _stack_services_of_make() -> list[str]:
    text = (REPO_ROOT / "make" / "stack.mk").read_text()
    return re.search(r"^STACK_SERVICES \?= (\S+)$", text, re.M).group(1).split(",")


def test_kafka_is_a_default_service_on_its_own_ports(tmp_path, monkeypatch):
    assert KAFKA_SERVICE in ALL_SERVICES and ALL_SERVICES.index(KAFKA_SERVICE) < ALL_SERVICES.index("airflow")
    assert _stack_services_of_make() == list(ALL_SERVICES)  # `make up` starts it; `make down` stops ALL_SERVICES
    assert (Ports().kafka, Ports().kafka_controller) == (9092, 9093)
    ports = Ports.from_env({"CLICKML_KAFKA_PORT": "19092", "CLICKML_KAFKA_CONTROLLER_PORT": "19093", "CLICKML_S3_PORT": "9100"})
    assert (ports.kafka, ports.kafka_controller, ports.s3, ports.airflow) == (19092, 19093, 9100, 8080)

    # Stopping or listing the broker needs no Java: only starting it does.
    monkeypatch.setattr(kafka_module, "java_executable", lambda: pytest.fail("Java looked up"))
    stack = Stack(tmp_path / "state", ports=ports, lakehouse=tmp_path / "lake")
    kafka = stack.services()[KAFKA_SERVICE]
    assert (kafka.port, kafka.more_ports, kafka.url) == (19092, (19093,), "127.0.0.1:19092")
    broker = stack.kafka()
    assert isinstance(broker, LocalKafka) and broker.folder == stack.state_dir / "kafka"
    assert broker.ports() == {"broker": 19092, "controller": 19093}
    # LocalKafka's own pid and log files: `make kafka-up` and `make up` (same folder) share one broker.
    assert stack.pid_file(KAFKA_SERVICE) == broker.pid_file == stack.state_dir / "kafka" / "pids" / "kafka.pid"
    assert stack.log_file(KAFKA_SERVICE) == broker.log_file
    assert stack.pid_file("mlflow") == stack.state_dir / "pids" / "mlflow.pid"
    assert "Kafka          bootstrap servers" in stack.summary() and "127.0.0.1:19092  [down]" in stack.summary()


def test_clickml_gets_the_brokers_address(tmp_path, monkeypatch, capsys):
    stack = Stack(tmp_path / "state", ports=Ports(kafka=19092), lakehouse=tmp_path / "lake")
    assert stack.kafka_env() == {"CLICKML_KAFKA_BOOTSTRAP": "127.0.0.1:19092"}
    assert stack.airflow_env()["CLICKML_KAFKA_BOOTSTRAP"] == "127.0.0.1:19092"  # the DAGs' jobs
    monkeypatch.setenv("CLICKML_KAFKA_PORT", "19192")
    for lake in ("local", "s3"):
        assert stack_main(["env", "--state-dir", str(tmp_path / "state"), "--lake", lake]) == 0
        assert "export CLICKML_KAFKA_BOOTSTRAP=127.0.0.1:19192" in capsys.readouterr().out.splitlines()


@pytest.mark.parametrize("which", ["kafka", "kafka_controller"])
def test_a_taken_kafka_port_fails_up_before_anything_starts(tmp_path, monkeypatch, which):
    monkeypatch.setattr(LocalKafka, "start", lambda self: pytest.fail("LocalKafka.start called"))
    with _listening() as holder:
        port = holder.getsockname()[1]
        chosen = dict(zip(("kafka", "kafka_controller"), free_ports(2)), **{which: port})
        stack = Stack(tmp_path / "state", ports=Ports(**chosen), lakehouse=tmp_path / "lake")
        services = stack.services()
        services["early"] = _service("early", ready=True)
        monkeypatch.setattr(stack, "services", lambda: services)
        variable = Ports.ENV[which]
        with pytest.raises(StackError, match=rf"^kafka: port {port} on 127\.0\.0\.1 is taken .*\({variable}\)"):
            stack.up(["early", KAFKA_SERVICE], timeout=10, echo=lambda _: None)
    assert stack.running("early") is None and stack.running(KAFKA_SERVICE) is None


def test_a_kafka_error_names_the_service_and_stops_what_up_started(tmp_path, monkeypatch):
    # A port taken between the check and the start: LocalKafka's PortTakenError, with the service name.
    def taken(self):
        raise PortTakenError(f"Kafka controller port 127.0.0.1:{self.controller_port} is already in use; "
                             "stop what holds it or pass another port")

    monkeypatch.setattr(LocalKafka, "start", taken)
    stack = Stack(tmp_path / "state", ports=Ports(kafka=1, kafka_controller=2), lakehouse=tmp_path / "lake")
    services = stack.services()
    services["early"] = _service("early", ready=True)
    monkeypatch.setattr(stack, "services", lambda: services)
    try:
        with pytest.raises(StackError, match=r"^kafka: Kafka controller port 127\.0\.0\.1:2 is already in use.*"
                                             r"CLICKML_KAFKA_CONTROLLER_PORT"):
            stack.up(["early", KAFKA_SERVICE], timeout=10, echo=lambda _: None)
        assert stack.running("early") is None
        monkeypatch.setattr(LocalKafka, "start", lambda self: (_ for _ in ()).throw(KafkaError("jars missing")))
        with pytest.raises(StackError, match="^kafka: jars missing$"):
            stack.up([KAFKA_SERVICE], timeout=10, echo=lambda _: None)
    finally:
        stack.down(["early"], echo=lambda _: None, grace=5)


def test_down_stops_the_broker_through_local_kafka(tmp_path, monkeypatch):
    # A stand-in broker: a sleeping process recorded in LocalKafka's pid file, as LocalKafka.start does.
    stack = Stack(tmp_path / "state", ports=Ports(kafka=1, kafka_controller=2), lakehouse=tmp_path / "lake")
    stopped = []
    real_stop = LocalKafka.stop
    monkeypatch.setattr(LocalKafka, "stop", lambda self, grace=20.0: (stopped.append(self.folder), real_stop(self, grace)))
    pid_file = stack.pid_file(KAFKA_SERVICE)
    pid_file.parent.mkdir(parents=True)
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True)
    try:
        pid_file.write_text(f"{process.pid} {_start_time(process.pid)}\n")
        assert stack.running(KAFKA_SERVICE) == process.pid
        assert "127.0.0.1:1  [up]" in stack.summary() and "create-topic" in stack.summary()
        messages = []
        stack.down(ALL_SERVICES, echo=messages.append, grace=5)
        assert messages == [f"kafka: stopped (pid {process.pid})"] and stopped == [stack.kafka_dir]
        assert process.wait(timeout=10) is not None and not pid_file.exists()
        assert stack.running(KAFKA_SERVICE) is None
    finally:
        process.kill()
        process.wait()


def test_kafka_can_be_left_out(tmp_path, monkeypatch):
    monkeypatch.setattr(LocalKafka, "start", lambda self: pytest.fail("LocalKafka.start called"))
    stack = Stack(tmp_path / "state", lakehouse=tmp_path / "lake")
    services = {"only": _service("only", ready=True)}
    monkeypatch.setattr(stack, "services", lambda: services)
    try:
        stack.up(["only"], timeout=10, echo=lambda _: None)
        assert stack.running("only") and stack.running(KAFKA_SERVICE) is None
    finally:
        stack.down(["only"], echo=lambda _: None, grace=5)


# -- Redis: Debian's redis-server as one of the stack's services ----------------------------------
def test_redis_is_a_default_service_before_airflow(tmp_path):
    from pipelines.orchestration.stack import REDIS_SERVICE

    assert REDIS_SERVICE in ALL_SERVICES and ALL_SERVICES.index(REDIS_SERVICE) < ALL_SERVICES.index("airflow")
    assert _stack_services_of_make() == list(ALL_SERVICES)
    assert Ports().redis == 6379 and Ports.from_env({"CLICKML_REDIS_PORT": "16379"}).redis == 16379
    stack = Stack(tmp_path / "state", ports=Ports(redis=16379), lakehouse=tmp_path / "lake")
    redis = stack.services()[REDIS_SERVICE]
    assert (redis.port, redis.url) == (16379, "redis://127.0.0.1:16379/0")
    argv = " ".join(redis.argv)
    assert "--bind 127.0.0.1" in argv and "--port 16379" in argv and f"--dir {stack.state_dir / 'redis'}" in argv
    # clickml (jobs, Airflow tasks, `make up-env`) reads the store's address from CLICKML_REDIS_URL.
    assert stack.redis_env() == {"CLICKML_REDIS_URL": "redis://127.0.0.1:16379/0"}
    assert stack.airflow_env()["CLICKML_REDIS_URL"] == "redis://127.0.0.1:16379/0"


def test_a_missing_redis_server_fails_up_with_the_install_command(tmp_path, monkeypatch):
    from pipelines.orchestration import stack as stack_module

    monkeypatch.setattr(stack_module, "redis_server_binary", lambda: str(tmp_path / "no-redis-server"))
    stack = Stack(tmp_path / "state", lakehouse=tmp_path / "lake")
    with pytest.raises(StackError, match=r"^redis: redis-server not found: sudo apt-get install -y redis-server"):
        stack.up(["redis"], timeout=5, echo=lambda _: None)


def test_up_starts_a_real_redis_on_loopback_and_down_stops_it(tmp_path, capsys):
    import shutil

    from pipelines.orchestration.stack import REDIS_SERVICE, _redis_ping

    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed: apt-get install redis-server (Debian's package)")
    [port] = free_ports(1)
    stack = Stack(tmp_path / "state", ports=Ports(redis=port), lakehouse=tmp_path / "lake")
    messages: list[str] = []
    try:
        stack.up([REDIS_SERVICE], timeout=30, echo=messages.append)
        pid = stack.running(REDIS_SERVICE)
        assert pid and _redis_ping(port)
        assert messages[-1] == f"redis: ready at redis://127.0.0.1:{port}/0"
        assert "Redis          online store" in stack.summary() and "[up]" in stack.summary()
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.sendall(b"CONFIG GET bind\r\n")
            assert b"127.0.0.1" in sock.recv(256)
        assert stack_main(["env", "--state-dir", str(stack.state_dir)]) == 0
        assert "export CLICKML_REDIS_URL=redis://127.0.0.1:6379/0" in capsys.readouterr().out  # default port
    finally:
        stack.down([REDIS_SERVICE], echo=messages.append, grace=5)
    assert stack.running(REDIS_SERVICE) is None and messages[-1] == f"redis: stopped (pid {pid})"
    with pytest.raises(OSError):
        _redis_ping(port)


def test_the_mlflow_server_runs_without_mlflow_job_execution_unless_asked(tmp_path, monkeypatch):
    # MLflow 3's job execution starts eight polling huey consumers beside the server; clickml
    # submits no MLflow jobs, so `make up` leaves it off (a user's own setting wins).
    monkeypatch.delenv("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", raising=False)
    stack = Stack(tmp_path / "state", lakehouse=tmp_path / "lake")
    mlflow = stack.services()["mlflow"]
    assert mlflow.argv[1:3] == ["server", "--host"]
    assert mlflow.env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    monkeypatch.setenv("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "true")
    assert stack.services()["mlflow"].env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "true"


def test_airflow_on_sqlite_waits_longer_for_the_write_lock(tmp_path, monkeypatch):
    # Bug: under load the UI's Trigger (create the run + unpause the DAG, at once) got "database is
    # locked" on the unpause after SQLite's default 5 s, and the run stayed queued behind a paused DAG.
    import importlib

    monkeypatch.delenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", raising=False)
    monkeypatch.delenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS", raising=False)
    env = Stack(tmp_path / "state", lakehouse=tmp_path / "lake").airflow_env()
    for key in ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS_ASYNC"):
        module, name = env[key].rsplit(".", 1)
        assert getattr(importlib.import_module(module), name)["timeout"] >= 30  # what Airflow's conf.getimport reads
    # a user's own database (PostgreSQL takes no `timeout` argument) gets none of it
    monkeypatch.setenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "postgresql+psycopg2://airflow@127.0.0.1/airflow")
    env = Stack(tmp_path / "state", lakehouse=tmp_path / "lake").airflow_env()
    assert "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS" not in env
