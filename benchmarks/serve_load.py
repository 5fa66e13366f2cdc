"""Load on the model server (`clickml serve`) over loopback: throughput and p50/p95/p99 latency of
`POST /score` at several request rates, with the online features read from a real Redis.

    nice -n 19 .venv/bin/python benchmarks/serve_load.py --users 300 --rates 50,100 --seconds 5   # quick
    .venv/bin/python benchmarks/serve_load.py                                  # 50,100,200,400 req/s, 20 s each
    .venv/bin/python benchmarks/serve_load.py --kind shadow                    # every variant scores every request
    .venv/bin/python benchmarks/serve_load.py --config my.yaml --json out.json # a lake of yours, model registered

Target (issue): p99 under 20 ms at 200 requests/s on a 2-core machine.

- **Setup.** A `redis-server` (Debian's, on PATH) on a free port of 127.0.0.1 without persistence,
  in a temporary folder. Without `--config`, a small pipeline in-process in that folder (generate
  -> ingest -> silver -> features -> training sets -> train `propensity`/`lr`, `--users` users);
  with `--config FILE`, that config's lake and registry (it must hold a registered propensity
  model). Then `materialize.run(config, spark, "propensity", force=True)` into our Redis, and
  Spark (and its JVM) is stopped before any load is sent.
- **The server** is the real `clickml --config ... serve` process: a user config YAML in the
  temporary folder points `serving.redis_url` at our Redis, the landing zone (where the
  exposures go) and clickml's log folder into the folder, and defines the experiment
  `serve_bench` on the propensity job: two variants that both name the same registered version (`--version`, default the latest) -
  kind `ab` (a sticky hash split) or `shadow` (the control answers, the other variant also
  scores every request: the cost of scoring every variant). With `--config FILE`, clickml takes
  that file as its `--config` and the benchmark's settings as `--set` overrides (one config file
  per command). Stopped with SIGTERM at the end (then killed after a bounded wait).
- **Open-loop load.** Per rate, request i is due at t0 + i / rate, for `--seconds` or at most
  `--max-requests`, whichever comes first, whether or not earlier answers came back. Requests go
  over a pool of persistent HTTP/1.1 keep-alive connections (raw asyncio streams, uvloop when
  installed); when every connection is busy another is opened, up to `--max-connections`, after
  that a request waits for one. **Latency** counts from the scheduled time (no coordinated
  omission: time spent waiting for a connection or behind a late client counts); **service** time
  from the actual send. User ids: the materialized users (SCAN of `<prefix>:propensity:features:*`)
  and a share `--unknown-share` of never-seen ids (the default-feature path). Non-200 answers and
  timeouts are errors (a few printed). A warm-up (`--warmup` seconds at the first rate) is not counted.
- **The client shares the machine with the server** (2 cores: uvicorn, the scoring threads, Redis
  and this client); `lag max` in the table is how late the client itself started a request
  (the largest delay between a due time and the event loop running that request): large values
  mean the client, not only the server, fell behind (waiting for a free connection is not in it;
  it is in the latency).

Printed: per rate the requests sent, achieved throughput, latency p50/p95/p99/max (ms), service
p50/p99, errors, peak connections, answers on the default features (`default`); the server's
own view from `/metrics` (request count, mean and the histogram's p50/p99 bucket per rate); the
feature fallbacks; and whether the target was met.
`--json PATH` writes the numbers too.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import datetime as dt
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

JOB = "propensity"
EXPERIMENT = "serve_bench"
TARGET_RATE, TARGET_P99_MS = 200.0, 20.0
HOST = "127.0.0.1"
GENERATED_DAYS = 4
REDIS_START_S, SERVER_STOP_S, PROCESS_STOP_S = 20.0, 30.0, 10.0
UNKNOWN_PREFIX = "bench-never-seen-"


class BenchError(RuntimeError):
    """The benchmark cannot run as asked; the message says why and what to do."""


def step(started: float, message: str) -> None:
    print(f"[{time.monotonic() - started:7.1f}s] {message}", flush=True)


# -- processes ---------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def stop_process(proc: subprocess.Popen | None, timeout: float, sig: int = signal.SIGTERM) -> int | None:
    """Signal `proc`, wait up to `timeout`, then kill it; its exit code."""
    if proc is None:
        return None
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=PROCESS_STOP_S)
    return proc.returncode


def tail(path: Path, chars: int = 3000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.is_file() else ""


def start_redis(folder: Path) -> tuple[subprocess.Popen, str]:
    """Debian's redis-server on a free loopback port, no RDB/AOF; waits (bounded) for PING."""
    import redis

    binary = shutil.which("redis-server")
    if binary is None:
        raise BenchError("redis-server is not on PATH: apt-get install redis-server")
    folder.mkdir(parents=True, exist_ok=True)
    port, log_path = free_port(), folder / "redis.log"
    command = [binary, "--bind", HOST, "--port", str(port), "--save", "", "--appendonly", "no",
               "--dir", str(folder), "--logfile", str(log_path), "--daemonize", "no"]
    proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    url = f"redis://{HOST}:{port}/0"
    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    deadline = time.monotonic() + REDIS_START_S
    try:
        while True:
            try:
                if client.ping():
                    return proc, url
            except redis.RedisError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"redis-server did not answer PING on {url} within {REDIS_START_S:.0f}s "
                                 f"(exit code {proc.poll()}): {tail(log_path)}")
            time.sleep(0.05)
    except BaseException:
        stop_process(proc, PROCESS_STOP_S)
        raise
    finally:
        client.close()


