"""`clickml produce` without a broker: keys, lines, headers, the rate limiter, source checks, inputs."""

from __future__ import annotations

import gzip
import io

import pytest

from pipelines import cli
from pipelines.config import ConfigError
from pipelines.ingest import produce
from pipelines.ingest.produce import (
    ProduceError,
    ProduceResult,
    Progress,
    RateLimiter,
    key_function,
    record_lines,
    split_lines,
)
from pipelines.sources import SourceConfig, load_source
from tests.conftest import CONF_DIR, make_config


@pytest.fixture(scope="module")
def clickstream() -> SourceConfig:
    return load_source(CONF_DIR, "clickstream")


@pytest.fixture(scope="module")
def rees46() -> SourceConfig:
    return load_source(CONF_DIR, "rees46")


# -- keys -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("line, key", [
    (b'{"event_id": "e1", "user_id": "u-17"}', b"u-17"),
    (b'{"user_id": "  u 7  "}', b"u 7"),                           # trimmed of spaces, as the ingest does
    (b'{"user_id": 12345}', b"12345"),                              # numbers keep their text
    (b'{"user_id": 1.50}', b"1.50"),
    (b'{"user_id": "\xc3\xa9l\xc3\xa8ve"}', "élève".encode()),      # UTF-8 kept as UTF-8
    (b'{"user_id": "u1", "brand": "\xff\xfe"}', b"u1"),             # invalid bytes elsewhere: still keyed
    (b'{"user_id": ""}', None),
    (b'{"user_id": "   "}', None),
    (b'{"user_id": null}', None),
    (b'{"user_id": {"id": 1}}', None),
    (b'{"event_id": "e1"}', None),
    (b'["u1"]', None),
    (b'{"user_id": "u1"', None),                                    # truncated
    (b"not json at all", None),
])
def test_json_records_are_keyed_by_the_field_mapped_to_user_id(clickstream, line, key):
    assert key_function(clickstream)(line) == key


def test_the_json_key_field_follows_the_column_mapping(clickstream):
    source = clickstream.model_copy(update={"columns": {**clickstream.columns, "user_id": "uid"}})
    assert key_function(source)(b'{"user_id": "wrong", "uid": "right"}') == b"right"


@pytest.mark.parametrize("line, key", [
    (b"2019-10-01 00:00:00 UTC,view,44600062,2103807459595387724,,shiseido,35.79,541312140,72d76fde", b"541312140"),
    (b'2019-10-01 00:00:00 UTC,view,1,2,"a,b",brand,1.0," 77 ",s', b"77"),  # a quoted comma keeps the positions
    (b"2019-10-01 00:00:00 UTC,view,1,2,c,\xff\xfe,1.0,88,s", b"88"),
    (b"2019-10-01 00:00:00 UTC,view,1,2,c,b,1.0,,s", None),                  # empty user id
    (b"2019-10-01 00:00:00 UTC,view,1,2,c,b,1.0", None),                     # too few fields
    (b"2019-10-01 00:00:00 UTC,view,1,2,c,b,1.0,9,s,extra", None),           # too many fields
    (b"garbage", None),
])
def test_csv_records_are_keyed_by_the_user_id_column_position(rees46, line, key):
    assert key_function(rees46)(line) == key


def test_csv_options_decide_how_fields_split(rees46):
    assert rees46.csv is not None
    source = rees46.model_copy(update={"csv": rees46.csv.model_copy(update={"delimiter": ";", "quote": "'"})})
    assert key_function(source)(b"t;view;1;2;'c;d';b;1.0;'u;9';s") == b"u;9"


# -- lines ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("chunk_size", [1, 2, 3, 1 << 20])
def test_lines_end_at_lf_cr_or_crlf_even_across_chunks(chunk_size):
    data = b"a\nb\r\nc\rd\r\n\r\ne\xff\xfe"
    assert list(split_lines(io.BytesIO(data), chunk_size)) == [b"a", b"b", b"c", b"d", b"", b"e\xff\xfe"]
    assert list(split_lines(io.BytesIO(b"x\r"), chunk_size)) == [b"x"]
    assert list(split_lines(io.BytesIO(b""), chunk_size)) == []


def test_blank_lines_are_not_records_but_other_whitespace_is():
    lines = [b'{"a": 1}', b"", b"   ", b"\t", b'{"b": 2}']
    assert list(record_lines(lines, header=False)) == [(1, b'{"a": 1}'), (4, b"\t"), (5, b'{"b": 2}')]


def test_a_csv_header_is_the_first_line_and_a_bom_is_dropped():
    assert list(record_lines([b"\xef\xbb\xbfh1,h2", b"1,2", b"", b"3,4"], header=True)) == [(2, b"1,2"), (4, b"3,4")]
    assert list(record_lines([b"\xef\xbb\xbf1,2", b"3,4"], header=False)) == [(1, b"1,2"), (2, b"3,4")]
    # The ingest drops line 1 of a file with a header, blank or not.
    assert list(record_lines([b"", b"h1,h2", b"1,2"], header=True)) == [(2, b"h1,h2"), (3, b"1,2")]


