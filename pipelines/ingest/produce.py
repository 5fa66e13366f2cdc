"""Replay a files source's records into a Kafka topic (`clickml produce`), one message per line.

    clickml produce [--from clickstream] [--to clickstream_kafka] [--path P] [--rate N] [--limit N]

What is sent: every record line of the landing files, in file order, exactly as the ingest reads
them: lines end at LF, CR or CRLF (Hadoop's line reader), a UTF-8 byte-order mark at a file's
start is dropped, blank lines (spaces only) are not records, and a CSV file's first line is its
header when `csv.header`. Bad records are sent too: the ingest of the Kafka source quarantines
them. A message's value is the line's bytes as read (no decoding, no re-encoding); `.gz` and
`.bz2` files are decompressed. Its key is the record's user id (the source field mapped to
`user_id`; trimmed of spaces, as the ingest trims it), so one user's events stay on one partition
in order; a line whose user id cannot be found (not JSON, wrong CSV field count, field missing or
empty) is sent without a key and counted as `unkeyed`.

Producer settings (librdkafka, through confluent-kafka):
- `enable.idempotence=true`, `acks=all`: retries never duplicate or reorder a partition's
  messages, and a message counts as delivered only once every in-sync replica has it.
- `linger.ms=10`: batches fill for at most 10 ms (throughput at a negligible delay).
- `compression.type=lz4`: cheap on the CPU, about 3x on JSON lines; brokers and Spark read it.
- `partitioner=murmur2_random`: the Java client's key hashing, so a user's partition is the same
  whether this command or a JVM producer wrote the key.
- `allow.auto.create.topics=false`: a mistyped topic is an error, not a new topic.
Before sending, a metadata request (bounded by `connect_timeout`) checks that the broker answers
and the topic exists. Every delivery report is awaited (`flush`); failures are counted and the
first one's error is kept (the command then exits non-zero).
"""

from __future__ import annotations

import bz2
import csv
import datetime as dt
import functools
import gzip
import json
import logging
import re
import sys
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from itertools import islice
from typing import IO

import pyarrow.fs as pafs

from pipelines.config import ClickmlConfig, ConfigError
from pipelines.sources import SourceConfig, load_source
from pipelines.sources.models import sources_dir

log = logging.getLogger(__name__)

DEFAULT_FROM = "clickstream"
DEFAULT_TO = "clickstream_kafka"
PRODUCER_SETTINGS = {
    "enable.idempotence": True,
    "acks": "all",
    "linger.ms": 10,
    "compression.type": "lz4",
    "partitioner": "murmur2_random",
    "allow.auto.create.topics": False,
    "client.id": "clickml-produce",
    "log_level": 2,  # librdkafka's own lines only when critical; errors come through error_cb
}
PROGRESS_SECONDS = 2.0
POLL_EVERY = 64
"""Serve delivery reports after this many messages (a full local queue is drained at once anyway)."""
INTERRUPT_FLUSH_SECONDS = 10.0
_DECOMPRESS = {".gz": gzip.GzipFile, ".bz2": bz2.BZ2File}
_BOM = b"\xef\xbb\xbf"
_TOKEN_EPSILON = 1e-6
_TIMING = re.compile(r" \(after \d+ms in state \w+\)")
"""librdkafka's suffix of connection errors; without it, repeated errors read the same."""

KeyFunction = Callable[[bytes], "bytes | None"]


class ProduceError(RuntimeError):
    """Records could not be produced; the message names the broker, topic, file or setting."""


class BrokerUnreachable(ProduceError):
    """The bootstrap servers did not answer a metadata request in time."""


@dataclass
class ProduceResult:
    """What a run sent and what the broker acknowledged."""

    topic: str
    bootstrap: str
    files: int = 0
    records: int = 0
    """Record lines read (blank lines and CSV headers are not records)."""
    sent: int = 0
    """Messages handed to the producer."""
    delivered: int = 0
    failed: int = 0
    """Messages the producer refused or the broker did not acknowledge."""
    unkeyed: int = 0
    """Messages sent without a key (no user id found)."""
    seconds: float = 0.0
    first_error: str | None = None
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.first_error is None and self.delivered == self.records and not self.interrupted

    def report(self) -> str:
        rate = self.delivered / self.seconds if self.seconds > 0 else 0.0
        files = f"{self.files} file(s), " if self.files else ""
        line = (f"produce -> {self.topic} at {self.bootstrap}: {files}{self.records:,} record(s), "
                f"{self.sent:,} sent, {self.delivered:,} delivered, {self.failed:,} failed, {self.unkeyed:,} unkeyed "
                f"in {self.seconds:.1f} s ({rate:,.0f} ev/s)")
        if self.interrupted:
            line += "; interrupted"
        if self.first_error:
            line += f"; first error: {self.first_error}"
        return line


