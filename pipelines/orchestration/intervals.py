"""The data interval a DAG run works on, also for runs Airflow 3 creates without one.

A run triggered without a logical date (REST `"logical_date": null`, the default of
`airflow dags trigger` and of the UI form when its date is cleared) has no data interval: the
context then has no `data_interval_start`/`data_interval_end`, and tasks that template them fail.
Such a run gets the interval the DAG's timetable gives a manual run due at the run's `run_after`:
for the hourly ingest the last complete hour before it, for the daily ETL the last complete day.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

MACRO = "clickml_interval"
"""Name of `run_interval` among the DAGs' user-defined macros: `{{ clickml_interval(dag, dag_run)[0] }}`."""


def run_interval(dag: Any, dag_run: Any) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of the run: its data interval, else the timetable's manual interval at `run_after`."""
    start = getattr(dag_run, "data_interval_start", None)
    end = getattr(dag_run, "data_interval_end", None)
    if start is not None and end is not None:
        return start, end
    run_after = getattr(dag_run, "run_after", None)
    if run_after is None:
        raise ValueError(f"run {getattr(dag_run, 'run_id', '?')} of {getattr(dag, 'dag_id', '?')} has neither a data "
                         "interval nor a run_after time; trigger it with a logical date")
    import pendulum  # Airflow's timetables take pendulum datetimes

    interval = _scheduling_timetable(dag).infer_manual_data_interval(run_after=pendulum.instance(run_after))
    return interval.start, interval.end


def _scheduling_timetable(dag: Any) -> Any:
    """The DAG's timetable with its scheduling logic: the Task SDK's timetables are definitions
    only, airflow-core's implement `infer_manual_data_interval`."""
    timetable = dag.timetable
    if hasattr(timetable, "infer_manual_data_interval"):
        return timetable
    try:
        from airflow.serialization.encoders import coerce_to_core_timetable
    except ImportError as exc:  # a worker with the Task SDK only
        raise ValueError(f"{dag.dag_id}: a run without a logical date needs airflow-core on the worker to infer "
                         "its data interval; trigger it with a logical date") from exc
    return coerce_to_core_timetable(timetable)


def context_interval(context: Any) -> tuple[dt.datetime, dt.datetime]:
    """The context's data interval; for a run without one, `run_interval` of its DAG and run."""
    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    if start is not None and end is not None:
        return start, end
    dag = context.get("dag") or getattr(context.get("task"), "dag", None)
    return run_interval(dag, context["dag_run"])


def template(index: int, pattern: str = "%Y-%m-%dT%H:%M") -> str:
    """Jinja for the run's interval start (0) or end (1), formatted with `pattern`."""
    return "{{ " + MACRO + f"(dag, dag_run)[{index}].strftime('{pattern}')" + " }}"
