"""Class-data sharing (AppCDS) for the Spark driver JVMs the test suite starts.

The suite starts dozens of Spark drivers besides its own session: every spark-submit of the Airflow
tests, every `clickml` command run as a user runs it, every process killed mid-write. Each one
loads, parses and verifies about the same 20,000 classes (Spark, Delta, Hadoop, MLlib) on these 2
cores. A dynamic CDS archive of them (`-XX:ArchiveClassesAtExit`, recorded once by a small
workload in a fresh driver) is mapped by every later driver instead: a fresh driver writing and
reading a Delta table took 9.9 s instead of 13.5-14.5 s (2026-12-07).

The archive is only valid for the classpath and JDK it was recorded with. Its name carries a hash
of both (the jars' paths, sizes and times; the `java` binary), so a new JDK or a re-resolved jar
records a new one; a driver whose classpath differs anyway (the JVM checks) runs without it,
silently (`-Xlog:cds*=off`). Nothing of this reaches production runs: tests/conftest.py passes the
options through `SPARK_SUBMIT_OPTS`, which Spark's launcher gives the driver JVM of every
spark-submit (pyspark's own included) and nothing else.

JDK 17 refuses a non-empty directory on an archived classpath, and Spark's launcher always puts
`SPARK_CONF_DIR` on it: the tests' `SPARK_CONF_DIR` is therefore an empty folder, and the suite's
Spark defaults (tests/spark-conf/spark-defaults.conf) travel as `-Dspark.*` system properties in the
same `SPARK_SUBMIT_OPTS` (SparkConf reads `spark.*` system properties as its defaults).

`CLICKML_TEST_CDS=0` turns the archive off (a JDK without CDS, or to compare timings);
`CLICKML_TEST_C1=0` gives the short-lived drivers the default JIT again (see SHORT_LIVED_JIT);
`CLICKML_TEST_JAVA_OPTS` adds JVM flags to every test driver (to try one on the whole suite).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pipelines.locks import exclusive_lock

REPO_ROOT = Path(__file__).resolve().parents[1]
QUIET = "-Xlog:cds*=off -Xlog:class+path=off"
"""The JVM's own CDS messages (a classpath that differs from the recorded one, an archive from
another JDK) stay out of the drivers' output: without the archive a driver is only slower."""
SHORT_LIVED_JIT = "-XX:TieredStopAtLevel=1 -Xss4m"
"""JIT settings of the drivers the tests start in subprocesses (CLI and spark-submit runs, Airflow
tasks, processes killed mid-write), not of the session fixture's long-lived JVM. Each of them runs
a pipeline step or two on tiny data and exits: the C2 compiler's work (about half of such a JVM's
CPU on these 2 cores) never pays off before it exits, so they stop at C1. Measured 2026-12-07 on the
recording workload in a fresh driver, interleaved runs: 23-26 s and 30-34 CPU-s against 28-30 s
and 50-55 CPU-s; tests/e2e/test_cli.py + test_jobs.py + tests/integration/spark/test_spark_submit.py
+ tests/integration/orchestration/test_dag_runs.py 94 / 85 s against 114 / 105 s. C1's frames are
larger and it inlines less: an ALS evaluation's deep recursion overflowed the default 1 MiB thread
stack of a C1-only executor, so these drivers (whose local-mode tasks run in the same JVM) get
4 MiB. The session JVM keeps the default tiered JIT: it lives for the whole suite, and C1 alone
was no faster there. `CLICKML_TEST_C1=0` turns this off."""
RECORD_TIMEOUT = 600
KEEP = 3