# -- rate and progress ------------------------------------------------------------------------------
class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.slept += seconds
        self.now += seconds


def test_the_rate_limiter_spaces_events_at_the_rate():
    clock = FakeClock()
    limiter = RateLimiter(100, clock=clock, sleep=clock.sleep)
    start = clock.now
    times = []
    for _ in range(1001):
        limiter.acquire()
        times.append(clock.now - start)
    assert times[0] == 0 and times[-1] == pytest.approx(10.0)
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert min(gaps) == pytest.approx(0.01) and max(gaps) == pytest.approx(0.01)


def test_the_rate_limiter_catches_up_after_a_stall_but_only_by_its_burst():
    clock = FakeClock()
    limiter = RateLimiter(10, clock=clock, sleep=clock.sleep)
    start = clock.now
    for n in range(100):
        if n == 50:
            clock.now += 0.5  # a slow send: the next 5 events go at once, the run stays on schedule
        limiter.acquire()
    assert clock.now - start == pytest.approx(9.9)

    clock = FakeClock()
    limiter = RateLimiter(10, burst=2, clock=clock, sleep=clock.sleep)
    limiter.acquire()
    clock.now += 60  # a long pause banks at most `burst` events
    before = clock.now
    for _ in range(2):
        limiter.acquire()
    assert clock.now == before
    limiter.acquire()
    assert clock.now == pytest.approx(before + 0.1)


def test_a_rate_must_be_positive():
    with pytest.raises(ValueError, match="rate must be positive"):
        RateLimiter(0)


def test_progress_prints_a_line_every_interval():
    clock, out = FakeClock(), io.StringIO()
    result = ProduceResult(topic="t", bootstrap="b")
    meter = Progress(result, out, interval=2.0, clock=clock)
    result.sent, result.delivered = 1000, 900
    clock.now += 1.0
    meter.tick()
    assert out.getvalue() == ""
    clock.now += 1.0
    meter.tick()
    assert out.getvalue() == "produce t: 1,000 sent, 900 acked, 0 failed, 500 ev/s\n"


def test_the_report_says_what_was_sent_and_the_first_error():
    result = ProduceResult(topic="clicks", bootstrap="h:9092", files=2, records=10, sent=10, delivered=9, failed=1,
                           unkeyed=1, seconds=2.0, first_error="record 3 (key u1): Broker: Message size too large")
    assert not result.ok
    assert result.report() == (
        "produce -> clicks at h:9092: 2 file(s), 10 record(s), 10 sent, 9 delivered, 1 failed, 1 unkeyed in 2.0 s "
        "(4 ev/s); first error: record 3 (key u1): Broker: Message size too large")
    assert ProduceResult(topic="t", bootstrap="b", records=1, sent=1, delivered=1).ok


# -- sources ----------------------------------------------------------------------------------------
def test_only_files_sources_are_replayed_and_only_into_kafka_sources(tmp_path):
    config = make_config(tmp_path)
    with pytest.raises(ConfigError, match=r"sources/clickstream_kafka\.yaml: source 'clickstream_kafka' is kind kafka; "
                                          r"--from needs a files source"):
        produce.run(config, "clickstream_kafka", "clickstream_kafka")
    with pytest.raises(ConfigError, match=r"sources/rees46\.yaml: source 'rees46' is kind files; --to needs a Kafka source"):
        produce.run(config, "clickstream", "rees46")
    with pytest.raises(ConfigError, match=r"clickstream_kafka\.yaml: source 'clickstream_kafka' reads json messages, "
                                          r"but source 'rees46' holds csv lines"):
        produce.run(config, "rees46", "clickstream_kafka")
    with pytest.raises(ConfigError, match=r"unknown source 'nope'"):
        produce.run(config, "nope")


def test_a_kafka_source_without_a_single_topic_needs_topic(tmp_path):
    config = make_config(tmp_path)
    base = load_source(CONF_DIR, "clickstream_kafka")
    assert base.kafka is not None
    pattern = base.model_copy(update={"kafka": base.kafka.model_copy(update={"topic": None, "pattern": "clicks-.*"})})
    with pytest.raises(ConfigError, match=r"reads pattern 'clicks-\.\*'; give the topic to write with --topic"):
        produce.target_topic(config, pattern, None)
    several = base.model_copy(update={"kafka": base.kafka.model_copy(update={"topic": "a,b"})})
    with pytest.raises(ConfigError, match=r"reads topics 'a,b'"):
        produce.target_topic(config, several, None)
    assert produce.target_topic(config, several, "c") == "c"
    assert produce.target_topic(config, base, None) == "clickstream"


def test_client_settings_drop_the_kafka_prefix_and_name_missing_variables():
    base = load_source(CONF_DIR, "clickstream_kafka")
    assert base.kafka is not None
    secured = base.model_copy(update={"kafka": base.kafka.model_copy(
        update={"options_from_env": {"kafka.security.protocol": "PROTO"}})})
    assert produce.client_settings(secured, {"PROTO": "SASL_SSL"}) == {"security.protocol": "SASL_SSL"}
    with pytest.raises(ConfigError, match="variable.s. PROTO that are not set"):
        produce.client_settings(secured, {})


