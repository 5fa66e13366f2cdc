"""Pieces of the delta-spark writer and reader: predicates, literals, commit and history rows."""

from __future__ import annotations

import datetime as dt

import pytest

from pipelines.lake import delta_spark
from pipelines.lake.delta_spark import (
    _commit_result,
    _replace_where,
    _sql_string,
    filters_predicate,
)
from pipelines.lake.location import table_location
from tests.conftest import make_config


def test_replace_where_escapes_quotes_and_backslashes(spark):
    # Bug: partition values went into the replaceWhere predicate unescaped, so a value with a
    # quote broke the predicate (or changed what it matched).
    awkward = ["O'Brien", "back\\slash", "x' OR '1'='1"]
    frame = spark.createDataFrame([(v,) for v in [*awkward, "other", None]], "city string")
    written = frame.where("city <> 'other' OR city IS NULL")
    predicate = _replace_where([{"city": "O'Brien"}], written)
    matched = sorted((r.city for r in frame.where(predicate).collect()), key=str)  # tiny
    assert matched == sorted([*awkward, None], key=str)


def test_replace_where_covers_listed_partitions_without_rows_and_null_values(spark):
    written = spark.createDataFrame([("2024-01-01", "a")], "day string, shard string")
    predicate = _replace_where([{"day": "2024-01-03", "shard": None}], written)
    # one clause per partition, sorted and de-duplicated; a null value is IS NULL, not = 'None'
    assert predicate == "(`day` = '2024-01-01' AND `shard` = 'a') OR (`day` = '2024-01-03' AND `shard` IS NULL)"
    again = _replace_where([{"day": "2024-01-01", "shard": "a"}], written)
    assert again == "(`day` = '2024-01-01' AND `shard` = 'a')"


@pytest.mark.parametrize(
    ("value", "literal"),
    [
        ("plain", "'plain'"),
        ("O'Brien", "'O\\'Brien'"),
        ("back\\slash", "'back\\\\slash'"),
        ("\\'", "'\\\\\\''"),
        (dt.date(2024, 1, 2), "'2024-01-02'"),
        (7, "'7'"),
    ],
)
def test_sql_string_escapes_backslashes_before_quotes(value, literal):
    assert _sql_string(value) == literal


def test_sql_string_round_trips_through_spark_sql(spark):
    awkward = ["O'Brien", "back\\slash", "\\'", "x' OR '1'='1", "tab\there"]
    literals = ", ".join(f"{_sql_string(v)} AS c{i}" for i, v in enumerate(awkward))
    row = spark.sql(f"SELECT {literals}").first()  # one row
    assert list(row) == awkward


def test_filters_predicate_matches_delta_rs_conjunctions(spark):
    data = [(1, "a", "x"), (2, "b", "y"), (3, "c", None), (4, "a", "y")]
    frame = spark.createDataFrame(data, "n long, k string, `odd col` string")

    def ids(filters):
        predicate = filters_predicate(filters)
        return sorted(r.n for r in (frame if predicate is None else frame.where(predicate)).collect())  # tiny

    assert filters_predicate([]) is None
    assert ids([("k", "=", "a")]) == [1, 4]
    assert ids([("k", "==", "a"), ("odd col", "=", "y")]) == [4]
    assert ids([("odd col", "=", None)]) == [3]
    assert ids([("odd col", "!=", None)]) == [1, 2, 4]
    assert ids([("k", "!=", "a")]) == [2, 3]
    assert ids([("k", "in", ["b", "c"])]) == [2, 3]
    assert ids([("k", "in", [])]) == []
    assert ids([("k", "not in", ["a"])]) == [2, 3]
    assert ids([("k", "not in", [])]) == [1, 2, 3, 4]
    assert ids([("n", ">", 1), ("n", "<=", 3)]) == [2, 3]
    assert ids([("n", ">=", 4)]) == [4]
    assert ids([("n", "<", 2)]) == [1]


def test_filters_predicate_refuses_unknown_operators(spark):
    with pytest.raises(ValueError, match="unsupported partition filter operator 'like' on k"):
        filters_predicate([("k", "like", "a%")])


def test_commit_result_reads_delta_string_metrics(tmp_path):
    location = table_location(make_config(tmp_path).lake, "test.metrics")
    write = {"version": 3, "operationMetrics": {"numFiles": "4", "numOutputRows": "42", "numOutputBytes": "9"}}
    result = _commit_result(location, write, "w-1")
    assert (result.version, result.files_added, result.files_removed, result.rows_added) == (3, 4, 0, 42)
    assert result.write_id == "w-1" and result.table == str(location) and not result.skipped
    overwrite = {"version": 4, "operationMetrics": {"numAddedFiles": "2", "numRemovedFiles": "5", "numOutputRows": "7"}}
    assert _commit_result(location, overwrite, "w-2").files_removed == 5
    merge = {"version": 5, "operationMetrics": {"numTargetFilesAdded": "1", "numTargetFilesRemoved": "1",
                                                 "numTargetRowsInserted": "3", "numOutputRows": "10"}}
    assert (_commit_result(location, merge, "w-3").rows_added, _commit_result(location, merge, "w-3").files_added) == (3, 1)
    assert _commit_result(location, {"version": 6, "operationMetrics": None}, "w-4").rows_added == 0


def test_history_maps_describe_history_rows(tmp_path, monkeypatch):
    location = table_location(make_config(tmp_path).lake, "test.hist")
    stamp = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    rows = [
        {"version": 2, "timestamp": stamp, "operation": "MERGE", "operationParameters": {"predicate": "x"},
         "operationMetrics": {"numTargetRowsInserted": "5", "numOutputRows": "9"}, "userMetadata": None},
        {"version": 1, "timestamp": stamp, "operation": "OPTIMIZE", "operationParameters": None,
         "operationMetrics": None, "userMetadata": "not json"},
        {"version": 0, "timestamp": stamp, "operation": "WRITE", "operationParameters": {"mode": "Append"},
         "operationMetrics": {"numOutputRows": "3"}, "userMetadata": '{"clickml.write_id": "w-0"}'},
    ]
    monkeypatch.setattr(delta_spark, "history_rows", lambda spark, loc, limit: rows)
    entries = delta_spark.history(None, location)
    assert [(e.version, e.operation, e.rows_added, e.write_id) for e in entries] == [
        (2, "MERGE", 5, None), (1, "OPTIMIZE", None, None), (0, "WRITE", 3, "w-0"),
    ]
    assert entries[0].timestamp_ms == 1704067200000
    assert entries[0].parameters == {"predicate": "x"} and entries[1].parameters == {}
