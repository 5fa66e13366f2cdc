"""The data interval of a run, also for runs triggered without a logical date."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest

from pipelines.orchestration.intervals import context_interval, run_interval, template

UTC = dt.timezone.utc


def _dag(cron: str):
    from airflow.sdk import DAG, CronDataIntervalTimetable

    return DAG(dag_id="d", schedule=CronDataIntervalTimetable(cron, timezone="UTC"),
               start_date=dt.datetime(2024, 1, 1, tzinfo=UTC))


def test_a_run_with_a_data_interval_keeps_it():
    start, end = dt.datetime(2024, 1, 3, 10, tzinfo=UTC), dt.datetime(2024, 1, 3, 11, tzinfo=UTC)
    run = SimpleNamespace(data_interval_start=start, data_interval_end=end, run_after=end)
    assert run_interval(_dag("0 * * * *"), run) == (start, end)


@pytest.mark.parametrize(("cron", "run_after", "expected"), [
    ("0 * * * *", dt.datetime(2024, 1, 3, 11, 20, tzinfo=UTC), ("2024-01-03T10:00", "2024-01-03T11:00")),
    ("0 * * * *", dt.datetime(2024, 1, 3, 11, 0, tzinfo=UTC), ("2024-01-03T10:00", "2024-01-03T11:00")),
    ("30 0 * * *", dt.datetime(2024, 1, 4, 9, 0, tzinfo=UTC), ("2024-01-03T00:30", "2024-01-04T00:30")),
])
def test_a_run_without_one_gets_the_last_complete_interval_before_run_after(cron, run_after, expected):
    run = SimpleNamespace(data_interval_start=None, data_interval_end=None, run_after=run_after, run_id="manual__x")
    start, end = run_interval(_dag(cron), run)
    assert (start.strftime("%Y-%m-%dT%H:%M"), end.strftime("%Y-%m-%dT%H:%M")) == expected
    assert start.utcoffset() == dt.timedelta(0)


def test_a_run_with_neither_says_how_to_trigger_it():
    run = SimpleNamespace(data_interval_start=None, data_interval_end=None, run_after=None, run_id="manual__x")
    with pytest.raises(ValueError, match="manual__x of d .*trigger it with a logical date"):
        run_interval(_dag("0 * * * *"), run)


def test_context_and_template():
    dag = _dag("0 * * * *")
    run = SimpleNamespace(data_interval_start=None, data_interval_end=None,
                          run_after=dt.datetime(2024, 1, 3, 11, 20, tzinfo=UTC))
    assert context_interval({"dag": dag, "dag_run": run})[0] == dt.datetime(2024, 1, 3, 10, tzinfo=UTC)
    assert context_interval({"task": SimpleNamespace(dag=dag), "dag_run": run})[1] == dt.datetime(2024, 1, 3, 11, tzinfo=UTC)
    assert template(1, "%Y-%m-%d") == "{{ clickml_interval(dag, dag_run)[1].strftime('%Y-%m-%d') }}"
