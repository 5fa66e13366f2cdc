"""Line numbering across file splits, and arrival times from landing folders."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import functions as F

from pipelines.ingest.reader import arrival_time, hours_between, raw_records_from_text
from pipelines.sources import load_source
from tests.conftest import CONF_DIR


def test_line_numbers_follow_the_file_across_splits(spark, tmp_path):
    folder = tmp_path / "date=2024-01-01" / "hour=05"
    folder.mkdir(parents=True)
    lines = {name: [f'{{"n": {i}, "file": "{name}", "pad": "{"x" * 40}"}}' for i in range(1, 301)] for name in ("a", "b")}
    for name, content in lines.items():
        (folder / f"{name}.jsonl").write_text("\n".join(content[:150]) + "\n\n" + "\n".join(content[150:]) + "\n")
    previous = spark.conf.get("spark.sql.files.maxPartitionBytes")
    spark.conf.set("spark.sql.files.maxPartitionBytes", "4096")  # many splits per file
    try:
        text = spark.read.text(str(folder)).select(
            "value", F.col("_metadata.file_path").alias("source_file"), F.col("_metadata.file_block_start").alias("source_block")
        )
        assert text.rdd.getNumPartitions() > 4
        records = raw_records_from_text(text, load_source(CONF_DIR, "clickstream"))
        rows = records.frame.collect()  # 600 tiny rows
    finally:
        spark.conf.set("spark.sql.files.maxPartitionBytes", previous)
    assert len(rows) == 600 and records.count == 600  # the blank lines are dropped, not counted
    for row in rows:
        n = int(row.raw.split('"n": ')[1].split(",")[0])
        assert row.source_line == (n if n <= 150 else n + 1), row  # line 151 is the blank one
        assert row.arrival_time == dt.datetime(2024, 1, 1, 6, 0)


def test_arrival_time_needs_hourly_folders(spark):
    frame = spark.createDataFrame([("s3a://b/landing/date=2024-02-29/hour=23/p.jsonl",), ("file:/flat/p.jsonl",)], "p string")
    values = [r[0] for r in frame.select(arrival_time(F.col("p"))).collect()]
    assert values == [dt.datetime(2024, 3, 1, 0, 0), None]


def test_hours_between():
    hours = hours_between(dt.datetime(2024, 1, 1, 22, 30), dt.datetime(2024, 1, 2, 1))
    assert hours == [dt.datetime(2024, 1, 1, 22), dt.datetime(2024, 1, 1, 23), dt.datetime(2024, 1, 2, 0)]
