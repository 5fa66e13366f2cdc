"""The lake layer with Spark: round trips, modes, idempotency, conflicts, crashes, foreign tables."""

from __future__ import annotations

import datetime as dt
import textwrap
import threading
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake
from pyspark.sql import functions as F
from pyspark.sql import types as T

from pipelines.lake import Lake, SchemaMismatchError, Txn, UnsupportedTableError
from pipelines.lake import spark_io
from tests.conftest import REPO_ROOT, make_config
from tests.processes import kill_when_marked
from tests.lakehelpers import handmade_table_with_feature

SCHEMA = T.StructType(
    [
        T.StructField("id", T.LongType()),
        T.StructField("name", T.StringType()),
        T.StructField("amount", T.DoubleType()),
        T.StructField("ts", T.TimestampType()),
        T.StructField("day", T.DateType()),
        T.StructField("city", T.StringType()),
    ]
)
UTC = dt.timezone.utc


def rows(ids, day=dt.date(2024, 1, 1), city="Paris"):
    return [
        (i, f"n{i}", i * 1.5 if i % 4 else None, dt.datetime(2024, 1, 1, 12, 0, i % 60), day, city)
        for i in ids
    ]


@pytest.fixture
def lake(spark, tmp_path):
    return Lake(make_config(tmp_path), spark)


def frame(spark, data):
    return spark.createDataFrame(data, SCHEMA)


def collected(df):
    # Small test frames only.
    return sorted(tuple(r) for r in df.collect())


def test_round_trip_with_typed_partitions_and_awkward_values(spark, lake):
    data = (
        rows(range(0, 5))
        + rows(range(5, 8), day=dt.date(2024, 1, 2), city="New York/NY")
        + rows(range(8, 10), day=dt.date(2024, 1, 2), city="São Paulo + 100%")
        + rows(range(10, 12), day=None, city=None)
    )
    result = lake.write(frame(spark, data), "test.events", partition_by=["day", "city"])
    assert result.version == 0 and result.rows_added == 12
    back = lake.read("test.events")
    assert back.schema == SCHEMA
    assert collected(back) == collected(frame(spark, data))
    # the same table through delta-rs alone
    table = DeltaTable(lake.location("test.events").uri).to_pyarrow_table()
    assert table.num_rows == 12
    assert sorted(table["city"].to_pylist(), key=str) == sorted([r[5] for r in data], key=str)
    assert set(table["day"].to_pylist()) == {dt.date(2024, 1, 1), dt.date(2024, 1, 2), None}


def test_a_partition_column_named_with_a_leading_underscore_is_committed(spark, lake):
    # Bug: every path segment starting with "_" was taken for a hidden one, so the `_shard=a/`
    # folders' files were never committed: the write reported 0 rows and vacuum would delete them.
    data = spark.createDataFrame([(1, "a"), (2, "b")], "id long, _shard string")
    result = lake.write(data, "test.shards", partition_by=["_shard"])
    assert result.rows_added == 2
    assert collected(lake.read("test.shards")) == [(1, "a"), (2, "b")]


def test_partition_overwrite_replaces_timestamp_and_double_partitions(spark, lake):
    # Bug: the live files' typed partition values were re-stringified ("2024-01-01 10:00:00+00:00",
    # "1e+20") and never equalled the folder strings Spark wrote, so nothing was replaced.
    for i in (1, 2):
        data = spark.createDataFrame([(i, dt.datetime(2024, 1, 1, 10, 0, 0, 500000), 1e20)],
                                     "id long, hour timestamp, big double")
        result = lake.write(data, "test.hours", mode="overwrite_partitions", partition_by=["hour", "big"])
    assert result.files_removed == 1
    assert [r.id for r in lake.read("test.hours").collect()] == [2]