def http_get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")


def start_server(command: list[str], env: dict, log_path: Path, port: int, timeout: float) -> subprocess.Popen:
    """`clickml ... serve` as a process (output into `log_path`); waits (bounded) for /health == 200."""
    log_file = open(log_path, "wb")
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT)
    log_file.close()
    deadline = time.monotonic() + timeout
    try:
        while True:
            if proc.poll() is not None:
                raise BenchError(f"clickml serve exited ({proc.returncode}) before answering /health:\n{tail(log_path)}")
            try:
                status, _ = http_get(f"http://{HOST}:{port}/health", timeout=2)
                if status == 200:
                    return proc
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise BenchError(f"clickml serve did not answer /health with 200 within {timeout:.0f}s:\n{tail(log_path)}")
            time.sleep(0.5)
    except BaseException:
        stop_process(proc, SERVER_STOP_S)
        raise


# -- setup: the pipeline, the registry, the online store ------------------------------------------

def clean_env() -> dict[str, str]:
    """The environment without CLICKML_* settings (the benchmark's config says everything)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("CLICKML_")}


def pipeline_settings(work: Path, users: int, seed: int, redis_url: str) -> dict:
    """The self-contained config (a user config file): lake, landing, MLflow under `work`, a small
    clickstream, lr without search, the store on our Redis."""
    return {
        "lake": {"root": str(work / "lakehouse")},
        "landing": {"root": str(work / "landing")},
        "mlflow": {"tracking_uri": f"sqlite:///{work / 'mlflow.db'}", "artifact_root": str(work / "mlruns")},
        "spark": {"master": "local[2]", "shuffle_partitions": 2},
        "generator": {"users": users, "days": GENERATED_DAYS, "seed": seed, "bad_records": {"share": 0.0}, "late_share": 0.0},
        "training_sets": {"propensity": {"horizon_days": 1, "min_history_days": 1}, "implicit": {"test_days": 1}},
        "training": {"jobs": {JOB: {"models": {"lr": {"search": {"method": "none"}, "params": {"maxIter": 10}}}}}},
        "serving": {"redis_url": redis_url},
        "logging": {"dir": str(work / "logs")},
    }


def experiment_settings(kind: str, version: str) -> dict:
    """Experiment `serve_bench` on the propensity job: two variants, both the same registered version."""
    return {EXPERIMENT: {"job": JOB, "kind": kind,
                         "variants": {"control": {"version": int(version)}, "treatment": {"version": int(version)}}}}


def flatten(data: dict, prefix: str = "") -> list[str]:
    """Nested settings as `--set key.path=value` overrides (values as YAML/JSON)."""
    out = []
    for key, value in data.items():
        path = f"{prefix}{key}"
        out += flatten(value, path + ".") if isinstance(value, dict) else [f"{path}={json.dumps(value)}"]
    return out


def write_yaml(path: Path, data: dict) -> None:
    import yaml

    path.write_text(yaml.safe_dump(data, sort_keys=False))


def run_pipeline(config, spark, started: float) -> None:
    """generate -> ingest -> silver -> features -> training sets -> train propensity/lr (as
    tests/services/baseline.py), one progress line per step."""
    from pipelines import generate, ingest, silver
    from pipelines.features import stage as features_stage
    from pipelines.train import stage as train_stage
    from pipelines.training_sets import stage as training_sets_stage

    begin = dt.datetime.combine(config.generator.start_date, dt.time(), dt.timezone.utc)
    end = begin + dt.timedelta(days=config.generator.days + 2)
    steps = [("generate", lambda: generate.run(config, spark)),
             ("ingest", lambda: ingest.run(config, spark, None, begin, end)),
             ("silver", lambda: silver.run(config, spark)),
             ("features", lambda: features_stage.run(config, spark)),
             ("training sets", lambda: training_sets_stage.run(config, spark)),
             ("train propensity/lr", lambda: train_stage.run(config, spark, jobs=[JOB], models=["lr"]))]
    for name, action in steps:
        mark = time.monotonic()
        action()
        step(started, f"{name}: {time.monotonic() - mark:.1f}s")


def registered_versions(config) -> list[str]:
    """The registered versions of the propensity job's model, oldest first."""
    from mlflow import MlflowClient

    from pipelines.train.tracking import configure

    configure(config)
    name = config.training.jobs[JOB].registry.name
    return sorted((str(v.version) for v in MlflowClient().search_model_versions(f"name='{name}'")), key=int)


