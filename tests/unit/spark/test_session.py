"""The session factory: settings derived from config, deference to spark-submit, the live session."""

from __future__ import annotations

from pathlib import Path

from pipelines.config import load_config
from pipelines.spark import build_session, session_settings
from pipelines.spark.session import DELTA_EXTENSION, delta_jars_on_classpath, merge_with_submitted
from tests.conftest import CONF_DIR, make_config


def test_local_defaults(tmp_path):
    settings = session_settings(make_config(tmp_path), delta_jars=False)
    assert settings["spark.master"] == "local[2]"
    assert settings["spark.sql.adaptive.enabled"] == "true"
    assert settings["spark.sql.shuffle.partitions"] == "2"
    assert settings["spark.sql.session.timeZone"] == "UTC"
    assert settings["spark.sql.parquet.outputTimestampType"] == "TIMESTAMP_MICROS"
    assert settings["spark.driver.host"] == "127.0.0.1"
    assert "spark.sql.extensions" not in settings
    assert not any(k.startswith("spark.executor.resource") for k in settings)


def test_standalone_master_and_executor_sizing(tmp_path):
    config = make_config(
        tmp_path, "spark.master=spark://10.0.0.5:7077", "spark.executor_memory=6g", "spark.executor_cores=3"
    )
    settings = session_settings(config, delta_jars=False)
    assert settings["spark.master"] == "spark://10.0.0.5:7077"
    assert settings["spark.executor.memory"] == "6g"
    assert settings["spark.executor.cores"] == "3"
    assert "spark.driver.host" not in settings


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
    settings = session_settings(config, delta_jars=False)
    assert settings["spark.executor.resource.gpu.amount"] == "2"
    assert settings["spark.task.resource.gpu.amount"] == "0.5"
    assert settings["spark.executor.resource.gpu.discoveryScript"] == "/opt/spark/getGpus.sh"
    assert settings["spark.executor.resource.gpu.vendor"] == "nvidia.com"


def test_gpu_profile_discovery_script_does_not_depend_on_the_working_directory(tmp_path, monkeypatch):
    # Bug: the GPU profile's relative script path was handed to Spark as given, so a job started
    # outside the project root (an Airflow worker, a notebook) named a script that did not exist.
    config = load_config(profile="gpu", conf_dir=CONF_DIR, overrides=[f"lake.root={tmp_path}"], env={})
    monkeypatch.chdir(tmp_path)
    settings = session_settings(config, delta_jars=False)
    script = Path(settings["spark.driver.resource.gpu.discoveryScript"])
    assert script.is_absolute() and script.is_file()
    assert settings["spark.executor.resource.gpu.discoveryScript"] == str(script)


def test_delta_extension_only_with_the_jars(tmp_path):
    config = make_config(tmp_path)
    with_jars = session_settings(config, delta_jars=True)
    assert with_jars["spark.sql.extensions"] == DELTA_EXTENSION
    assert with_jars["spark.sql.catalog.spark_catalog"].endswith("DeltaCatalog")
    forced_rs = session_settings(make_config(tmp_path, "lake.writer=delta-rs"), delta_jars=True)
    assert "spark.sql.extensions" not in forced_rs


def test_jars_declared_in_settings_are_detected():
    assert delta_jars_on_classpath({"spark.jars.packages": "io.delta:delta-spark_4.1_2.13:4.4.1"})
    assert delta_jars_on_classpath({"spark.jars": "/opt/jars/delta-spark_4.1_2.13-4.4.1.jar"})


def test_s3a_settings_for_s3_roots(tmp_path):
    config = make_config(
        tmp_path,
        "lake.root=s3a://bucket/lake",
        "lake.storage.endpoint=http://127.0.0.1:9000",
        "lake.storage.access_key_id=key",
        "lake.storage.secret_access_key=secret",
    )
    settings = session_settings(config, delta_jars=False)
    assert settings["spark.hadoop.fs.s3a.endpoint"] == "http://127.0.0.1:9000"
    assert settings["spark.hadoop.fs.s3a.access.key"] == "key"
    assert settings["spark.hadoop.fs.s3a.connection.ssl.enabled"] == "false"
    assert settings["spark.hadoop.fs.s3a.path.style.access"] == "true"
    assert not any("s3a" in k for k in session_settings(make_config(tmp_path), delta_jars=False))


def test_passthrough_settings_win(tmp_path):
    config = make_config(tmp_path, "spark.conf={'spark.sql.shuffle.partitions': '64', 'spark.foo': true}")
    settings = session_settings(config, delta_jars=False)
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


def test_building_again_reuses_the_active_session(spark, tmp_path):
    config = make_config(tmp_path, "spark.master=local[1]", "spark.shuffle_partitions=3")
    try:
        again = build_session(config)
        assert again is spark
        assert again.sparkContext.master == "local[2]"  # a running session keeps its master
        assert again.conf.get("spark.sql.shuffle.partitions") == "3"  # runtime SQL settings apply
    finally:
        spark.conf.set("spark.sql.shuffle.partitions", "2")