def test_unpartitioned_round_trip_and_delta_rs_agrees(spark, lake):
    df = frame(spark, rows(range(20)))
    lake.write(df, "test.flat")
    assert collected(lake.read("test.flat")) == collected(df)
    table = DeltaTable(lake.location("test.flat").uri).to_pyarrow_table()
    assert sorted(table["id"].to_pylist()) == list(range(20))
    assert table.schema.field("ts").type == pa.timestamp("us", tz="UTC")


def test_overwrite_and_time_travel(spark, lake):
    lake.write(frame(spark, rows(range(3))), "test.tt", partition_by=["day"])
    lake.write(frame(spark, rows(range(100, 102))), "test.tt", mode="overwrite", partition_by=["day"])
    assert sorted(r.id for r in lake.read("test.tt").collect()) == [100, 101]
    assert sorted(r.id for r in lake.read("test.tt", version=0).collect()) == [0, 1, 2]
    assert lake.version("test.tt") == 1


def test_partition_overwrite_replaces_only_the_partitions_written(spark, lake):
    day1, day2 = dt.date(2024, 1, 1), dt.date(2024, 1, 2)
    lake.write(frame(spark, rows(range(3), day=day1) + rows(range(3, 6), day=day2)), "test.po", partition_by=["day"])
    result = lake.write(frame(spark, rows([50], day=day2)), "test.po", mode="overwrite_partitions", partition_by=["day"])
    assert result.files_removed >= 1
    assert sorted(r.id for r in lake.read("test.po").collect()) == [0, 1, 2, 50]


def test_idempotent_rerun_commits_nothing_and_writes_no_files(spark, lake):
    df = frame(spark, rows(range(5)))
    txn = Txn.for_batch("test-ingest", "2024-01-01T00")
    first = lake.write(df, "test.idem", partition_by=["day"], txn=txn)
    table_dir = Path(lake.location("test.idem").uri)
    dirs_before = sorted(p.name for p in table_dir.iterdir())
    again = lake.write(df, "test.idem", partition_by=["day"], txn=txn)
    assert first.version == 0 and again.skipped
    assert lake.version("test.idem") == 0
    assert lake.read("test.idem").count() == 5
    assert sorted(p.name for p in table_dir.iterdir()) == dirs_before


def test_schema_mismatch_fails_before_writing_anything(spark, lake):
    lake.write(frame(spark, rows(range(2))), "test.schema", partition_by=["day"])
    table_dir = Path(lake.location("test.schema").uri)
    before = sorted(p.name for p in table_dir.iterdir())
    bad = frame(spark, rows(range(2))).withColumn("amount", F.col("amount").cast("string"))
    with pytest.raises(SchemaMismatchError, match=r"table test.schema .*column amount is double in the table but string"):
        lake.write(bad, "test.schema", partition_by=["day"])
    with pytest.raises(SchemaMismatchError, match=r"partitioned by \[day\] but the write is partitioned by \[city\]"):
        lake.write(frame(spark, rows([1])), "test.schema", partition_by=["city"])
    assert sorted(p.name for p in table_dir.iterdir()) == before


def test_conflict_with_a_concurrent_writer_is_retried(spark, lake, tmp_path):
    lake.write(frame(spark, rows(range(2))), "test.race", partition_by=["day"])
    other = Lake(make_config(tmp_path), spark)

    def race(attempt):
        if attempt == 1:
            other.write(frame(spark, rows([77], day=dt.date(2024, 1, 1))), "test.race", partition_by=["day"])

    result = lake.write(
        frame(spark, rows([10, 11], day=dt.date(2024, 1, 1))), "test.race",
        mode="overwrite_partitions", partition_by=["day"], before_commit=race,
    )
    assert result.attempts == 2
    # re-planned against the new version: the partition overwrite also replaced the racer's rows
    assert sorted(r.id for r in lake.read("test.race").collect()) == [10, 11]
    assert lake.version("test.race") == 2


