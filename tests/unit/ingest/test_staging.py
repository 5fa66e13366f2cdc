"""Where the ingest stages a batch: outside every table, in Spark's spelling of the lake root."""

from __future__ import annotations

from pipelines.ingest.staging import STAGING_FOLDER, new_folder, staging_root
from tests.conftest import make_config


def test_staging_is_a_folder_of_the_lake_root_that_no_table_uses(tmp_path):
    config = make_config(tmp_path)
    root = staging_root(config)
    assert root == f"file://{(tmp_path / 'lakehouse').resolve()}/{STAGING_FOLDER}"
    first, second = new_folder(config, "ingest"), new_folder(config, "ingest")
    assert first.startswith(f"{root}/ingest/") and first != second


def test_object_store_and_hdfs_roots_keep_their_scheme(tmp_path):
    s3 = make_config(tmp_path, "lake.root=s3://bucket/prefix")
    assert staging_root(s3) == f"s3a://bucket/prefix/{STAGING_FOLDER}"
    hdfs = make_config(tmp_path, "lake.root=hdfs://127.0.0.1:9000/clickml/lake/")
    assert staging_root(hdfs) == f"hdfs://127.0.0.1:9000/clickml/lake/{STAGING_FOLDER}"
