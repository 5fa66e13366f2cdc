"""Logical names to URIs and storage options."""

import pytest

from pipelines.lake.location import table_location
from tests.conftest import make_config


def test_local_root(tmp_path):
    config = make_config(tmp_path)
    loc = table_location(config.lake, "bronze.events")
    assert loc.uri == str(tmp_path / "lakehouse" / "bronze" / "events")
    assert loc.spark_uri == "file://" + str(tmp_path / "lakehouse" / "bronze" / "events")
    assert loc.is_local and loc.storage_options == {}


def test_s3a_root_maps_to_s3_for_delta_rs(tmp_path):
    config = make_config(
        tmp_path, "lake.root=s3a://bucket/prod/", "lake.storage.endpoint=http://127.0.0.1:9000",
        "lake.storage.allow_http=true", "lake.storage.access_key_id=AKIAKEY", "lake.storage.secret_access_key=SeCrEt",
    )
    loc = table_location(config.lake, "silver.sessions")
    assert loc.uri == "s3://bucket/prod/silver/sessions"
    assert loc.spark_uri == "s3a://bucket/prod/silver/sessions"
    assert loc.storage_options["AWS_ENDPOINT_URL"] == "http://127.0.0.1:9000"
    assert loc.storage_options["AWS_ALLOW_HTTP"] == "true"
    assert loc.storage_options["AWS_CONDITIONAL_PUT"] == "etag"
    assert loc.storage_options["AWS_SECRET_ACCESS_KEY"] == "SeCrEt"
    assert "SeCrEt" not in repr(loc) and "SeCrEt" not in str(loc)  # credentials stay out of logs


def test_hdfs_root_is_kept(tmp_path):
    config = make_config(tmp_path, "lake.root=hdfs://nn:8020/lake")
    loc = table_location(config.lake, "gold.user_features")
    assert loc.uri == loc.spark_uri == "hdfs://nn:8020/lake/gold/user_features"


@pytest.mark.parametrize("name", ["events", "a.b.c", "../x.y", ".x"])
def test_bad_names(tmp_path, name):
    with pytest.raises(ValueError, match="<layer>.<name>"):
        table_location(make_config(tmp_path).lake, name)
