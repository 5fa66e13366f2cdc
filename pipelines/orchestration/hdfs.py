"""A real single-node HDFS on 127.0.0.1: one NameNode and one DataNode JVM, for tests and `make hdfs-up`.

    python -m pipelines.orchestration.hdfs up     [--dir .stack/hdfs] [--port 9000] [--http-port 9870]
    python -m pipelines.orchestration.hdfs status [--dir .stack/hdfs]
    python -m pipelines.orchestration.hdfs down   [--dir .stack/hdfs]

The two daemons are the Hadoop classes themselves (`org.apache.hadoop.hdfs.server.namenode.NameNode`,
`...datanode.DataNode`), started with `java -cp <conf>:<jars of jvm/pom.xml's hdfs profile>` (see
`pipelines.spark.jars.hdfs_classpath`; `make jars` resolves them). Everything lives in one folder:

    <dir>/conf/        core-site.xml, hdfs-site.xml, log4j.properties (first on the classpath)
    <dir>/name/        the NameNode's metadata (formatted on the first start only)
    <dir>/data/        the DataNode's blocks
    <dir>/logs/        namenode.log, datanode.log
    <dir>/pids/        <daemon>.pid: "pid start-time", so `down` stops exactly what `up` started
    <dir>/state.json   the ports and the URI (`uri` file: the URI alone)

Every address is 127.0.0.1. Readiness means: the NameNode's RPC port accepts, its JMX says
`NumLiveDataNodes >= 1` and it is out of safe mode. A port that is already taken fails before
anything starts; a daemon that dies or does not get ready in time fails with the tail of its log.
Spark needs no extra jars to use it (pyspark bundles the Hadoop 3.4 client): use `<uri>/some/path`
as `lake.root` / `landing.root`, with `LocalHdfs.client_settings()` for quick failure detection.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from pipelines.orchestration.stack import REPO_ROOT, _alive, _start_time, _stop_tree, find_java

NAMENODE_CLASS = "org.apache.hadoop.hdfs.server.namenode.NameNode"
DATANODE_CLASS = "org.apache.hadoop.hdfs.server.datanode.DataNode"
DAEMONS = ("namenode", "datanode")
HOST = "127.0.0.1"
DEFAULT_DIR = REPO_ROOT / ".stack" / "hdfs"

# Java 17+: Hadoop 3.4 reflects into these (the same list Hadoop's own scripts pass).
_JAVA_OPENS = [
    "--add-opens=java.base/java.lang=ALL-UNNAMED",
    "--add-opens=java.base/java.lang.reflect=ALL-UNNAMED",
    "--add-opens=java.base/java.io=ALL-UNNAMED",
    "--add-opens=java.base/java.net=ALL-UNNAMED",
    "--add-opens=java.base/java.nio=ALL-UNNAMED",
    "--add-opens=java.base/java.util=ALL-UNNAMED",
    "--add-opens=java.base/java.util.concurrent=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens=java.base/sun.security.x509=ALL-UNNAMED",
]

_LOG4J = """\
log4j.rootLogger=INFO,console
log4j.appender.console=org.apache.log4j.ConsoleAppender
log4j.appender.console.target=System.out
log4j.appender.console.layout=org.apache.log4j.PatternLayout
log4j.appender.console.layout.ConversionPattern=%d{ISO8601} %p %c{2}: %m%n
log4j.logger.org.apache.hadoop.hdfs.StateChange=WARN
log4j.logger.org.apache.hadoop.hdfs.server.namenode.FSNamesystem.audit=WARN
log4j.logger.BlockStateChange=WARN
log4j.logger.org.apache.hadoop.util.NativeCodeLoader=ERROR
log4j.logger.org.eclipse.jetty=WARN
"""


class HdfsError(RuntimeError):
    """HDFS could not be started, reached or stopped; the message names the daemon and its log."""


class PortTakenError(HdfsError):
    """A port the HDFS daemons need on 127.0.0.1 is already in use."""


@dataclass(frozen=True)
class HdfsPorts:
    namenode: int
    namenode_http: int
    datanode: int
    datanode_http: int
    datanode_ipc: int

    @classmethod
    def pick(cls, namenode: int | None = None, namenode_http: int | None = None) -> HdfsPorts:
        """Given ports as asked, free ones (chosen by the kernel) for the rest."""
        taken: set[int] = {p for p in (namenode, namenode_http) if p}
        free = []
        while len(free) < 5:
            port = free_port()
            if port not in taken:
                taken.add(port)
                free.append(port)
        return cls(namenode or free[0], namenode_http or free[1], free[2], free[3], free[4])

    def named(self) -> dict[str, int]:
        return asdict(self)


COMPLETE_FILE_DELAY_KEY = "dfs.client.block.write.locateFollowingBlock.initial.delay.ms"
COMPLETE_FILE_DELAY_MS = "20"
"""A client closing a file asks the NameNode whether it is complete; until the DataNode has
reported the last block it is not, and the client waits this long before asking again (doubling
each time). Hadoop's 400 ms default is made for busy clusters: here the only DataNode reports
within milliseconds, and a Delta write (data files, log, checkpoint) closes many small files. Ten
small partitioned appends took 14.8 s with the default and 4.3 s with 20 ms (2026-12-07)."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def port_taken(port: int) -> bool:
    """Whether something listens on (or holds) 127.0.0.1:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        if sock.connect_ex((HOST, port)) == 0:
            return True
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the daemons bind (SO_REUSEADDR): connections of a stopped daemon in TIME_WAIT do not count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return True
    return False


def _site_xml(properties: dict[str, str]) -> str:
    rows = "\n".join(f"  <property><name>{escape(k)}</name><value>{escape(str(v))}</value></property>"
                     for k, v in properties.items())
    return f'<?xml version="1.0"?>\n<configuration>\n{rows}\n</configuration>\n'


class LocalHdfs:
    """One NameNode + one DataNode in `folder`, on 127.0.0.1.

        with LocalHdfs(tmp_path / "hdfs") as hdfs:
            df.write.format("delta").save(f"{hdfs.uri}/lake/t")

    `port` / `http_port` pin the NameNode's RPC and web ports (a taken one raises PortTakenError);
    by default every port is a free one. The metadata survives stop/start in the same folder.
    """

    def __init__(self, folder: str | Path, port: int | None = None, http_port: int | None = None,
                 heap: str = "384m", java: str | None = None, classpath: str | None = None,
                 start_timeout: float = 120.0) -> None:
        self.folder = Path(folder).resolve()
        self.ports = HdfsPorts.pick(port, http_port)
        self._asked = {"namenode": port, "namenode_http": http_port}
        self.heap = heap
        self.java = java or java_executable()
        self._classpath = classpath
        self.start_timeout = start_timeout
        self._processes: dict[str, subprocess.Popen] = {}

    # -- addresses ---------------------------------------------------------------------------------
    @property
    def uri(self) -> str:
        return f"hdfs://{HOST}:{self.ports.namenode}"

    @property
    def http_url(self) -> str:
        return f"http://{HOST}:{self.ports.namenode_http}"

    @property
    def conf_dir(self) -> Path:
        return self.folder / "conf"

    def log_file(self, daemon: str) -> Path:
        return self.folder / "logs" / f"{daemon}.log"

    def pid_file(self, daemon: str) -> Path:
        return self.folder / "pids" / f"{daemon}.pid"

    def client_settings(self, retries: int = 1) -> dict[str, str]:
        """Hadoop client keys (without `spark.hadoop.`) for this one-DataNode cluster: never try
        to replace the only DataNode of a write pipeline, and give up on a NameNode that is gone
        after `retries` quick connection attempts instead of minutes of retrying; and ask the
        NameNode again after 20 ms, not 400 ms, whether a file just closed is complete (see
        `COMPLETE_FILE_DELAY_MS`)."""
        return {
            COMPLETE_FILE_DELAY_KEY: COMPLETE_FILE_DELAY_MS,
            "dfs.client.block.write.replace-datanode-on-failure.enable": "false",
            "dfs.client.use.datanode.hostname": "true",
            "ipc.client.connect.max.retries": str(retries),
            "ipc.client.connect.retry.interval": "200",
            "ipc.client.connect.timeout": "2000",
            "ipc.client.connect.max.retries.on.timeouts": str(retries),
            "dfs.client.retry.policy.enabled": "false",
            "dfs.client.failover.max.attempts": str(retries),
            "dfs.client.max.block.acquire.failures": "1",
        }

    # -- configuration -----------------------------------------------------------------------------
    def core_site(self) -> dict[str, str]:
        return {
            "fs.defaultFS": self.uri,
            "hadoop.tmp.dir": str(self.folder / "tmp"),
            "hadoop.security.authentication": "simple",
            "hadoop.http.staticuser.user": os.environ.get("USER", "clickml"),
            "ipc.client.connect.max.retries": "3",
            "ipc.client.connect.retry.interval": "500",
        }

    def hdfs_site(self) -> dict[str, str]:
        p = self.ports
        return {
            "dfs.namenode.name.dir": (self.folder / "name").as_uri(),
            "dfs.datanode.data.dir": (self.folder / "data").as_uri(),
            "dfs.namenode.rpc-address": f"{HOST}:{p.namenode}",
            "dfs.namenode.http-address": f"{HOST}:{p.namenode_http}",
            "dfs.namenode.https-address": f"{HOST}:0",
            "dfs.namenode.secondary.http-address": f"{HOST}:0",
            "dfs.namenode.backup.address": f"{HOST}:0",
            "dfs.namenode.backup.http-address": f"{HOST}:0",
            "dfs.datanode.address": f"{HOST}:{p.datanode}",
            "dfs.datanode.http.address": f"{HOST}:{p.datanode_http}",
            "dfs.datanode.ipc.address": f"{HOST}:{p.datanode_ipc}",
            "dfs.datanode.https.address": f"{HOST}:0",
            "dfs.datanode.hostname": HOST,
            "dfs.client.use.datanode.hostname": "true",
            "dfs.datanode.use.datanode.hostname": "true",
            "dfs.namenode.datanode.registration.ip-hostname-check": "false",
            "dfs.replication": "1",
            "dfs.namenode.replication.min": "1",
            "dfs.permissions.enabled": "false",
            "dfs.namenode.acls.enabled": "false",
            # Leave safe mode as soon as the DataNode has reported every block (an empty namespace:
            # at once; after a restart: when the files are readable again), with no extra 30 s wait.
            # (0.999 would be 0 blocks of a namespace under 1000 blocks: the threshold is truncated.)
            "dfs.namenode.safemode.threshold-pct": "1.0",
            "dfs.namenode.safemode.min.datanodes": "0",
            "dfs.namenode.safemode.extension": "0",
            # A shared laptop / CI disk: do not reserve (or demand) 100 MB of free space.
            "dfs.datanode.du.reserved": "0",
            "dfs.namenode.resource.du.reserved": str(16 * 1024 * 1024),
            "dfs.blocksize": str(32 * 1024 * 1024),
            # Register and notice a gone DataNode quickly.
            "dfs.heartbeat.interval": "1",
            "dfs.namenode.heartbeat.recheck-interval": "10000",
            "dfs.datanode.directoryscan.interval": "3600",
            "dfs.namenode.handler.count": "8",
            "dfs.namenode.service.handler.count": "4",
            "dfs.datanode.handler.count": "4",
            "dfs.namenode.edits.noeditlogchannelflush": "true",
            "dfs.webhdfs.enabled": "true",
            "dfs.client.block.write.replace-datanode-on-failure.enable": "false",
            COMPLETE_FILE_DELAY_KEY: COMPLETE_FILE_DELAY_MS,
        }

    def write_conf(self) -> None:
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        (self.conf_dir / "core-site.xml").write_text(_site_xml(self.core_site()))
        (self.conf_dir / "hdfs-site.xml").write_text(_site_xml(self.hdfs_site()))
        (self.conf_dir / "log4j.properties").write_text(_LOG4J)
        # The daemons' HTTP servers (JMX, WebHDFS) look up `webapps/<name>` on the classpath; the
        # Maven jars do not carry the UI's static pages, so empty apps stand in (the conf dir is on
        # the classpath): /jmx, /conf, /stacks and /webhdfs work, the HTML overview pages do not.
        for app in ("hdfs", "datanode", "secondary", "static"):
            (self.conf_dir / "webapps" / app).mkdir(parents=True, exist_ok=True)

    def classpath(self) -> str:
        if self._classpath is None:
            from pipelines.spark.jars import JarsMissingError, hdfs_classpath

            try:
                self._classpath = hdfs_classpath()
            except JarsMissingError as exc:
                raise HdfsError(f"cannot start HDFS: {exc}") from exc
        return f"{self.conf_dir}{os.pathsep}{self._classpath}"

    def command(self, main_class: str, *args: str) -> list[str]:
        return [
            self.java, f"-Xmx{self.heap}", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
            "-Djava.net.preferIPv4Stack=true", f"-Dhadoop.log.dir={self.folder / 'logs'}",
            f"-Dhadoop.home.dir={self.folder}", f"-Dhadoop.tmp.dir={self.folder / 'tmp'}",
            f"-Dlog4j.configuration=file:{self.conf_dir / 'log4j.properties'}",
            *_JAVA_OPENS, "-cp", self.classpath(), main_class, *args,
        ]

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["HADOOP_CONF_DIR"] = str(self.conf_dir)
        env.pop("HADOOP_HOME", None)
        return env

    # -- lifecycle ---------------------------------------------------------------------------------
    def formatted(self) -> bool:
        return (self.folder / "name" / "current" / "VERSION").exists()

    def format(self, timeout: float = 120.0) -> None:
        """`hdfs namenode -format -nonInteractive -force`: a new, empty namespace (and no blocks)."""
        self._prepare()
        shutil.rmtree(self.folder / "data", ignore_errors=True)
        log = self.log_file("format")
        with open(log, "wb") as out:
            try:
                done = subprocess.run(self.command(NAMENODE_CLASS, "-format", "-nonInteractive", "-force"),
                                      env=self.env(), cwd=self.folder, stdout=out, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, timeout=timeout)
            except subprocess.TimeoutExpired as exc:
                raise HdfsError(f"formatting the NameNode took over {timeout:.0f} s; last lines of {log}:\n"
                                + _tail(log)) from exc
        if done.returncode != 0 or not self.formatted():
            raise HdfsError(f"formatting the NameNode failed (exit {done.returncode}); last lines of {log}:\n" + _tail(log))

    def _prepare(self) -> None:
        for sub in ("logs", "pids", "tmp", "name", "data"):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)
        self.write_conf()

    def _check_ports(self, names: tuple[str, ...]) -> None:
        for name in names:
            port = self.ports.named()[name]
            if port_taken(port):
                pinned = self._asked.get(name)
                hint = ("stop what holds it or pass another port" if pinned
                        else "it was free a moment ago; try again")
                raise PortTakenError(f"HDFS {name.replace('_', ' ')} port {HOST}:{port} is already in use; {hint}")

    def _repick_free_ports(self, names: tuple[str, ...]) -> None:
        """Ports that were not pinned and were taken since they were picked get fresh ones."""
        current = self.ports.named()
        for name in names:
            if not self._asked.get(name) and port_taken(current[name]):
                current[name] = free_port()
        self.ports = HdfsPorts(**current)

    def start(self) -> LocalHdfs:
        """Format on first use, start the NameNode then the DataNode, wait until HDFS takes writes."""
        try:
            self._repick_free_ports(tuple(self.ports.named()))
            self._check_ports(tuple(self.ports.named()))
            self._prepare()
            if not self.formatted():
                self.format()
            self.start_namenode(wait=False)
            self.start_datanode()
            self.wait_ready(self.start_timeout)
        except BaseException:
            self.stop()
            raise
        self.write_state()
        return self

    def start_namenode(self, wait: bool = True) -> None:
        """Start the NameNode (again, on the same ports and metadata, e.g. after `stop_namenode`)."""
        if self.running("namenode"):
            return
        self._check_ports(("namenode", "namenode_http"))
        self._prepare()
        self._spawn("namenode", NAMENODE_CLASS)
        if wait:
            self.wait_ready(self.start_timeout)

    def start_datanode(self) -> None:
        if self.running("datanode"):
            return
        self._repick_free_ports(("datanode", "datanode_http", "datanode_ipc"))
        self._check_ports(("datanode", "datanode_http", "datanode_ipc"))
        self._prepare()
        self._spawn("datanode", DATANODE_CLASS)

    def _spawn(self, daemon: str, main_class: str) -> None:
        with open(self.log_file(daemon), "ab") as log:
            process = subprocess.Popen(self.command(main_class), env=self.env(), cwd=self.folder, stdout=log,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        self._processes[daemon] = process
        self.pid_file(daemon).write_text(f"{process.pid} {_start_time(process.pid)}\n")

    def running(self, daemon: str) -> int | None:
        """The pid of a daemon that this folder started and that is still alive, else None."""
        path = self.pid_file(daemon)
        try:
            pid, started = (int(x) for x in path.read_text().split()[:2])
        except (OSError, ValueError):
            return None
        process = self._processes.get(daemon)
        if process is not None and process.pid == pid and process.poll() is not None:
            return None
        if not _alive(pid) or _start_time(pid) != started:
            return None
        return pid

    def stop_namenode(self, grace: float = 15.0) -> None:
        self._stop("namenode", grace)

    def stop_datanode(self, grace: float = 15.0) -> None:
        self._stop("datanode", grace)

    def restart_namenode(self) -> None:
        self.stop_namenode()
        self.start_namenode(wait=True)

    def _stop(self, daemon: str, grace: float) -> None:
        pid = self.running(daemon)
        if pid is not None:
            _stop_tree(pid, grace)
        process = self._processes.pop(daemon, None)
        if process is not None:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
        self.pid_file(daemon).unlink(missing_ok=True)

    def stop(self, grace: float = 15.0) -> None:
        """Stop the DataNode and the NameNode (TERM, then KILL after `grace` s); the data stays."""
        for daemon in reversed(DAEMONS):
            self._stop(daemon, grace)

    def __enter__(self) -> LocalHdfs:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- readiness ---------------------------------------------------------------------------------
    def namenode_state(self) -> dict | None:
        """The NameNode's FSNamesystemState bean (NumLiveDataNodes, FSState, ...), or None."""
        url = f"{self.http_url}/jmx?qry=Hadoop:service=NameNode,name=FSNamesystemState"
        try:
            with urllib.request.urlopen(url, timeout=3) as response:
                beans = json.loads(response.read()).get("beans", [])
        except (urllib.error.URLError, OSError, ValueError):
            return None
        return beans[0] if beans else None

    def ready(self) -> bool:
        if not _connects(self.ports.namenode):
            return False
        state = self.namenode_state()
        # Live DataNode, its storage reported (CapacityTotal: writes can be placed), out of safe mode.
        return bool(state and state.get("NumLiveDataNodes", 0) >= 1 and state.get("CapacityTotal", 0) > 0
                    and state.get("FSState") == "Operational")

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            for daemon in DAEMONS:
                if self.running(daemon) is None:
                    raise HdfsError(f"the HDFS {daemon} exited during start-up; last lines of {self.log_file(daemon)}:\n"
                                    + _tail(self.log_file(daemon)))
            if self.ready():
                return
            if time.monotonic() > deadline:
                state = self.namenode_state()
                raise HdfsError(
                    f"HDFS at {self.uri} not ready within {timeout:.0f} s (NameNode RPC "
                    f"{'accepts' if _connects(self.ports.namenode) else 'does not accept'}, JMX state "
                    f"{ {k: state.get(k) for k in ('FSState', 'NumLiveDataNodes', 'CapacityTotal', 'BlocksTotal')} if state else 'unavailable'}); "
                    "safe mode is left once the DataNode has reported every block of the namespace"
                    + "".join(f"\nlast lines of {self.log_file(d)}:\n{_tail(self.log_file(d))}" for d in DAEMONS))
            time.sleep(0.5)

    # -- the folder's state (for the CLI) ----------------------------------------------------------
    def write_state(self) -> None:
        state = {"uri": self.uri, "http": self.http_url, "ports": self.ports.named(),
                 "pids": {d: self.running(d) for d in DAEMONS}}
        (self.folder / "state.json").write_text(json.dumps(state, indent=1) + "\n")
        (self.folder / "uri").write_text(self.uri + "\n")

    @classmethod
    def from_folder(cls, folder: str | Path) -> LocalHdfs:
        """The HDFS of a folder that `up` wrote state.json into (same ports)."""
        folder = Path(folder).resolve()
        try:
            ports = json.loads((folder / "state.json").read_text())["ports"]
        except (OSError, ValueError, KeyError) as exc:
            raise HdfsError(f"no HDFS state in {folder} (state.json): was it started with `up`?") from exc
        hdfs = cls(folder, port=ports["namenode"], http_port=ports["namenode_http"])
        hdfs.ports = HdfsPorts(**ports)
        return hdfs