def test_two_writers_appending_at_once_lose_nothing(spark, lake, tmp_path):
    lake.write(frame(spark, rows([0])), "test.concurrent", partition_by=["day"])
    errors = []

    def writer(offset):
        mine = Lake(make_config(tmp_path), spark)
        try:
            for k in range(3):
                ids = [offset + k * 10 + j for j in range(2)]
                mine.write(frame(spark, rows(ids)), "test.concurrent", partition_by=["day"])
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(offset,)) for offset in (1000, 2000)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors
    ids = sorted(r.id for r in lake.read("test.concurrent").collect())
    expected = sorted([0] + [o + k * 10 + j for o in (1000, 2000) for k in range(3) for j in range(2)])
    assert ids == expected
    assert lake.version("test.concurrent") == 6


def test_empty_frame_creates_a_table_with_its_schema(spark, lake):
    result = lake.write(spark.createDataFrame([], SCHEMA), "test.empty", partition_by=["day"])
    assert result.version == 0 and result.rows_added == 0
    back = lake.read("test.empty")
    assert back.count() == 0 and back.schema == SCHEMA


def test_many_files_are_described_on_the_executors(spark, lake, monkeypatch):
    monkeypatch.setattr(spark_io, "DRIVER_FOOTER_LIMIT", 0)
    df = frame(spark, rows(range(40))).repartition(4)
    result = lake.write(df, "test.wide")
    assert result.files_added == 4 and result.rows_added == 40
    stats = DeltaTable(lake.location("test.wide").uri).get_add_actions(flatten=True)
    assert sum(pa.table(stats)["num_records"].to_pylist()) == 40


def test_reads_a_table_that_delta_rs_wrote(spark, lake):
    table = pa.table(
        {
            "id": pa.array([1, 2, 3], pa.int64()),
            "when": pa.array([dt.datetime(2024, 5, 1, tzinfo=UTC)] * 3, pa.timestamp("us", tz="UTC")),
            "country": ["FR", "DE", "FR"],
            "score": pa.array([1, 2, 3], pa.int32()),
        }
    )
    uri = lake.location("foreign.scores").uri
    write_deltalake(uri, table, partition_by=["country", "score"])
    write_deltalake(uri, table.slice(0, 1), mode="append", partition_by=["country", "score"])
    back = lake.read("foreign.scores")
    assert dict(back.dtypes) == {"id": "bigint", "when": "timestamp", "country": "string", "score": "int"}
    assert sorted((r.id, r.country, r.score) for r in back.collect()) == [(1, "FR", 1), (1, "FR", 1), (2, "DE", 2), (3, "FR", 3)]
    assert lake.history("foreign.scores")[0].version == 1


def test_refuses_tables_with_unsupported_features(spark, lake):
    handmade_table_with_feature(Path(lake.location("foreign.dv").uri), "deletionVectors")
    with pytest.raises(UnsupportedTableError, match="deletionVectors"):
        lake.read("foreign.dv")


def test_history_for_lineage(spark, lake):
    lake.write(frame(spark, rows(range(4))), "test.hist", partition_by=["day"])
    lake.write(frame(spark, rows(range(4, 6))), "test.hist", partition_by=["day"], mode="overwrite")
    entries = lake.history("test.hist")
    assert [(e.version, e.operation, e.rows_added) for e in entries] == [
        (1, "WRITE overwrite", 2),
        (0, "WRITE append", 4),
    ]


CRASHING_WRITER = textwrap.dedent(
    """
    import os, sys, time
    sys.path.insert(0, {repo!r})
    from pyspark.sql import functions as F
    from pipelines.lake import Lake
    from pipelines.spark import build_session
    from tests.conftest import make_config
    from pathlib import Path

    config = make_config(Path({tmp!r}), "spark.ui_enabled=false", "spark.driver_memory=512m")
    spark = build_session(config)
    df = spark.range(100).select(F.col("id"), F.lit("2024-01-01").cast("date").alias("day"))

    def stall(attempt):
        Path({marker!r}).write_text("files written, commit pending")
        time.sleep(600)

    Lake(config, spark).write(df, "test.crash", partition_by=["day"], before_commit=stall)
    """
)


