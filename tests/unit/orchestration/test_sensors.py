"""The landing-files trigger and sensor on a tmp landing zone (no Airflow database)."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from pipelines.orchestration.sensors import LandingFilesSensor, LandingFilesTrigger
from tests.conftest import CONF_DIR

UTC = dt.timezone.utc
START, END = dt.datetime(2024, 1, 1, 10, tzinfo=UTC), dt.datetime(2024, 1, 1, 11, tzinfo=UTC)


def _trigger(tmp_path, deadline: dt.datetime, min_files: int = 1) -> LandingFilesTrigger:
    return LandingFilesTrigger(
        source="clickstream", start=START.isoformat(), end=END.isoformat(), deadline=deadline.isoformat(),
        min_files=min_files, poke_interval=0.05, profile="local", conf_dir=str(CONF_DIR),
        overrides=[f"landing.root={tmp_path / 'landing'}", f"lake.root={tmp_path / 'lake'}"],
    )


def _first_event(trigger):
    async def first():
        async for event in trigger.run():
            return event.payload
    return asyncio.run(asyncio.wait_for(first(), timeout=60))


def _land(tmp_path, hour: dt.datetime, name: str = "part-0.json") -> None:
    folder = tmp_path / "landing" / "clickstream" / f"date={hour:%Y-%m-%d}" / f"hour={hour:%H}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text('{"event_id": "e1"}\n')


def test_trigger_fires_when_the_intervals_files_arrive(tmp_path):
    _land(tmp_path, START - dt.timedelta(hours=1))  # another hour: not counted
    trigger = _trigger(tmp_path, dt.datetime.now(UTC) + dt.timedelta(minutes=5))

    async def arrive_later():
        await asyncio.sleep(0.3)
        _land(tmp_path, START)

    async def run():
        landing = asyncio.create_task(arrive_later())
        async for event in trigger.run():
            await landing
            return event.payload

    payload = asyncio.run(asyncio.wait_for(run(), timeout=60))
    assert payload == {"status": "found", "source": "clickstream", "files": 1}


def test_trigger_times_out_and_reports_what_it_saw(tmp_path):
    _land(tmp_path, START)
    payload = _first_event(_trigger(tmp_path, dt.datetime.now(UTC) + dt.timedelta(seconds=0.2), min_files=2))
    assert payload == {"status": "timeout", "source": "clickstream", "files": 1}


def test_trigger_reports_config_errors_instead_of_waiting(tmp_path):
    trigger = _trigger(tmp_path, dt.datetime.now(UTC) + dt.timedelta(minutes=5))
    trigger.source = "no_such_source"
    payload = _first_event(trigger)
    assert payload["status"] == "error" and "no_such_source" in payload["message"]


def test_trigger_serializes_names_only(tmp_path):
    path, kwargs = _trigger(tmp_path, END).serialize()
    assert path == "pipelines.orchestration.sensors.LandingFilesTrigger"
    assert LandingFilesTrigger(**kwargs).serialize() == (path, kwargs)
    assert set(kwargs) == {"source", "start", "end", "deadline", "min_files", "poke_interval", "profile",
                           "conf_dir", "overrides"}


def test_sensor_completion_skips_or_fails_on_timeout():
    from airflow.sdk.exceptions import AirflowException, AirflowSensorTimeout, AirflowSkipException

    skip = LandingFilesSensor(task_id="s1", source="clickstream", timeout=60)
    fail = LandingFilesSensor(task_id="s2", source="clickstream", timeout=60, skip_on_timeout=False)
    assert skip.execute_complete({}, {"status": "found", "files": 3}) == 3
    with pytest.raises(AirflowSkipException, match="only 0 of 1"):
        skip.execute_complete({}, {"status": "timeout", "files": 0})
    with pytest.raises(AirflowSensorTimeout, match="only 0 of 1"):
        fail.execute_complete({}, {"status": "timeout", "files": 0})
    # Bug: a listing error was raised as AirflowSensorTimeout, which Airflow never retries.
    with pytest.raises(AirflowException, match="listing the landing files failed: boom") as error:
        skip.execute_complete({}, {"status": "error", "message": "boom"})
    assert not isinstance(error.value, (AirflowSensorTimeout, AirflowSkipException))


def test_the_deadline_counts_from_the_intervals_end_not_from_the_start_of_the_task(tmp_path):
    # Bug: the deadline was now + timeout, so a catch-up over past empty hours waited the full
    # timeout (6 h by default) for each of them.
    from airflow.sdk.exceptions import AirflowSkipException, TaskDeferred

    sensor = LandingFilesSensor(task_id="s", source="clickstream", timeout=3600, profile="local",
                                conf_dir=str(CONF_DIR), overrides=[f"landing.root={tmp_path / 'landing'}"])
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({"data_interval_start": START, "data_interval_end": END})
    trigger = deferred.value.trigger
    assert dt.datetime.fromisoformat(trigger.deadline) == END + dt.timedelta(hours=1)
    assert _first_event(trigger) == {"status": "timeout", "source": "clickstream", "files": 0}  # one look, at once

    poking = LandingFilesSensor(task_id="p", source="clickstream", timeout=3600, deferrable=False, profile="local",
                                conf_dir=str(CONF_DIR), overrides=[f"landing.root={tmp_path / 'landing'}"])
    with pytest.raises(AirflowSkipException, match="within 1 h of the interval's end"):
        poking.poke({"data_interval_start": START, "data_interval_end": END})
    now = dt.datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    assert poking.poke({"data_interval_start": now - dt.timedelta(hours=1), "data_interval_end": now}) is False


def test_sensor_pokes_in_reschedule_mode_when_not_deferrable(tmp_path):
    sensor = LandingFilesSensor(task_id="s", source="clickstream", deferrable=False, profile="local",
                                conf_dir=str(CONF_DIR), overrides=[f"landing.root={tmp_path / 'landing'}"])
    assert sensor.mode == "reschedule" and sensor.soft_fail
    end = dt.datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    context = {"data_interval_start": end - dt.timedelta(hours=1), "data_interval_end": end}
    assert sensor.poke(context) is False
    _land(tmp_path, end - dt.timedelta(hours=1))
    assert sensor.poke(context) is True
