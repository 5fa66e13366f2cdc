"""`make up` / `make down`: a local stack of real services on 127.0.0.1.

    python -m pipelines.orchestration.stack up [--services spark-master,spark-worker,mlflow,kafka,redis,airflow] [--lake s3]
    python -m pipelines.orchestration.stack status
    python -m pipelines.orchestration.stack env
    python -m pipelines.orchestration.stack down

Services: an S3-compatible server for a lakehouse on `s3a://` (moto's server, `--lake s3`), a
Spark standalone master and one worker (pyspark's own `spark-class`: the pip package has
no `sbin/start-master.sh`), an MLflow tracking server (SQLite store and artifacts under the
lakehouse), a single-node Kafka broker (`pipelines.orchestration.kafka.LocalKafka`, KRaft, data under
`<state>/kafka/`; clickml finds it through CLICKML_KAFKA_BOOTSTRAP), Redis (Debian's `redis-server`: the
online store of `clickml materialize` and the model server, snapshots under `<state>/redis/`;
clickml finds it through CLICKML_REDIS_URL), and `airflow standalone` (API
server and UI, scheduler, DAG processor, triggerer) with `dags/` loaded and the connection
`clickml_spark` pointing at the master. Each service runs in its own process group; its pid is kept
in `<state>/pids/` (Kafka's in `<state>/kafka/pids/`, where LocalKafka keeps it: `make kafka-up` and
`make up` share one broker), so `down` stops exactly what `up` started (the group and every
descendant, e.g. spark-submit JVMs of running tasks), and nothing else.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # kafka.py imports this module
    from pipelines.orchestration.kafka import LocalKafka

REPO_ROOT = Path(__file__).resolve().parents[2]
ALL_SERVICES = ("spark-master", "spark-worker", "mlflow", "kafka", "redis", "airflow")
KAFKA_SERVICE = "kafka"
REDIS_SERVICE = "redis"
S3_SERVICE = "s3"
S3_BUCKETS = ("clickml-lakehouse", "clickml-landing", "clickml-artifacts")
S3_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "clickml", "AWS_SECRET_ACCESS_KEY": "clickml-local", "AWS_REGION": "us-east-1"}
"""The local S3 server accepts any credentials; these are what the stack's jobs are given."""
DAG_IDS = ("clickstream_ingest", "clickstream_etl_features", "model_training")


class StackError(RuntimeError):
    """A service did not start or answer in time; the message names it and its log."""


@dataclass(frozen=True)
class Ports:
    spark: int = 7077
    spark_ui: int = 8090
    worker_ui: int = 8091
    mlflow: int = 5000
    airflow: int = 8080
    s3: int = 9000
    kafka: int = 9092
    kafka_controller: int = 9093
    redis: int = 6379

    ENV = {"spark": "CLICKML_SPARK_PORT", "spark_ui": "CLICKML_SPARK_UI_PORT", "worker_ui": "CLICKML_WORKER_UI_PORT",
           "mlflow": "CLICKML_MLFLOW_PORT", "airflow": "CLICKML_AIRFLOW_PORT", "s3": "CLICKML_S3_PORT",
           "kafka": "CLICKML_KAFKA_PORT", "kafka_controller": "CLICKML_KAFKA_CONTROLLER_PORT",
           "redis": "CLICKML_REDIS_PORT"}
    """The variable that sets each port (`make up CLICKML_KAFKA_PORT=19092`)."""

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Ports:
        env = os.environ if env is None else env
        return cls(**{key: int(env[var]) for key, var in cls.ENV.items() if env.get(var)})


@dataclass
class Service:
    name: str
    argv: list[str]
    env: dict[str, str]
    url: str
    ready: Callable[[], bool]
    port: int
    more_ports: tuple[int, ...] = ()
    """Other ports it listens on (Kafka's controller), checked before anything starts."""