# Run in a fresh driver to record the archive: the kinds of work the suite's drivers do (SQL with
# windows and joins, JSON parsing, Delta writes, merges and history, a micro-batch stream, MLlib
# fits). Whatever it does not load, a driver loads from the jars as before. It builds its config
# itself rather than with tests.conftest.make_config: importing tests/conftest.py resets
# SPARK_SUBMIT_OPTS, which would drop the recording flag.
WORKLOAD = """
import sys, tempfile
from pathlib import Path
sys.path.insert(0, {repo!r})
from pyspark.sql import Window, functions as F
from pipelines.config import load_config
from pipelines.spark import build_session

root = Path(tempfile.mkdtemp(prefix="clickml-cds-"))
config = load_config(profile="local", conf_dir=Path({repo!r}) / "conf", env={{}}, overrides=[
    f"lake.root={{root / 'lake'}}", f"landing.root={{root / 'landing'}}", "spark.master=local[2]",
    "spark.shuffle_partitions=2", "spark.ui_enabled=false"])
spark = build_session(config)
events = spark.range(2000).selectExpr(
    "id", "id % 37 AS user", "id % 11 AS item", "CAST(id % 5 AS DOUBLE) AS x",
    "CAST(id % 2 AS INT) AS label", "to_json(named_struct('id', id, 'kind', 'view')) AS raw",
    "CAST(date_add(DATE'2024-01-01', CAST(id % 4 AS INT)) AS STRING) AS day")
events = events.withColumn("parsed", F.from_json("raw", "id BIGINT, kind STRING"))
ranked = events.withColumn("n", F.row_number().over(Window.partitionBy("user").orderBy("id")))
totals = ranked.groupBy("user").agg(F.count("*").alias("events"), F.sum("x").alias("x_sum"))
table = str(root / "lake" / "events")
rows = ranked.join(totals, "user").drop("parsed")
rows.write.format("delta").partitionBy("day").mode("overwrite").save(table)
rows.filter("day = '2024-01-02'").write.format("delta").mode("overwrite").option("replaceWhere", "day = '2024-01-02'").save(table)
from delta.tables import DeltaTable
target = DeltaTable.forPath(spark, table)
target.alias("t").merge(spark.read.format("delta").load(table).limit(5).alias("s"), "t.id = s.id").whenNotMatchedInsertAll().execute()
target.history().collect()
spark.read.format("delta").load(table).groupBy("day").count().collect()
landing = root / "stream-in"
landing.mkdir()
(landing / "a.jsonl").write_text('{{"id": 1}}\\n{{"id": 2}}\\n')
stream = spark.readStream.format("text").load(str(landing))
query = (stream.writeStream.foreachBatch(lambda df, epoch: df.count()).trigger(availableNow=True)
         .option("checkpointLocation", str(root / "checkpoint")).start())
query.awaitTermination()
from pyspark.ml import Pipeline
from pyspark.ml.classification import GBTClassifier, LogisticRegression
from pyspark.ml.evaluation import BinaryClassificationEvaluator
from pyspark.ml.feature import StandardScaler, StringIndexer, VectorAssembler
from pyspark.ml.recommendation import ALS
data = spark.read.format("delta").load(table).selectExpr("x", "CAST(n AS DOUBLE) AS n", "label", "day", "user", "item")
stages = [StringIndexer(inputCol="day", outputCol="day_ix"), VectorAssembler(inputCols=["x", "n", "day_ix"], outputCol="raw"),
          StandardScaler(inputCol="raw", outputCol="features")]
for model in (LogisticRegression(maxIter=5), GBTClassifier(maxIter=2, maxDepth=2)):
    fitted = Pipeline(stages=stages + [model]).fit(data)
    BinaryClassificationEvaluator().evaluate(fitted.transform(data))
ALS(rank=2, maxIter=1, userCol="user", itemCol="item", ratingCol="x", implicitPrefs=True).fit(data).transform(data).count()
gateway = spark.sparkContext._gateway
spark.stop()
# The archive is written when the JVM exits: close its stdin (the gateway then exits) and wait.
gateway.proc.stdin.close()
gateway.proc.wait(timeout={timeout})
"""


def enabled() -> bool:
    return os.environ.get("CLICKML_TEST_CDS", "1") != "0"


def cache_dir() -> Path:
    return Path(os.environ.get("CLICKML_CACHE_DIR") or Path.home() / ".cache" / "clickml") / "cds"


def empty_conf_dir() -> Path:
    """The tests' SPARK_CONF_DIR: an empty folder (see the module docstring)."""
    folder = cache_dir() / "empty-spark-conf"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _java() -> Path:
    home = os.environ.get("JAVA_HOME")
    found = Path(home) / "bin" / "java" if home else shutil.which("java")
    return Path(found).resolve() if found else Path("java")


