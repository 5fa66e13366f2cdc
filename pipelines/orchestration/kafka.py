"""A real single-node Kafka broker on 127.0.0.1 (KRaft: broker and controller in one JVM, no ZooKeeper).

    python -m pipelines.orchestration.kafka up           [--dir .stack/kafka] [--port 9092] [--controller-port 9093]
    python -m pipelines.orchestration.kafka status       [--dir .stack/kafka]
    python -m pipelines.orchestration.kafka create-topic NAME [--partitions 3] [--config retention.ms=-1] [--dir .stack/kafka]
    python -m pipelines.orchestration.kafka down         [--dir .stack/kafka]

The broker is Kafka's own `kafka.Kafka`, started with `java -cp <jars of jvm/pom.xml's kafka profile>`
(see `pipelines.spark.jars.kafka_classpath`; `make jars` resolves them); the same classpath runs
Kafka's tools (`kafka.tools.StorageTool`, `org.apache.kafka.tools.TopicCommand`, the console
producer and consumer). Everything lives in one folder:

    <dir>/conf/        server.properties, log4j2.properties (the broker), tools-log4j2.properties
    <dir>/data/        the log dir: topics and the KRaft metadata log (formatted on the first start only)
    <dir>/logs/        kafka.log (the broker's log and console), format.log
    <dir>/pids/        kafka.pid: "pid start-time", so `down` stops exactly what `up` started
    <dir>/state.json   the ports, the bootstrap address and the cluster id (`bootstrap` file: the address alone)

Every address is 127.0.0.1. Readiness means: the broker port accepts and a Metadata request (Kafka's
wire protocol, sent from here) lists this broker. Topics are not created on first use
(`auto.create.topics.enable=false`): `create_topic`. A port that is already taken fails before
anything starts; a broker that dies or does not get ready in time fails with the tail of its log.
Spark reads it through the spark profile's spark-sql-kafka-0-10:
`spark.readStream.format("kafka").option("kafka.bootstrap.servers", kafka.bootstrap)`.
"""

from __future__ import annotations

import argparse
import base64
import itertools
import json
import os
import socket
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from pipelines.orchestration.hdfs import _connects, _tail, free_port, port_taken
from pipelines.orchestration.stack import REPO_ROOT, _alive, _start_time, _stop_tree, find_java

KAFKA_CLASS = "kafka.Kafka"
STORAGE_TOOL_CLASS = "kafka.tools.StorageTool"
TOPIC_COMMAND_CLASS = "org.apache.kafka.tools.TopicCommand"
CONSOLE_PRODUCER_CLASS = "org.apache.kafka.tools.ConsoleProducer"
CONSOLE_CONSUMER_CLASS = "org.apache.kafka.tools.consumer.ConsoleConsumer"
HOST = "127.0.0.1"
NODE_ID = 1
DEFAULT_DIR = REPO_ROOT / ".stack" / "kafka"
DAEMON = "kafka"

_JVM_FLAGS = ["-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true", "-Djava.net.preferIPv4Stack=true"]

_BROKER_LOG4J2 = """\
# The broker logs to stdout, which LocalKafka sends to logs/kafka.log. No log4j shutdown hook:
# Kafka logs its own shutdown from a hook, and the console appender needs no flushing.
status = warn
shutdownHook = disable
appender.out.type = Console
appender.out.name = out
appender.out.target = SYSTEM_OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = out
# The full listing of every config object (the broker's, its internal clients'): server.properties says it.
logger.config.name = org.apache.kafka.common.config.AbstractConfig
logger.config.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.state.name = state.change.logger
logger.state.level = WARN
"""

_TOOLS_LOG4J2 = """\
# Kafka's command-line tools: warnings and errors on stderr, stdout left to their output.
status = warn
shutdownHook = disable
appender.err.type = Console
appender.err.name = err
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.err.ref = err
"""


class KafkaError(RuntimeError):
    """Kafka could not be started, reached or stopped, or a tool failed; the message names the port or the log."""


class PortTakenError(KafkaError):
    """A port the broker needs on 127.0.0.1 is already in use."""


