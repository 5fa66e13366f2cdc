"""`SparkSubmitOperator`s for the `jobs/*.py` entry points, configured from `orchestration.spark_submit`.

Each task submits the same script a person would (`spark-submit jobs/<job>.py --profile P ...`).
The Airflow connection (`spark_submit.conn_id`) decides the master and deploy mode; the config
adds the `--conf` settings, the JVM jars (`--jars`, jvm/pom.xml), the executors' Python environment (`--archives` / `--py-files`) and
the job's own arguments.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Any

from pipelines.orchestration.settings import DagSettings


def job_arguments(settings: DagSettings, *args: str) -> list[str]:
    """`--profile P --conf-dir D [--set K=V ...] ARGS`: what every submitted job is given."""
    submit = settings.config.orchestration.spark_submit
    sets = [item for override in submit.job_overrides for item in ("--set", override)]
    return ["--profile", settings.job_profile, "--conf-dir", settings.job_conf_dir, *sets, *args]


def submit_conf(settings: DagSettings) -> dict[str, str]:
    """`--conf` of every submit: the Python of driver and executors, then `spark_submit.conf`.

    Without `archives`, driver and executors run the Python that built the DAG (same host: local
    mode and `make up`'s standalone cluster); with a packed environment, set `spark_submit.python`
    (e.g. `./environment/bin/python`).
    """
    submit = settings.config.orchestration.spark_submit
    conf: dict[str, str] = {}
    executor_python = submit.python or (None if submit.archives or submit.py_files else sys.executable)
    driver_python = submit.driver_python or (sys.executable if not submit.archives else None)
    if executor_python:
        conf["spark.pyspark.python"] = executor_python
    if driver_python:
        conf["spark.pyspark.driver.python"] = driver_python
    conf.update(submit.conf)
    return conf


def submit_jars(settings: DagSettings) -> str | None:
    """`--jars` of every submit: `spark_submit.jars` when set, none when `spark.jars` is in
    `spark_submit.conf` or the cluster's `$SPARK_HOME/jars` has Delta, else the jars `make jars`
    resolved on this host (a manifest read: nothing resolves at DAG-parse time). Unresolved jars
    give no `--jars`; the job then fails with the lake layer's message naming `make jars`."""
    import logging

    from pipelines.spark.jars import JarsMissingError, spark_jars_setting
    from pipelines.spark.session import delta_in_spark_home

    submit = settings.config.orchestration.spark_submit
    if submit.jars is not None:
        return submit.jars or None
    if "spark.jars" in submit.conf or delta_in_spark_home(include_pyspark=False):
        return None
    try:
        return spark_jars_setting()
    except JarsMissingError as exc:
        logging.getLogger(__name__).warning("no --jars for the Spark tasks: %s", exc)
        return None


def spark_job(settings: DagSettings, task_id: str, job: str, args: list[str], *, timeout_minutes: float,
              retries: int | None = None, doc_md: str | None = None, conf: dict[str, str] | None = None,
              **kwargs: Any):
    """A `SparkSubmitOperator` (`ClickmlSparkSubmitOperator`: jars on the driver classpath of a
    local master) running `jobs/<job>.py` with the standard arguments and `args`."""
    from pipelines.orchestration.operators import ClickmlSparkSubmitOperator

    orchestration = settings.config.orchestration
    submit = orchestration.spark_submit
    extra: dict[str, Any] = {}
    if retries is not None:
        extra["retries"] = retries
    if submit.pool:
        extra["pool"] = submit.pool
    application = str(Path(settings.jobs_dir) / f"{job}.py")
    return ClickmlSparkSubmitOperator(
        task_id=task_id,
        application=application,
        application_args=job_arguments(settings, *args),
        conn_id=submit.conn_id,
        conf={**submit_conf(settings), **(conf or {})},
        archives=submit.archives,
        jars=submit_jars(settings),
        py_files=submit.py_files,
        env_vars=dict(submit.env) or None,
        name=f"clickml-{task_id}",
        verbose=submit.verbose,
        execution_timeout=dt.timedelta(minutes=timeout_minutes),
        doc_md=doc_md,
        **extra,
        **kwargs,
    )