def stop_spark(spark) -> None:
    """Stop the SparkSession and the JVM behind it (it would share the cores with the load)."""
    from pyspark import SparkContext

    spark.stop()
    signal.signal(signal.SIGINT, signal.default_int_handler)  # PySpark's handler cancels jobs of a stopped context
    gateway = SparkContext._gateway
    if gateway is None:
        return
    proc = getattr(gateway, "proc", None)
    gateway.shutdown()
    SparkContext._gateway = SparkContext._jvm = None
    if proc is not None:
        if proc.stdin is not None:
            proc.stdin.close()  # the JVM's gateway server exits when its stdin closes
        try:
            proc.wait(timeout=PROCESS_STOP_S)
        except subprocess.TimeoutExpired:
            stop_process(proc, PROCESS_STOP_S)


def materialized_users(redis_url: str, prefix: str) -> list[str]:
    """The user ids of `<prefix>:propensity:features:*` (SCAN)."""
    import redis

    client = redis.Redis.from_url(redis_url, decode_responses=True, socket_timeout=5)
    try:
        head = f"{prefix}:{JOB}:features:"
        return sorted(key[len(head):] for key in client.scan_iter(match=head + "*", count=1000))
    finally:
        client.close()


# -- the load ----------------------------------------------------------------------------------

class ProtocolError(RuntimeError):
    """The server's answer is not HTTP/1.1 as expected."""


IDLE_REUSE_SECONDS = 4.0
"""An idle connection is reused only within this time: uvicorn closes keep-alive connections idle
for 5 s (`timeout_keep_alive`), and a request written just as it closes gets no answer (an
IncompleteReadError of 0 bytes, counted as an error, though the server never saw the request)."""


