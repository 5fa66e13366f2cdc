"""The `SparkSubmitOperator` every clickml Spark task runs (imports Airflow: load it lazily).

One change over the provider's operator: the master comes from the Airflow connection, known only
when the task runs, and when all its executors run on this host (a local master, or `make up`'s
standalone master on loopback) the `--jars` go on the classpath instead (`--driver-class-path`, and
`spark.executor.extraClassPath` for the standalone one): they lie at the same paths, and as `--jars`
every JVM first copied all of them (638 MB with the AWS SDK bundle), see
`pipelines.spark.session.classpath_settings`. Other masters get `--jars` unchanged.
"""

from __future__ import annotations

import logging

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

from pipelines.spark.session import classpath_settings, executors_on_this_host

log = logging.getLogger(__name__)


class ClickmlSparkSubmitOperator(SparkSubmitOperator):
    """`SparkSubmitOperator` that puts `--jars` on the classpath when every executor runs on this host."""

    def _get_hook(self):
        hook = super()._get_hook()
        use_driver_classpath(hook)
        return hook


def use_driver_classpath(hook) -> bool:
    """Move the jars of a hook whose executors all run on this host to the classpath; True when it did.

    Reads the hook's resolved connection and its `_jars` / `_driver_class_path` / `_conf` (the
    provider keeps them private; tests/unit/orchestration/test_operators.py pins what this relies on)."""
    master = str(hook._connection.get("master") or "")
    if not executors_on_this_host(master) or not hook._jars:
        return False
    conf = dict(hook._conf or {})
    existing = {**conf, "spark.driver.extraClassPath": hook._driver_class_path or conf.get("spark.driver.extraClassPath")}
    settings = classpath_settings(master, hook._jars, existing)
    hook._driver_class_path = settings.pop("spark.driver.extraClassPath")
    hook._conf = {**conf, **settings}
    hook._jars = None
    log.info("master %s runs its executors on this host: the jars go on the classpath, not --jars", master)
    return True
