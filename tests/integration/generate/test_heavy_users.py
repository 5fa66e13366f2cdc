"""Heavy users end to end on tiny data: valid JSON lines in the landing zone, machine-speed rates
and a giant session in the files, the truth tables and the report; the rest of the output is
unchanged by them."""

from __future__ import annotations

import collections
import datetime as dt

import pytest

from pipelines.generate import generate_landing, heavy, run
from tests.conftest import make_config
from tests.integration.generate.landing_reader import classify, parse_time, read_landing

SMALL = ("generator.users=40", "generator.days=1", "generator.products=100", "generator.bad_records.share=0.05")
HEAVY = ("generator.heavy_users.count=1", "generator.heavy_users.events_per_day=3000")
HEAVY_ID = "u0000040"


@pytest.fixture(scope="module")
def landed(spark, tmp_path_factory):
    config = make_config(tmp_path_factory.mktemp("heavy"), *SMALL, *HEAVY)
    result = generate_landing(config, spark)
    landing = read_landing(result.path)
    return config, result, landing, classify(landing)


def _heavy_records(classified):
    return [line.record for kind, line in classified if kind == "valid" and line.record["user_id"] == HEAVY_ID]


def test_heavy_lines_are_valid_events_of_one_giant_session(landed):
    config, result, landing, classified = landed
    assert heavy.heavy_user_ids(config.generator) == [HEAVY_ID]
    records = _heavy_records(classified)
    assert len(records) == 3000  # exactly events_per_day, all valid JSON lines
    assert len({r["session_id"] for r in records}) == 1  # 3000 <= session_events: one giant session
    assert len({r["event_id"] for r in records}) == 3000
    types = collections.Counter(r["event_type"] for r in records)
    assert types["product_view"] / 3000 > 0.9 and set(types) <= {"page_view", "product_view", "search"}
    assert len({(r["device"], r["referrer"], r["country"]) for r in records}) == 1
    # the bad-record share applies to the heavy user's events too
    assert result.bad_lines == pytest.approx(0.05 * result.lines, abs=0.02 * result.lines)


def test_machine_speed_sustained(landed):
    records = _heavy_records(landed[3])
    times = sorted(parse_time(r["event_time"]) for r in records)
    per_minute = collections.Counter(t.replace(second=0, microsecond=0) for t in times)
    busy = [n for n in per_minute.values() if n > 60]  # the ETL's default human speed limit
    assert len(busy) >= 3 and max(per_minute.values()) >= 500  # ~10 events/s for ~5 minutes
    assert times[-1] - times[0] < dt.timedelta(minutes=6)


def test_normal_output_is_unchanged(landed, spark, tmp_path):
    _, result, landing, _ = landed
    plain = generate_landing(make_config(tmp_path, *SMALL), spark)
    plain_lines = collections.Counter(line.text for line in read_landing(plain.path).lines)
    with_heavy = collections.Counter(line.text for line in landing.lines)
    assert not plain_lines - with_heavy  # every line of the plain output is still there
    extra = with_heavy - plain_lines
    assert result.events - plain.events == 3000
    assert sum(extra.values()) == result.lines - plain.lines
    # every extra line is the heavy user's (a bad line may have lost its user_id, not its origin)
    assert sum(1 for text in extra.elements() if f'"user_id":"{HEAVY_ID}"' in text) >= 3000


def test_deterministic(landed, spark, tmp_path):
    _, _, landing, _ = landed
    again = generate_landing(make_config(tmp_path, *SMALL, *HEAVY), spark)
    assert read_landing(again.path).files == landing.files


@pytest.mark.slow  # 8-21 s: out of make test-fast (under 8 min); make test runs it
def test_run_marks_heavy_users_in_the_truth_and_reports_them(spark, tmp_path):
    from pipelines.lake import Lake

    config = make_config(tmp_path, *SMALL, *HEAVY)
    lake = Lake(config, spark)
    result = run(config, spark, lake=lake)
    users = lake.read(config.tables.truth_users)
    sessions = lake.read(config.tables.truth_sessions)
    assert [r.user_id for r in users.where("is_heavy").collect()] == result.heavy_user_ids == [HEAVY_ID]
    assert result.users == 41 and result.heavy_users == 1
    heavy_sessions = sessions.where("is_heavy").collect()
    assert len(heavy_sessions) == result.heavy_sessions == 1
    assert heavy_sessions[0].n_events == result.heavy_events == 3000 and not heavy_sessions[0].purchased
    assert result.events == sum(r.n_events for r in sessions.select("n_events").collect())
    assert f"heavy users            1 ({HEAVY_ID}): 3,000 valid events" in result.report()
    assert result.as_dict()["heavy_user_ids"] == [HEAVY_ID]