@dataclass
class Stack:
    """The services of one state directory (`.stack/` for `make up`, a tmp dir in tests)."""

    state_dir: Path
    ports: Ports = field(default_factory=Ports)
    repo_root: Path = REPO_ROOT
    profile: str = "standalone"
    worker_cores: int = 2
    worker_memory: str = "2g"
    extra_env: dict[str, str] = field(default_factory=dict)
    lakehouse: Path | None = None
    lake_on_s3: bool = False
    """Put the lakehouse, the landing zone and MLflow's artifacts on the local S3 server (profile
    `s3-standalone`: conf/profiles/s3-standalone.yaml)."""

    def __post_init__(self) -> None:
        self.state_dir = Path(self.state_dir).resolve()
        self.venv_bin = Path(sys.executable).parent
        self.lakehouse = Path(self.lakehouse or self.repo_root / "lakehouse").resolve()
        if self.lake_on_s3 and self.profile == "standalone":
            self.profile = "s3-standalone"

    # -- paths -------------------------------------------------------------------------------------
    @property
    def master_url(self) -> str:
        return f"spark://127.0.0.1:{self.ports.spark}"

    @property
    def s3_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports.s3}"

    @property
    def kafka_dir(self) -> Path:
        return self.state_dir / "kafka"

    @property
    def kafka_bootstrap(self) -> str:
        return f"127.0.0.1:{self.ports.kafka}"

    def kafka_env(self) -> dict[str, str]:
        """Where clickml finds the stack's broker (read by conf/sources/clickstream_kafka.yaml)."""
        return {"CLICKML_KAFKA_BOOTSTRAP": self.kafka_bootstrap}

    def kafka(self) -> LocalKafka:
        """The stack's broker: LocalKafka in `<state>/kafka/` on the stack's ports. It starts, waits for
        and stops itself and keeps its own pid and log files there (see `_self_supervised`)."""
        from pipelines.orchestration.kafka import LocalKafka

        return LocalKafka(self.kafka_dir, port=self.ports.kafka, controller_port=self.ports.kafka_controller)

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.ports.redis}/0"

    def redis_env(self) -> dict[str, str]:
        """Where clickml finds the stack's online store (read by `serving.redis_url` in conf/base.yaml)."""
        return {"CLICKML_REDIS_URL": self.redis_url}

    def s3_env(self) -> dict[str, str]:
        """What a job needs to use the local S3 server (read by conf/profiles/s3-standalone.yaml)."""
        if not self.lake_on_s3:
            return {}
        return {
            **S3_CREDENTIALS,
            "CLICKML_S3_ENDPOINT": self.s3_endpoint,
            "MLFLOW_S3_ENDPOINT_URL": self.s3_endpoint,
            "CLICKML_SPARK_MASTER": self.master_url,
            "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{self.ports.mlflow}",
            "CLICKML_VALIDATION_ROOT": str(self.state_dir / "validation"),
        }

    def mlflow_env(self) -> dict[str, str]:
        """The MLflow server's environment: without MLflow 3's job execution (GenAI evaluation and
        trace jobs, which clickml never submits) unless `MLFLOW_SERVER_ENABLE_JOB_EXECUTION` is set.
        With it, `mlflow server` also starts eight huey consumer processes that poll for jobs: 26 s
        of CPU in its first minute against 6 s without them (2 cores, 2026-12-07)."""
        return {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **self.base_env()}

    @property
    def airflow_home(self) -> Path:
        return self.state_dir / "airflow"

    def pid_file(self, name: str) -> Path:
        managed = self._self_supervised(name)
        return managed.pid_file if managed else self.state_dir / "pids" / f"{name}.pid"

    def log_file(self, name: str) -> Path:
        managed = self._self_supervised(name)
        return managed.log_file if managed else self.state_dir / "logs" / f"{name}.log"

    def _self_supervised(self, name: str) -> LocalKafka | None:
        """The object that starts (bounded wait included) and stops a service that is not a plain command
        run by the stack, with its pid file ("pid start-time", as the stack's own) and log: Kafka's LocalKafka."""
        return self.kafka() if name == KAFKA_SERVICE else None

    # -- services ----------------------------------------------------------------------------------
    def base_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PATH"] = f"{self.venv_bin}{os.pathsep}{env.get('PATH', '')}"
        env.update({"SPARK_LOCAL_IP": "127.0.0.1", "SPARK_LOCAL_HOSTNAME": "localhost",
                    "PYSPARK_PYTHON": sys.executable, "PYTHONUNBUFFERED": "1"})
        env.update(self.s3_env())
        env.update(self.extra_env)
        return env

    def airflow_env(self) -> dict[str, str]:
        env = self.base_env()
        connection = {"conn_type": "spark", "host": "spark://127.0.0.1", "port": self.ports.spark}
        env.update({
            "AIRFLOW_HOME": str(self.airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.repo_root / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{self.ports.airflow}/execution/",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.ports.airflow),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{self.ports.airflow}",
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.airflow_home / "passwords.json"),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "60",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "True",
            "AIRFLOW_CONN_CLICKML_SPARK": json.dumps(connection),
            "CLICKML_PROFILE": self.profile,
            "CLICKML_CONF_DIR": str(self.repo_root / "conf"),
            "CLICKML_SPARK_MASTER": self.master_url,
            "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{self.ports.mlflow}",
            **self.kafka_env(),
            **self.redis_env(),
        })
        if not self.lake_on_s3:
            env["CLICKML_LAKEHOUSE"] = env.get("CLICKML_LAKEHOUSE", str(self.lakehouse))
        if env.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "sqlite").startswith("sqlite"):
            # a longer wait for SQLite's write lock (pipelines/orchestration/airflow_sqlite.py)
            env.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS", "pipelines.orchestration.airflow_sqlite.CONNECT_ARGS")
            env.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS_ASYNC",
                           "pipelines.orchestration.airflow_sqlite.ASYNC_CONNECT_ARGS")
        return env

    def services(self) -> dict[str, Service]:
        bin_ = self.venv_bin
        ports = self.ports
        spark_env = self.base_env()
        mlflow_dir = self.lakehouse / "_mlflow"
        artifacts = "s3://clickml-artifacts/mlflow" if self.lake_on_s3 else str(mlflow_dir / "artifacts")
        kafka = self.kafka()
        services = {
            S3_SERVICE: Service(
                S3_SERVICE, [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(ports.s3)],
                self.base_env(), self.s3_endpoint, self._s3_ready, ports.s3),
            "spark-master": Service(
                "spark-master",
                [str(bin_ / "spark-class"), "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                 "--port", str(ports.spark), "--webui-port", str(ports.spark_ui)],
                spark_env, f"http://127.0.0.1:{ports.spark_ui}", self._master_alive, ports.spark),
            "spark-worker": Service(
                "spark-worker",
                [str(bin_ / "spark-class"), "org.apache.spark.deploy.worker.Worker", self.master_url,
                 "--host", "127.0.0.1", "--cores", str(self.worker_cores), "--memory", self.worker_memory,
                 "--webui-port", str(ports.worker_ui), "--work-dir", str(self.state_dir / "spark-work")],
                spark_env, f"http://127.0.0.1:{ports.worker_ui}", self._worker_registered, ports.worker_ui),
            "mlflow": Service(
                "mlflow",
                [str(bin_ / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(ports.mlflow), "--workers", "1",
                 "--backend-store-uri", f"sqlite:///{mlflow_dir / 'mlflow.db'}",
                 "--artifacts-destination", artifacts],
                self.mlflow_env(), f"http://127.0.0.1:{ports.mlflow}",
                lambda: _get(f"http://127.0.0.1:{ports.mlflow}/health") is not None, ports.mlflow),
            # No argv: LocalKafka runs the broker (java -cp <kafka jars> kafka.Kafka) itself.
            KAFKA_SERVICE: Service(KAFKA_SERVICE, [], {}, self.kafka_bootstrap, kafka.ready, ports.kafka,
                                   (ports.kafka_controller,)),
            # Snapshots every 5 minutes (with a change) into <state>/redis/: the store survives `make down`
            # and `make up`; it is rebuilt from the lake by `clickml materialize --force` in any case.
            REDIS_SERVICE: Service(
                REDIS_SERVICE,
                [redis_server_binary(), "--port", str(ports.redis), "--bind", "127.0.0.1", "--protected-mode", "yes",
                 "--dir", str(self.state_dir / "redis"), "--save", "300 1", "--appendonly", "no", "--daemonize", "no"],
                self.base_env(), self.redis_url, lambda: _redis_ping(ports.redis), ports.redis),
            "airflow": Service(
                "airflow", [str(bin_ / "airflow"), "standalone"], self.airflow_env(),
                f"http://127.0.0.1:{ports.airflow}", self._airflow_ready, ports.airflow),
        }
        return services

    def service_names(self, names: list[str] | tuple[str, ...]) -> list[str]:
        """`names` in start order, with the S3 server first when the lakehouse is on it."""
        names = [n for n in names if n != S3_SERVICE]
        return [S3_SERVICE, *names] if self.lake_on_s3 else names

    # -- readiness ---------------------------------------------------------------------------------
    def _s3_ready(self) -> bool:
        """The server answers and holds the stack's buckets (created here, idempotently)."""
        if _get(self.s3_endpoint) is None:
            return False
        import boto3

        client = boto3.client("s3", endpoint_url=self.s3_endpoint, aws_access_key_id=S3_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                              aws_secret_access_key=S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                              region_name=S3_CREDENTIALS["AWS_REGION"])
        have = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
        for bucket in S3_BUCKETS:
            if bucket not in have:
                client.create_bucket(Bucket=bucket)
        return True

    def _master_json(self) -> dict | None:
        body = _get(f"http://127.0.0.1:{self.ports.spark_ui}/json/")
        return json.loads(body) if body else None

    def _master_alive(self) -> bool:
        state = self._master_json()
        return bool(state and state.get("status") == "ALIVE") and _port_open(self.ports.spark)

    def _worker_registered(self) -> bool:
        state = self._master_json()
        return bool(state and state.get("aliveworkers", 0) >= 1)

    def airflow_password(self) -> str | None:
        path = self.airflow_home / "passwords.json"
        try:
            return json.loads(path.read_text()).get("admin")
        except (OSError, ValueError):
            return None

    def airflow_token(self) -> str | None:
        password = self.airflow_password()
        if not password:
            return None
        body = _post_json(f"http://127.0.0.1:{self.ports.airflow}/auth/token",
                          {"username": "admin", "password": password})
        return json.loads(body).get("access_token") if body else None

    def airflow_api(self, path: str, method: str = "GET", payload: dict | None = None) -> dict | None:
        """Call the Airflow REST API as admin; None when it does not answer (yet)."""
        token = self.airflow_token()
        if token is None:
            return None
        url = f"http://127.0.0.1:{self.ports.airflow}/api/v2/{path.lstrip('/')}"
        data = json.dumps(payload).encode() if payload is not None else None
        request = urllib.request.Request(url, data=data, method=method, headers={
            "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.loads(response.read() or b"{}")
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def _airflow_ready(self) -> bool:
        health = _get(f"http://127.0.0.1:{self.ports.airflow}/api/v2/monitor/health")
        if not health:
            return False
        status = json.loads(health)
        if any(status.get(part, {}).get("status") != "healthy" for part in ("metadatabase", "scheduler", "triggerer")):
            return False
        dags = self.airflow_api("dags?limit=100")
        loaded = {d["dag_id"] for d in (dags or {}).get("dags", [])}
        return set(DAG_IDS) <= loaded

    # -- lifecycle ---------------------------------------------------------------------------------
    def running(self, name: str) -> int | None:
        """The pid of a service this stack started and that is still alive, else None."""
        path = self.pid_file(name)
        try:
            pid, started = (int(x) for x in path.read_text().split()[:2])
        except (OSError, ValueError):
            return None
        if not _alive(pid) or _start_time(pid) != started:  # gone, or the pid now names another process
            path.unlink(missing_ok=True)
            return None
        return pid

    def up(self, names: list[str] | tuple[str, ...] = ALL_SERVICES, timeout: float = 300.0,
           echo: Callable[[str], None] = print) -> None:
        """Start the services not running yet and wait until each answers; on failure, stop the ones
        this call started."""
        services = self.services()
        unknown = [n for n in names if n not in services]
        if unknown:
            raise StackError(f"unknown service(s) {unknown}; known: {', '.join(services)}")
        names = self.service_names(names)
        if REDIS_SERVICE in names and not Path(services[REDIS_SERVICE].argv[0]).is_file():
            raise StackError("redis: redis-server not found: sudo apt-get install -y redis-server (or leave it out: "
                             "STACK_SERVICES without redis)")
        for directory in ("pids", "logs", "spark-work", "airflow", "validation", "redis"):
            (self.state_dir / directory).mkdir(parents=True, exist_ok=True)
        (self.lakehouse / "_mlflow" / "artifacts").mkdir(parents=True, exist_ok=True)
        for name in names:  # before anything starts: a taken port fails the whole `up` at once
            if not self.running(name):
                self._check_ports(services[name])
        started: list[str] = []
        try:
            for name in names:
                service = services[name]
                if self.running(name):
                    echo(f"{name}: already running (pid {self.running(name)})")
                    continue
                self._check_ports(service)
                started.append(name)
                managed = self._self_supervised(name)
                if managed is not None:
                    self._start_self_supervised(name, managed, timeout)
                    echo(f"{name}: started (pid {self.running(name)}), log {self.log_file(name)}")
                else:
                    self._start(service)
                    echo(f"{name}: started (pid {self.running(name)}), log {self.log_file(name)}")
                    self._wait(service, timeout)
                echo(f"{name}: ready at {service.url}")
        except BaseException:
            self.down(started, echo=echo)  # what this call started; services already running stay up
            raise

    def _check_ports(self, service: Service) -> None:
        for port in (service.port, *service.more_ports):
            if _port_open(port):
                variables = [var for key, var in Ports.ENV.items() if getattr(self.ports, key) == port]
                raise StackError(f"{service.name}: port {port} on 127.0.0.1 is taken by another process; stop it or "
                                 f"choose another port ({' / '.join(variables) or 'CLICKML_*_PORT'})")

    @staticmethod
    def _start_self_supervised(name: str, managed: LocalKafka, timeout: float) -> None:
        """LocalKafka.start: formats on first use, starts, waits (bounded) until ready, cleans up on failure."""
        from pipelines.orchestration.kafka import KafkaError, PortTakenError

        managed.start_timeout = timeout
        try:
            managed.start()
        except PortTakenError as exc:
            raise StackError(f"{name}: {exc} (CLICKML_KAFKA_PORT / CLICKML_KAFKA_CONTROLLER_PORT choose others)") from exc
        except KafkaError as exc:
            raise StackError(f"{name}: {exc}") from exc

    def _start(self, service: Service) -> None:
        cwd = self.airflow_home if service.name == "airflow" else self.state_dir
        with open(self.log_file(service.name), "ab") as log:
            process = subprocess.Popen(service.argv, env={**service.env, "CLICKML_STACK_DIR": str(self.state_dir)},
                                       cwd=cwd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       start_new_session=True)
        self.pid_file(service.name).write_text(f"{process.pid} {_start_time(process.pid)}\n")

    def _wait(self, service: Service, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.running(service.name) is None:
                raise StackError(f"{service.name} exited during start-up; last lines of {self.log_file(service.name)}:\n"
                                 + self.log_tail(service.name))
            try:
                if service.ready():
                    return
            except (OSError, ValueError):
                pass
            time.sleep(0.5)  # each check is one local request or a /proc read
        raise StackError(f"{service.name} did not answer at {service.url} within {timeout:.0f} s; last lines of "
                         f"{self.log_file(service.name)}:\n" + self.log_tail(service.name))

    def log_tail(self, name: str, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file(name).read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def down(self, names: list[str] | tuple[str, ...] = ALL_SERVICES, echo: Callable[[str], None] = print,
             grace: float = 20.0) -> None:
        """Stop the services this state directory started (reverse order): their process groups and descendants."""
        for name in reversed(list(names)):
            pid = self.running(name)
            if pid is None:
                self.pid_file(name).unlink(missing_ok=True)
                continue
            managed = self._self_supervised(name)
            if managed is not None:
                managed.stop(grace)  # the same process-tree stop, and LocalKafka's own bookkeeping
            else:
                _stop_tree(pid, grace)
            self.pid_file(name).unlink(missing_ok=True)
            echo(f"{name}: stopped (pid {pid})")

    def summary(self) -> str:
        password = self.airflow_password() or "(see the airflow log)"
        services = self.services()
        lines = ["clickml local stack (127.0.0.1):"]
        labels = {"spark-master": f"Spark master   {self.master_url}  UI", "spark-worker": "Spark worker   UI",
                  "mlflow": "MLflow         UI", "airflow": "Airflow        UI",
                  S3_SERVICE: "S3 (moto)      endpoint", KAFKA_SERVICE: "Kafka          bootstrap servers",
                  REDIS_SERVICE: "Redis          online store"}
        for name, service in services.items():
            if name == S3_SERVICE and not self.lake_on_s3 and not self.running(name):
                continue
            state = "up" if self.running(name) else "down"
            lines.append(f"  {labels[name]:<44} {service.url}  [{state}]")
        lines.append(f"  Airflow login: admin / {password}")
        if self.running(KAFKA_SERVICE):
            lines.append(f"  Kafka topics (none is created on first use): python -m pipelines.orchestration.kafka "
                         f"create-topic clickstream --partitions 3 --dir {self.kafka_dir}; "
                         f"clickml reads CLICKML_KAFKA_BOOTSTRAP={self.kafka_bootstrap}")
        if self.lake_on_s3:
            lines.append("  lakehouse: s3a://clickml-lakehouse/local (in the S3 server's memory until make down); "
                         f"jobs: CLICKML_PROFILE={self.profile} with the env of `make up-env`")
        lines.append(f"  logs: {self.state_dir / 'logs'}   stop: make down")
        return "\n".join(lines)


def redis_server_binary() -> str:
    """Debian's `redis-server` (PATH, else /usr/bin/redis-server, which `up` reports as missing)."""
    import shutil

    return shutil.which("redis-server") or "/usr/bin/redis-server"


def _redis_ping(port: int) -> bool:
    """Redis answers PING with +PONG (inline command; no client library needed)."""
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(64).startswith(b"+PONG")


def find_java(error: type[Exception], what: str) -> str:
    """`$JAVA_HOME/bin/java`, else `java` on PATH; raises `error` (naming `what` needs it) when neither exists."""
    import shutil

    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return str(Path(home) / "bin" / "java")
    found = shutil.which("java")
    if not found:
        raise error(f"Java not found: {what} needs Java 17 or 21 (e.g. sudo apt-get install -y openjdk-17-jre-headless)")
    return found


def _descendants(pid: int) -> list[int]:
    try:
        import psutil

        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except Exception:  # noqa: BLE001 - psutil missing or the process is gone
        return []


def _stop_tree(pid: int, grace: float) -> None:
    """TERM the process group led by `pid` and every descendant; KILL what is left after `grace` s."""
    victims = [pid, *_descendants(pid)]
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        pass
    for child in victims:
        _signal(child, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_alive(p) for p in victims):
        time.sleep(0.5)
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    for child in victims:
        _signal(child, signal.SIGKILL)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (our own unreaped child) counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return True


def _start_time(pid: int) -> int:
    """The process start time (clock ticks since boot): with the pid, it identifies a process."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return 0


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _get(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.read().decode()
    except (urllib.error.URLError, OSError):
        return None


def _post_json(url: str, payload: dict) -> str | None:
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.read().decode()
    except (urllib.error.URLError, OSError):
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.orchestration.stack", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["up", "down", "status", "env"])
    parser.add_argument("--state-dir", default=os.environ.get("CLICKML_STACK_DIR", str(REPO_ROOT / ".stack")))
    parser.add_argument("--services", default=",".join(ALL_SERVICES), help="comma-separated subset, in start order")
    parser.add_argument("--lake", choices=["local", "s3"], default=os.environ.get("CLICKML_STACK_LAKE", "local"),
                        help="where the lakehouse lives: ./lakehouse, or the local S3 server (adds the s3 service)")
    parser.add_argument("--timeout", type=float, default=float(os.environ.get("CLICKML_STACK_TIMEOUT", "300")),
                        help="seconds each service may take to answer")
    args = parser.parse_args(argv)
    stack = Stack(Path(args.state_dir), Ports.from_env(), lake_on_s3=args.lake == "s3")
    names = [n.strip() for n in args.services.split(",") if n.strip()]
    if args.command == "up":
        try:
            stack.up(names, timeout=args.timeout)
        except StackError as exc:
            print(f"make up: {exc}", file=sys.stderr)
            return 1
        print(stack.summary())
    elif args.command == "down":
        stack.down([S3_SERVICE, *names])  # reverse order: the S3 server stops last
    elif args.command == "env":  # `eval "$(make -s up-env)"`: run clickml by hand against the stack
        env = {"CLICKML_PROFILE": stack.profile, **stack.s3_env(), **stack.kafka_env(), **stack.redis_env()}
        if not stack.lake_on_s3:
            env.update({"CLICKML_SPARK_MASTER": stack.master_url, "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{stack.ports.mlflow}"})
        print("\n".join(f"export {k}={v}" for k, v in env.items()))
    else:
        print(stack.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