# -- sources ----------------------------------------------------------------------------------------
def _source_file(config: ClickmlConfig, name: str) -> str:
    return str(sources_dir(config.conf_dir) / f"{name}.yaml")


def files_source(config: ClickmlConfig, name: str) -> SourceConfig:
    """The files source to replay (json or csv lines); ConfigError naming its file otherwise."""
    source = load_source(config.conf_dir, name)
    if source.kind != "files":
        raise ConfigError(f"{_source_file(config, name)}: source {name!r} is kind {source.kind}; "
                          "--from needs a files source (kind: files)")
    if source.format not in ("json", "csv"):
        raise ConfigError(f"{_source_file(config, name)}: source {name!r} is {source.format}; "
                          "only json and csv lines can be replayed as messages")
    return source


def kafka_source(config: ClickmlConfig, name: str, records: SourceConfig) -> SourceConfig:
    """The Kafka source to write to; it must read the same format as the files source."""
    target = load_source(config.conf_dir, name)
    if target.kind != "kafka" or target.kafka is None:
        raise ConfigError(f"{_source_file(config, name)}: source {name!r} is kind {target.kind}; "
                          "--to needs a Kafka source (kind: kafka)")
    if target.format != records.format:
        raise ConfigError(f"{_source_file(config, name)}: source {name!r} reads {target.format} messages, but "
                          f"source {records.name!r} holds {records.format} lines")
    return target


def target_topic(config: ClickmlConfig, target: SourceConfig, topic: str | None) -> str:
    """`--topic`, else the Kafka source's single topic."""
    if topic:
        return topic
    assert target.kafka is not None
    configured = target.kafka.topic
    if configured is None or "," in configured:
        what = f"pattern {target.kafka.pattern!r}" if configured is None else f"topics {configured!r}"
        raise ConfigError(f"{_source_file(config, target.name)}: source {target.name!r} reads {what}; "
                          "give the topic to write with --topic")
    return configured.strip()


