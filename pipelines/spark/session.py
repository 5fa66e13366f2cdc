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
import re
import sys
from pathlib import Path
from typing import Mapping

from pipelines.config import ClickmlConfig
from pipelines.spark.jars import spark_jars_setting

log = logging.getLogger(__name__)

DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
DELTA_CATALOG = "org.apache.spark.sql.delta.catalog.DeltaCatalog"
SKIP_EMPTY_COMMITS = "spark.databricks.delta.skipRecordingEmptyCommits"
# Only settable when this process starts the JVM; a submitted driver already has its heap.
_LAUNCH_ONLY = {"spark.driver.memory", "spark.master"}


def session_settings(config: ClickmlConfig, jars: str | None = None) -> dict[str, str]:
    """The Spark settings that `config` asks for (a pure function; nothing is started).

    `jars` is the `spark.jars` value (jvm/pom.xml's spark profile, see `session_jars`); when every
    executor runs on this host they go on the classpath instead (`classpath_settings`). The Delta extension and
    catalog are always configured: Delta is the one table format.
    """
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
    if jars and executors_on_this_host(spark.master):
        conf.update(classpath_settings(spark.master, jars, spark.conf))
    elif jars:
        conf["spark.jars"] = jars
    conf["spark.sql.extensions"] = _append_csv(spark.conf.get("spark.sql.extensions"), DELTA_EXTENSION)
    conf["spark.sql.catalog.spark_catalog"] = DELTA_CATALOG
    if spark.master.startswith("local"):
        # Delta's VACUUM lists files with this many tasks (default 10000): 130 s for a one-file
        # table on local[2], under 10 s with a handful.
        conf["spark.sql.sources.parallelPartitionDiscovery.parallelism"] = str(max(2, spark.shuffle_partitions))
        # Delta rebuilds a table's snapshot from its log with this many tasks (default 50, sized
        # for clusters): on local[2] that made every write ~3-4x slower (4 s vs 1 s for a small
        # table). One task reads a local table's log in well under a second.
        conf["spark.databricks.delta.snapshotPartitions"] = "1"
        # The per-commit checksum file (.crc, a validation aid) costs ~10% of a small write here
        # (the silver tests: 249 s with it, 223 s without); Delta reads tables without it.
        conf["spark.databricks.delta.writeChecksumFile.enabled"] = "false"
    # Every write records its commit, even one that adds and removes nothing (a replaceWhere over
    # partitions that hold no rows and receive none): the writer finds its commit by write id.
    conf[SKIP_EMPTY_COMMITS] = "false"
    # explicit pass-through settings win over derived ones (the classpaths were merged above)
    conf.update({k: v for k, v in spark.conf.items() if not (k in _CLASSPATHS and k in conf)})
    # ... except that Delta stays loaded: another extension in the config is added beside it.
    conf["spark.sql.extensions"] = _append_csv(conf.get("spark.sql.extensions"), DELTA_EXTENSION)
    return conf


_CLASSPATHS = ("spark.driver.extraClassPath", "spark.executor.extraClassPath")
_LOOPBACK_MASTER = re.compile(r"^spark://(127\.0\.0\.1|localhost)(:\d+)?/?$")


def executors_on_this_host(master: str) -> bool:
    """Whether every executor of `master` runs on this host: a local master, or a standalone
    master on loopback (`make up`'s cluster: a worker can only reach it from this host)."""
    return master.startswith("local") or bool(_LOOPBACK_MASTER.match(master))


def classpath_settings(master: str, jars: str, existing: Mapping[str, str] | None = None) -> dict[str, str]:
    """`spark.jars` (comma-separated) as the classpath of the driver (and of the executors of a
    standalone master), after the entries already in `existing`: for a master whose executors all
    run on this host (`executors_on_this_host`), where the jars lie at the same paths.

    As `spark.jars` they would be shipped: every JVM (each executor of a cluster) copied all of them
    (638 MB with the AWS SDK bundle) into its temp or work folder first, ~4 s of each session
    start; a JVM killed before its shutdown hook ran left the copy behind, and a test run filled
    the disk with them (HDFS then refused blocks, executors could not fetch their jars).
    """
    keys = _CLASSPATHS if not master.startswith("local") else _CLASSPATHS[:1]
    return {key: _join_classpath((existing or {}).get(key), jars) for key in keys}


def _join_classpath(existing: str | None, jars: str) -> str:
    entries = [e for e in (existing or "").split(os.pathsep) if e]
    entries += [j for j in jars.split(",") if j and j not in entries]
    return os.pathsep.join(entries)


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


_S3_SCHEMES = ("s3a://", "s3://", "s3n://")


def _s3_roots(config: ClickmlConfig) -> list[str]:
    """The config's roots that live on S3 (Spark reaches every S3 spelling through s3a)."""
    roots = (config.lake.root, config.landing.root, config.ingest.checkpoint_root, config.validation.results_root)
    return [r for r in roots if r and r.lower().startswith(_S3_SCHEMES)]


