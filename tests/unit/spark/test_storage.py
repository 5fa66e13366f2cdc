"""Which roots the storage pre-flight checks, and the S3A settings a running session is given."""

from __future__ import annotations

from pipelines.spark.session import _s3a_settings, s3a_bucket_settings
from pipelines.spark.storage import Root, StorageError, hadoop_uri, storage_roots
from tests.conftest import make_config

S3 = ("lake.storage.endpoint=http://127.0.0.1:9000", "lake.storage.access_key_id=key", "lake.storage.secret_access_key=secret")


def test_only_remote_roots_are_checked_once_each_in_hadoop_spelling(tmp_path):
    assert storage_roots(make_config(tmp_path)) == []
    config = make_config(
        tmp_path, "lake.root=s3://bucket/lake", "landing.root=s3a://landing/in", "ingest.checkpoint_root=s3a://bucket/lake",
        "validation.results_root=hdfs://nn:8020/validation",
    )
    assert storage_roots(config) == [
        Root("lake.root", "s3a://bucket/lake"), Root("landing.root", "s3a://landing/in"),
        Root("validation.results_root", "hdfs://nn:8020/validation"),
    ]
    assert hadoop_uri("s3n://b/p") == "s3a://b/p" and hadoop_uri("/tmp/x") == "/tmp/x"


def test_storage_error_names_the_uri():
    error = StorageError("s3a://b/lake", "bucket 'b' does not exist")
    assert str(error) == "s3a://b/lake: bucket 'b' does not exist" and error.uri == "s3a://b/lake"


def test_s3a_settings_per_bucket_for_a_running_session(tmp_path):
    config = make_config(tmp_path, "lake.root=s3a://lake/prod", "landing.root=s3a://landing/in", *S3)
    settings = s3a_bucket_settings(config)
    for bucket in ("lake", "landing"):
        assert settings[f"fs.s3a.bucket.{bucket}.endpoint"] == "http://127.0.0.1:9000"
        assert settings[f"fs.s3a.bucket.{bucket}.access.key"] == "key"
        assert settings[f"fs.s3a.bucket.{bucket}.path.style.access"] == "true"
    assert not any(k.startswith("fs.s3a.endpoint") for k in settings)  # no global keys
    assert s3a_bucket_settings(make_config(tmp_path)) == {}
    # an s3:// root (delta-rs spelling) needs the S3A settings too
    assert _s3a_settings(make_config(tmp_path, "lake.root=s3://lake/prod", *S3))["spark.hadoop.fs.s3a.endpoint"]
