from __future__ import annotations

from pipelines.ingest.incremental import checkpoint_location, stream_batch_id
from pipelines.sources import load_source
from tests.conftest import CONF_DIR, make_config


def test_the_checkpoint_is_in_sparks_spelling(tmp_path):
    # Bug: an s3:// lake root went to Spark unchanged ("No FileSystem for scheme s3").
    source = load_source(CONF_DIR, "clickstream")
    s3 = make_config(tmp_path, "lake.root=s3://bucket/lake")
    assert checkpoint_location(s3, source) == "s3a://bucket/lake/_checkpoints/ingest/clickstream"
    local = make_config(tmp_path)
    assert checkpoint_location(local, source) == f"file://{local.lake.root}/_checkpoints/ingest/clickstream"
    given = make_config(tmp_path, "ingest.checkpoint_root=s3a://other/checkpoints/")
    assert checkpoint_location(given, source) == "s3a://other/checkpoints/clickstream"


def test_stream_batch_ids_differ_between_checkpoints_and_not_between_attempts():
    assert stream_batch_id("web", "q-1", 3) == stream_batch_id("web", "q-1", 3) == "web:stream:q-1:000003"
    assert stream_batch_id("web", "q-2", 3) != stream_batch_id("web", "q-1", 3)
