"""The failure callback names what failed and where, and never raises."""

from __future__ import annotations

import datetime as dt
import logging
from types import SimpleNamespace

from pipelines.orchestration.callbacks import describe_failure, log_failure


def test_failure_is_described_with_task_run_host_application_and_error(caplog):
    ti = SimpleNamespace(dag_id="clickstream_ingest", task_id="clickstream.ingest", try_number=2,
                         hostname="worker-1", log_url="http://127.0.0.1:8080/log")
    task = SimpleNamespace(_application="/opt/clickml/jobs/ingest_clickstream.py", _conn_id="clickml_spark")
    context = {"ti": ti, "task": task, "dag_run": SimpleNamespace(run_id="scheduled__2024", dag_id="x"),
               "data_interval_start": dt.datetime(2024, 1, 1), "data_interval_end": dt.datetime(2024, 1, 1, 1),
               "exception": RuntimeError("spark-submit exited with 1")}
    with caplog.at_level(logging.ERROR, logger="clickml.orchestration"):
        log_failure(context)
    text = caplog.records[-1].getMessage()
    for part in ("dag=clickstream_ingest", "task=clickstream.ingest", "try=2", "run=scheduled__2024",
                 "interval=[2024-01-01 00:00:00, 2024-01-01 01:00:00)", "host=worker-1",
                 "application=/opt/clickml/jobs/ingest_clickstream.py", "spark_conn=clickml_spark",
                 "log=http://127.0.0.1:8080/log", "error=RuntimeError: spark-submit exited with 1"):
        assert part in text, (part, text)


def test_dag_level_failure_and_broken_context_do_not_raise(caplog):
    assert describe_failure({"dag_run": SimpleNamespace(run_id="r1", dag_id="model_training"),
                             "reason": "task_failure"}) == "clickml: FAILED dag=model_training run=r1 error=task_failure"

    class Broken(dict):
        def get(self, *args):
            raise KeyError("broken")

    with caplog.at_level(logging.ERROR, logger="clickml.orchestration"):
        log_failure(Broken())
    assert "could not describe" in caplog.text


def test_a_run_without_a_logical_date_is_described_with_its_inferred_interval():
    from airflow.sdk import DAG, CronDataIntervalTimetable

    utc = dt.timezone.utc
    dag = DAG(dag_id="clickstream_ingest", schedule=CronDataIntervalTimetable("0 * * * *", timezone="UTC"),
              start_date=dt.datetime(2024, 1, 1, tzinfo=utc))
    run = SimpleNamespace(run_id="manual__x", dag_id="clickstream_ingest", data_interval_start=None,
                          data_interval_end=None, run_after=dt.datetime(2024, 1, 3, 11, 20, tzinfo=utc))
    text = describe_failure({"dag": dag, "dag_run": run, "reason": "task_failure"})
    assert "interval=[2024-01-03 10:00:00+00:00, 2024-01-03 11:00:00+00:00)" in text, text