class Connection:
    """One keep-alive HTTP/1.1 connection: write a request, read one response."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer
        self.released = time.monotonic()

    async def exchange(self, request: bytes) -> tuple[int, bytes, bool]:
        """(status, body, reusable) of one request."""
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        try:
            status = int(head[9:12])
        except ValueError:
            raise ProtocolError(f"not an HTTP status line: {head[:60]!r}") from None
        length, chunked, reusable = None, False, True
        for line in head.lower().split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value:
                chunked = True
            elif name == b"connection" and b"close" in value:
                reusable = False
        if chunked:
            body = await self._chunks()
        elif length is not None:
            body = await self.reader.readexactly(length)
        else:
            raise ProtocolError("an answer without content-length or chunked encoding")
        return status, body, reusable

    async def _chunks(self) -> bytes:
        parts = []
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            parts.append(await self.reader.readexactly(size + 2))
            if size == 0:
                return b"".join(p[:-2] for p in parts)

    def close(self) -> None:
        self.writer.close()


class Pool:
    """Keep-alive connections: an idle one if any, else a new one up to `limit`, else wait."""

    def __init__(self, port: int, limit: int):
        self.port, self.limit = port, limit
        self.idle: list[Connection] = []
        self.waiters: collections.deque[asyncio.Future] = collections.deque()
        self.open = self.peak = self.opened = 0

    async def acquire(self) -> Connection:
        while self.idle:
            conn = self.idle.pop()  # the most recently used first
            if time.monotonic() - conn.released < IDLE_REUSE_SECONDS:
                return conn
            self.discard(conn)  # the server may be closing it right now: a request on it would be lost
        if self.open < self.limit:
            return await self._connect()
        waiter = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        try:
            conn = await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # handed over just as we gave up: pass it on
                self.release(waiter.result()) if waiter.result() is not None else self._free_slot()
            raise
        return conn if conn is not None else await self._connect()

    async def _connect(self) -> Connection:
        self.open += 1
        self.peak, self.opened = max(self.peak, self.open), self.opened + 1
        try:
            reader, writer = await asyncio.open_connection(HOST, self.port)
        except BaseException:
            self.open -= 1
            self._free_slot()
            raise
        return Connection(reader, writer)

    def release(self, conn: Connection) -> None:
        conn.released = time.monotonic()
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        self.idle.append(conn)

    def discard(self, conn: Connection) -> None:
        conn.close()
        self.open -= 1
        self._free_slot()

    def _free_slot(self) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # its owner opens a connection
                return

    def close(self) -> None:
        for conn in self.idle:
            conn.close()
        self.idle.clear()


@dataclass
class RateResult:
    """What one rate's run measured (times in ms)."""

    rate: float
    sent: int = 0
    ok: int = 0
    errors: int = 0
    seconds: float = 0.0
    """From the first due time to the last answer."""
    throughput: float = 0.0
    """Answers (any status) per second over `seconds`."""
    latency: dict[str, float] = field(default_factory=dict)
    """p50/p95/p99/max of every answered request, from its scheduled time."""
    service: dict[str, float] = field(default_factory=dict)
    """p50/p95/p99/max from the actual send."""
    client_lag_max_ms: float = 0.0
    default_features: int = 0
    """Answers scored on the default features (unknown users)."""
    variants: dict[str, int] = field(default_factory=dict)
    peak_connections: int = 0
    connections_opened: int = 0
    error_samples: list[str] = field(default_factory=list)
    server: dict = field(default_factory=dict)
    """The server's own view (/metrics deltas over this rate)."""


def percentiles(values: list[float]) -> dict[str, float]:
    """Nearest-rank p50/p95/p99 and the max (empty: {})."""
    if not values:
        return {}
    ordered = sorted(values)

    def rank(q: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]

    return {"p50": rank(0.50), "p95": rank(0.95), "p99": rank(0.99), "max": ordered[-1]}


def score_request(port: int, user_id: str) -> bytes:
    body = json.dumps({"user_id": user_id, "experiment": EXPERIMENT}).encode()
    return (f"POST /score HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def plan_requests(port: int, users: list[str], count: int, unknown_share: float, rng: random.Random,
                  serial: list[int]) -> list[bytes]:
    """`count` encoded requests: a known user, or (with probability `unknown_share`) a never-seen id."""
    out = []
    for _ in range(count):
        if not users or rng.random() < unknown_share:
            serial[0] += 1
            out.append(score_request(port, f"{UNKNOWN_PREFIX}{serial[0]}"))
        else:
            out.append(score_request(port, rng.choice(users)))
    return out


VARIANT = re.compile(rb'"variant":\s*"([^"]*)"')


