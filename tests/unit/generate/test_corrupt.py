"""Bad-record kinds, each on a tiny hand-made events frame."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from pipelines.config.generator import BAD_RECORD_KINDS, GeneratorConfig
from pipelines.generate import clock, corrupt
from pipelines.generate import events as ev

ARRIVAL = clock.epoch_millis(dt.datetime(2024, 1, 2, 10, 0, 5))
EVENT = clock.epoch_millis(dt.datetime(2024, 1, 2, 10, 0, 1))


def _events(spark, n=60):
    rows = []
    for i in range(n):
        product = i % 2 == 0
        rows.append(
            (i, 0, f"id-{i}", EVENT, "product_view" if product else "page_view", "u0000001", "s1",
             "p000001" if product else None, "kids.toys" if product else None, "lego" if product else None,
             12.5 if product else None, "USD" if product else None, "mobile", "direct", "US", False, False, ARRIVAL)
        )
    schema = (
        "session_key long, position int, event_id string, event_ms long, event_type string, user_id string, "
        "session_id string, product_id string, category string, brand string, price double, currency string, "
        "device string, referrer string, country string, after_drift boolean, late boolean, arrival_ms long"
    )
    return spark.createDataFrame(rows, schema)


def _parse(line):
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        return None


def test_injection_rate():
    assert corrupt.injection_rate(0.0) == 0.0
    assert corrupt.injection_rate(0.2) == pytest.approx(0.25)
    with pytest.raises(ValueError):
        corrupt.injection_rate(1.0)


def test_every_kind_of_bad_line(spark):
    config = GeneratorConfig.model_validate({"bad_records": {"share": 0.5}})  # every event spawns one
    events = _events(spark, 140)
    lines = corrupt.output_lines(events, config).collect()
    valid_lines = {r.line for r in lines if r.kind == "valid"}
    bad = [r for r in lines if r.kind != "valid"]
    assert len(valid_lines) == 140 and len(bad) == 140
    assert {r.kind for r in bad} == set(BAD_RECORD_KINDS)
    for row in bad:
        _check(row, row.kind, valid_lines)


def test_kind_weights_select_kinds(spark):
    config = GeneratorConfig.model_validate({"bad_records": {"share": 1 / 3, "kinds": {"future": 1, "duplicate": 3}}})
    bad = corrupt.bad_lines(_events(spark, 200), config).collect()
    assert 70 <= len(bad) <= 130  # each event spawns one with probability (1/3) / (1 - 1/3) = 1/2
    kinds = [r.kind for r in bad]
    assert set(kinds) == {"future", "duplicate"} and kinds.count("duplicate") > 2 * kinds.count("future")


def _check(row, kind, valid_lines):
    record = _parse(row.line)
    if kind == "malformed_json":
        assert record is None and row.line.startswith("{")
        return
    assert record is not None
    if kind == "duplicate":
        assert row.line in valid_lines and record["event_id"].startswith("id-")
        assert 0 <= row.arrival_ms - ARRIVAL <= ev.MAX_ARRIVAL_DELAY_MS
        return
    assert row.arrival_ms == ARRIVAL and not record.get("event_id", "").startswith("id-")
    if kind == "missing_field":
        assert sum(f not in record for f in ev.REQUIRED_FIELDS) == 1
    elif kind == "wrong_type":
        assert not isinstance(record["event_time"], str) or isinstance(record.get("price"), str)
    elif kind == "unknown_event_type":
        assert record["event_type"] in corrupt.UNKNOWN_EVENT_TYPES
        assert record["event_type"] not in ev.EVENT_TYPES
    else:
        event_ms = clock.epoch_millis(dt.datetime.fromisoformat(record["event_time"].replace("Z", "+00:00")))
        if kind == "too_old":
            assert 365 * clock.MS_PER_DAY <= ARRIVAL - event_ms <= 730 * clock.MS_PER_DAY
        else:
            assert 2 * clock.MS_PER_DAY <= event_ms - ARRIVAL <= 30 * clock.MS_PER_DAY


def test_no_bad_lines_without_share(spark):
    config = GeneratorConfig()
    lines = corrupt.output_lines(_events(spark, 10), config).collect()
    assert len(lines) == 10 and {r.kind for r in lines} == {"valid"}
    assert json.loads(lines[0].line)["event_time"] == "2024-01-02T10:00:01.000Z"
