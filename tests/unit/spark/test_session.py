"""The session factory: settings derived from config, deference to spark-submit, the live session."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from pipelines.config import load_config
from pipelines.spark import (
    build_session,
    delta_extension_loaded,
    jars,
    session_jars,
    session_settings,
)
from pipelines.spark.jars import JarsMissingError
from pipelines.spark.session import (
    DELTA_CATALOG,
    DELTA_EXTENSION,
    delta_in_spark_home,
    merge_with_submitted,
)
from tests.conftest import CONF_DIR, REPO_ROOT, make_config, suite_spark_defaults


def test_local_defaults(tmp_path):
    settings = session_settings(make_config(tmp_path))
    assert settings["spark.master"] == "local[2]"
    assert settings["spark.sql.adaptive.enabled"] == "true"
    assert settings["spark.sql.shuffle.partitions"] == "2"
    assert settings["spark.sql.session.timeZone"] == "UTC"
    assert settings["spark.sql.parquet.outputTimestampType"] == "TIMESTAMP_MICROS"
    assert settings["spark.driver.host"] == "127.0.0.1"
    assert settings["spark.sql.extensions"] == DELTA_EXTENSION  # Delta is the one table format
    assert settings["spark.sql.catalog.spark_catalog"] == DELTA_CATALOG
    assert "spark.jars" not in settings
    assert not any(k.startswith("spark.executor.resource") for k in settings)
    # Delta on a local master: snapshots in one task, no checksum files; empty commits recorded
    assert settings["spark.databricks.delta.snapshotPartitions"] == "1"
    assert settings["spark.databricks.delta.writeChecksumFile.enabled"] == "false"
    assert settings["spark.databricks.delta.skipRecordingEmptyCommits"] == "false"


def test_standalone_master_and_executor_sizing(tmp_path):
    config = make_config(
        tmp_path, "spark.master=spark://10.0.0.5:7077", "spark.executor_memory=6g", "spark.executor_cores=3"
    )
    settings = session_settings(config)
    assert settings["spark.master"] == "spark://10.0.0.5:7077"
    assert settings["spark.executor.memory"] == "6g"
    assert settings["spark.executor.cores"] == "3"
    assert "spark.driver.host" not in settings
    # Delta's cluster defaults stay, except that empty commits are recorded (the writer finds them)
    assert "spark.databricks.delta.snapshotPartitions" not in settings
    assert settings["spark.databricks.delta.skipRecordingEmptyCommits"] == "false"


def test_gpu_resources_when_the_profile_asks(tmp_path):
    config = make_config(
        tmp_path,
        "spark.master=k8s://https://api:443",
        "spark.gpu.enabled=true",
        "spark.gpu.executor_amount=2",
        "spark.gpu.task_amount=0.5",
        "spark.gpu.discovery_script=/opt/spark/getGpus.sh",
        "spark.gpu.vendor=nvidia.com",
    )
    settings = session_settings(config)
    assert settings["spark.executor.resource.gpu.amount"] == "2"
    assert settings["spark.task.resource.gpu.amount"] == "0.5"
    assert settings["spark.executor.resource.gpu.discoveryScript"] == "/opt/spark/getGpus.sh"
    assert settings["spark.executor.resource.gpu.vendor"] == "nvidia.com"


def test_gpu_profile_discovery_script_does_not_depend_on_the_working_directory(tmp_path, monkeypatch):
    # Bug: the GPU profile's relative script path was handed to Spark as given, so a job started
    # outside the project root (an Airflow worker, a notebook) named a script that did not exist.
    config = load_config(profile="gpu", conf_dir=CONF_DIR, overrides=[f"lake.root={tmp_path}"], env={})
    monkeypatch.chdir(tmp_path)
    settings = session_settings(config)
    script = Path(settings["spark.driver.resource.gpu.discoveryScript"])
    assert script.is_absolute() and script.is_file()
    assert settings["spark.executor.resource.gpu.discoveryScript"] == str(script)


JARS = "/opt/jars/delta-spark_4.1_2.13-4.4.0.jar,/opt/jars/delta-storage-4.4.0.jar"


def test_jars_and_the_delta_extension_on_a_cluster_master(tmp_path):
    config = make_config(tmp_path, "spark.master=spark://spark-master:7077")
    with_jars = session_settings(config, jars=JARS)
    assert with_jars["spark.jars"] == JARS  # shipped to the executors
    assert "spark.driver.extraClassPath" not in with_jars
    assert with_jars["spark.sql.extensions"] == DELTA_EXTENSION
    assert with_jars["spark.sql.catalog.spark_catalog"].endswith("DeltaCatalog")


def test_jars_of_a_local_master_go_on_the_driver_classpath(tmp_path):
    # Regression: as spark.jars, every local JVM copied all jars (638 MB) into its temp folder;
    # killed JVMs left the copies behind and a test run filled the disk.
    with_jars = session_settings(make_config(tmp_path, "spark.master=local[2]"), jars=JARS)
    assert "spark.jars" not in with_jars
    assert with_jars["spark.driver.extraClassPath"] == JARS.replace(",", os.pathsep)
    assert with_jars["spark.sql.extensions"] == DELTA_EXTENSION


@pytest.mark.parametrize("master", ["spark://127.0.0.1:7077", "spark://localhost:7077"])
def test_a_standalone_master_on_loopback_gets_the_jars_on_both_classpaths(tmp_path, master):
    # `make up`'s cluster: its worker can only be on this host; shipped, each executor copied 638 MB
    with_jars = session_settings(make_config(tmp_path, f"spark.master={master}"), jars=JARS)
    assert "spark.jars" not in with_jars
    assert with_jars["spark.driver.extraClassPath"] == with_jars["spark.executor.extraClassPath"] == JARS.replace(",", os.pathsep)


def test_a_driver_classpath_in_the_config_comes_first_and_keeps_the_jars(tmp_path):
    config = make_config(tmp_path, "spark.master=local[2]", "spark.conf={'spark.driver.extraClassPath': '/opt/extra.jar'}")
    settings = session_settings(config, jars=JARS)
    assert settings["spark.driver.extraClassPath"].split(os.pathsep) == ["/opt/extra.jar", *JARS.split(",")]
    assert session_settings(config)["spark.driver.extraClassPath"] == "/opt/extra.jar"  # no jars: the config's alone


def test_another_extension_in_the_config_keeps_delta(tmp_path):
    other = make_config(tmp_path, "spark.conf={'spark.sql.extensions': 'com.example.Ext'}")
    assert session_settings(other)["spark.sql.extensions"] == f"com.example.Ext,{DELTA_EXTENSION}"
    both = make_config(tmp_path, f"spark.conf={{'spark.sql.extensions': 'com.example.Ext,{DELTA_EXTENSION}'}}")
    assert session_settings(both)["spark.sql.extensions"] == f"com.example.Ext,{DELTA_EXTENSION}"


def test_session_jars_are_the_resolved_spark_profile(tmp_path, monkeypatch):
    monkeypatch.delenv("SPARK_HOME", raising=False)
    monkeypatch.delenv("CLICKML_JARS_DIR", raising=False)
    value = session_jars(make_config(tmp_path))  # `make jars` has resolved them here
    names = [Path(j).name for j in value.split(",")]
    assert all(Path(j).is_absolute() and Path(j).is_file() for j in value.split(","))
    assert any(n.startswith("delta-spark_") for n in names) and any(n.startswith("hadoop-aws-") for n in names)
    assert value == jars.spark_jars_setting()


def test_spark_jars_in_the_config_win(tmp_path, monkeypatch):
    monkeypatch.setenv("CLICKML_JARS_DIR", str(tmp_path / "nowhere"))  # would raise if consulted
    config = make_config(tmp_path, "spark.conf={'spark.jars': '/opt/jars/delta-spark.jar'}")
    assert session_jars(config) is None
    assert session_settings(config, jars=session_jars(config))["spark.jars"] == "/opt/jars/delta-spark.jar"


def test_delta_in_spark_home_needs_no_jars(tmp_path, monkeypatch):
    monkeypatch.setenv("CLICKML_JARS_DIR", str(tmp_path / "nowhere"))
    home = tmp_path / "spark-home"
    (home / "jars").mkdir(parents=True)
    monkeypatch.setenv("SPARK_HOME", str(home))
    assert not delta_in_spark_home()
    (home / "jars" / "delta-spark_4.1_2.13-4.4.0.jar").write_bytes(b"")
    assert delta_in_spark_home()
    assert session_jars(make_config(tmp_path)) is None


def test_a_jars_dir_without_a_manifest_names_make_jars(tmp_path, monkeypatch):
    monkeypatch.delenv("SPARK_HOME", raising=False)
    (tmp_path / "jars" / "spark").mkdir(parents=True)
    monkeypatch.setenv("CLICKML_JARS_DIR", str(tmp_path / "jars"))
    with pytest.raises(JarsMissingError, match=r"the spark jars are not resolved in .*jars/spark: run `make jars`"):
        session_jars(make_config(tmp_path))


def _jar(path: Path, valid: bool = True) -> Path:
    if valid:
        with zipfile.ZipFile(path, "w") as jar:
            jar.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\n")
    else:
        path.write_bytes(b"not a zip")
    return path


@pytest.mark.parametrize(
    ("file_name", "artifact"),
    [
        ("jackson-databind-2.21.2.jar", "jackson-databind"),
        ("bundle-2.29.52.jar", "bundle"),
        ("delta-spark_4.1_2.13-4.4.0.jar", "delta-spark_4.1_2.13"),
        ("hadoop-hdfs-client-3.4.2.jar", "hadoop-hdfs-client"),
        ("wildfly-openssl-2.1.4.Final.jar", "wildfly-openssl"),
        ("commons-lang3-3.17.0.jar", "commons-lang3"),
        ("no-version.jar", "no-version"),
        ("2fast-1.0.jar", "2fast"),
        ("plain", "plain"),
    ],
)
def test_artifact_names_drop_the_version(file_name, artifact):
    assert jars._artifact(file_name) == artifact


def test_verify_accepts_a_complete_profile(tmp_path):
    for name in ("delta-spark_4.1_2.13-4.4.0.jar", "delta-storage-4.4.0.jar", "hadoop-aws-3.4.2.jar", "bundle-2.29.52.jar",
                 "spark-sql-kafka-0-10_2.13-4.1.3.jar", "kafka-clients-3.9.1.jar"):
        _jar(tmp_path / name)
    assert jars.verify(tmp_path, "spark", {"jackson-databind", "spark-core_2.13"}) == []


def test_verify_flags_missing_duplicate_and_corrupt_jars(tmp_path):
    for name in ("delta-spark_4.1_2.13-4.4.0.jar", "hadoop-aws-3.4.2.jar", "bundle-2.29.52.jar",
                 "spark-sql-kafka-0-10_2.13-4.1.3.jar", "kafka-clients-3.9.1.jar", "jackson-databind-2.18.0.jar"):
        _jar(tmp_path / name)
    _jar(tmp_path / "broken-1.0.jar", valid=False)
    problems = jars.verify(tmp_path, "spark", {"jackson-databind", "spark-core_2.13"})
    assert "no delta-storage-*.jar" in problems
    assert "jackson-databind-2.18.0.jar: pyspark already ships jackson-databind (exclude it in jvm/pom.xml)" in problems
    assert "broken-1.0.jar: not a jar" in problems
    assert len(problems) == 3
    # the hdfs profile is not checked against pyspark's jars
    assert jars.verify(tmp_path, "hdfs", None) == ["no hadoop-hdfs-*.jar", "no hadoop-hdfs-client-*.jar",
                                                   "no hadoop-common-*.jar", "broken-1.0.jar: not a jar"]


def test_verify_against_the_jars_pyspark_ships(tmp_path):
    shipped = jars.pyspark_jar_names()
    assert "spark-core_2.13" in shipped and "jackson-databind" in shipped
    _jar(tmp_path / "jackson-databind-2.10.0.jar")
    assert any("pyspark already ships jackson-databind" in p for p in jars.verify(tmp_path, "spark", shipped))


def test_profile_jars_read_the_manifest(tmp_path, monkeypatch):
    folder = tmp_path / "home" / "spark"
    folder.mkdir(parents=True)
    for name in ("b-2.0.jar", "a-1.0.jar"):
        _jar(folder / name)
    _jar(folder / "stray-9.9.jar")  # not in the manifest: not on the classpath
    (folder / jars.MANIFEST).write_text(json.dumps({"profile": "spark", "jars": {"b-2.0.jar": "x", "a-1.0.jar": "y"}}))
    monkeypatch.setenv("CLICKML_JARS_DIR", str(tmp_path / "home"))
    assert jars.jars_home() == tmp_path / "home"
    assert jars.profile_jars("spark") == [folder / "a-1.0.jar", folder / "b-2.0.jar"]
    assert jars.spark_jars_setting() == f"{folder / 'a-1.0.jar'},{folder / 'b-2.0.jar'}"
    (folder / "b-2.0.jar").unlink()
    with pytest.raises(JarsMissingError, match=r"1 jar\(s\) of the manifest are gone \(b-2.0.jar\); run `make jars`"):
        jars.profile_jars("spark")
    with pytest.raises(JarsMissingError, match="the hdfs jars are not resolved"):
        jars.hdfs_classpath()


def test_jars_home_is_keyed_by_the_pom(tmp_path, monkeypatch):
    monkeypatch.delenv("CLICKML_JARS_DIR", raising=False)
    monkeypatch.setenv("CLICKML_JAR_CACHE", str(tmp_path / "cache"))
    pom = tmp_path / "pom.xml"
    pom.write_text("<project/>")
    first = jars.jars_home(pom)
    assert first.parent == tmp_path / "cache" and len(first.name) == 16
    pom.write_text("<project><!-- changed --></project>")
    assert jars.jars_home(pom) != first
    with pytest.raises(JarsMissingError, match="no .*missing.xml and no \\$CLICKML_JARS_DIR"):
        jars.jars_home(tmp_path / "missing.xml")


def test_s3a_settings_for_s3_roots(tmp_path):
    config = make_config(
        tmp_path,
        "lake.root=s3a://bucket/lake",
        "lake.storage.endpoint=http://127.0.0.1:9000",
        "lake.storage.access_key_id=key",
        "lake.storage.secret_access_key=secret",
    )
    settings = session_settings(config)
    assert settings["spark.hadoop.fs.s3a.endpoint"] == "http://127.0.0.1:9000"
    assert settings["spark.hadoop.fs.s3a.access.key"] == "key"
    assert settings["spark.hadoop.fs.s3a.connection.ssl.enabled"] == "false"
    assert settings["spark.hadoop.fs.s3a.path.style.access"] == "true"
    assert not any("s3a" in k for k in session_settings(make_config(tmp_path)))


def test_passthrough_settings_win(tmp_path):
    config = make_config(tmp_path, "spark.conf={'spark.sql.shuffle.partitions': '64', 'spark.foo': true}")
    settings = session_settings(config)
    assert settings["spark.sql.shuffle.partitions"] == "64"
    assert settings["spark.foo"] == "true"


def test_submitted_settings_win_and_launch_only_keys_are_dropped():
    ours = {"spark.master": "local[*]", "spark.driver.memory": "2g", "spark.sql.shuffle.partitions": "8", "spark.a": "1"}
    submitted = {"spark.master": "yarn", "spark.sql.shuffle.partitions": "400"}
    assert merge_with_submitted(ours, submitted) == {"spark.a": "1"}


def test_live_session_has_the_settings(spark):
    assert spark.conf.get("spark.sql.adaptive.enabled") == "true"
    assert spark.conf.get("spark.sql.shuffle.partitions") == "2"
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"
    assert spark.sparkContext.master == "local[2]"
    assert delta_extension_loaded(spark)  # the jars of `make jars` are on its classpath
    assert "delta-spark_" in spark.conf.get("spark.driver.extraClassPath")
    # ... read where they lie: nothing copied into the session's temp folder (a 638 MB copy per JVM before)
    from pyspark import SparkFiles

    assert not list(Path(SparkFiles.getRootDirectory()).glob("*.jar"))


def test_the_suites_spark_defaults_reach_its_session_and_its_subprocesses(spark):
    # tests/spark-conf/spark-defaults.conf (code generation off on tiny frames, set by tests/conftest.py)
    assert suite_spark_defaults() == {"spark.sql.codegen.wholeStage": "false", "spark.sql.codegen.factoryMode": "NO_CODEGEN"}
    for key, value in suite_spark_defaults().items():
        assert spark.conf.get(key) == value, key
    # inherited by CLI and spark-submit runs: the settings as system properties, an empty conf folder
    options = os.environ["SPARK_SUBMIT_OPTS"].split()
    assert {f"-D{key}={value}" for key, value in suite_spark_defaults().items()} <= set(options)
    assert not any(Path(os.environ["SPARK_CONF_DIR"]).iterdir())


def test_a_fresh_driver_gets_the_suites_defaults_and_maps_the_class_data_archive(tmp_path):
    from tests import jvm_cds

    archive = jvm_cds.existing_archive()
    if archive is None:
        pytest.skip("no class-data archive on this machine (CLICKML_TEST_CDS=0, or recording failed: see the "
                    "tests/jvm_cds.py lines at the start of the run)")
    assert f"-XX:SharedArchiveFile={archive}" in os.environ["SPARK_SUBMIT_OPTS"]
    # A driver started as the suite's subprocesses start theirs, with the JVM's CDS log on: the
    # archive maps (the classpath matched the recorded one) and the defaults reach its session.
    script = tmp_path / "driver.py"
    script.write_text(CHECK_DRIVER.format(repo=str(REPO_ROOT), root=str(tmp_path)))
    opts = os.environ["SPARK_SUBMIT_OPTS"].replace(jvm_cds.QUIET, "-Xlog:cds=info -Xlog:class+load=info")
    done = subprocess.run([sys.executable, str(script)], env={**os.environ, "SPARK_SUBMIT_OPTS": opts},
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "CODEGEN false NO_CODEGEN" in done.stdout, done.stdout[-3000:]
    if os.environ.get("CLICKML_TEST_C1") != "0":  # a short-lived driver: C1 only, 4 MiB stacks
        started_with = next(line for line in done.stdout.splitlines() if line.startswith("JVM-ARGS")).split()
        assert set(jvm_cds.SHORT_LIVED_JIT.split()) <= set(started_with), started_with
    assert "shared class paths mismatch" not in done.stdout, done.stdout[-3000:]
    # Spark's own classes (and Delta's) came from the recorded archive (the "top" layer)
    assert re.search(r"org\.apache\.spark\.SparkContext source: shared objects file \(top\)", done.stdout)
    assert re.search(r"io\.delta\.sql\.DeltaSparkSessionExtension source: shared objects file \(top\)", done.stdout)


def jvm_arguments(spark) -> list[str]:
    """The options the session's JVM was started with."""
    return list(spark.sparkContext._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments())


