"""The demo path (`make demo`) on a tiny clickstream, in the test session's Spark."""

from __future__ import annotations

from pipelines import demo
from tests.conftest import make_config


def test_demo_generates_loads_and_reads_back(spark, tmp_path):
    config = make_config(tmp_path, "generator.users=60", "generator.days=2", "generator.bad_records.share=0.05")
    summary = demo.run(config, spark)
    assert summary.lines_landed > summary.events_generated > 0
    # every landed line is either loaded or counted as unparseable
    assert summary.rows_loaded + summary.rows_unparsed == summary.lines_landed
    assert summary.rows_read_spark == summary.rows_read_delta_rs == summary.rows_loaded
    assert summary.version == 0
    text = demo.format_summary(summary)
    assert "read with delta-rs" in text and f"{summary.rows_loaded:,}" in text
    # a second run overwrites: same rows, next version
    again = demo.run(config, spark)
    assert again.version == 1 and again.rows_read_spark == summary.rows_read_spark