@pytest.mark.slow
def test_write_killed_before_commit_leaves_nothing_visible_and_vacuum_cleans_up(spark, tmp_path):
    lake = Lake(make_config(tmp_path), spark)
    committed = spark.range(10).select(F.col("id"), F.lit("2024-01-01").cast("date").alias("day"))
    lake.write(committed, "test.crash", partition_by=["day"])
    marker = tmp_path / "marker"
    script = tmp_path / "crash.py"
    script.write_text(CRASHING_WRITER.format(repo=str(REPO_ROOT), tmp=str(tmp_path), marker=str(marker)))
    kill_when_marked(script, marker)  # kill -9 the writer and its JVM once its files are written
    table_dir = Path(lake.location("test.crash").uri)
    write_dirs = [p for p in table_dir.iterdir() if p.name.startswith("write-")]
    assert len(write_dirs) == 2  # the committed write and the orphaned one
    assert lake.version("test.crash") == 0
    assert lake.read("test.crash").count() == 10
    assert DeltaTable(str(table_dir)).to_pyarrow_table().num_rows == 10

    result = lake.vacuum("test.crash", retention_hours=0)
    assert result.files_deleted or result.staging_dirs_deleted
    remaining = [p for p in table_dir.iterdir() if p.name.startswith("write-")]
    assert len(remaining) == 1
    assert not list(remaining[0].rglob("_temporary"))
    assert lake.read("test.crash").count() == 10


def test_vacuum_respects_the_retention_for_time_travel(spark, lake):
    lake.write(frame(spark, rows(range(3))), "test.vac", partition_by=["day"])
    lake.write(frame(spark, rows(range(3, 5))), "test.vac", partition_by=["day"], mode="overwrite")
    kept = lake.vacuum("test.vac", retention_hours=24)
    assert kept.files_deleted == []
    assert lake.read("test.vac", version=0).count() == 3
    dry = lake.vacuum("test.vac", retention_hours=0, dry_run=True)
    assert dry.dry_run and len(dry.files_deleted) >= 1
    assert lake.read("test.vac", version=0).count() == 3
    lake.vacuum("test.vac", retention_hours=0)
    assert lake.read("test.vac").count() == 2


def test_delta_spark_writer_when_the_jars_are_present(spark, tmp_path):
    from pipelines.spark import delta_extension_loaded

    if not delta_extension_loaded(spark):
        pytest.skip(
            "Delta Spark jars not on the classpath (no Maven repository reachable here to fetch "
            "io.delta:delta-spark_4.1_2.13); the delta-spark writer is exercised on clusters that ship them"
        )
    lake = Lake(make_config(tmp_path, "lake.writer=delta-spark"), spark)
    written = lake.write(spark.range(5).withColumn("day", F.current_date()), "test.native", partition_by=["day"])
    assert lake.read("test.native").count() == 5
    assert (written.version, written.rows_added) == (0, 5) and written.files_added >= 1


def test_a_lake_root_with_a_space_is_written_where_it_says(spark, tmp_path):
    # Bug: the Spark URI of a local table was Path.as_uri() ("my%20lake"), which Hadoop takes
    # literally: Spark wrote into a folder named "my%20lake", the commit found no files there.
    root = tmp_path / "my lake"
    lake = Lake(make_config(root), spark)
    written = lake.write(frame(spark, rows(range(4))), "test.spaced", partition_by=["day"])
    assert written.rows_added == 4
    assert lake.read("test.spaced").count() == 4
    assert not (tmp_path / "my%20lake").exists()
    table_dir = Path(lake.location("test.spaced").uri)
    assert " " in str(table_dir) and any(table_dir.rglob("*.parquet"))