async def run_rate(port: int, rate: float, requests: list[bytes], max_connections: int, timeout_s: float) -> RateResult:
    """Send `requests` open-loop (request i due at t0 + i / rate) and measure each answer."""
    pool = Pool(port, max_connections)
    result = RateResult(rate, sent=len(requests))
    latencies, services, ends, lags = [], [], [], []
    variants: collections.Counter = collections.Counter()

    async def one(request: bytes, due: float) -> None:
        conn = None
        lags.append(time.perf_counter() - due)  # how late the event loop ran this request's task
        try:
            async with asyncio.timeout(timeout_s):
                conn = await pool.acquire()
                sent = time.perf_counter()
                status, body, reusable = await conn.exchange(request)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ProtocolError, ValueError) as exc:
            if conn is not None:
                pool.discard(conn)
            result.errors += 1
            if len(result.error_samples) < 5:
                result.error_samples.append(f"{type(exc).__name__}: {exc}"[:200] or type(exc).__name__)
            return
        done = time.perf_counter()
        pool.release(conn) if reusable else pool.discard(conn)
        ends.append(done)
        latencies.append((done - due) * 1000)
        services.append((done - sent) * 1000)
        if status != 200:
            result.errors += 1
            if len(result.error_samples) < 5:
                result.error_samples.append(f"HTTP {status}: {body[:200].decode('utf-8', 'replace')}")
            return
        result.ok += 1
        if b'"features":"default"' in body:
            result.default_features += 1
        match = VARIANT.search(body)
        variants[match.group(1).decode() if match else "?"] += 1

    t0 = time.perf_counter() + 0.02
    tasks = []
    for i, request in enumerate(requests):
        due = t0 + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(request, due)))
    await asyncio.wait(tasks, timeout=timeout_s + 5)  # each request is bounded by timeout_s already
    pool.close()
    result.seconds = (max(ends) - t0) if ends else 0.0
    result.throughput = len(ends) / result.seconds if result.seconds > 0 else 0.0
    result.latency, result.service = percentiles(latencies), percentiles(services)
    result.client_lag_max_ms = max(lags, default=0.0) * 1000
    result.variants = dict(variants)
    result.peak_connections, result.connections_opened = pool.peak, pool.opened
    return result


# -- the server's view: /metrics ------------------------------------------------------------------

LABELS = re.compile(r'(\w+)="([^"]*)"')


def scrape(port: int) -> dict:
    """The /score series of /metrics: latency buckets (le -> cumulative, summed over variants), the
    latency sum, requests by status; and the feature fallbacks."""
    status, text = http_get(f"http://{HOST}:{port}/metrics")
    if status != 200:
        raise BenchError(f"/metrics answered {status}: {text[:300]}")
    view = {"buckets": collections.Counter(), "sum": 0.0, "status": collections.Counter(), "fallbacks": {}}
    for line in text.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        series, value = line.rsplit(" ", 1)
        labels = dict(LABELS.findall(series))
        name = series.split("{", 1)[0]
        if name == "clickml_feature_fallbacks_total":
            view["fallbacks"][f"{labels.get('job')}/{labels.get('kind')}"] = int(float(value))
        if labels.get("endpoint") != "score":
            continue
        if name == "clickml_request_latency_seconds_bucket":
            view["buckets"][labels["le"]] += float(value)
        elif name == "clickml_request_latency_seconds_sum":
            view["sum"] += float(value)
        elif name == "clickml_requests_total":
            view["status"][labels["status"]] += int(float(value))
    return view


def server_delta(before: dict, after: dict) -> dict:
    """The server's /score requests between two scrapes: count, mean and the histogram bucket that
    holds the p50 / p99 (an upper bound, ms)."""
    buckets = {le: after["buckets"][le] - before["buckets"].get(le, 0) for le in after["buckets"]}
    count = buckets.get("+Inf", 0)
    bounds = sorted(((float(le), n) for le, n in buckets.items()), key=lambda b: b[0])

    def bucket(q: float) -> str:
        for bound, n in bounds:
            if n >= q * count:
                return f"<={bound * 1000:g}" if bound != float("inf") else f">{bounds[-2][0] * 1000:g}"
        return "-"

    status = {s: after["status"][s] - before["status"].get(s, 0) for s in after["status"]}
    return {"requests": int(count), "mean_ms": (after["sum"] - before["sum"]) / count * 1000 if count else None,
            "p50_bucket_ms": bucket(0.5) if count else "-", "p99_bucket_ms": bucket(0.99) if count else "-",
            "status": {s: n for s, n in status.items() if n}}


# -- report ------------------------------------------------------------------------------------

def _ms(values: dict, key: str) -> str:
    return f"{values[key]:.1f}" if key in values else "-"


