"""Commits and snapshots through delta-rs alone: files written without Spark."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.fs as pafs
import pytest
from deltalake import DeltaTable

from pipelines.lake import deltalog
from pipelines.lake.deltalog import Txn
from pipelines.lake.errors import SchemaMismatchError, TableNotFoundError, UnsupportedTableError
from pipelines.lake.location import table_location
from tests.conftest import make_config
from tests.lakehelpers import handmade_table_with_feature, write_files

SCHEMA = pa.schema([("id", pa.int64()), ("v", pa.string()), ("day", pa.string())])


@pytest.fixture
def location(tmp_path):
    return table_location(make_config(tmp_path).lake, "test.events")


def batch(ids, day="2024-01-01"):
    return pa.table({"id": ids, "v": [f"v{i}" for i in ids], "day": [day] * len(ids)}, schema=SCHEMA)


def commit(location, table, mode="append", txn=None, **kwargs):
    files = write_files(pafs.LocalFileSystem(), location.uri, table, ["day"])
    return deltalog.commit(location, files, SCHEMA, mode=mode, partition_by=["day"], txn=txn, **kwargs)


def live_ids(location, version=None):
    return sorted(DeltaTable(location.uri, version=version).to_pyarrow_table()["id"].to_pylist())


def test_append_creates_then_adds(location):
    first = commit(location, batch([1, 2]))
    second = commit(location, batch([3], day="2024-01-02"))
    assert (first.version, second.version) == (0, 1)
    assert second.rows_added == 1 and second.files_added == 1
    assert live_ids(location) == [1, 2, 3]
    snap = deltalog.snapshot(location)
    assert snap.partition_columns == ["day"]
    assert {f.partition_values["day"] for f in snap.files} == {"2024-01-01", "2024-01-02"}
    assert sum(f.num_records for f in snap.files) == 3


def test_overwrite_replaces_everything_and_time_travel_keeps_the_past(location):
    commit(location, batch([1, 2]))
    result = commit(location, batch([9], day="2024-02-01"), mode="overwrite")
    assert result.files_removed == 1
    assert live_ids(location) == [9]
    assert live_ids(location, version=0) == [1, 2]
    assert [f.path for f in deltalog.snapshot(location, version=0).files] != [f.path for f in deltalog.snapshot(location).files]


def test_overwrite_partitions_replaces_only_written_partitions(location):
    commit(location, pa.concat_tables([batch([1, 2]), batch([3], day="2024-01-02")]))
    result = commit(location, batch([7, 8], day="2024-01-02"), mode="overwrite_partitions")
    assert result.files_removed == 1
    assert live_ids(location) == [1, 2, 7, 8]


def test_overwrite_partitions_replaces_a_partition_whose_folder_name_is_escaped(location):
    # Bug: the remove action took the log's URI-encoded path, which delta-rs encoded again
    # (%2520), so it matched nothing: the old "New York" rows stayed live beside the new ones.
    commit(location, pa.concat_tables([batch([1], day="New York"), batch([2], day="Boston")]))
    result = commit(location, pa.concat_tables([batch([3], day="New York"), batch([4], day="Boston")]),
                    mode="overwrite_partitions")
    assert result.files_removed == 2
    assert live_ids(location) == [3, 4]


def test_overwrite_partitions_handles_null_partition_values(location):
    nulls = pa.table({"id": [5], "v": ["x"], "day": [None]}, schema=SCHEMA)
    commit(location, pa.concat_tables([batch([1]), nulls]))
    replacement = pa.table({"id": [6], "v": ["y"], "day": [None]}, schema=SCHEMA)
    commit(location, replacement, mode="overwrite_partitions")
    assert live_ids(location) == [1, 6]


def test_same_transaction_twice_is_a_no_op(location):
    txn = Txn.for_batch("ingest", "2024-01-01T00")
    first = commit(location, batch([1, 2]), txn=txn)
    again = commit(location, batch([1, 2]), txn=txn)
    assert not first.skipped and again.skipped and again.version is None
    assert DeltaTable(location.uri).version() == 0
    assert live_ids(location) == [1, 2]
    assert deltalog.transaction_version(location, txn.app_id) == 0


def test_commit_retries_after_a_concurrent_commit(location):
    commit(location, batch([1]))

    def race(attempt):
        if attempt == 1:  # another writer commits between our snapshot and our commit
            commit(location, batch([100], day="2024-01-02"))

    result = commit(location, batch([2]), before_commit=race, backoff_seconds=0.01)
    assert result.attempts == 2
    assert live_ids(location) == [1, 2, 100]
    assert result.version == 2


def test_conflicts_beyond_the_retries_fail_loudly(location):
    commit(location, batch([1]))

    def always_race(attempt):
        commit(location, batch([100 + attempt], day="2024-01-02"))

    with pytest.raises(deltalog.CommitConflictError, match=r"table test.events .*after 3 attempts"):
        commit(location, batch([2]), before_commit=always_race, retries=2, backoff_seconds=0.0)


def test_schema_mismatch_names_table_and_columns(location):
    commit(location, batch([1]))
    other = pa.schema([("id", pa.string()), ("w", pa.string()), ("day", pa.string())])
    with pytest.raises(SchemaMismatchError) as err:
        deltalog.check_schema(location, SCHEMA, other, ["day"], ["day"])
    message = str(err.value)
    assert "table test.events" in message
    assert "column id is int64 in the table but string in the data" in message
    assert "missing column(s) v" in message and "unknown column(s) w" in message


def test_partitioning_mismatch(location):
    with pytest.raises(SchemaMismatchError, match=r"partitioned by \[day\] but the write is partitioned by \[\]"):
        deltalog.check_schema(location, SCHEMA, SCHEMA, ["day"], [])


def test_overwrite_schema_replaces_the_schema(location):
    commit(location, batch([1]))
    wider = pa.schema([("id", pa.int64()), ("v", pa.string()), ("day", pa.string()), ("extra", pa.float64())])
    table = pa.table({"id": [4], "v": ["a"], "day": ["2024-01-03"], "extra": [0.5]}, schema=wider)
    files = write_files(pafs.LocalFileSystem(), location.uri, table, ["day"])
    deltalog.commit(location, files, wider, mode="overwrite", partition_by=["day"], overwrite_schema=True)
    snap = deltalog.snapshot(location)
    assert snap.schema.names == ["id", "v", "day", "extra"]


def test_history_records_rows_and_write_ids(location):
    first = commit(location, batch([1, 2]))
    commit(location, batch([3]), mode="overwrite")
    entries = deltalog.history(location)
    assert [e.version for e in entries] == [1, 0]
    assert entries[1].rows_added == 2 and entries[1].write_id == first.write_id
    assert entries[0].operation == "WRITE" and entries[0].rows_added == 1


def test_missing_table_and_missing_version(location):
    with pytest.raises(TableNotFoundError, match="table test.events .*does not exist"):
        deltalog.snapshot(location)
    commit(location, batch([1]))
    with pytest.raises(TableNotFoundError, match="has no version 5"):
        deltalog.snapshot(location, version=5)


@pytest.mark.parametrize("feature", ["deletionVectors", "columnMapping"])
def test_unsupported_reader_features_are_refused(tmp_path, feature):
    loc = table_location(make_config(tmp_path).lake, "test.fancy")
    handmade_table_with_feature(tmp_path / "lakehouse" / "test" / "fancy", feature)
    with pytest.raises(UnsupportedTableError, match=rf"table test.fancy .*uses Delta reader feature\(s\) {feature}"):
        deltalog.snapshot(loc)


def _append_spark_style_commit(location, version, user_metadata, metrics):
    """A commit as Delta Spark writes it: our write id inside `userMetadata`, string metrics."""
    import json
    from pathlib import Path

    info = {
        "commitInfo": {
            "timestamp": 1700000000000, "operation": "WRITE", "operationParameters": {"mode": "Append"},
            "isBlindAppend": True, "operationMetrics": metrics, "userMetadata": user_metadata,
            "engineInfo": "Apache-Spark/4.1.3 Delta-Lake/4.1.0",
        }
    }
    (Path(location.uri) / "_delta_log" / f"{version:020d}.json").write_text(json.dumps(info) + "\n")


def test_spark_commit_result_reads_rows_and_files_from_a_delta_spark_commit(location):
    # Bug: write_delta_spark returned rows_added=0 for every write, so the ingest's commit check
    # failed after the commit had landed with lake.writer=delta-spark.
    commit(location, batch([1, 2]))
    _append_spark_style_commit(
        location, 1, '{"clickml.write_id": "w-spark"}', {"numFiles": "3", "numOutputRows": "42", "numOutputBytes": "9"}
    )
    _append_spark_style_commit(location, 2, "not json", {"numFiles": "1", "numOutputRows": "1"})
    result = deltalog.spark_commit_result(location, "w-spark")
    assert (result.version, result.rows_added, result.files_added, result.files_removed) == (1, 42, 3, 0)
    assert [e.write_id for e in deltalog.history(location)][:2] == [None, "w-spark"]
    with pytest.raises(deltalog.LakeError, match="no commit with write id w-other"):
        deltalog.spark_commit_result(location, "w-other")


def test_partition_filters_keep_files_under_roots_and_values_that_need_escaping(tmp_path):
    # Bug: with partition filters, files were matched on paths decoded once on one side and
    # twice (or not at all) on the other, so a lake root with a space, or a partition value that
    # Spark escapes ("New York/NY" -> folder "New York%2FNY"), gave an empty snapshot.
    location = table_location(make_config(tmp_path / "my lake").lake, "test.events")
    table = pa.concat_tables([batch([1, 2]), batch([3], day="New York%2FNY"), batch([4], day="50%25 off")])
    commit(location, table)
    for value, ids in (("2024-01-01", [1, 2]), ("New York/NY", [3]), ("50% off", [4])):
        snap = deltalog.snapshot(location, partition_filters=[("day", "=", value)])
        assert [f.partition_values["day"] for f in snap.files] == [value]
        assert sum(f.num_records for f in snap.files) == len(ids)
    both = deltalog.snapshot(location, partition_filters=[("day", "in", ["2024-01-01", "New York/NY"])])
    assert sum(f.num_records for f in both.files) == 3


def test_a_creation_that_landed_then_raised_is_not_taken_for_another_writers(location, monkeypatch):
    # Bug: when creating the table raised after its commit had landed, the retry found the
    # transaction recorded and answered "skipped", and the caller deleted the files that very
    # commit references.
    from deltalake.exceptions import DeltaError

    real = deltalog.create_table_with_add_actions

    def lands_then_raises(*args, **kwargs):
        real(*args, **kwargs)
        raise DeltaError("post-commit hook failed")

    monkeypatch.setattr(deltalog, "create_table_with_add_actions", lands_then_raises)
    result = commit(location, batch([1, 2]), txn=Txn("app", 0))
    assert not result.skipped and result.version == 0 and result.rows_added == 2
    assert commit(location, batch([1, 2]), txn=Txn("app", 0)).skipped  # a true re-run still skips
    assert live_ids(location) == [1, 2]