def java_executable() -> str:
    """`$JAVA_HOME/bin/java`, else `java` on PATH; raises HdfsError when neither exists."""
    return find_java(HdfsError, "HDFS")


def _connects(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        return sock.connect_ex((HOST, port)) == 0


def _tail(path: Path, lines: int = 40, width: int = 400) -> str:
    try:
        return "\n".join(line if len(line) <= width else line[:width] + " [...]"
                         for line in path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def main(argv: list[str] | None = None, echo: Callable[[str], None] = print) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.orchestration.hdfs", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--dir", default=os.environ.get("CLICKML_HDFS_DIR", str(DEFAULT_DIR)))
    parser.add_argument("--port", type=int, default=int(os.environ.get("CLICKML_HDFS_PORT", "9000")),
                        help="NameNode RPC port (the hdfs:// URI)")
    parser.add_argument("--http-port", type=int, default=int(os.environ.get("CLICKML_HDFS_HTTP_PORT", "9870")),
                        help="NameNode web UI / JMX port")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds HDFS may take to get ready")
    args = parser.parse_args(argv)
    folder = Path(args.dir).resolve()
    try:
        if args.command == "up":
            if (folder / "state.json").exists():
                existing = LocalHdfs.from_folder(folder)
                if existing.running("namenode") and existing.running("datanode"):
                    echo(f"hdfs: already running at {existing.uri} (pids "
                         f"{existing.running('namenode')}, {existing.running('datanode')})")
                    _print_usage(existing, echo)
                    return 0
                existing.stop()  # a half-running pair from an earlier `up`
            hdfs = LocalHdfs(folder, port=args.port, http_port=args.http_port, start_timeout=args.timeout)
            hdfs.start()
            echo(f"hdfs: NameNode pid {hdfs.running('namenode')}, DataNode pid {hdfs.running('datanode')}; "
                 f"logs in {folder / 'logs'}; UI {hdfs.http_url}")
            _print_usage(hdfs, echo)
        elif args.command == "down":
            if not (folder / "state.json").exists():
                echo(f"hdfs: nothing to stop in {folder}")
                return 0
            hdfs = LocalHdfs.from_folder(folder)
            pids = {d: hdfs.running(d) for d in DAEMONS}
            hdfs.stop()
            for daemon, pid in pids.items():
                echo(f"hdfs {daemon}: {'stopped (pid %d)' % pid if pid else 'not running'}")
        else:
            if not (folder / "state.json").exists():
                echo(f"hdfs: not started in {folder}")
                return 1
            hdfs = LocalHdfs.from_folder(folder)
            pids = {d: hdfs.running(d) for d in DAEMONS}
            state = hdfs.namenode_state() if pids["namenode"] else None
            echo(f"hdfs at {hdfs.uri} (UI {hdfs.http_url}):")
            for daemon, pid in pids.items():
                echo(f"  {daemon}: {'up, pid %d' % pid if pid else 'down'}")
            if state:
                echo(f"  FSState {state.get('FSState')}, live DataNodes {state.get('NumLiveDataNodes')}")
            return 0 if all(pids.values()) else 1
    except HdfsError as exc:
        print(f"hdfs {args.command}: {exc}", file=sys.stderr)
        return 1
    return 0


def _print_usage(hdfs: LocalHdfs, echo: Callable[[str], None]) -> None:
    echo(f"hdfs: ready at {hdfs.uri}")
    echo(f"  export CLICKML_LAKEHOUSE={hdfs.uri}/clickml/lakehouse CLICKML_LANDING={hdfs.uri}/clickml/landing")
    echo(f"  (or: .venv/bin/clickml --set lake.root={hdfs.uri}/clickml/lakehouse "
         f"--set landing.root={hdfs.uri}/clickml/landing ...)")
    echo("  MLflow's default store lives under a local lake.root only: also set e.g. "
         "--set mlflow.tracking_uri=sqlite:///$PWD/mlflow.db --set mlflow.artifact_root=$PWD/mlruns")
    echo(f"  small files close faster with --set 'spark.conf={{\"spark.hadoop.{COMPLETE_FILE_DELAY_KEY}\": "
         f"\"{COMPLETE_FILE_DELAY_MS}\"}}' (see pipelines/orchestration/hdfs.py)")
    echo("  stop: make hdfs-down")


if __name__ == "__main__":
    sys.exit(main())
