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
    # ingest: every generated valid event reached bronze once; silver built sessions
    assert summary.bronze_rows == summary.events_generated
    assert sum(summary.quarantine_by_reason.values()) > 0
    assert "silver: rebuilt" in summary.silver_report
    text = demo.format_summary(summary)
    assert "read with delta-rs" in text and f"{summary.rows_loaded:,}" in text
    # a second run overwrites: same rows, next version
    again = demo.run(config, spark)
    assert again.version == 1 and again.rows_read_spark == summary.rows_read_spark
    # the ingest interval was complete: the re-run ingests nothing twice
    assert again.bronze_rows == summary.bronze_rows
    assert "already ingested" in again.ingest_reports[0]