# -- Kafka's wire protocol: one Metadata request ---------------------------------------------------
class Partition(NamedTuple):
    error_code: int
    leader: int


@dataclass(frozen=True)
class TopicMetadata:
    error_code: int
    partitions: dict[int, Partition] = field(default_factory=dict)


@dataclass(frozen=True)
class ClusterMetadata:
    cluster_id: str | None
    controller_id: int
    brokers: dict[int, tuple[str, int]]
    topics: dict[str, TopicMetadata]


_API_METADATA = 3
_METADATA_VERSION = 4  # not "flexible" (plain int16 strings); served by Kafka 1.0 to 4.x
_ERROR_UNKNOWN_TOPIC = 3
_correlation = itertools.count(1)


def fetch_metadata(port: int, topics: Iterable[str] | None = None, host: str = HOST,
                   timeout: float = 3.0) -> ClusterMetadata:
    """Ask the broker at host:port for its cluster metadata (every topic, or only `topics`).

    Raises OSError when it cannot be reached and KafkaError on a reply that is not a Metadata one."""
    correlation = next(_correlation)
    client = b"clickml"
    body = struct.pack(">i", -1) if topics is None else _array([_string(t) for t in topics])
    request = (struct.pack(">hhih", _API_METADATA, _METADATA_VERSION, correlation, len(client)) + client
               + body + struct.pack(">?", False))  # allow_auto_topic_creation
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(struct.pack(">i", len(request)) + request)
        (size,) = struct.unpack(">i", _receive(sock, 4))
        reply = _Reader(_receive(sock, size))
    try:
        if reply.take(">i") != correlation:
            raise KafkaError(f"{host}:{port} answered another request than the Metadata one sent")
        reply.take(">i")  # throttle_time_ms
        brokers = {}
        for _ in range(reply.count()):
            node, broker_host, broker_port = reply.take(">i"), reply.string(), reply.take(">i")
            reply.string()  # rack
            brokers[node] = (broker_host, broker_port)
        cluster_id, controller_id = reply.string(), reply.take(">i")
        found = {}
        for _ in range(reply.count()):
            error_code, name = reply.take(">h"), reply.string()
            reply.take(">?")  # is_internal
            partitions = {}
            for _ in range(reply.count()):
                partition_error, index, leader = reply.take(">h"), reply.take(">i"), reply.take(">i")
                reply.skip_ints()  # replicas
                reply.skip_ints()  # in-sync replicas
                partitions[index] = Partition(partition_error, leader)
            found[name] = TopicMetadata(error_code, partitions)
    except (struct.error, UnicodeDecodeError) as exc:
        raise KafkaError(f"{host}:{port} sent a malformed Metadata reply ({exc}): is it a Kafka broker?") from exc
    return ClusterMetadata(cluster_id, controller_id, brokers, found)


def _string(value: str) -> bytes:
    data = value.encode()
    return struct.pack(">h", len(data)) + data


def _array(items: list[bytes]) -> bytes:
    return struct.pack(">i", len(items)) + b"".join(items)