def archive_key() -> str:
    """A hash of what the archive depends on: the JDK, the driver's jars and the conf folder."""
    import pyspark

    from pipelines.spark.jars import spark_jars_setting

    digest = hashlib.sha256()
    java = _java()
    files = [java, java.parents[1] / "lib" / "server" / "libjvm.so", java.parents[1] / "lib" / "server" / "classes.jsa"]
    files += [*sorted((Path(pyspark.__file__).parent / "jars").glob("*.jar"))]
    files += [Path(p) for p in spark_jars_setting().split(",") if p]
    for path in files:
        stat = path.stat() if path.exists() else None
        digest.update(f"{path}:{stat.st_size if stat else -1}:{stat.st_mtime_ns if stat else -1}\n".encode())
    digest.update(f"{empty_conf_dir()}\n{WORKLOAD}".encode())
    return digest.hexdigest()[:16]




def existing_archive() -> Path | None:
    """The archive for this machine's driver classpath when it was recorded already, else None."""
    if not enabled():
        return None
    try:
        archive = cache_dir() / f"spark-driver-{archive_key()}.jsa"
    except Exception:  # jars not resolved yet: sessions fail later with the command to run
        return None
    return archive if archive.exists() else None


def ensure_archive(env: dict[str, str]) -> Path | None:
    """The archive for this machine's driver classpath, recorded first when missing (about a
    minute, once); None when it cannot be recorded (the reason is printed, the suite runs without)."""
    if not enabled():
        return None
    try:
        key = archive_key()
    except Exception as exc:  # jars not resolved yet: sessions fail later with the command to run
        print(f"tests/jvm_cds.py: no class-data archive ({exc})", file=sys.stderr)
        return None
    archive = cache_dir() / f"spark-driver-{key}.jsa"
    with exclusive_lock(cache_dir() / "record.lock"):  # one recorder at a time (two xdist workers)
        if archive.exists():
            return archive
        started = time.monotonic()
        print(f"tests/jvm_cds.py: recording the Spark drivers' class-data archive {archive} (once per JDK and jars)",
              file=sys.stderr, flush=True)
        partial = archive.with_suffix(".partial")
        for leftover in cache_dir().glob("*.partial"):  # a recording that failed: its JVM wrote at exit
            leftover.unlink(missing_ok=True)
        record_env = {**env, "SPARK_SUBMIT_OPTS": f"{env.get('SPARK_SUBMIT_OPTS', '')} -XX:ArchiveClassesAtExit={partial}".strip()}
        with tempfile.TemporaryDirectory(prefix="clickml-cds-record-") as folder:
            log_path = Path(folder) / "record.log"
            with open(log_path, "w") as out:
                done = subprocess.run([sys.executable, "-c", WORKLOAD.format(repo=str(REPO_ROOT), timeout=RECORD_TIMEOUT)],
                                      env=record_env, cwd=folder, stdout=out, stderr=subprocess.STDOUT,
                                      timeout=RECORD_TIMEOUT, check=False)
            if done.returncode != 0 or not partial.exists():
                tail = log_path.read_text(errors="replace")[-3000:]
                print(f"tests/jvm_cds.py: recording failed (exit {done.returncode}); the suite runs without it:\n{tail}",
                      file=sys.stderr)
                partial.unlink(missing_ok=True)
                return None
        partial.rename(archive)
        # Archives of other JDKs, jars or checkouts (each venv has its own pyspark jars): the newest
        # few stay (~230 MiB each), so two checkouts used in turn do not record again and again.
        archives = sorted(cache_dir().glob("spark-driver-*.jsa"), key=lambda p: p.stat().st_mtime, reverse=True)
        for stale in archives[KEEP:]:
            stale.unlink(missing_ok=True)
        print(f"tests/jvm_cds.py: recorded in {time.monotonic() - started:.0f} s "
              f"({archive.stat().st_size / 2**20:.0f} MiB)", file=sys.stderr, flush=True)
        return archive


def driver_options(spark_defaults: dict[str, str], archive: Path | None, short_lived: bool = True) -> str:
    """`SPARK_SUBMIT_OPTS` for the tests' drivers: the suite's Spark defaults as system properties,
    the archive when there is one, and for the short-lived drivers (every one but the session
    fixture's) the JIT settings of SHORT_LIVED_JIT."""
    options = [f"-D{key}={value}" for key, value in spark_defaults.items()]
    if archive is not None:
        options += [f"-XX:SharedArchiveFile={archive}", QUIET]
    if short_lived and os.environ.get("CLICKML_TEST_C1", "1") != "0":
        options += SHORT_LIVED_JIT.split()
    options += os.environ.get("CLICKML_TEST_JAVA_OPTS", "").split()  # a developer's JVM flags for every test driver
    return " ".join(options)