def report(results: list[RateResult], kind: str, users: int, version: str, unknown_share: float) -> list[str]:
    lines = [f"clickml serve, POST /score, experiment kind {kind} (both variants v{version}), {users} materialized "
             f"users + {unknown_share:.0%} never-seen ids; latency from the scheduled send (open loop), ms",
             f"{'rate/s':>7} {'sent':>6} {'ok':>6} {'errors':>6} {'achieved/s':>10} {'p50':>7} {'p95':>7} {'p99':>7} "
             f"{'max':>7} {'svc p50':>7} {'svc p99':>7} {'lag max':>7} {'conns':>5} {'default':>7}"]
    for r in results:
        lines.append(f"{r.rate:>7g} {r.sent:>6} {r.ok:>6} {r.errors:>6} {r.throughput:>10.1f} {_ms(r.latency, 'p50'):>7} "
                     f"{_ms(r.latency, 'p95'):>7} {_ms(r.latency, 'p99'):>7} {_ms(r.latency, 'max'):>7} "
                     f"{_ms(r.service, 'p50'):>7} {_ms(r.service, 'p99'):>7} {r.client_lag_max_ms:>7.1f} "
                     f"{r.peak_connections:>5} {r.default_features:>7}")
    lines.append("server's view (/metrics, clickml_request_latency_seconds of /score; time inside the handler):")
    lines.append(f"{'rate/s':>7} {'requests':>8} {'mean ms':>8} {'p50 bucket':>10} {'p99 bucket':>10}  status")
    for r in results:
        s = r.server
        mean = f"{s['mean_ms']:.2f}" if s.get("mean_ms") is not None else "-"
        lines.append(f"{r.rate:>7g} {s.get('requests', 0):>8} {mean:>8} {s.get('p50_bucket_ms', '-'):>10} "
                     f"{s.get('p99_bucket_ms', '-'):>10}  {s.get('status', {})}")
    for r in results:
        if r.error_samples:
            lines.append(f"errors at {r.rate:g}/s (first {len(r.error_samples)}): " + " | ".join(r.error_samples))
    lines.append("variants answered: " + "; ".join(f"{r.rate:g}/s {r.variants}" for r in results))
    lines.append(target_line(results))
    return lines


def target_line(results: list[RateResult]) -> str:
    at = [r for r in results if r.rate == TARGET_RATE]
    if not at:
        return f"target p99 < {TARGET_P99_MS:g} ms at {TARGET_RATE:g} req/s: not measured (add {TARGET_RATE:g} to --rates)"
    r = at[0]
    met = r.latency.get("p99", float("inf")) < TARGET_P99_MS and r.errors == 0
    return (f"target p99 < {TARGET_P99_MS:g} ms at {TARGET_RATE:g} req/s: {'MET' if met else 'NOT MET'} "
            f"(p99 {_ms(r.latency, 'p99')} ms, {r.errors} errors, {r.throughput:.1f} answers/s)")


# -- main --------------------------------------------------------------------------------------

def setup_store(args, work: Path, redis_url: str, started: float) -> tuple[object, str, list[str]]:
    """Build (or open) the lake, pick the model version, materialize into our Redis, stop Spark.
    Returns (config, version, clickml config arguments without the experiment)."""
    from pipelines.config import load_config
    from pipelines.serve import materialize
    from pipelines.spark import build_session

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # Spark's Python workers write to Redis
    if args.config:
        user_config = str(Path(args.config).resolve())
        bench = {"serving": {"redis_url": redis_url}, "landing": {"root": str(work / "landing")},
                 "logging": {"dir": str(work / "logs")}}
        config = load_config(user_config=user_config, overrides=flatten(bench))
        cli = ["--config", user_config] + [a for s in flatten(bench) for a in ("--set", s)]
    else:
        settings = pipeline_settings(work, args.users, args.seed, redis_url)
        write_yaml(work / "pipeline.yaml", settings)
        config = load_config(profile="local", user_config=work / "pipeline.yaml", env=clean_env())
        cli = []
    spark = build_session(config, extra={"spark.ui.enabled": "false"})
    try:
        spark.sparkContext.setLogLevel("ERROR")
        if not args.config:
            step(started, f"pipeline in {work} ({args.users} users x {GENERATED_DAYS} days)")
            run_pipeline(config, spark, started)
        versions = registered_versions(config)
        if not versions:
            raise BenchError(f"no registered version of {config.training.jobs[JOB].registry.name} in "
                             f"{config.mlflow.tracking_uri}: train the {JOB} job first (clickml train {JOB})")
        version = str(args.version or versions[-1])
        if version not in versions:
            raise BenchError(f"--version {version}: registered versions are {', '.join(versions)}")
        step(started, materialize.run(config, spark, JOB, force=True).report())
    finally:
        stop_spark(spark)
    step(started, "Spark stopped")
    return config, version, cli


