"""`clickml produce` against a real Kafka broker: landing files in, every line out once, byte for byte,
keyed by user id; a refused message, an unreachable broker and a missing topic are clear errors."""

from __future__ import annotations

import datetime as dt
import gzip
import io
import time
from collections import Counter, defaultdict

import pytest

from pipelines import cli
from pipelines.ingest import produce
from pipelines.sources import load_source
from tests.conftest import CONF_DIR, make_config
from tests.processes import free_ports
from tests.services.kafka import unique_topic

confluent_kafka = pytest.importorskip("confluent_kafka", reason="confluent-kafka is installed by the kafka extra")

USERS = [f"u{n}" for n in range(7)]


def event(n: int, user: str) -> bytes:
    return b'{"event_id": "e%d", "event_type": "page_view", "user_id": "%s", "device": "mobile"}' % (n, user.encode())


def write_landing(tmp_path) -> tuple[list[bytes], list[bytes | None]]:
    """Three landing files (one gzipped); the record lines and their expected keys, in file order."""
    root = tmp_path / "landing" / "clickstream" / "date=2024-01-01"
    plain, crlf, zipped = root / "hour=00" / "part-0.json", root / "hour=00" / "part-1.json", root / "hour=01" / "part-0.json.gz"
    plain.parent.mkdir(parents=True)
    zipped.parent.mkdir(parents=True)
    first = [event(n, USERS[n % 7]) for n in range(20)] + [
        b'{"event_id": "broken", "user_id": "u1", ',                                # truncated JSON: no key
        b'{"event_id": "latin1", "user_id": "u2", "brand": "Caf\xe9 \xff\xfe"}',  # invalid UTF-8: keyed all the same
        b"\tnot json",                                                              # a bad record, not a blank line
    ]
    plain.write_bytes(b"\n".join(first[:10]) + b"\n\n   \n" + b"\n".join(first[10:]) + b"\n")
    second = [event(n, USERS[n % 3]) for n in range(20, 30)]
    crlf.write_bytes(b"\r\n".join(second))  # CRLF endings, none after the last line
    third = [event(n, USERS[n % 7]) for n in range(30, 60)]
    with gzip.open(zipped, "wb") as out:
        out.write(b"\n".join(third) + b"\n")
    lines = first + second + third
    keys = [produce.key_function(load_source(CONF_DIR, "clickstream"))(line) for line in lines]
    return lines, keys


