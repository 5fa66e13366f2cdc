"""Line numbering (by block across file splits, and per file), arrival times from landing folders."""

from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import functions as F

from pipelines.ingest.reader import (
    PER_FILE_SCAN,
    LandingFile,
    NumberingError,
    arrival_time,
    hours_between,
    per_file_numbering,
    raw_records_from_text,
    read_raw,
    session_settings,
)
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


@pytest.mark.parametrize(
    "path, expected",
    [
        ("file:/l/date=2024-01-01/hour=05/p.jsonl", dt.datetime(2024, 1, 1, 6)),
        ("file:/l/date=2024-12-31/hour=23/p.jsonl", dt.datetime(2025, 1, 1, 0)),
        ("file:/l/update=1/date=2024-01-01/hour=05/p", dt.datetime(2024, 1, 1, 6)),  # first full match
        ("file:/l/date=2024-1-01/hour=05/date=2024-01-02/hour=06/p", dt.datetime(2024, 1, 2, 7)),
        ("file:/l/date=2024-02-30/hour=01/p", None),  # no such date
        ("file:/l/date=2024-01-01/hour=24/p", None),  # no such hour
        ("file:/l/date=2024-01-01/hour=5/p", None),  # two digits
        ("file:/l/date=+024-01-01/hour=05/p", None),
        ("file:/l/p.jsonl", None),
        (None, None),
    ],
)
def test_arrival_time_edge_cases(spark, path, expected):
    (value,) = spark.createDataFrame([(path,)], "p string").select(arrival_time(F.col("p"))).first()
    assert value == expected


def write_lines(folder, name, lines):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("".join(line + "\n" for line in lines))
    return path


def landing_files(paths):
    return [LandingFile(p.name, f"file:{p}", p.stat().st_size) for p in paths]


def consume(records, spark):
    """Run the one job over the raw frame the way the stage does, then return its rows."""
    with records.scan_settings(spark):
        rows = records.frame.collect()  # tiny
    return rows, records.records()


def test_per_file_numbering_numbers_each_file_and_counts_records(spark, tmp_path):
    spark = spark.newSession()  # per-file numbering observes; keep the suite's session clean (see stage.run)
    folder = tmp_path / "date=2024-01-01" / "hour=05"
    paths = [
        write_lines(folder, "a.jsonl", ['{"n": 1}', "", '{"n": 3}', "  ", '{"n": 5}']),
        write_lines(folder, "b.jsonl", ["", '{"n": 2}']),
        write_lines(folder, "blank.jsonl", [""]),
        write_lines(folder, "empty.jsonl", []),
    ]
    records = read_raw(spark, landing_files(paths), load_source(CONF_DIR, "clickstream"), per_file=True)
    assert records.count is None and records.settings == PER_FILE_SCAN
    rows, count = consume(records, spark)
    got = sorted((r.source_file.rsplit("/", 1)[-1], r.source_line, r.raw) for r in rows)
    assert got == [("a.jsonl", 1, '{"n": 1}'), ("a.jsonl", 3, '{"n": 3}'), ("a.jsonl", 5, '{"n": 5}'), ("b.jsonl", 2, '{"n": 2}')]
    assert count == 4
    assert {r.arrival_time for r in rows} == {dt.datetime(2024, 1, 1, 6)}


def test_per_file_numbering_drops_csv_headers(spark, tmp_path):
    spark = spark.newSession()  # per-file numbering observes; keep the suite's session clean (see stage.run)
    header = "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session"
    folder = tmp_path / "flat"
    paths = [
        write_lines(folder, "a.csv", [header, "x1", "", "x3"]),
        write_lines(folder, "b.csv", ["", header, "y3"]),  # a blank first line: the header is not line 1
    ]
    records = read_raw(spark, landing_files(paths), load_source(CONF_DIR, "rees46"), per_file=True)
    rows, count = consume(records, spark)
    got = sorted((r.source_file.rsplit("/", 1)[-1], r.source_line, r.raw) for r in rows)
    # Same rule as numbering by block: line 1 is the header; a blank line 1 is just a blank line.
    assert got == [("a.csv", 2, "x1"), ("a.csv", 4, "x3"), ("b.csv", 2, header), ("b.csv", 3, "y3")]
    assert count == 4
    blocks = read_raw(spark, landing_files(paths), load_source(CONF_DIR, "rees46"), per_file=False)
    assert sorted((r.source_file, r.source_line) for r in blocks.frame.collect()) == sorted(
        (r.source_file, r.source_line) for r in rows
    )
    assert blocks.records() == count


def test_per_file_numbering_detects_files_sharing_a_partition(spark, tmp_path):
    spark = spark.newSession()  # per-file numbering observes; keep the suite's session clean (see stage.run)
    folder = tmp_path / "flat"
    paths = [write_lines(folder, f"{n}.jsonl", ['{"n": 1}', '{"n": 2}']) for n in "abc"]
    records = read_raw(spark, landing_files(paths), load_source(CONF_DIR, "clickstream"), per_file=True)
    packed = {
        "spark.sql.files.openCostInBytes": "0", "spark.sql.files.maxPartitionBytes": str(1 << 30),
        "spark.sql.files.minPartitionNum": "1",
    }
    with session_settings(spark, packed):  # Spark packs the three files into one partition
        records.frame.collect()
    with pytest.raises(NumberingError, match="3 file"):
        records.records()


def test_per_file_numbering_is_chosen_for_large_enough_files():
    mib = 1024 * 1024
    files = lambda *sizes: [LandingFile(f"f{i}", f"file:/f{i}", s) for i, s in enumerate(sizes)]  # noqa: E731
    assert per_file_numbering(files(100 * mib, 80 * mib))
    assert not per_file_numbering(files(mib, 2 * mib))  # small files: a task each costs more than a scan
    assert not per_file_numbering(files(14 * mib, 14 * mib))  # measured slower than the numbering pass at 10M
    assert not per_file_numbering(files(100 * mib, 200 * mib))  # too large to read whole in one task
    assert not per_file_numbering([])


def test_session_settings_are_restored(spark):
    key, unset = "spark.sql.files.openCostInBytes", "spark.sql.files.maxPartitionNum"
    before = spark.conf.get(key)
    with session_settings(spark, {key: "123", unset: "7"}):
        assert spark.conf.get(key) == "123" and spark.conf.get(unset) == "7"
    assert spark.conf.get(key) == before
    assert spark.conf.get(unset, None) is None