def server_command(args, work: Path, config, version: str, cli: list[str], port: int) -> list[str]:
    """`clickml --config FILE [--set ...] serve --port P` with the experiment in the config."""
    clickml = Path(sys.executable).parent / "clickml"
    base = [str(clickml)] if clickml.is_file() else [sys.executable, "-m", "pipelines.cli"]
    experiments = {"experiments": experiment_settings(args.kind, version)}
    if args.config:
        cli = cli + [a for s in flatten(experiments) for a in ("--set", s)]
    else:
        settings = pipeline_settings(work, args.users, args.seed, config.serving.redis_url) | experiments
        write_yaml(work / "serve.yaml", settings)
        cli = ["--profile", "local", "--config", str(work / "serve.yaml")]
    return base + cli + ["serve", "--port", str(port), "--reload-seconds", "3600"] + ([] if args.access_log else ["--no-access-log"])


async def drive(args, port: int, users: list[str], started: float) -> list[RateResult]:
    """The warm-up, then every rate; /metrics scraped around each."""
    rng, serial = random.Random(args.seed), [0]
    rates = args.rates
    if args.warmup > 0:
        count = max(1, min(args.max_requests, int(rates[0] * args.warmup)))
        warm = await run_rate(port, rates[0], plan_requests(port, users, count, args.unknown_share, rng, serial),
                              args.max_connections, args.timeout)
        step(started, f"warm-up: {warm.ok}/{warm.sent} ok at {rates[0]:g}/s (not counted)")
    results = []
    for rate in rates:
        count = max(1, min(args.max_requests, int(rate * args.seconds)))
        requests = plan_requests(port, users, count, args.unknown_share, rng, serial)
        before = await asyncio.to_thread(scrape, port)
        result = await run_rate(port, rate, requests, args.max_connections, args.timeout)
        result.server = server_delta(before, await asyncio.to_thread(scrape, port))
        results.append(result)
        step(started, f"{rate:g}/s: {result.ok}/{result.sent} ok, p99 {_ms(result.latency, 'p99')} ms, "
                      f"{result.throughput:.1f}/s achieved")
        await asyncio.sleep(1.0)
    return results


def run_loop(coroutine):
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine), "asyncio"
    return uvloop.run(coroutine), "uvloop"


def exposure_lines(landing: Path) -> int:
    return sum(sum(1 for _ in open(p, "rb")) for p in landing.rglob("exposures-*.jsonl"))


