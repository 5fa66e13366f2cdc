"""Delta file statistics from Parquet footers, and partition values from hive-style paths."""

from __future__ import annotations

import datetime as dt
import json

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from pipelines.lake.stats import describe_file, footer_stats, partition_values_from_path


def test_footer_stats_min_max_nulls_across_row_groups(tmp_path):
    utc = dt.timezone.utc
    table = pa.table(
        {
            "n": pa.array([5, None, -3, 9], pa.int64()),
            "x": pa.array([1.5, 2.5, None, None], pa.float64()),
            "s": pa.array(["b", "a", None, "c" * 40]),
            "d": pa.array([dt.date(2024, 1, 2), dt.date(2024, 1, 1), None, dt.date(2024, 3, 1)]),
            "ts": pa.array(
                [dt.datetime(2024, 1, 1, 0, 0, 0, 1500, tzinfo=utc), None, None, dt.datetime(2024, 1, 1, 5, tzinfo=utc)],
                pa.timestamp("us", tz="UTC"),
            ),
            "flag": pa.array([True, False, None, True]),
            "all_null": pa.array([None, None, None, None], pa.int32()),
        }
    )
    path = tmp_path / "f.parquet"
    pq.write_table(table, path, row_group_size=2)
    rows, stats_json = footer_stats(pq.ParquetFile(path).metadata)
    stats = json.loads(stats_json)
    assert rows == 4 and stats["numRecords"] == 4
    assert stats["minValues"]["n"] == -3 and stats["maxValues"]["n"] == 9
    assert stats["minValues"]["x"] == 1.5 and stats["maxValues"]["x"] == 2.5
    assert stats["minValues"]["d"] == "2024-01-01" and stats["maxValues"]["d"] == "2024-03-01"
    # milliseconds: min truncated, max rounded up so that skipping never drops a matching row
    assert stats["minValues"]["ts"] == "2024-01-01T00:00:00.001Z"
    assert stats["maxValues"]["ts"] == "2024-01-01T05:00:00.000Z"
    # strings: min is a 32-char prefix, max of a long string is left out
    assert stats["minValues"]["s"] == "a"
    assert "s" not in stats["maxValues"]
    assert "flag" not in stats["minValues"]
    assert "all_null" not in stats["minValues"]
    assert stats["nullCount"] == {"n": 1, "x": 2, "s": 1, "d": 1, "ts": 2, "flag": 1, "all_null": 4}


def test_max_timestamp_rounds_up_to_the_next_millisecond(tmp_path):
    table = pa.table({"ts": pa.array([dt.datetime(2024, 1, 1, 0, 0, 0, 1500)], pa.timestamp("us"))})
    pq.write_table(table, tmp_path / "f.parquet")
    stats = json.loads(footer_stats(pq.ParquetFile(tmp_path / "f.parquet").metadata)[1])
    assert stats["minValues"]["ts"] == "2024-01-01T00:00:00.001"  # no Z: timestamp without time zone
    assert stats["maxValues"]["ts"] == "2024-01-01T00:00:00.002"


def test_decimal_stats_round_outwards(tmp_path):
    # Bug: float(Decimal) rounded the min 0.29999999999999999 up to 0.3, and a delta-rs query
    # for d < 0.3 skipped the file holding it.
    import decimal

    values = [decimal.Decimal("0.29999999999999999"), decimal.Decimal("0.50000000000000001")]
    pq.write_table(pa.table({"d": pa.array(values, pa.decimal128(38, 17))}), tmp_path / "f.parquet")
    stats = json.loads(footer_stats(pq.ParquetFile(tmp_path / "f.parquet").metadata)[1])
    assert decimal.Decimal(stats["minValues"]["d"]) <= values[0]
    assert decimal.Decimal(stats["maxValues"]["d"]) >= values[1]


def test_partition_values_from_hive_path():
    path = "write-1/event_date=2024-01-02/country=__HIVE_DEFAULT_PARTITION__/city=New%20York%2FNY/part-0.parquet"
    values = partition_values_from_path(path, ["event_date", "country", "city"])
    assert values == {"event_date": "2024-01-02", "country": None, "city": "New York/NY"}


def test_partition_directory_missing_is_an_error():
    with pytest.raises(ValueError, match="no directory for partition column"):
        partition_values_from_path("write-1/part-0.parquet", ["event_date"])


def test_describe_file_reads_size_and_footer(tmp_path):
    (tmp_path / "k=7").mkdir()
    pq.write_table(pa.table({"v": [1, 2, 3]}), tmp_path / "k=7" / "p.parquet")
    data_file = describe_file(pafs.LocalFileSystem(), str(tmp_path), "k=7/p.parquet", ["k"])
    assert data_file.path == "k=7/p.parquet"
    assert data_file.size == (tmp_path / "k=7" / "p.parquet").stat().st_size
    assert data_file.partition_values == {"k": "7"}
    assert data_file.num_records == 3
    assert data_file.modification_time > 0
