"""Kafka source config, messages -> raw records, and the offset accounting (no broker)."""

from __future__ import annotations

import datetime as dt

import pytest
from pydantic import ValidationError
from pyspark.sql import functions as F

from pipelines.config.loader import ConfigError
from pipelines.ingest import reasons
from pipelines.ingest.kafka import OffsetGapError, check_offsets, partition_name, raw_records_from_messages
from pipelines.ingest.parse import classify, parse_fields
from pipelines.sources import KafkaOptions, SourceConfig, load_source
from tests.conftest import CONF_DIR

MESSAGES = "value binary, topic string, partition int, offset long, timestamp timestamp"
NOW = dt.datetime(2024, 1, 1, 12, tzinfo=dt.timezone.utc)


def test_the_shipped_kafka_source_loads_and_reads_its_servers_from_the_environment():
    source = load_source(CONF_DIR, "clickstream_kafka")
    assert source.kind == "kafka" and source.kafka is not None and source.kafka.topic == "clickstream"
    assert source.kafka.client_options("k", {}) == {"kafka.bootstrap.servers": "127.0.0.1:9092"}
    assert source.kafka.servers({"CLICKML_KAFKA_BOOTSTRAP": "kafka:9092"}) == "kafka:9092"


def test_security_options_come_from_named_variables_and_a_missing_one_is_named():
    options = KafkaOptions(topic="t", options_from_env={"kafka.security.protocol": "KAFKA_PROTOCOL"})
    assert options.client_options("web", {"KAFKA_PROTOCOL": "SASL_SSL"})["kafka.security.protocol"] == "SASL_SSL"
    with pytest.raises(ConfigError, match="source web: .*KAFKA_PROTOCOL.* not set"):
        options.client_options("web", {})
    with pytest.raises(ValidationError, match="must start with 'kafka.'"):
        KafkaOptions(topic="t", options_from_env={"security.protocol": "X"})


@pytest.mark.parametrize(
    "kafka, message",
    [
        ({"topic": "a", "pattern": "b.*"}, "exactly one of topic and pattern"),
        ({}, "exactly one of topic and pattern"),
    ],
)
def test_a_kafka_section_names_one_subscription(kafka, message):
    with pytest.raises(ValidationError, match=message):
        KafkaOptions(**kafka)


def test_kind_and_sections_must_agree():
    base = load_source(CONF_DIR, "clickstream").model_dump()
    with pytest.raises(ValidationError, match="kind kafka needs a kafka: section"):
        SourceConfig.model_validate({**base, "kind": "kafka"})
    with pytest.raises(ValidationError, match="a kafka: section needs kind: kafka"):
        SourceConfig.model_validate({**base, "kafka": {"topic": "t"}})
    with pytest.raises(ValidationError, match="path is required"):
        SourceConfig.model_validate({**base, "path": ""})


def test_refused_messages_get_their_reason_and_keep_their_bytes(spark):
    rows = [
        (b'{"event_id": "a"}', "t", 0, 5, NOW),
        (None, "t", 1, 6, NOW),
        (b"  \n", "t", 1, 7, NOW),
        (b"caf\xe9", "t", 2, 8, NOW),
        (b"x" * 21, "t", 2, 9, NOW),
    ]
    raw = raw_records_from_messages(spark.createDataFrame(rows, MESSAGES), max_bytes=20)
    got = {r["source_line"]: r.asDict() for r in raw.collect()}
    assert got[5]["raw_reason"] is None and got[5]["raw"] == '{"event_id": "a"}'
    assert got[5]["source_file"] == partition_name("t", 0) == "kafka:t/0"
    assert got[6]["raw_reason"] == reasons.EMPTY and got[6]["raw"] == ""
    assert got[7]["raw_reason"] == reasons.EMPTY
    assert got[8]["raw_reason"] == reasons.INVALID_ENCODING and got[8]["raw"] == "base64:Y2Fm6Q=="
    assert got[9]["raw_reason"] == reasons.TOO_LARGE
    assert all(row["arrival_time"] is not None for row in got.values())  # the Kafka timestamp


def test_a_refused_message_is_quarantined_with_its_reason_before_any_parse_reason(spark):
    source = load_source(CONF_DIR, "clickstream_kafka")
    rows = [(b"{broken", "t", 0, 0, NOW), (b"\xff\xfe", "t", 0, 1, NOW)]
    raw = raw_records_from_messages(spark.createDataFrame(rows, MESSAGES), max_bytes=100)
    classified = classify(parse_fields(raw, source), source, 168, 60, F.lit(NOW))
    assert "raw_reason" not in classified.columns
    assert {r["source_line"]: r["reason"] for r in classified.collect()} == {0: reasons.MALFORMED, 1: reasons.INVALID_ENCODING}


def r(partition, start, end, records=None):
    return {"topic": "t", "partition": partition, "start_offset": start, "end_offset": end,
            "records": end - start if records is None else records}


def test_contiguous_batches_pass_the_offset_check():
    check_offsets("b", [r(0, 10, 20), r(1, 0, 5)], {("t", 0): 10})
    check_offsets("b", [r(0, 0, 3)], {})  # a partition's first batch


def test_a_hole_inside_a_batch_fails_loudly():
    with pytest.raises(OffsetGapError, match=r"kafka:t/0: offsets 10\.\.19 hold 8 messages, 2 missing"):
        check_offsets("b", [r(0, 10, 20, records=8)], {})


def test_a_batch_not_starting_where_the_last_ended_fails_loudly():
    with pytest.raises(OffsetGapError, match=r"kafka:t/1: the previous batch ended at offset 5 .* starts at 9 \(4 offsets missing\)"):
        check_offsets("b", [r(1, 9, 12)], {("t", 1): 5})
    with pytest.raises(OffsetGapError, match=r"read twice"):
        check_offsets("b", [r(1, 3, 12)], {("t", 1): 5})


def test_csv_messages_of_a_rees46_shaped_topic_classify_like_its_files(spark):
    source = load_source(CONF_DIR, "rees46_kafka")
    rows = [
        (b"2019-10-01 00:00:00 UTC,view,44600062,2103807459595387724,,shiseido,35.79,541312140,72d76fde", "r", 0, 0, NOW),
        (b"2019-10-01 00:00:01 UTC,view,1,2", "r", 0, 1, NOW),  # too few fields
    ]
    raw = raw_records_from_messages(spark.createDataFrame(rows, MESSAGES), max_bytes=1000)
    classified = classify(parse_fields(raw, source), source, 24 * 365 * 100, 60, F.lit(NOW))
    got = {r["source_line"]: r for r in classified.collect()}
    assert got[0]["reason"] is None and got[0]["user_id"] == "541312140" and got[0]["event_type"] == "product_view"
    assert got[1]["reason"] == reasons.MALFORMED