def client_settings(target: SourceConfig, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The source's `options_from_env` as librdkafka settings (the `kafka.` prefix dropped)."""
    assert target.kafka is not None
    options = target.kafka.client_options(target.name, env)
    options.pop("kafka.bootstrap.servers", None)
    return {key.removeprefix("kafka."): value for key, value in options.items()}


# -- keys -------------------------------------------------------------------------------------------
def _user_id(value: object) -> bytes | None:
    """A field's value as a key: text trimmed of spaces (as the ingest trims it); None when empty."""
    if isinstance(value, bool):
        value = "true" if value else "false"
    if not isinstance(value, str):
        return None
    value = value.strip(" ")
    return value.encode("utf-8") if value else None


def _json_key(field_name: str, line: bytes) -> bytes | None:
    try:  # numbers keep their text (Spark reads them into a string field as written)
        record = json.loads(line.decode("utf-8", "replace"), parse_int=str, parse_float=str, parse_constant=str)
    except ValueError:
        return None
    return _user_id(record.get(field_name)) if isinstance(record, dict) else None


def _csv_key(index: int, width: int, dialect: dict, line: bytes) -> bytes | None:
    try:
        fields = next(csv.reader([line.decode("utf-8", "replace")], **dialect), [])
    except csv.Error:
        return None
    # A line with another number of fields is malformed for the ingest: its positions mean nothing.
    return _user_id(fields[index]) if len(fields) == width else None


def key_function(source: SourceConfig) -> KeyFunction:
    """line -> the record's user id (UTF-8 bytes), or None when it cannot be found."""
    field_name = source.columns["user_id"]
    if source.format == "json":
        return partial(_json_key, field_name)
    if source.format == "csv" and source.csv is not None:
        options = source.csv
        dialect: dict = {"delimiter": options.delimiter, "escapechar": "\\", "strict": False}
        if options.quote:
            dialect["quotechar"] = options.quote
        else:
            dialect["quoting"] = csv.QUOTE_NONE
        return partial(_csv_key, options.columns.index(field_name), len(options.columns), dialect)
    raise ConfigError(f"source {source.name!r}: no user id can be read from {source.format} records")


# -- reading ----------------------------------------------------------------------------------------
def split_lines(stream: IO[bytes], chunk_size: int = 1 << 20) -> Iterator[bytes]:
    """The lines of a binary stream without their terminator (LF, CR or CRLF, as Hadoop's reader)."""
    rest = b""
    while True:
        chunk = stream.read(chunk_size)
        if not chunk:
            break
        lines = (rest + chunk).splitlines(keepends=True)
        last = lines[-1]
        # A line without its end, or ending in CR (maybe the first half of a CRLF), waits for more.
        rest = lines.pop() if not last.endswith(b"\n") else b""
        for line in lines:
            yield _strip_end(line)
    if rest:
        yield _strip_end(rest)


def _strip_end(line: bytes) -> bytes:
    if line.endswith(b"\r\n"):
        return line[:-2]
    return line[:-1] if line.endswith((b"\n", b"\r")) else line


def is_blank(line: bytes) -> bool:
    """Spark's `trim(value) == ''`: nothing but spaces."""
    return not line.strip(b" ")


def record_lines(lines: Iterable[bytes], header: bool) -> Iterator[tuple[int, bytes]]:
    """(line number, line) of a file's records: no BOM, no header line, no blank line."""
    for number, line in enumerate(lines, start=1):
        if number == 1:
            if line.startswith(_BOM):
                line = line[len(_BOM):]
            if header:
                continue
        if not is_blank(line):
            yield number, line


def open_lines(fs: pafs.FileSystem, path: str) -> Iterator[bytes]:
    """The lines of one file, decompressed by extension."""
    with fs.open_input_stream(path, compression=None) as raw:
        opener = next((o for ext, o in _DECOMPRESS.items() if path.endswith(ext)), None)
        if opener is None:
            yield from split_lines(raw)
            return
        with opener(fileobj=raw) as stream:
            yield from split_lines(stream)


def input_files(config: ClickmlConfig, source: SourceConfig, path: str | None = None) -> tuple[pafs.FileSystem, list[str]]:
    """The files to replay, in order: `path` (a file, or every file below a folder) or the source's landing files."""
    from pipelines.ingest.reader import list_landing_files, source_location
    from pipelines.lake.filesystem import filesystem_for, hidden_path, list_files
    from pipelines.lake.location import path_location

    if path is None:
        fs, base = filesystem_for(source_location(config, source))
        files = [f"{base}/{f.relative}" for f in list_landing_files(config, source)]
        where = f"{base} (source {source.name}: landing.root + path)"
    else:
        fs, base = filesystem_for(path_location(config.lake, path))
        info = fs.get_file_info(base)
        if info.type == pafs.FileType.NotFound:
            raise ProduceError(f"--path {path}: no such file or folder ({base})")
        if info.type == pafs.FileType.File:
            return fs, [base]
        files = sorted(i.path for i in list_files(fs, base) if not hidden_path(i.path[len(base) + 1:]))
        where = base
    if not files:
        raise ProduceError(f"no files to produce under {where}")
    return fs, files


ARRIVAL_FOLDER = re.compile(r"date=(\d{4}-\d{2}-\d{2})/hour=(\d{2})")


@functools.lru_cache(maxsize=4096)
def arrival_millis(path: str) -> int | None:
    """The end of the arrival hour of a file in `date=YYYY-MM-DD/hour=HH` folders, in ms since the
    epoch (what the file ingest takes as the arrival time); None elsewhere or for an impossible date."""
    found = ARRIVAL_FOLDER.search(path)
    if found is None:
        return None
    try:
        start = dt.datetime.strptime(f"{found[1]} {found[2]}", "%Y-%m-%d %H").replace(tzinfo=dt.timezone.utc)
    except ValueError:
        return None
    return int((start + dt.timedelta(hours=1)).timestamp() * 1000)


def arrival_stamp(path: str, now: Callable[[], float] = time.time) -> int | None:
    """The message timestamp of a line of `path`: its arrival hour's end, never later than now (a
    folder of a future hour has not arrived yet; brokers also refuse timestamps more than
    `log.message.timestamp.after.max.ms`, 1 hour by default, ahead of their clock)."""
    stamp = arrival_millis(path)
    return None if stamp is None else min(stamp, int(now() * 1000))


@dataclass
class _Cursor:
    """Where the replay is: files opened, the current file and line (for messages)."""

    files: int = 0
    path: str = ""
    line: int = 0


def replay_records(fs: pafs.FileSystem, files: list[str], header: bool, cursor: _Cursor) -> Iterator[bytes]:
    """Every record line of the files, in order; `cursor` follows along."""
    for path in files:
        cursor.files, cursor.path, cursor.line = cursor.files + 1, path, 0
        log.debug("produce: reading %s", path)
        try:
            for number, line in record_lines(open_lines(fs, path), header):
                cursor.line = number
                yield line
        except (OSError, EOFError, zlib.error) as exc:
            raise ProduceError(f"{path}: cannot be read ({exc})") from exc


def _reporting_unkeyed(key_of: KeyFunction, cursor: _Cursor, field_name: str) -> KeyFunction:
    """`key_of` that logs the first line without a user id (the others are counted only)."""
    warned = False

    def key(line: bytes) -> bytes | None:
        nonlocal warned
        found = key_of(line)
        if found is None and not warned:
            warned = True
            log.warning("produce: %s line %d has no user id (field %r); sent without a key (further ones are "
                        "only counted)", cursor.path, cursor.line, field_name)
        return found

    return key


# -- rate and progress ------------------------------------------------------------------------------
class RateLimiter:
    """Token bucket: `rate` events per second on average; after a stall it catches up by at most
    `burst` events (default: one second's worth), so the rate over the run stays accurate."""

    def __init__(self, rate: float, burst: float | None = None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], object] = time.sleep) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be positive, not {rate}")
        self.rate = float(rate)
        self.burst = max(1.0, float(burst if burst is not None else rate))
        self.clock, self.sleep = clock, sleep
        self.tokens = 1.0  # the first event goes at once; n events take (n - 1) / rate seconds
        self.last: float | None = None

    def _refill(self) -> None:
        now = self.clock()
        if self.last is not None:
            self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now

    def acquire(self) -> None:
        """Wait until one more event may go."""
        self._refill()
        while self.tokens < 1.0 - _TOKEN_EPSILON:  # a wait too short for the clock to move ends the loop
            self.sleep((1.0 - self.tokens) / self.rate)
            self._refill()
        self.tokens -= 1.0


