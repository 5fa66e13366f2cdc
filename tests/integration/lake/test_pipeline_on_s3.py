"""The lakehouse on S3 for real: delta-spark on `s3a://` against a local S3 server (moto, which
checks credentials), read back by Spark and independently by delta-rs; the whole pipeline
(generate -> ingest -> silver -> features -> training sets -> train) with the landing zone, the
lakehouse and the MLflow artifacts in one bucket, compared table by table with the same run on
local disk; and clear errors (naming the URI) for a missing bucket and wrong credentials.
"""

from __future__ import annotations

import os
import time

import pytest
from pyspark.sql import functions as F

from pipelines.lake.location import table_location
from pipelines.spark.session import apply_s3a_settings
from pipelines.spark.storage import StorageError, check_roots, storage_roots
from tests.conftest import make_config
from tests.services import TINY_PIPELINE
from tests.services.baseline import run_tiny_pipeline

pytestmark = pytest.mark.s3

# A tiny clickstream that still yields train/validation/test cutoffs (horizon 1 day, 1 day of
# history), and one cheap model: the point is the storage, not the model.
PIPELINE = TINY_PIPELINE


def s3_config(tmp_path, s3_server, bucket, *overrides, **keys):
    """The test config with the landing zone, the lakehouse and MLflow's artifacts in `bucket`
    (MLflow's tracking store stays a local SQLite file: it needs a database, not a bucket)."""
    return make_config(tmp_path, *_s3_overrides(tmp_path, s3_server, bucket, **keys), *overrides)


def _s3_overrides(tmp_path, s3_server, bucket, **keys) -> list[str]:
    return [
        f"lake.root=s3a://{bucket}/lakehouse",
        f"landing.root=s3a://{bucket}/landing",
        *s3_server.storage_overrides(**keys),
        f"mlflow.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
        f"mlflow.artifact_root=s3://{bucket}/mlflow",
    ]


def delta_rs_rows(location) -> int:
    from deltalake import DeltaTable

    return DeltaTable(location.uri, storage_options=location.storage_options or None).to_pyarrow_dataset().count_rows()


def test_delta_spark_on_s3a_read_back_by_spark_and_delta_rs(spark, s3_server, s3_bucket, tmp_path):
    config = s3_config(tmp_path, s3_server, s3_bucket)
    # The suite's session was started for local paths: give it this bucket's S3A settings.
    apply_s3a_settings(spark, config)
    check_roots(config, spark)
    location = table_location(config.lake, "smoke.numbers")
    assert location.spark_uri == f"s3a://{s3_bucket}/lakehouse/smoke/numbers" and location.uri.startswith("s3://")

    numbers = spark.range(100).withColumn("part", (F.col("id") % 3).cast("int"))
    numbers.write.format("delta").partitionBy("part").save(location.spark_uri)
    spark.range(100, 110).withColumn("part", F.lit(1)).write.format("delta").mode("append").save(location.spark_uri)

    back = spark.read.format("delta").load(location.spark_uri)
    assert back.count() == 110 and back.where("part = 1").count() == 33 + 10
    # A child session (the ingest and train stages run in one) reaches the bucket too.
    assert spark.newSession().read.format("delta").load(location.spark_uri).count() == 110
    log = sorted(k for k in s3_server.keys(s3_bucket, "lakehouse/smoke/numbers/_delta_log/") if k.endswith(".json"))
    assert [k.rsplit("/", 1)[1] for k in log] == ["00000000000000000000.json", "00000000000000000001.json"]
    assert any("/part=1/" in k and k.endswith(".parquet") for k in s3_server.keys(s3_bucket, "lakehouse/smoke/numbers/"))

    from deltalake import DeltaTable

    table = DeltaTable(location.uri, storage_options=location.storage_options)
    assert table.version() == 1 and table.metadata().partition_columns == ["part"]
    assert sorted(table.to_pyarrow_table()["id"].to_pylist()) == list(range(110))
    assert DeltaTable(location.uri, storage_options=location.storage_options, version=0).to_pyarrow_table().num_rows == 100


def test_missing_bucket_is_an_error_naming_the_uri(spark, s3_server, tmp_path):
    config = s3_config(tmp_path, s3_server, "clickml-no-such-bucket")
    started = time.monotonic()
    with pytest.raises(StorageError) as raised:
        check_roots(config, spark)
    message = str(raised.value)
    assert raised.value.uri == "s3a://clickml-no-such-bucket/lakehouse"
    assert message.startswith("s3a://clickml-no-such-bucket/lakehouse: bucket 'clickml-no-such-bucket' does not exist")
    assert "(lake.root)" in message and s3_server.endpoint in message
    assert time.monotonic() - started < 30  # no retry loop