def test_the_session_fixtures_jvm_keeps_the_tiered_jit(spark):
    from tests import jvm_cds

    # the short-lived drivers' C1-only settings (checked in a fresh driver above) stay out of the
    # JVM that lives for the whole suite
    assert not set(jvm_cds.SHORT_LIVED_JIT.split()) & set(jvm_arguments(spark))


CHECK_DRIVER = """
import sys
sys.path.insert(0, {repo!r})
from pathlib import Path
from pipelines.config import load_config
from pipelines.spark import build_session
config = load_config(profile="local", conf_dir=Path({repo!r}) / "conf", env={{}}, overrides=[
    "lake.root={root}/lake", "landing.root={root}/landing", "spark.master=local[1]", "spark.ui_enabled=false"])
spark = build_session(config)
print("CODEGEN", spark.conf.get("spark.sql.codegen.wholeStage"), spark.conf.get("spark.sql.codegen.factoryMode"), flush=True)
print("JVM-ARGS", " ".join(spark.sparkContext._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments()), flush=True)
spark.stop()
"""


def test_building_again_reuses_the_active_session(spark, tmp_path):
    config = make_config(tmp_path, "spark.master=local[1]", "spark.shuffle_partitions=3")
    try:
        again = build_session(config)
        assert again is spark
        assert again.sparkContext.master == "local[2]"  # a running session keeps its master
        assert again.conf.get("spark.sql.shuffle.partitions") == "3"  # runtime SQL settings apply
    finally:
        spark.conf.set("spark.sql.shuffle.partitions", "2")