class Progress:
    """A line every `interval` seconds: sent, acknowledged, failed and the current rate."""

    def __init__(self, result: ProduceResult, stream: IO[str], interval: float = PROGRESS_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.result, self.stream, self.interval, self.clock = result, stream, interval, clock
        self.last_time = clock()
        self.last_sent = 0

    def tick(self) -> None:
        now = self.clock()
        if now - self.last_time < self.interval:
            return
        r = self.result
        rate = (r.sent - self.last_sent) / (now - self.last_time)
        self.stream.write(f"produce {r.topic}: {r.sent:,} sent, {r.delivered:,} acked, {r.failed:,} failed, "
                          f"{rate:,.0f} ev/s\n")
        self.stream.flush()
        self.last_time, self.last_sent = now, r.sent


# -- producing --------------------------------------------------------------------------------------
@dataclass
class _Errors:
    """What librdkafka's error callback reported."""

    fatal: str | None = None
    all_brokers_down: bool = False
    seen: list[str] = field(default_factory=list)
    """Distinct messages, in order."""

    def __call__(self, err) -> None:
        from confluent_kafka import KafkaError

        text = _TIMING.sub("", err.str())
        if err.code() == KafkaError._ALL_BROKERS_DOWN:
            self.all_brokers_down = True
        if err.fatal():
            self.fatal = self.fatal or text
            log.error("produce: fatal Kafka error: %s", text)
        elif text not in self.seen:
            self.seen.append(text)
            log.debug("produce: Kafka client error: %s", text)


def _new_producer(bootstrap: str, options: Mapping[str, str] | None, errors: _Errors):
    try:
        from confluent_kafka import KafkaException, Producer
    except ImportError:
        raise ProduceError("producing needs confluent-kafka: pip install -c constraints.txt -e '.[kafka]'") from None
    settings = {**PRODUCER_SETTINGS, **(options or {}), "bootstrap.servers": bootstrap, "error_cb": errors,
                "logger": logging.getLogger(f"{__name__}.librdkafka")}
    try:
        return Producer(settings)
    except (KafkaException, ValueError, TypeError) as exc:
        raise ProduceError(f"Kafka client settings for {bootstrap} rejected: {exc} (options_from_env holds "
                           "Java client names; librdkafka names some settings differently)") from None


def check_topic(producer, bootstrap: str, topic: str, timeout: float, errors: _Errors) -> int:
    """The topic's partition count. BrokerUnreachable when every broker refused the connection (at
    once) or no metadata came within `timeout` s (a host that does not answer)."""
    from confluent_kafka import KafkaError, KafkaException

    deadline = time.monotonic() + timeout
    while True:
        try:
            metadata = producer.list_topics(topic=topic, timeout=max(0.1, min(1.0, deadline - time.monotonic())))
            break
        except KafkaException as exc:
            producer.poll(0)  # serve error_cb: the connection errors say more than "timed out"
            if errors.all_brokers_down or time.monotonic() >= deadline:
                reason = "; ".join(errors.seen[:3]) or f"no answer within {timeout:g} s: {exc.args[0].str()}"
                raise BrokerUnreachable(f"Kafka at {bootstrap} cannot be reached ({reason}): "
                                        "is the broker up and the address right?") from None
    found = metadata.topics.get(topic)
    if found is None or (found.error is not None and found.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART):
        raise ProduceError(f"topic {topic!r} does not exist at {bootstrap}; create it first, e.g. "
                           f"`python -m pipelines.orchestration.kafka create-topic {topic} --partitions 3 --config retention.ms=-1` "
                           "(topics are not created on first use)")
    if found.error is not None:
        raise ProduceError(f"topic {topic!r} at {bootstrap}: {found.error.str()}")
    return len(found.partitions)


class _Sender:
    """Hands messages to the producer and counts the delivery reports."""

    def __init__(self, producer, topic: str, result: ProduceResult) -> None:
        self.producer, self.topic, self.result = producer, topic, result

    def _fail(self, number: int, key: bytes | None, reason: str) -> None:
        self.result.failed += 1
        if self.result.first_error is None:
            self.result.first_error = f"record {number} (key {key.decode('utf-8', 'replace') if key else None}): {reason}"

    def _delivered(self, number: int, err, msg) -> None:
        if err is None:
            self.result.delivered += 1
        else:
            self._fail(number, msg.key(), err.str())

    def send(self, value: bytes, key: bytes | None, timestamp: int | None = None) -> None:
        from confluent_kafka import KafkaException

        number = self.result.records
        extra = {"timestamp": timestamp} if timestamp is not None else {}
        while True:
            try:
                self.producer.produce(self.topic, value, key, on_delivery=partial(self._delivered, number), **extra)
                break
            except BufferError:  # the local queue is full: let deliveries drain it
                self.producer.poll(0.1)
            except KafkaException as exc:  # refused before sending (e.g. larger than message.max.bytes)
                self._fail(number, key, exc.args[0].str())
                return
        self.result.sent += 1
        if key is None:
            self.result.unkeyed += 1
        if self.result.sent % POLL_EVERY == 0:
            self.producer.poll(0)  # serve delivery reports

    def drain(self, timeout: float | None, tick: Callable[[], None]) -> int:
        """Wait for the delivery reports (at most `timeout` s); the messages still queued."""
        deadline = None if timeout is None else time.monotonic() + timeout
        remaining = len(self.producer)
        while remaining and (deadline is None or time.monotonic() < deadline):
            remaining = self.producer.flush(1.0)
            tick()
        return remaining


def _as_bytes(line: bytes | str) -> bytes:
    return line.encode("utf-8") if isinstance(line, str) else line


def produce_lines(bootstrap: str, topic: str, lines: Iterable[bytes | str], key_of: Callable | None = None,
                  rate: float | None = None, *, limit: int | None = None, options: Mapping[str, str] | None = None,
                  progress: bool | IO[str] = False, connect_timeout: float = 10.0,
                  clock: Callable[[], float] = time.monotonic,
                  timestamp_of: Callable[[], int | None] | None = None) -> ProduceResult:
    """Send each line as a message value to `topic`, keyed by `key_of(line)` (bytes, str or None).

    `timestamp_of()`: the message's timestamp (ms since the epoch) for the line being sent; None
    (or no function) lets the producer stamp the send time.
    `rate`: events per second (None or 0: as fast as possible); `limit`: at most that many lines;
    `options`: extra librdkafka settings; `progress`: True (stderr) or a text stream for progress
    lines. Waits for every delivery report. Raises BrokerUnreachable / ProduceError before sending
    when the broker does not answer or the topic does not exist; delivery failures are counted.
    """
    result = ProduceResult(topic=topic, bootstrap=bootstrap)
    errors = _Errors()
    producer = _new_producer(bootstrap, options, errors)
    partitions = check_topic(producer, bootstrap, topic, connect_timeout, errors)
    log.info("produce: %s at %s (%d partition(s))%s", topic, bootstrap, partitions,
             f", {rate:g} ev/s" if rate else "")
    sender = _Sender(producer, topic, result)
    limiter = RateLimiter(rate, clock=clock, sleep=producer.poll) if rate else None
    stream = sys.stderr if progress is True else progress or None
    meter = Progress(result, stream, clock=clock) if stream else None
    tick = meter.tick if meter else (lambda: None)
    start = clock()
    try:
        for line in islice(lines, limit):
            if errors.fatal:
                break
            if limiter:
                limiter.acquire()
            value = _as_bytes(line)
            key = key_of(value) if key_of else None
            result.records += 1
            sender.send(value, _as_bytes(key) if key is not None else None, timestamp_of() if timestamp_of else None)
            tick()
        sender.drain(None, tick)
    except KeyboardInterrupt:
        result.interrupted = True
        if sender.drain(INTERRUPT_FLUSH_SECONDS, tick):
            producer.purge()
            producer.flush(0)
    except BaseException:  # a file that cannot be read: what was sent is still delivered
        sender.drain(INTERRUPT_FLUSH_SECONDS, tick)
        raise
    finally:
        result.seconds = clock() - start
    if errors.fatal and result.first_error is None:
        result.first_error = errors.fatal
    return result


def run(config: ClickmlConfig, source_name: str = DEFAULT_FROM, to: str = DEFAULT_TO, *, path: str | None = None,
        topic: str | None = None, bootstrap: str | None = None, rate: float | None = None, limit: int | None = None,
        progress: bool | IO[str] = True, env: Mapping[str, str] | None = None,
        connect_timeout: float = 10.0, timestamps: str = "arrival") -> ProduceResult:
    """Replay the records of files source `source_name` (or of `path`) into the topic of Kafka source `to`.

    `timestamps`: `arrival` stamps each message with the end of its file's arrival hour
    (`date=YYYY-MM-DD/hour=HH` in its path; the send time for files outside such folders), so the
    ingest's time window judges a replayed event as it judges the file (historical data stays
    valid); `now` lets the producer stamp the send time (a live feed)."""
    if timestamps not in ("arrival", "now"):
        raise ValueError(f"timestamps must be 'arrival' or 'now', not {timestamps!r}")
    source = files_source(config, source_name)
    target = kafka_source(config, to, source)
    assert target.kafka is not None
    servers = bootstrap or target.kafka.servers(env)
    topic = target_topic(config, target, topic)
    options = client_settings(target, env)
    fs, files = input_files(config, source, path)
    log.info("produce: %d file(s) of source %s -> topic %s at %s", len(files), source_name, topic, servers)
    cursor = _Cursor()
    header = source.format == "csv" and source.csv is not None and source.csv.header
    key_of = _reporting_unkeyed(key_function(source), cursor, source.columns["user_id"])
    try:
        result = produce_lines(servers, topic, replay_records(fs, files, header, cursor), key_of, rate, limit=limit,
                               options=options, progress=progress, connect_timeout=connect_timeout,
                               timestamp_of=(lambda: arrival_stamp(cursor.path)) if timestamps == "arrival" else None)
    except BrokerUnreachable as exc:
        origin = "--bootstrap-servers" if bootstrap else (
            f"source {to}: kafka.bootstrap_servers, or ${target.kafka.bootstrap_servers_env} when set")
        raise BrokerUnreachable(f"{exc} (servers from {origin})") from None
    result.files = cursor.files
    return result
