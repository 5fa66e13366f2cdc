"""Failure callbacks: say what failed, where, and how to look at it."""

from __future__ import annotations

import logging
from typing import Any

from pipelines.orchestration.intervals import context_interval

log = logging.getLogger("clickml.orchestration")


def describe_failure(context: dict[str, Any]) -> str:
    """One paragraph naming the DAG, task, run, try, interval, host, Spark application and error."""
    ti = context.get("ti") or context.get("task_instance")
    dag_run = context.get("dag_run")
    task = context.get("task")
    dag_id = getattr(ti, "dag_id", None) or getattr(dag_run, "dag_id", "?")
    parts = [f"clickml: FAILED dag={dag_id}"]
    if ti is not None:
        parts.append(f"task={ti.task_id}")
        parts.append(f"try={getattr(ti, 'try_number', '?')}")
    parts.append(f"run={getattr(dag_run, 'run_id', None) or context.get('run_id', '?')}")
    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    if start is None and end is None and dag_run is not None:
        try:  # a run without a logical date: the interval its tasks worked on
            start, end = context_interval(context)
        except Exception as exc:  # noqa: BLE001 - a failure report must not fail
            log.debug("no interval for the failure report: %s", exc)
    if start is not None or end is not None:
        parts.append(f"interval=[{start}, {end})")
    host = getattr(ti, "hostname", None)
    if host:
        parts.append(f"host={host}")
    application = getattr(task, "application", None) or getattr(task, "_application", None)
    if application:
        parts.append(f"application={application}")
        conn_id = getattr(task, "_conn_id", None) or getattr(task, "conn_id", None)
        if conn_id:
            parts.append(f"spark_conn={conn_id}")
    log_url = getattr(ti, "log_url", None)
    if log_url:
        parts.append(f"log={log_url}")
    error = context.get("exception") or context.get("reason")
    if error is not None:
        parts.append(f"error={type(error).__name__ if isinstance(error, BaseException) else ''}: {error}".replace("=: ", "="))
    return " ".join(parts)


def log_failure(context: dict[str, Any]) -> None:
    """`on_failure_callback` of every task and DAG: log the failure at ERROR; never raise."""
    try:
        log.error(describe_failure(context))
    except Exception:  # a callback must not hide the original failure
        log.exception("clickml: failure callback could not describe the failure")