def _interrupt(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="50,100,200,400", help="requests per second, comma-separated (default 50,100,200,400)")
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds per rate (default 20)")
    parser.add_argument("--max-requests", type=int, default=20_000, help="at most this many requests per rate (default 20000)")
    parser.add_argument("--warmup", type=float, default=3.0, help="warm-up seconds at the first rate, not counted (default 3)")
    parser.add_argument("--max-connections", type=int, default=64, help="keep-alive connections at most (default 64)")
    parser.add_argument("--timeout", type=float, default=10.0,
                        help="seconds a request may take before it is an error (default 10)")
    parser.add_argument("--unknown-share", type=float, default=0.05, help="share of never-seen user ids (default 0.05)")
    parser.add_argument("--access-log", action="store_true",
                        help="keep the server's log line per request (default: `clickml serve --no-access-log`)")
    parser.add_argument("--kind", choices=["ab", "shadow"], default="ab",
                        help="ab: a sticky split; shadow: every variant scores every request (default ab)")
    parser.add_argument("--users", type=int, default=1000, help="generated users of the self-contained pipeline (default 1000)")
    parser.add_argument("--seed", type=int, default=7, help="generator and user-choice seed (default 7)")
    parser.add_argument("--config", help="a clickml user config whose lake and registry hold a registered propensity model "
                                         "(default: build a small pipeline in the temporary folder)")
    parser.add_argument("--version", help="the registered model version both variants serve (default: the latest)")
    parser.add_argument("--start-timeout", type=float, default=300.0,
                        help="seconds to wait for the server's /health (default 300)")
    parser.add_argument("--workdir", help="default: a temporary folder (removed unless --keep)")
    parser.add_argument("--keep", action="store_true", help="keep the working folder (lake, logs, exposures)")
    parser.add_argument("--json", help="also write the numbers to this JSON file")
    args = parser.parse_args(argv)
    try:
        args.rates = [float(r) for r in args.rates.split(",") if r.strip()]
    except ValueError:
        parser.error(f"--rates: comma-separated numbers, got {args.rates!r}")
    if not args.rates or min(args.rates) <= 0:
        parser.error("--rates: give at least one positive rate")
    if not 0 <= args.unknown_share <= 1:
        parser.error("--unknown-share must be between 0 and 1")
    if args.max_connections < 1 or args.max_requests < 1 or args.seconds <= 0:
        parser.error("--max-connections, --max-requests and --seconds must be positive")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    started = time.monotonic()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="clickml-serve-load-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    redis_proc = server = None
    try:
        redis_proc, redis_url = start_redis(work / "redis")
        step(started, f"redis-server on {redis_url} (pid {redis_proc.pid})")
        config, version, cli = setup_store(args, work, redis_url, started)
        users = materialized_users(redis_url, config.serving.key_prefix)
        if not users:
            raise BenchError(f"no {config.serving.key_prefix}:{JOB}:features:* keys in {redis_url} after materialize")
        port = free_port()
        command = server_command(args, work, config, version, cli, port)
        env = (clean_env() if not args.config else dict(os.environ)) | {"PYTHONUNBUFFERED": "1"}
        server_log = work / "serve.log"
        step(started, f"starting {' '.join(command[-5:])} (log {server_log})")
        server = start_server(command, env, server_log, port, args.start_timeout)
        step(started, f"clickml serve on http://{HOST}:{port}: {http_get(f'http://{HOST}:{port}/health')[1]}")
        results, loop_name = run_loop(drive(args, port, users, started))
        fallbacks = scrape(port)["fallbacks"]
    except BaseException:
        print(f"serve_load: stopping; the working folder stays for a look: {work}", file=sys.stderr)
        raise
    finally:
        code = stop_process(server, SERVER_STOP_S)
        stop_process(redis_proc, PROCESS_STOP_S)
    landing = Path(config.landing.root)
    exposures = exposure_lines(landing)
    errors_logged = [line for line in tail(server_log, 10**7).splitlines() if " ERROR " in line or "Traceback" in line]
    print()
    print("\n".join(report(results, args.kind, len(users), version, args.unknown_share)))
    print(f"client: {loop_name} event loop, one process, sharing {os.cpu_count()} cores with the server and Redis; "
          f"feature fallbacks counted in Redis: {fallbacks}")
    print(f"server: exit code {code} after SIGTERM; {exposures} exposure lines published in {landing}; "
          f"{len(errors_logged)} error lines in its log" + (f" (first: {errors_logged[0][:200]})" if errors_logged else ""))
    if args.json:
        Path(args.json).write_text(json.dumps({
            "kind": args.kind, "model_version": version, "users": len(users), "unknown_share": args.unknown_share,
            "seconds_per_rate": args.seconds, "max_requests": args.max_requests, "max_connections": args.max_connections,
            "client_loop": loop_name, "cpu_count": os.cpu_count(), "fallbacks": fallbacks, "server_exit_code": code,
            "exposure_lines": exposures, "target": {"rate": TARGET_RATE, "p99_ms": TARGET_P99_MS, "line": target_line(results)},
            "rates": [asdict(r) for r in results]}, indent=2, default=str))
        print(f"numbers written to {args.json}")
    if not args.keep and not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    elif args.keep:
        print(f"kept {work}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"serve_load: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("serve_load: interrupted; the server and Redis were stopped", file=sys.stderr)
        sys.exit(130)
