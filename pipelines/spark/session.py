"""Build the SparkSession from config.

- `local[*]` by default; `spark://` standalone, `yarn` and `k8s://` from the profile.
- Adaptive execution on, UTC session time zone, Parquet timestamps as TIMESTAMP_MICROS (so the
  Parquet footers carry statistics that the Delta commit records).
- GPU resource settings when `spark.gpu.enabled`.
- Under spark-submit (or when a session is already active), what was submitted wins: our settings
  only fill keys that the submitter did not set, and the master is never overridden.
"""

from __future__ import annotations

import glob
import logging
import os
import sys
from pathlib import Path
from typing import Mapping

from pipelines.config import ClickmlConfig

log = logging.getLogger(__name__)

DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
DELTA_CATALOG = "org.apache.spark.sql.delta.catalog.DeltaCatalog"
# Only settable when this process starts the JVM; a submitted driver already has its heap.
_LAUNCH_ONLY = {"spark.driver.memory", "spark.master"}


def session_settings(config: ClickmlConfig, delta_jars: bool | None = None) -> dict[str, str]:
    """The Spark settings that `config` asks for (a pure function; nothing is started)."""
    spark = config.spark
    conf: dict[str, str] = {
        "spark.master": spark.master,
        "spark.app.name": spark.app_name,
        "spark.sql.adaptive.enabled": "true",
        "spark.sql.adaptive.coalescePartitions.enabled": "true",
        "spark.sql.shuffle.partitions": str(spark.shuffle_partitions),
        "spark.sql.session.timeZone": spark.session_time_zone,
        "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
        "spark.ui.enabled": str(spark.ui_enabled).lower(),
        "spark.ui.showConsoleProgress": "false",
        # The lake layer commits files itself: no _SUCCESS markers inside Delta table directories.
        "spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs": "false",
    }
    if spark.master.startswith("local"):
        conf["spark.driver.host"] = "127.0.0.1"
        conf["spark.driver.bindAddress"] = "127.0.0.1"
    optional = {
        "spark.driver.memory": spark.driver_memory,
        "spark.executor.memory": spark.executor_memory,
        "spark.executor.cores": str(spark.executor_cores) if spark.executor_cores else None,
        "spark.local.dir": spark.local_dir,
    }
    conf.update({k: v for k, v in optional.items() if v})
    conf.update(_gpu_settings(config))
    conf.update(_s3a_settings(config))
    if delta_jars is None:
        delta_jars = delta_jars_on_classpath(spark.conf)
    if delta_jars and config.lake.writer != "delta-rs":
        conf["spark.sql.extensions"] = _append_csv(spark.conf.get("spark.sql.extensions"), DELTA_EXTENSION)
        conf["spark.sql.catalog.spark_catalog"] = DELTA_CATALOG
    conf.update(spark.conf)  # explicit pass-through settings win over derived ones
    return conf


def discovery_script_path(config: ClickmlConfig) -> str:
    """The GPU discovery script as Spark must be given it: a relative path is taken from the
    project root (the config directory's parent), not from wherever the job was started."""
    script = config.spark.gpu.discovery_script or ""
    if not script or "://" in script or Path(script).is_absolute():
        return script
    return str(Path(config.conf_dir).resolve().parent / script)


def _gpu_settings(config: ClickmlConfig) -> dict[str, str]:
    gpu = config.spark.gpu
    if not gpu.enabled:
        return {}
    conf = {
        "spark.executor.resource.gpu.amount": str(gpu.executor_amount),
        "spark.task.resource.gpu.amount": _number(gpu.task_amount),
    }
    if gpu.discovery_script:
        script = discovery_script_path(config)
        conf["spark.executor.resource.gpu.discoveryScript"] = script
        conf["spark.driver.resource.gpu.discoveryScript"] = script
    if gpu.vendor:
        conf["spark.executor.resource.gpu.vendor"] = gpu.vendor
    return conf


def _s3a_settings(config: ClickmlConfig) -> dict[str, str]:
    roots = (config.lake.root, config.landing.root)
    if not any(r.startswith("s3a://") for r in roots):
        return {}
    storage = config.lake.storage
    conf = {"spark.hadoop.fs.s3a.path.style.access": str(storage.path_style).lower()}
    if storage.endpoint:
        conf["spark.hadoop.fs.s3a.endpoint"] = storage.endpoint
        conf["spark.hadoop.fs.s3a.connection.ssl.enabled"] = str(storage.endpoint.startswith("https")).lower()
    if storage.region:
        conf["spark.hadoop.fs.s3a.endpoint.region"] = storage.region
    if storage.access_key_id and storage.secret_access_key:
        conf["spark.hadoop.fs.s3a.access.key"] = storage.access_key_id
        conf["spark.hadoop.fs.s3a.secret.key"] = storage.secret_access_key
        if storage.session_token:
            conf["spark.hadoop.fs.s3a.session.token"] = storage.session_token
            conf["spark.hadoop.fs.s3a.aws.credentials.provider"] = (
                "org.apache.hadoop.fs.s3a.TemporaryAWSCredentialsProvider"
            )
    return conf