def _receive(sock: socket.socket, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = sock.recv(min(left, 1 << 16))
        if not chunk:
            raise ConnectionError("the broker closed the connection mid-reply")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, fmt: str):
        (value,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return value

    def string(self) -> str | None:
        size = self.take(">h")
        if size < 0:
            return None
        value = self.data[self.pos:self.pos + size].decode()
        self.pos += size
        return value

    def count(self) -> int:
        return max(self.take(">i"), 0)

    def skip_ints(self) -> None:
        """Skip an array of int32 (replica ids)."""
        size = self.count()
        self.pos += 4 * size


def new_cluster_id() -> str:
    """A Kafka cluster id: a random UUID as 22 URL-safe base64 characters, not starting with '-'."""
    while True:
        value = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not value.startswith("-"):
            return value


class Record(NamedTuple):
    partition: int
    key: str | None
    value: str


# -- the broker ------------------------------------------------------------------------------------
class LocalKafka:
    """One combined broker + KRaft controller in `folder`, on 127.0.0.1.

        with LocalKafka(tmp_path / "kafka") as kafka:
            kafka.create_topic("clicks", partitions=3)
            spark.readStream.format("kafka").option("kafka.bootstrap.servers", kafka.bootstrap)...

    `port` / `controller_port` pin the broker's (client) and the controller's ports (a taken one
    raises PortTakenError); None or 0 means a free one. Topics and offsets survive stop/start in
    the same folder.
    """

    def __init__(self, folder: str | Path, port: int | None = None, controller_port: int | None = None,
                 heap: str = "512m", java: str | None = None, classpath: str | None = None,
                 start_timeout: float = 60.0) -> None:
        self.folder = Path(folder).resolve()
        self._asked = {"broker": port or None, "controller": controller_port or None}
        self.port = port or free_port()
        self.controller_port = controller_port or _free_port_besides(self.port)
        self.heap = heap
        self._java = java or None
        self._classpath = classpath
        self.start_timeout = start_timeout
        self._process: subprocess.Popen | None = None

    @property
    def java(self) -> str:
        """The `java` that runs the broker and the tools, looked up on first use (KafkaError when there is
        none): stopping or inspecting a broker (`make down`, the stack's status) needs no Java."""
        if self._java is None:
            self._java = java_executable()
        return self._java

    # -- addresses and files -----------------------------------------------------------------------
    @property
    def bootstrap(self) -> str:
        """`bootstrap.servers` for a client (Spark's `kafka.bootstrap.servers`)."""
        return f"{HOST}:{self.port}"

    @property
    def conf_dir(self) -> Path:
        return self.folder / "conf"

    @property
    def data_dir(self) -> Path:
        return self.folder / "data"

    @property
    def log_file(self) -> Path:
        return self.folder / "logs" / "kafka.log"

    @property
    def pid_file(self) -> Path:
        return self.folder / "pids" / f"{DAEMON}.pid"

    def ports(self) -> dict[str, int]:
        return {"broker": self.port, "controller": self.controller_port}

    # -- configuration -----------------------------------------------------------------------------
    def server_properties(self) -> dict[str, str]:
        broker, controller = f"{HOST}:{self.port}", f"{HOST}:{self.controller_port}"
        return {
            "process.roles": "broker,controller",
            "node.id": str(NODE_ID),
            # Kafka 4's dynamic quorum (KIP-853): the storage is formatted `--standalone`, making
            # this node the only voter; clients of the quorum find it here.
            "controller.quorum.bootstrap.servers": controller,
            "controller.listener.names": "CONTROLLER",
            "listeners": f"PLAINTEXT://{broker},CONTROLLER://{controller}",
            "advertised.listeners": f"PLAINTEXT://{broker},CONTROLLER://{controller}",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "num.partitions": "1",
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            # One broker on a laptop: a few partitions for the internal topics (50 by default) and
            # no 3 s wait before the first rebalance of a new consumer group.
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.num.partitions": "4",
            "share.coordinator.state.topic.num.partitions": "4",
            "group.initial.rebalance.delay.ms": "0",
            "num.network.threads": "2",
            "num.io.threads": "4",
            "num.recovery.threads.per.data.dir": "1",
        }

    def write_conf(self) -> None:
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        lines = "".join(f"{key}={value}\n" for key, value in self.server_properties().items())
        (self.conf_dir / "server.properties").write_text("# written by pipelines.orchestration.kafka\n" + lines)
        (self.conf_dir / "log4j2.properties").write_text(_BROKER_LOG4J2)
        (self.conf_dir / "tools-log4j2.properties").write_text(_TOOLS_LOG4J2)

    def classpath(self) -> str:
        if self._classpath is None:
            from pipelines.spark.jars import JarsMissingError, kafka_classpath

            try:
                self._classpath = kafka_classpath()
            except JarsMissingError as exc:
                raise KafkaError(f"cannot start Kafka: {exc}") from exc
        return self._classpath

    def command(self, main_class: str, *args: str, tool: bool = True) -> list[str]:
        """`java ... -cp <kafka jars> main_class args`: a tool (256 MB heap, logs on stderr) or the broker."""
        log4j = self.conf_dir / ("tools-log4j2.properties" if tool else "log4j2.properties")
        return [self.java, f"-Xmx{'256m' if tool else self.heap}", *_JVM_FLAGS,
                f"-Dkafka.logs.dir={self.folder / 'logs'}", f"-Dlog4j2.configurationFile={log4j}",
                "-cp", self.classpath(), main_class, *args]

    def _prepare(self) -> None:
        for sub in ("logs", "pids", "data"):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)
        self.write_conf()

    # -- lifecycle ---------------------------------------------------------------------------------
    def formatted(self) -> bool:
        return (self.data_dir / "meta.properties").exists()

    @property
    def cluster_id(self) -> str | None:
        """The cluster id the data folder was formatted with (None before the first start)."""
        try:
            lines = (self.data_dir / "meta.properties").read_text().splitlines()
        except OSError:
            return None
        return next((line.split("=", 1)[1].strip() for line in lines if line.startswith("cluster.id=")), None)

    def format(self, timeout: float = 60.0) -> None:
        """`kafka-storage.sh format --standalone`: an empty log dir holding a new cluster's metadata."""
        self._prepare()
        log = self.folder / "logs" / "format.log"
        cluster_id = new_cluster_id()
        args = ("format", "--cluster-id", cluster_id, "--config", str(self.conf_dir / "server.properties"), "--standalone")
        with open(log, "wb") as out:
            try:
                done = subprocess.run(self.command(STORAGE_TOOL_CLASS, *args), cwd=self.folder, stdout=out,
                                      stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=timeout)
            except subprocess.TimeoutExpired as exc:
                raise KafkaError(f"formatting the Kafka storage took over {timeout:.0f} s; last lines of {log}:\n"
                                 + _tail(log)) from exc
        if done.returncode != 0 or not self.formatted():
            raise KafkaError(f"formatting the Kafka storage in {self.data_dir} failed (exit {done.returncode}); "
                             f"last lines of {log}:\n" + _tail(log))

    def _check_ports(self) -> None:
        for name, port in self.ports().items():
            if port_taken(port):
                hint = ("stop what holds it or pass another port" if self._asked[name]
                        else "it was free a moment ago; try again")
                raise PortTakenError(f"Kafka {name} port {HOST}:{port} is already in use; {hint}")

    def _repick_free_ports(self) -> None:
        """Ports that were not pinned and were taken since they were picked get fresh ones."""
        if not self._asked["broker"] and port_taken(self.port):
            self.port = _free_port_besides(self.controller_port)
        if not self._asked["controller"] and port_taken(self.controller_port):
            self.controller_port = _free_port_besides(self.port)

    def start(self) -> LocalKafka:
        """Format on first use, start the broker, wait (bounded) until it answers a Metadata request."""
        if self.running():
            return self
        try:
            self._repick_free_ports()
            self._check_ports()
            self._prepare()
            if not self.formatted():
                self.format()
            with open(self.log_file, "ab") as log:
                self._process = subprocess.Popen(
                    self.command(KAFKA_CLASS, str(self.conf_dir / "server.properties"), tool=False), cwd=self.folder,
                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
            self.pid_file.write_text(f"{self._process.pid} {_start_time(self._process.pid)}\n")
            self.wait_ready(self.start_timeout)
        except BaseException:
            self.stop()
            raise
        self.write_state()
        return self

    def running(self) -> int | None:
        """The pid of the broker that this folder started and that is still alive, else None."""
        try:
            pid, started = (int(x) for x in self.pid_file.read_text().split()[:2])
        except (OSError, ValueError):
            return None
        process = self._process
        if process is not None and process.pid == pid and process.poll() is not None:
            return None
        if not _alive(pid) or _start_time(pid) != started:
            return None
        return pid

    def stop(self, grace: float = 20.0) -> None:
        """Stop the broker (TERM: a controlled shutdown; KILL after `grace` s); the data stays."""
        pid = self.running()
        if pid is not None:
            _stop_tree(pid, grace)
        process, self._process = self._process, None
        if process is not None:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        self.pid_file.unlink(missing_ok=True)

    def __enter__(self) -> LocalKafka:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- readiness ---------------------------------------------------------------------------------
    def metadata(self, topics: Iterable[str] | None = None) -> ClusterMetadata | None:
        """The broker's answer to a Metadata request, or None when it does not give one."""
        try:
            return fetch_metadata(self.port, topics)
        except (OSError, KafkaError):
            return None

    def ready(self) -> bool:
        if not _connects(self.port):
            return False
        metadata = self.metadata()
        return bool(metadata and metadata.brokers.get(NODE_ID) == (HOST, self.port) and metadata.controller_id >= 0)

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.running() is None:
                raise KafkaError(f"the Kafka broker exited during start-up; last lines of {self.log_file}:\n"
                                 + _tail(self.log_file))
            if self.ready():
                return
            if time.monotonic() > deadline:
                raise KafkaError(
                    f"Kafka at {self.bootstrap} not ready within {timeout:.0f} s (broker port "
                    f"{'accepts' if _connects(self.port) else 'does not accept'} connections, Metadata "
                    f"{'answered' if self.metadata() else 'unanswered'}); last lines of {self.log_file}:\n"
                    + _tail(self.log_file))
            time.sleep(0.3)

    # -- topics, records (Kafka's own tools) -------------------------------------------------------
    def _tool(self, main_class: str, *args: str, input: str | None = None, timeout: float = 60.0,
              what: str) -> subprocess.CompletedProcess:
        if self.running() is None:
            raise KafkaError(f"cannot {what}: the Kafka broker of {self.folder} is not running")
        try:
            done = subprocess.run(self.command(main_class, *args), cwd=self.folder, input=input, text=True,
                                  capture_output=True, timeout=timeout,
                                  stdin=None if input is not None else subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            raise KafkaError(f"{what} at {self.bootstrap} took over {timeout:.0f} s") from exc
        if done.returncode != 0:
            raise KafkaError(f"{what} at {self.bootstrap} failed (exit {done.returncode}):\n"
                             + _last_lines(done.stderr or done.stdout))
        return done

    def create_topic(self, name: str, partitions: int = 1, config: dict[str, str] | None = None,
                     if_not_exists: bool = False, timeout: float = 30.0) -> None:
        """Create `name` (replication factor 1) and wait until every partition has a leader."""
        args = ["--bootstrap-server", self.bootstrap, "--create", "--topic", name,
                "--partitions", str(partitions), "--replication-factor", "1"]
        for key, value in (config or {}).items():
            args += ["--config", f"{key}={value}"]
        if if_not_exists:
            args.append("--if-not-exists")
        self._tool(TOPIC_COMMAND_CLASS, *args, timeout=timeout + 30, what=f"creating topic {name!r}")
        deadline = time.monotonic() + timeout
        while True:
            topic = self.topic(name)
            if topic and topic.error_code == 0 and topic.partitions:
                if len(topic.partitions) != partitions:  # only with if_not_exists: it was there before
                    raise KafkaError(f"topic {name!r} already exists at {self.bootstrap} with "
                                     f"{len(topic.partitions)} partition(s), not {partitions}")
                if all(p.leader >= 0 for p in topic.partitions.values()):
                    return
            if time.monotonic() > deadline:
                raise KafkaError(f"topic {name!r} at {self.bootstrap} has no leader for each of its {partitions} "
                                 f"partitions {timeout:.0f} s after its creation (metadata: {topic})")
            time.sleep(0.2)

    def topic(self, name: str) -> TopicMetadata | None:
        """The metadata of one topic, or None when it does not exist (or the broker does not answer)."""
        metadata = self.metadata([name])
        found = metadata.topics.get(name) if metadata else None
        return None if found is None or found.error_code == _ERROR_UNKNOWN_TOPIC else found

    def topics(self) -> list[str]:
        """The names of the topics, internal ones (e.g. __consumer_offsets) included."""
        metadata = self.metadata()
        if metadata is None:
            raise KafkaError(f"the Kafka broker at {self.bootstrap} does not answer a Metadata request")
        return sorted(metadata.topics)

    def produce(self, topic: str, messages: Iterable[str | tuple[str, str]], timeout: float = 60.0) -> None:
        """Write `messages` (values, or (key, value) pairs; one line of text each) and wait for the acks."""
        messages = list(messages)
        keyed = bool(messages) and isinstance(messages[0], tuple)
        lines = []
        for message in messages:
            if isinstance(message, tuple) != keyed:
                raise ValueError("give either values or (key, value) pairs, not both")
            key, value = message if keyed else (None, message)
            if "\n" in value or "\r" in value or (key is not None and any(c in key for c in "\t\r\n")):
                raise ValueError(f"a message is one line of text (and a key has no tab): {message!r}")
            lines.append(value if key is None else f"{key}\t{value}")
        if self.topic(topic) is None:
            raise KafkaError(f"topic {topic!r} does not exist at {self.bootstrap} (topics are not created on first "
                             "use here: create_topic)")
        args = ["--bootstrap-server", self.bootstrap, "--topic", topic, "--max-block-ms", "15000",
                "--command-property", "acks=all", "--command-property", "linger.ms=0"]
        if keyed:
            args += ["--reader-property", "parse.key=true", "--reader-property", "key.separator=\t"]
        done = self._tool(CONSOLE_PRODUCER_CLASS, *args, input="".join(f"{line}\n" for line in lines),
                          timeout=timeout, what=f"producing to {topic!r}")
        # The console producer reports a failed send on stderr but still exits 0.
        if " ERROR " in done.stderr or "Exception" in done.stderr:
            raise KafkaError(f"producing to {topic!r} at {self.bootstrap} failed:\n" + _last_lines(done.stderr))

    def consume(self, topic: str, max_messages: int, timeout: float = 20.0, group: str | None = None) -> list[Record]:
        """Read up to `max_messages` records of `topic` from its beginning, within about `timeout` s.

        A fresh consumer group (unless `group` is given) sees every record; fewer than
        `max_messages` come back when no new record arrives for `timeout` s. A key printed as
        `null` (no key) is None."""
        args = ["--bootstrap-server", self.bootstrap, "--topic", topic, "--from-beginning",
                "--max-messages", str(max_messages), "--timeout-ms", str(int(timeout * 1000)),
                "--formatter-property", "print.partition=true", "--formatter-property", "print.key=true",
                "--formatter-property", "key.separator=\t"]
        if group:
            args += ["--group", group]
        done = self._tool(CONSOLE_CONSUMER_CLASS, *args, timeout=timeout + 60, what=f"consuming {topic!r}")
        records = []
        for line in done.stdout.splitlines():
            partition, key, value = line.split("\t", 2)
            records.append(Record(int(partition.removeprefix("Partition:")), None if key == "null" else key, value))
        return records

    # -- the folder's state (for the CLI) ----------------------------------------------------------
    def write_state(self) -> None:
        state = {"bootstrap": self.bootstrap, "ports": self.ports(), "cluster_id": self.cluster_id,
                 "pid": self.running()}
        (self.folder / "state.json").write_text(json.dumps(state, indent=1) + "\n")
        (self.folder / "bootstrap").write_text(self.bootstrap + "\n")

    @classmethod
    def from_folder(cls, folder: str | Path) -> LocalKafka:
        """The Kafka of a folder that `up` wrote state.json into (same ports)."""
        folder = Path(folder).resolve()
        try:
            ports = json.loads((folder / "state.json").read_text())["ports"]
        except (OSError, ValueError, KeyError) as exc:
            raise KafkaError(f"no Kafka state in {folder} (state.json): was it started with `up`?") from exc
        return cls(folder, port=ports["broker"], controller_port=ports["controller"])


def java_executable() -> str:
    """`$JAVA_HOME/bin/java`, else `java` on PATH; raises KafkaError when neither exists."""
    return find_java(KafkaError, "Kafka 4")


def _free_port_besides(other: int) -> int:
    while True:
        port = free_port()
        if port != other:
            return port


def _last_lines(text: str, lines: int = 30) -> str:
    return "\n".join(text.strip().splitlines()[-lines:]) or "(no output)"


def main(argv: list[str] | None = None, echo: Callable[[str], None] = print) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.orchestration.kafka", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["up", "down", "status", "create-topic"])
    parser.add_argument("topic", nargs="?", help="create-topic: the topic's name")
    parser.add_argument("--dir", default=os.environ.get("CLICKML_KAFKA_DIR", str(DEFAULT_DIR)))
    parser.add_argument("--port", type=int, default=int(os.environ.get("CLICKML_KAFKA_PORT", "9092")),
                        help="the broker's port (bootstrap servers 127.0.0.1:PORT)")
    parser.add_argument("--controller-port", type=int, default=int(os.environ.get("CLICKML_KAFKA_CONTROLLER_PORT", "9093")),
                        help="the KRaft controller's port")
    parser.add_argument("--partitions", type=int, default=1, help="create-topic: its number of partitions")
    parser.add_argument("--config", action="append", default=[], metavar="KEY=VALUE",
                        help="create-topic: a topic setting (repeatable), e.g. retention.ms=-1 to keep replayed "
                             "historical messages (retention is measured on message timestamps)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds the broker may take to get ready")
    args = parser.parse_args(argv)
    folder = Path(args.dir).resolve()
    if args.command == "create-topic" and not args.topic:
        parser.error("create-topic needs the topic's name")
    bad = [c for c in args.config if "=" not in c]
    if bad:
        parser.error(f"--config takes KEY=VALUE, got {', '.join(bad)}")
    topic_config = dict(c.split("=", 1) for c in args.config)
    try:
        if args.command == "up":
            if (folder / "state.json").exists():
                existing = LocalKafka.from_folder(folder)
                if existing.running():
                    echo(f"kafka: already running at {existing.bootstrap} (pid {existing.running()})")
                    return 0
            kafka = LocalKafka(folder, port=args.port, controller_port=args.controller_port, start_timeout=args.timeout)
            kafka.start()
            echo(f"kafka: broker pid {kafka.running()}, log {kafka.log_file}")
            echo(f"kafka: ready at {kafka.bootstrap} (cluster id {kafka.cluster_id}; topics are created explicitly:")
            echo(f"  python -m pipelines.orchestration.kafka create-topic NAME --partitions 3 --dir {folder})")
        elif args.command == "down":
            if not (folder / "state.json").exists():
                echo(f"kafka: nothing to stop in {folder}")
                return 0
            kafka = LocalKafka.from_folder(folder)
            pid = kafka.running()
            kafka.stop()
            echo(f"kafka: {'stopped (pid %d)' % pid if pid else 'not running'}; data kept in {kafka.data_dir}")
        elif args.command == "status":
            if not (folder / "state.json").exists():
                echo(f"kafka: not started in {folder}")
                return 1
            kafka = LocalKafka.from_folder(folder)
            pid = kafka.running()
            metadata = kafka.metadata() if pid else None
            echo(f"kafka at {kafka.bootstrap}: {'up, pid %d' % pid if pid else 'down'}")
            if metadata:
                names = sorted(t for t in metadata.topics if not t.startswith("__"))
                echo(f"  cluster {metadata.cluster_id}, brokers {sorted(metadata.brokers)}, "
                     f"topics: {', '.join(names) or '(none)'}")
            return 0 if metadata else 1
        else:
            kafka = LocalKafka.from_folder(folder)
            kafka.create_topic(args.topic, partitions=args.partitions, config=topic_config or None, if_not_exists=True)
            settings = "".join(f", {k}={v}" for k, v in topic_config.items())
            echo(f"kafka: topic {args.topic} ({args.partitions} partition(s){settings}) at {kafka.bootstrap}")
    except KafkaError as exc:
        print(f"kafka {args.command}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