# -- inputs -----------------------------------------------------------------------------------------
def _landing(tmp_path):
    hour = tmp_path / "landing" / "clickstream" / "date=2024-01-01" / "hour=00"
    hour.mkdir(parents=True)
    (hour / "b.json").write_bytes(b'{"user_id": "u2"}\n\n{"user_id": "u3"}')
    with gzip.open(hour / "a.json.gz", "wb") as f:
        f.write(b'{"user_id": "u1"}\r\n')
    (hour / ".hidden.json").write_bytes(b"x\n")
    (hour / "_SUCCESS").write_bytes(b"")
    return hour


def test_landing_files_are_read_in_order_decompressed_hidden_files_skipped(tmp_path, clickstream):
    hour = _landing(tmp_path)
    config = make_config(tmp_path)
    fs, files = produce.input_files(config, clickstream)
    assert files == [str(hour / "a.json.gz"), str(hour / "b.json")]
    cursor = produce._Cursor()
    lines = list(produce.replay_records(fs, files, False, cursor))
    assert lines == [b'{"user_id": "u1"}', b'{"user_id": "u2"}', b'{"user_id": "u3"}']
    assert (cursor.files, cursor.path, cursor.line) == (2, str(hour / "b.json"), 3)


def test_path_overrides_with_a_file_or_a_folder(tmp_path, clickstream):
    hour = _landing(tmp_path)
    config = make_config(tmp_path)
    assert produce.input_files(config, clickstream, str(hour / "b.json"))[1] == [str(hour / "b.json")]
    assert produce.input_files(config, clickstream, str(tmp_path / "landing"))[1] == [
        str(hour / "a.json.gz"), str(hour / "b.json")]
    with pytest.raises(ProduceError, match=r"--path .*missing: no such file or folder"):
        produce.input_files(config, clickstream, str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ProduceError, match=r"no files to produce under .*empty"):
        produce.input_files(config, clickstream, str(tmp_path / "empty"))


def test_no_landing_files_is_an_error_naming_the_folder(tmp_path, clickstream):
    with pytest.raises(ProduceError, match=r"no files to produce under .*landing/clickstream \(source clickstream"):
        produce.input_files(make_config(tmp_path), clickstream)


def test_a_corrupt_gz_file_is_an_error_naming_it(tmp_path, clickstream):
    (tmp_path / "bad.json.gz").write_bytes(b"\x1f\x8b\x08\x00not really gzip")
    fs, files = produce.input_files(make_config(tmp_path), clickstream, str(tmp_path / "bad.json.gz"))
    with pytest.raises(ProduceError, match=r"bad\.json\.gz: cannot be read"):
        list(produce.replay_records(fs, files, False, produce._Cursor()))


# -- the command ------------------------------------------------------------------------------------
def _clickml(tmp_path, *args: str) -> int:
    return cli.main(["--set", f"landing.root={tmp_path / 'landing'}", "--set", f"logging.dir={tmp_path / 'logs'}", *args])


def test_the_command_rejects_wrong_source_kinds_with_one_line(tmp_path, capsys):
    assert _clickml(tmp_path, "produce", "--to", "rees46") == 1
    err = capsys.readouterr().err
    assert "clickml: " in err and "rees46.yaml: source 'rees46' is kind files; --to needs a Kafka source" in err
    assert _clickml(tmp_path, "produce", "--from", "clickstream_kafka") == 1
    assert "--from needs a files source (kind: files)" in capsys.readouterr().err
    assert _clickml(tmp_path, "produce") == 1
    assert "no files to produce under" in capsys.readouterr().err


@pytest.mark.parametrize("option", ["--rate", "--limit"])
def test_rate_and_limit_must_be_positive(tmp_path, capsys, option):
    with pytest.raises(SystemExit):
        _clickml(tmp_path, "produce", option, "0")
    assert "not a positive number: '0'" in capsys.readouterr().err


def test_a_file_in_an_arrival_folder_stamps_its_messages_with_the_end_of_that_hour():
    import datetime as dt

    from pipelines.ingest.produce import arrival_millis

    end = dt.datetime(2024, 1, 3, 11, tzinfo=dt.timezone.utc)
    assert arrival_millis("/landing/clickstream/date=2024-01-03/hour=10/part-0.json") == int(end.timestamp() * 1000)
    assert arrival_millis("/landing/flat/part-0.json") is None
    assert arrival_millis("/landing/x/date=2024-02-30/hour=10/a.json") is None  # no such day


def test_an_arrival_hour_in_the_future_is_stamped_now():
    # Found by the Kafka benchmark: generated late-arrival folders of today's later hours were
    # stamped hours ahead, and the broker refused them (InvalidTimestampException).
    from pipelines.ingest.produce import arrival_stamp

    now = 1_700_000_000.0
    assert arrival_stamp("/l/date=2100-01-01/hour=00/a.json", now=lambda: now) == int(now * 1000)
    assert arrival_stamp("/l/date=2020-01-01/hour=00/a.json", now=lambda: now) == 1577840400000
    assert arrival_stamp("/l/flat/a.json", now=lambda: now) is None