def consume(bootstrap: str, topic: str, expected: int, timeout: float = 30.0) -> list:
    consumer = confluent_kafka.Consumer({
        "bootstrap.servers": bootstrap, "group.id": f"check-{topic}", "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })
    consumer.subscribe([topic])
    messages, deadline = [], time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                if len(messages) >= expected:
                    break  # and nothing more came for half a second
                continue
            assert msg.error() is None, msg.error()
            messages.append(msg)
    finally:
        consumer.close()
    return messages


def java_partition(key: bytes, partitions: int) -> int:
    """The Java client's default partition of a key: murmur2 (seed 0x9747b28c), made positive, modulo."""
    m, mask = 0x5BD1E995, 0xFFFFFFFF
    h = (0x9747B28C ^ len(key)) & mask
    body = len(key) & ~3
    for i in range(0, body, 4):
        k = int.from_bytes(key[i:i + 4], "little")
        k = (k * m) & mask
        k ^= k >> 24
        k = (k * m) & mask
        h = ((h * m) & mask) ^ k
    tail = key[body:]
    if len(tail) == 3:
        h ^= tail[2] << 16
    if len(tail) >= 2:
        h ^= tail[1] << 8
    if tail:
        h ^= tail[0]
        h = (h * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    h ^= h >> 15
    return (h & 0x7FFFFFFF) % partitions


def test_every_landing_line_arrives_once_byte_for_byte_keyed_by_user(tmp_path, kafka):  # noqa: F811
    lines, keys = write_landing(tmp_path)
    topic = unique_topic("produce")
    # Messages stamped with 2024 arrival hours: without retention.ms=-1 the broker's retention
    # (7 days by default, measured on message timestamps) would delete them within minutes.
    kafka.create_topic(topic, partitions=3, config={"retention.ms": "-1"})
    progress = io.StringIO()

    result = produce.run(make_config(tmp_path), "clickstream", "clickstream_kafka", topic=topic,
                         bootstrap=kafka.bootstrap, progress=progress)

    assert result.ok, result.report()
    assert (result.files, result.records, result.sent, result.delivered, result.failed, result.unkeyed) == (3, 63, 63, 63, 0, 2)
    assert keys[20:23] == [None, b"u2", None]  # the broken line and "\tnot json"; the invalid UTF-8 one is keyed
    messages = consume(kafka.bootstrap, topic, len(lines))
    assert Counter((m.key(), m.value()) for m in messages) == Counter(zip(keys, lines))  # each exactly once, as bytes
    partitions_of = defaultdict(set)
    for message in messages:
        if message.key() is not None:
            partitions_of[message.key()].add(message.partition())
    assert all(len(p) == 1 for p in partitions_of.values()) and len(partitions_of) == len(USERS)
    assert {key: p.pop() for key, p in partitions_of.items()} == {k: java_partition(k, 3) for k in partitions_of}
    assert len({m.partition() for m in messages}) == 3
    # Each message carries its file's arrival time: the end of the hour folder it was in.
    hour_01 = int(dt.datetime(2024, 1, 1, 1, tzinfo=dt.timezone.utc).timestamp() * 1000)
    stamps = {m.value(): m.timestamp()[1] for m in messages}
    assert {stamps[line] for line in lines[:33]} == {hour_01} and {stamps[line] for line in lines[33:]} == {hour_01 + 3_600_000}
    for partition in range(3):  # within a partition, the landing files' order
        values = [m.value() for m in sorted(messages, key=lambda m: m.offset()) if m.partition() == partition]
        assert values == [line for line in lines if line in set(values)]


def test_the_command_honours_limit_and_rate_and_prints_the_report(tmp_path, kafka, capsys):  # noqa: F811
    write_landing(tmp_path)
    topic = unique_topic("produce-cli")
    kafka.create_topic(topic, partitions=1)
    code = cli.main(["--set", f"landing.root={tmp_path / 'landing'}", "--set", f"logging.dir={tmp_path / 'logs'}",
                     "produce", "--bootstrap-servers", kafka.bootstrap, "--topic", topic, "--limit", "12", "--rate", "40"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"produce -> {topic} at {kafka.bootstrap}: 1 file(s), 12 record(s), 12 sent, 12 delivered, 0 failed" in out
    seconds = float(out.split(" unkeyed in ")[1].split(" s ")[0])
    assert 11 / 40 - 0.05 <= seconds < 5  # 12 events at 40/s: the first at once, then one every 25 ms
    assert len(consume(kafka.bootstrap, topic, 12, timeout=10)) == 12


def test_a_refused_message_is_counted_and_named(kafka):  # noqa: F811
    topic = unique_topic("produce-big")
    kafka.create_topic(topic, partitions=1)
    lines = [b"small-1", b"x" * 1_100_000, b"small-2"]  # over librdkafka's message.max.bytes (1 MB)
    result = produce.produce_lines(kafka.bootstrap, topic, lines, key_of=lambda line: line[:5])
    assert (result.records, result.sent, result.delivered, result.failed) == (3, 2, 2, 1) and not result.ok
    assert result.first_error.startswith("record 2 (key xxxxx): ") and "too large" in result.first_error.lower()


def test_an_unreachable_broker_is_a_quick_clear_error(tmp_path, capsys):
    write_landing(tmp_path)
    (port,) = free_ports(1)
    start = time.monotonic()
    code = cli.main(["--set", f"landing.root={tmp_path / 'landing'}", "--set", f"logging.dir={tmp_path / 'logs'}",
                     "produce", "--bootstrap-servers", f"127.0.0.1:{port}"])
    elapsed = time.monotonic() - start
    err = capsys.readouterr().err
    assert code == 1 and elapsed < 30
    assert f"clickml: Kafka at 127.0.0.1:{port} cannot be reached (" in err and "Connection refused" in err
    assert "is the broker up and the address right? (servers from --bootstrap-servers)" in err

    with pytest.raises(produce.BrokerUnreachable, match=r"servers from source clickstream_kafka: "
                                                        r"kafka.bootstrap_servers, or \$CLICKML_KAFKA_BOOTSTRAP"):
        produce.run(make_config(tmp_path), env={"CLICKML_KAFKA_BOOTSTRAP": f"127.0.0.1:{port}"}, connect_timeout=1,
                    progress=False)


def test_a_missing_topic_is_an_error_not_a_new_topic(tmp_path, kafka):  # noqa: F811
    write_landing(tmp_path)
    with pytest.raises(produce.ProduceError, match=r"topic 'never-made' does not exist at 127\.0\.0\.1:\d+; create it"):
        produce.run(make_config(tmp_path), topic="never-made", bootstrap=kafka.bootstrap, progress=False)
    assert kafka.topic("never-made") is None