def delta_jars_on_classpath(extra_conf: Mapping[str, str] | None = None) -> bool:
    """Whether the Delta Spark jars will be on the driver classpath.

    Looks at `spark.jars` / `spark.jars.packages` in the settings and in `$PYSPARK_SUBMIT_ARGS`,
    and for `delta-spark*.jar` in `$SPARK_HOME/jars` and pyspark's own `jars/` directory.
    """
    extra_conf = extra_conf or {}
    declared = " ".join(
        [extra_conf.get("spark.jars", ""), extra_conf.get("spark.jars.packages", ""), os.environ.get("PYSPARK_SUBMIT_ARGS", "")]
    )
    if "io.delta" in declared or "delta-spark" in declared:
        return True
    jar_dirs = []
    if os.environ.get("SPARK_HOME"):
        jar_dirs.append(Path(os.environ["SPARK_HOME"]) / "jars")
    try:
        import pyspark

        jar_dirs.append(Path(pyspark.__file__).parent / "jars")
    except ImportError:  # pragma: no cover - pyspark is a hard dependency
        pass
    return any(glob.glob(str(d / "delta-spark*.jar")) for d in jar_dirs)


def submitted_settings() -> dict[str, str] | None:
    """Settings of the JVM that spark-submit started for this driver, or None when not submitted."""
    if "PYSPARK_GATEWAY_PORT" not in os.environ:
        return None
    from pyspark import SparkConf, SparkContext

    # Connect to the JVM that spark-submit started; only then does SparkConf() load the
    # submitted settings (they are JVM system properties there).
    SparkContext._ensure_initialized()
    return dict(SparkConf().getAll())


def merge_with_submitted(ours: Mapping[str, str], submitted: Mapping[str, str]) -> dict[str, str]:
    """Our settings minus those the submitter set (theirs win) and minus launch-only keys."""
    merged = {}
    for key, value in ours.items():
        if key in _LAUNCH_ONLY:
            continue
        if key in submitted:
            if submitted[key] != value:
                log.info("spark-submit sets %s=%s; keeping it over the config's %s", key, submitted[key], value)
            continue
        merged[key] = value
    return merged


def build_session(config: ClickmlConfig, extra: Mapping[str, str] | None = None):
    """Return the SparkSession for `config`, reusing a submitted or active one when there is one."""
    from pyspark.sql import SparkSession

    settings = session_settings(config)
    settings.update(extra or {})
    active = SparkSession.getActiveSession()
    submitted = submitted_settings()
    if active is not None:
        # A running session keeps its static settings; runtime SQL settings follow the config,
        # except those that spark-submit set explicitly.
        _apply_runtime(active, settings if submitted is None else merge_with_submitted(settings, submitted))
        return active

    if spark_is_local(config) and submitted is None:
        # Keep a local driver on loopback (and quiet Spark's hostname warning).
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        # Python workers must run the driver's interpreter (its venv has pyarrow and pipelines).
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder
    if submitted is not None:
        settings = merge_with_submitted(settings, submitted)
        log.info("running under spark-submit (master %s); config fills only unset keys", submitted.get("spark.master"))
    for key, value in settings.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel(config.logging.spark_level)
    log.info(
        "Spark %s session: master=%s app=%s shuffle.partitions=%s delta-extension=%s",
        session.version,
        session.sparkContext.master,
        session.sparkContext.appName,
        session.conf.get("spark.sql.shuffle.partitions"),
        delta_extension_loaded(session),
    )
    return session


def spark_is_local(config: ClickmlConfig) -> bool:
    return config.spark.master.startswith("local")


def _apply_runtime(session, settings: Mapping[str, str]) -> None:
    """Apply the SQL settings that can change on a running session; static ones are skipped."""
    for key, value in settings.items():
        if not key.startswith("spark.sql.") or session.conf.isModifiable(key) is False:
            continue
        try:
            session.conf.set(key, value)
        except Exception:  # static SQL conf on some versions: keep the running value
            log.debug("cannot change %s on a running session", key)


def delta_extension_loaded(session) -> bool:
    """True when the Delta SQL extension is configured and its classes load in the JVM."""
    extensions = session.conf.get("spark.sql.extensions", "") or ""
    if DELTA_EXTENSION not in extensions:
        return False
    try:
        jvm = session.sparkContext._jvm
        loader = jvm.java.lang.Thread.currentThread().getContextClassLoader()
        jvm.java.lang.Class.forName(DELTA_EXTENSION, False, loader)
        return True
    except Exception:
        return False


def _append_csv(existing: str | None, item: str) -> str:
    items = [x for x in (existing or "").split(",") if x]
    return ",".join(items if item in items else items + [item])


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