def test_wrong_credentials_are_an_error_naming_the_uri(spark, s3_server, s3_bucket, tmp_path):
    config = s3_config(tmp_path, s3_server, s3_bucket, secret_access_key="not-the-secret")
    with pytest.raises(StorageError) as raised:
        check_roots(config, spark)
    message = str(raised.value)
    assert message.startswith(f"s3a://{s3_bucket}/lakehouse: access denied by {s3_server.endpoint} (lake.root)")
    assert "lake.storage.access_key_id" in message
    assert "not-the-secret" not in message
    # The right key pair passes, for both roots, and only remote roots are checked.
    good = s3_config(tmp_path, s3_server, s3_bucket)
    assert [r.setting for r in check_roots(good, spark)] == ["lake.root", "landing.root"]
    assert storage_roots(make_config(tmp_path)) == []


def test_wrong_credentials_fail_a_delta_write_with_the_uri(spark, s3_server, s3_bucket, tmp_path):
    """Without the pre-flight check: what a stage's first write shows today."""
    bucket = s3_server.create_bucket()  # its own bucket: S3A caches one client per bucket
    config = s3_config(tmp_path, s3_server, bucket, secret_access_key="not-the-secret")
    apply_s3a_settings(spark, config)
    uri = table_location(config.lake, "smoke.denied").spark_uri
    with pytest.raises(Exception) as raised:
        spark.range(3).write.format("delta").save(uri)
    text = str(raised.value)
    assert uri in text and ("403" in text or "AccessDenied" in text), text[:2000]


@pytest.mark.storage_e2e
@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.timeout(1500)  # the pipeline on S3, and the local baseline when this test is the first to need it
def test_pipeline_on_s3_matches_the_pipeline_on_local_disk(spark, s3_server, s3_bucket, tmp_path, tiny_pipeline_on_disk,  # noqa: F811
                                                          monkeypatch):
    s3_dir = tmp_path / "s3"
    s3_dir.mkdir()
    on_s3 = make_config(s3_dir, *_s3_overrides(s3_dir, s3_server, s3_bucket), *PIPELINE)
    # In the suite's session, as the HDFS test runs: its Spark gets the bucket's S3A settings,
    # MLflow's S3 client the server through the environment, as on a cluster. A session started
    # from an S3 config in a driver of its own (`_s3a_settings`) is the cluster-profile demo's
    # (tests/e2e/test_cluster_profile.py: the CLI, S3A and MLflow artifacts in the bucket).
    for key in [k for k in os.environ if k.startswith(("AWS_", "MLFLOW_S3_"))]:
        monkeypatch.delenv(key)
    for key, value in s3_server.env().items():
        monkeypatch.setenv(key, value)
    apply_s3a_settings(spark, on_s3)
    assert [r.uri for r in check_roots(on_s3, spark)] == [f"s3a://{s3_bucket}/lakehouse", f"s3a://{s3_bucket}/landing"]
    started = time.monotonic()
    run_tiny_pipeline(on_s3, spark)
    print(f"pipeline on S3 (the suite's session): {time.monotonic() - started:.0f}s")

    on_disk = tiny_pipeline_on_disk  # the same overrides, run once per session in the suite's driver

    # Everything the pipeline writes lives in the bucket: landing files, tables, MLflow artifacts.
    keys = s3_server.keys(s3_bucket)
    assert any(k.startswith("landing/") for k in keys)
    assert any(k.startswith("lakehouse/bronze/events/_delta_log/") for k in keys)
    assert any(k.startswith("mlflow/") and k.endswith("MLmodel") for k in keys), [k for k in keys if k.startswith("mlflow/")]
    assert not (s3_dir / "lakehouse").exists() and not (s3_dir / "landing").exists()
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=on_s3.mlflow.tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name(on_s3.mlflow.experiment).experiment_id])
    assert runs and all(r.info.artifact_uri.startswith(f"s3://{s3_bucket}/mlflow/") for r in runs)
    assert all(r.info.status == "FINISHED" for r in runs)

    # Every table of config.tables: on S3 and on disk, the same tables with the same row counts
    # (read by delta-rs, independently of the Spark that wrote them).
    names = sorted(set(on_s3.tables.model_dump().values()))
    counts = {}
    for name in names:
        s3_location, local_location = table_location(on_s3.lake, name), table_location(on_disk.lake, name)
        on_s3_exists = any(k.endswith(".json") for k in s3_server.keys(s3_bucket, f"lakehouse/{name.replace('.', '/')}/_delta_log/"))
        assert on_s3_exists == (os.path.isdir(os.path.join(local_location.uri, "_delta_log"))), name
        if on_s3_exists:
            counts[name] = (delta_rs_rows(s3_location), delta_rs_rows(local_location))
    print("rows (S3, local):", counts)
    required = {
        "bronze.events", "bronze.quarantine", "bronze.ingest_audit", "silver.events", "silver.sessions",
        "gold.user_features", "gold.product_features", "gold.category_features", "gold.user_category_features",
        "gold.propensity_training", "gold.implicit_training",
    }
    assert required <= set(counts), sorted(required - set(counts))
    assert all(counts[name][1] > 0 for name in required), counts
    assert {name: s3 for name, (s3, _) in counts.items()} == {name: local for name, (_, local) in counts.items()}
