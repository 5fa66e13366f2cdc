"""The Delta log read through delta-rs alone, on tables that delta-spark wrote."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from deltalake import DeltaTable

from pipelines.lake import Lake, deltalog
from pipelines.lake.deltalog import Txn
from pipelines.lake.errors import LakeError, TableNotFoundError, UnsupportedTableError
from pipelines.lake.location import table_location
from tests.conftest import make_config
from tests.lakehelpers import handmade_table_with_feature

SCHEMA = "id long, v string, day string"
TABLE = "test.events"


@pytest.fixture
def lake(spark, tmp_path):
    return Lake(make_config(tmp_path), spark)


@pytest.fixture
def location(lake):
    return lake.location(TABLE)


def batch(spark, ids, day="2024-01-01"):
    return spark.createDataFrame([(i, f"v{i}", day) for i in ids], SCHEMA)


def write(lake, spark, ids, day="2024-01-01", mode="append", **kwargs):
    return lake.write(batch(spark, ids, day), TABLE, mode=mode, partition_by=["day"], **kwargs)


def live_ids(location, version=None):
    return sorted(DeltaTable(location.uri, version=version).to_pyarrow_table()["id"].to_pylist())


def test_snapshot_lists_the_live_files_with_typed_partitions_and_counts(spark, lake, location):
    first = write(lake, spark, [1, 2])
    second = write(lake, spark, [3], day="2024-01-02")
    assert (first.version, second.version) == (0, 1)
    snap = deltalog.snapshot(location)
    assert snap.version == 1 and snap.location == location
    assert snap.partition_columns == ["day"]
    assert snap.schema.names == ["id", "v", "day"]
    assert {f.partition_values["day"] for f in snap.files} == {"2024-01-01", "2024-01-02"}
    assert sum(f.num_records for f in snap.files) == 3
    for f in snap.files:
        assert f.path.startswith(f"day={f.partition_values['day']}/") and f.path.endswith(".parquet")
        assert f.uri == location.child(f.path) and Path(f.uri).is_file()
        assert f.size == Path(f.uri).stat().st_size
    assert live_ids(location) == [1, 2, 3]


def test_snapshot_of_an_older_version_after_an_overwrite(spark, lake, location):
    write(lake, spark, [1, 2])
    write(lake, spark, [9], day="2024-02-01", mode="overwrite")
    old, new = deltalog.snapshot(location, version=0), deltalog.snapshot(location)
    assert (old.version, new.version) == (0, 1)
    assert sum(f.num_records for f in old.files) == 2 and sum(f.num_records for f in new.files) == 1
    assert {f.path for f in old.files}.isdisjoint({f.path for f in new.files})
    assert live_ids(location, version=0) == [1, 2] and live_ids(location) == [9]


def test_partition_filters_keep_files_under_roots_and_values_that_need_escaping(spark, tmp_path):
    # Bug: with partition filters, files were matched on paths decoded once on one side and
    # twice (or not at all) on the other, so a lake root with a space, or a partition value that
    # Spark escapes ("New York/NY" -> folder "New York%2FNY"), gave an empty snapshot.
    lake = Lake(make_config(tmp_path / "my lake"), spark)
    location = lake.location(TABLE)
    data = [(1, "a", "2024-01-01"), (2, "b", "2024-01-01"), (3, "c", "New York/NY"), (4, "d", "50% off")]
    lake.write(spark.createDataFrame(data, SCHEMA), TABLE, partition_by=["day"])
    folders = {p.name for p in Path(location.uri).iterdir() if p.name.startswith("day=")}
    assert folders == {"day=2024-01-01", "day=New York%2FNY", "day=50%25 off"}  # as Spark names them
    for value, count in (("2024-01-01", 2), ("New York/NY", 1), ("50% off", 1)):
        snap = deltalog.snapshot(location, partition_filters=[("day", "=", value)])
        assert [f.partition_values["day"] for f in snap.files] == [value]
        assert sum(f.num_records for f in snap.files) == count
        assert all(Path(f.uri).is_file() for f in snap.files)
    both = deltalog.snapshot(location, partition_filters=[("day", "in", ["2024-01-01", "New York/NY"])])
    assert sum(f.num_records for f in both.files) == 3
    assert deltalog.snapshot(location, partition_filters=[("day", "=", "nowhere")]).files == []


def test_history_records_operations_rows_and_write_ids(spark, lake, location):
    first = write(lake, spark, [1, 2])
    second = write(lake, spark, [3], mode="overwrite")
    entries = deltalog.history(location)
    assert [e.version for e in entries] == [1, 0]
    assert [e.write_id for e in entries] == [second.write_id, first.write_id]
    assert first.write_id and first.write_id != second.write_id
    assert [e.operation for e in entries] == ["WRITE", "WRITE"]
    assert [e.rows_added for e in entries] == [1, 2]
    assert entries[0].parameters["mode"] == "Overwrite" and entries[1].parameters["mode"] == "Append"
    assert entries[0].timestamp_ms >= entries[1].timestamp_ms > 0
    assert [e.version for e in deltalog.history(location, limit=1)] == [1]


def test_transaction_version_of_a_committed_transaction(spark, lake, location):
    assert deltalog.transaction_version(location, "ingest/2024-01-01T00") is None  # no table yet
    txn = Txn.for_batch("ingest", "2024-01-01T00")
    write(lake, spark, [1, 2], txn=txn)
    write(lake, spark, [3], txn=Txn("other-app", 4))
    assert deltalog.transaction_version(location, txn.app_id) == 0
    assert deltalog.transaction_version(location, "other-app") == 4
    assert deltalog.transaction_version(location, "never-seen") is None


def test_missing_table_and_missing_version(spark, lake, location):
    assert deltalog.open_table(location) is None
    with pytest.raises(TableNotFoundError, match="table test.events .*does not exist"):
        deltalog.snapshot(location)
    with pytest.raises(TableNotFoundError, match="table test.events .*is not a Delta table"):
        deltalog.open_table(location, version=0)
    with pytest.raises(TableNotFoundError, match="table test.events .*does not exist"):
        deltalog.history(location)
    write(lake, spark, [1])
    assert deltalog.open_table(location).version() == 0
    with pytest.raises(TableNotFoundError, match="table test.events .*has no version 5"):
        deltalog.snapshot(location, version=5)


@pytest.mark.parametrize("feature", ["deletionVectors", "columnMapping"])
def test_unsupported_reader_features_are_refused(tmp_path, feature):
    loc = table_location(make_config(tmp_path).lake, "test.fancy")
    handmade_table_with_feature(tmp_path / "lakehouse" / "test" / "fancy", feature)
    with pytest.raises(UnsupportedTableError, match=rf"table test.fancy .*uses Delta reader feature\(s\) {feature}"):
        deltalog.snapshot(loc)


def test_supported_reader_features_are_read(spark, lake):
    # timestamp_ntz makes Delta Spark write a reader-version-3 protocol with the timestampNtz feature
    frame = spark.sql("SELECT 1L AS id, TIMESTAMP_NTZ'2024-01-01 10:00:00' AS local_ts")
    lake.write(frame, "test.ntz")
    location = lake.location("test.ntz")
    protocol = deltalog.open_table(location).protocol()
    assert protocol.min_reader_version == 3 and "timestampNtz" in (protocol.reader_features or [])
    snap = deltalog.snapshot(location)
    assert snap.schema.names == ["id", "local_ts"] and sum(f.num_records for f in snap.files) == 1


def test_spark_commit_result_reads_rows_and_files_from_a_delta_spark_commit(spark, lake, location):
    # Bug: write_delta_spark returned rows_added=0 for every write, so the ingest's commit check
    # failed after the commit had landed.
    written = lake.write(batch(spark, range(6)).repartition(3), TABLE)
    batch(spark, [99]).write.format("delta").mode("append").option("userMetadata", "not json").save(location.spark_uri)
    batch(spark, [98]).write.format("delta").mode("append").option("userMetadata", '{"other": 1}').save(location.spark_uri)
    result = deltalog.spark_commit_result(location, written.write_id)
    assert (result.version, result.rows_added, result.files_added, result.files_removed) == (0, 6, 3, 0)
    assert (result.version, result.rows_added, result.files_added) == (written.version, written.rows_added, written.files_added)
    assert result.write_id == written.write_id
    assert [e.write_id for e in deltalog.history(location)] == [None, None, written.write_id]
    with pytest.raises(LakeError, match="table test.events .*no commit with write id w-other"):
        deltalog.spark_commit_result(location, "w-other")


def test_write_id_of_commit_infos():
    assert deltalog.write_id_of({"clickml.write_id": "own-key"}) == "own-key"
    assert deltalog.write_id_of({"userMetadata": json.dumps({"clickml.write_id": "in-json"})}) == "in-json"
    assert deltalog.write_id_of({"userMetadata": '{"clickml.write_id": 7}'}) == "7"
    assert deltalog.write_id_of({"userMetadata": '{"other": 1}'}) is None
    assert deltalog.write_id_of({"userMetadata": "{broken"}) is None
    assert deltalog.write_id_of({"userMetadata": "plain text"}) is None
    assert deltalog.write_id_of({"userMetadata": None}) is None
    assert deltalog.write_id_of({}) is None