def _s3a_settings(config: ClickmlConfig) -> dict[str, str]:
    """`spark.hadoop.fs.s3a.*` for the config's `lake.storage`, when a root is on S3.

    Verified against moto 5 (tests/integration/lake/test_pipeline_on_s3.py, hadoop-aws 3.4.2 with
    AWS SDK v2 2.29): path-style, endpoint, region and key pair are all it needs; see
    docs/storage.md. Notes for other S3-compatible stores:
    - path-style is on by default (`lake.storage.path_style`): virtual-host addressing needs DNS
      for `<bucket>.<endpoint>`, which MinIO/moto/Ceph on one host do not have.
    - `fs.s3a.endpoint.region` comes from `lake.storage.region`. With a custom endpoint and no region,
      hadoop-aws 3.4 picks one itself (works with moto); set it when the store checks the SigV4
      region (MinIO with MINIO_REGION, Ceph zonegroups): a mismatch is an HTTP 400.
    - no key pair in the config: S3A's default provider chain (AWS_ACCESS_KEY_ID /
      AWS_SECRET_ACCESS_KEY, profile, instance role) decides, as on a cluster.
    - not needed with moto 5: `fs.s3a.change.detection.mode` (moto returns stable ETags) and
      checksum settings: the AWS SDK bundle is 2.29.x, before SDK 2.30 turned on CRC checksums for
      every request (which some S3-compatible stores reject), and hadoop-aws 3.4.2 leaves
      `fs.s3a.checksum.validation` off. Upgrading the bundle past 2.30 may need
      `fs.s3a.create.checksum.algorithm` / the SDK's `requestChecksumCalculation=WHEN_REQUIRED`.
      Set such options through `spark.conf` (`spark.hadoop.fs.s3a.*`) in the config.
    - MLflow's Spark flavor first tries to save the model straight to the `s3://` artifact URI
      through Hadoop, logs `ERROR Instrumentation: No FileSystem for scheme "s3"`, then saves it
      locally and uploads it with boto3: harmless. (Mapping `fs.s3.impl` to S3A would skip the
      detour; not done, untested.)
    """
    if not _s3_roots(config):
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


def s3a_bucket_settings(config: ClickmlConfig) -> dict[str, str]:
    """The `_s3a_settings` as S3A per-bucket Hadoop options (`fs.s3a.bucket.<bucket>.<option>`)
    for each bucket of the config's S3 roots: what a running session needs to reach them, without
    touching the settings of other buckets (another config, another lakehouse) in the same JVM."""
    buckets = sorted({r.split("://", 1)[1].split("/", 1)[0] for r in _s3_roots(config)})
    options = {k[len("spark.hadoop.fs.s3a."):]: v for k, v in _s3a_settings(config).items()}
    return {f"fs.s3a.bucket.{b}.{option}": value for b in buckets for option, value in options.items()}


def apply_s3a_settings(session, config: ClickmlConfig) -> dict[str, str]:
    """Give a running session (started for another config, e.g. the test suite's) the S3A settings
    of `config`'s buckets; returns what was set.

    They go into the SparkContext's Hadoop configuration, which every session of the context
    copies (`newSession()` children too: the train and ingest stages run in one) and which Delta's
    log store reads; `spark.conf.set("fs.s3a...")` would only reach the session it is set on. An
    S3A FileSystem already cached for a bucket keeps the settings it was created with.
    `_apply_runtime` (spark.sql.* only) does not do this: call it where a session is reused.
    """
    settings = s3a_bucket_settings(config)
    hadoop = session.sparkContext._jsc.hadoopConfiguration()
    for key, value in settings.items():
        hadoop.set(key, value)
    return settings


def session_jars(config: ClickmlConfig) -> str | None:
    """The `spark.jars` a session started by this process needs, or None when they are supplied
    another way: `spark.jars` in the config's pass-through settings, or Delta already in
    `$SPARK_HOME/jars` (a cluster image). Otherwise the resolved jars of jvm/pom.xml; raises
    JarsMissingError (naming `make jars` and CLICKML_JARS_DIR) when they are not resolved."""
    if config.spark.conf.get("spark.jars") or delta_in_spark_home():
        return None
    return spark_jars_setting()


def delta_in_spark_home(include_pyspark: bool = True) -> bool:
    """Whether `$SPARK_HOME/jars` (or pyspark's own jars/, unless `include_pyspark` is False:
    importing pyspark is too heavy for DAG parsing) already holds delta-spark."""
    jar_dirs = []
    if os.environ.get("SPARK_HOME"):
        jar_dirs.append(Path(os.environ["SPARK_HOME"]) / "jars")
    if include_pyspark:
        import pyspark

        jar_dirs.append(Path(pyspark.__file__).parent / "jars")
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


def build_session(config: ClickmlConfig, extra: Mapping[str, str] | None = None, log_file: str | Path | None = None):
    """Return the SparkSession for `config`, reusing a submitted or active one when there is one.

    `log_file`: a JVM started here sends its Log4j output there (the command's log file) instead
    of the console (pipelines/logs.py); a running or submitted one keeps its own logging."""
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    submitted = submitted_settings()
    # A running JVM already has its classpath: jars are only resolved for a JVM we start.
    settings = session_settings(config, jars=None if (active or submitted) else session_jars(config))
    settings.update(extra or {})
    if log_file is not None and active is None and submitted is None:
        from pipelines.logs import spark_log_settings

        settings.update(spark_log_settings(log_file, settings.get("spark.driver.extraJavaOptions")))
    if active is not None:
        # A running session keeps its static settings; runtime SQL settings follow the config,
        # except those that spark-submit set explicitly.
        _apply_runtime(active, settings if submitted is None else merge_with_submitted(settings, submitted))
        apply_s3a_settings(active, config)  # Hadoop settings of a reused session follow the config too
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
    """Apply the SQL (and Delta) settings that can change on a running session; static ones are skipped."""
    for key, value in settings.items():
        if not key.startswith(("spark.sql.", "spark.databricks.delta.")) or session.conf.isModifiable(key) is False:
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
