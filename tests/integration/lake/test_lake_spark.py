"""The lake layer with Spark (delta-spark): round trips, modes, idempotency, schemas, conflicts,
crashes, history, VACUUM and OPTIMIZE, foreign tables."""

from __future__ import annotations

import datetime as dt
import textwrap
import threading
from pathlib import Path
from types import SimpleNamespace

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake
from pyspark.sql import DataFrameWriter
from pyspark.sql import functions as F
from pyspark.sql import types as T

from pipelines.lake import (
    CommitConflictError,
    Lake,
    LakeError,
    SchemaMismatchError,
    Txn,
    UnsupportedTableError,
    WriterUnavailableError,
    deltalog,
)
from tests.conftest import REPO_ROOT, make_config
from tests.lakehelpers import handmade_table_with_feature
from tests.processes import kill_when_marked

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


def test_partition_overwrite_replaces_partitions_whose_folder_names_are_escaped(spark, lake):
    # Bug (the delta-rs writer): the remove action took the log's URI-encoded path, which was
    # encoded again (%2520), so it matched nothing: the old "New York" rows stayed live.
    day = dt.date(2024, 1, 1)
    cities = ["New York", "New York/NY", "50% off", "O'Brien"]
    first = [r for k, c in enumerate(cities) for r in rows([k], day=day, city=c)] + rows([9], day=day, city="Boston")
    lake.write(frame(spark, first), "test.escaped", partition_by=["city"])
    again = [r for k, c in enumerate(cities) for r in rows([10 + k], day=day, city=c)]
    result = lake.write(frame(spark, again), "test.escaped", mode="overwrite_partitions", partition_by=["city"])
    assert result.files_removed == 4 and result.rows_added == 4
    assert sorted((r.city, r.id) for r in lake.read("test.escaped").collect()) == sorted(
        [(c, 10 + k) for k, c in enumerate(cities)] + [("Boston", 9)]
    )
    # delta-rs reads the same live files
    assert sorted(DeltaTable(lake.location("test.escaped").uri).to_pyarrow_table()["id"].to_pylist()) == [9, 10, 11, 12, 13]


def test_partition_overwrite_handles_null_partition_values(spark, lake):
    day = dt.date(2024, 1, 1)
    lake.write(frame(spark, rows([1], day=day) + rows([5], day=None)), "test.nulls", partition_by=["day"])
    lake.write(frame(spark, rows([6], day=None)), "test.nulls", mode="overwrite_partitions", partition_by=["day"])
    assert sorted(((r.day, r.id) for r in lake.read("test.nulls").collect()), key=str) == [(None, 6), (day, 1)]
    assert [r.id for r in lake.read("test.nulls", partition_filters=[("day", "=", None)]).collect()] == [6]


def test_replace_partitions_also_empties_listed_partitions_without_rows(spark, lake):
    day1, day2, day3 = dt.date(2024, 1, 1), dt.date(2024, 1, 2), dt.date(2024, 1, 3)
    lake.write(
        frame(spark, rows([1], day=day1) + rows([2], day=day2) + rows([3], day=day3, city="O'Brien")),
        "test.replace", partition_by=["day", "city"],
    )
    result = lake.write(
        frame(spark, rows([20], day=day2)), "test.replace", mode="overwrite_partitions", partition_by=["day", "city"],
        replace_partitions=[{"day": day3.isoformat(), "city": "O'Brien"}],
    )
    assert result.files_removed == 2
    assert sorted(r.id for r in lake.read("test.replace").collect()) == [1, 20]
    with pytest.raises(ValueError, match="replace_partitions goes with mode='overwrite_partitions'"):
        lake.write(frame(spark, rows([1])), "test.replace", mode="append", replace_partitions=[{"day": day1}])
    with pytest.raises(ValueError, match="mode must be one of append, overwrite, overwrite_partitions"):
        lake.write(frame(spark, rows([1])), "test.replace", mode="upsert")


def test_replacing_partitions_that_hold_no_rows_with_no_rows_still_commits(spark, lake):
    # Delta skips recording a commit with no actions by default; the writer then found no commit
    # with its write id and raised (silver.bot_users on a day without bots, CI 2026-12-04).
    day1, day2 = dt.date(2024, 1, 1), dt.date(2024, 1, 2)
    lake.write(frame(spark, rows([1], day=day1)), "test.noop", partition_by=["day"])
    before = lake.version("test.noop")
    result = lake.write(
        frame(spark, []), "test.noop", mode="overwrite_partitions", partition_by=["day"],
        replace_partitions=[{"day": day2.isoformat()}],
    )
    assert result.version == before + 1
    assert (result.files_added, result.files_removed, result.rows_added) == (0, 0, 0)
    assert [r.id for r in lake.read("test.noop").collect()] == [1]


def test_partition_filters_prune_the_read(spark, lake):
    day1, day2 = dt.date(2024, 1, 1), dt.date(2024, 1, 2)
    data = rows([1, 2], day=day1) + rows([3], day=day2, city="New York/NY") + rows([4], day=day2)
    lake.write(frame(spark, data), "test.filters", partition_by=["day", "city"])

    def ids(filters):
        return sorted(r.id for r in lake.read("test.filters", partition_filters=filters).collect())

    assert ids([("day", "=", day1)]) == [1, 2]
    assert ids([("city", "=", "New York/NY")]) == [3]
    assert ids([("day", "=", day2), ("city", "in", ["Paris", "Rome"])]) == [4]
    assert ids([("city", "not in", ["Paris"])]) == [3]
    assert ids([("day", ">", day1)]) == [3, 4]


def test_idempotent_rerun_commits_nothing_and_writes_no_files(spark, lake):
    df = frame(spark, rows(range(5)))
    txn = Txn.for_batch("test-ingest", "2024-01-01T00")
    first = lake.write(df, "test.idem", partition_by=["day"], txn=txn)
    table_dir = Path(lake.location("test.idem").uri)
    dirs_before = sorted(p.name for p in table_dir.iterdir())
    again = lake.write(df, "test.idem", partition_by=["day"], txn=txn)
    assert first.version == 0 and not first.skipped and again.skipped and again.version is None
    assert lake.version("test.idem") == 0
    assert lake.read("test.idem").count() == 5
    assert sorted(p.name for p in table_dir.iterdir()) == dirs_before
    assert deltalog.transaction_version(lake.location("test.idem"), txn.app_id) == 0
    # a later version of the same application commits; an older one does not
    newer = lake.write(df, "test.idem", mode="overwrite", partition_by=["day"], txn=Txn(txn.app_id, 1))
    older = lake.write(df, "test.idem", mode="overwrite", partition_by=["day"], txn=Txn(txn.app_id, 0))
    assert newer.version == 1 and older.skipped
    assert lake.version("test.idem") == 1 and lake.read("test.idem").count() == 5


def test_delta_itself_skips_a_transaction_committed_since_our_check(spark, lake, monkeypatch):
    # Another writer commits the same txnAppId/txnVersion between our check and our write: Delta
    # skips the write, no commit carries our write id, and the result says skipped.
    from pipelines.lake import delta_spark

    df = frame(spark, rows(range(3)))
    txn = Txn.for_batch("test-ingest", "race")
    lake.write(df, "test.txnrace", txn=txn)
    monkeypatch.setattr(delta_spark, "transaction_version", lambda spark, location, app_id: None)
    again = lake.write(df, "test.txnrace", txn=txn)
    assert again.skipped and again.version is None
    assert lake.version("test.txnrace") == 0 and lake.read("test.txnrace").count() == 3


def test_schema_mismatch_fails_before_writing_anything(spark, lake):
    lake.write(frame(spark, rows(range(2))), "test.schema", partition_by=["day"])
    table_dir = Path(lake.location("test.schema").uri)
    before = sorted(p.name for p in table_dir.iterdir())
    bad = frame(spark, rows(range(2))).withColumn("amount", F.col("amount").cast("string"))
    with pytest.raises(LakeError, match=r"table test.schema .*Failed to merge fields 'amount'"):
        lake.write(bad, "test.schema", partition_by=["day"])
    extra = frame(spark, rows(range(2))).withColumn("extra", F.lit(1))
    with pytest.raises(LakeError, match=r"table test.schema .*metadata mismatch"):
        lake.write(extra, "test.schema", partition_by=["day"])
    with pytest.raises(LakeError, match=r"table test.schema .*metadata mismatch"):
        lake.write(frame(spark, rows([1])), "test.schema", partition_by=["city"])
    with pytest.raises(SchemaMismatchError, match=r"table test.schema .*partition column\(s\) nope not in the data"):
        lake.write(frame(spark, rows([1])), "test.schema", partition_by=["nope"])
    assert sorted(p.name for p in table_dir.iterdir()) == before
    assert lake.version("test.schema") == 0


def test_schema_and_partitioning_mismatches_are_schema_mismatch_errors_naming_the_column(spark, lake):
    lake.write(frame(spark, rows(range(2))), "test.schema", partition_by=["day"])
    cases = [
        (frame(spark, rows([1])).withColumn("amount", F.col("amount").cast("string")), ["day"], "amount"),
        (frame(spark, rows([1])).withColumn("extra", F.lit(1)), ["day"], "extra"),
        (frame(spark, rows([1])), ["city"], "city"),
    ]
    for data, partition_by, column in cases:
        try:
            lake.write(data, "test.schema", partition_by=partition_by)
        except LakeError as exc:
            assert isinstance(exc, SchemaMismatchError), f"{type(exc).__name__}: {exc}"
            assert "table test.schema" in str(exc) and column in str(exc)
        else:
            raise AssertionError(f"writing {column} did not fail")


def test_overwrite_schema_replaces_the_schema(spark, lake):
    lake.write(frame(spark, rows(range(2))), "test.wider", partition_by=["day"])
    wider = frame(spark, rows([4])).withColumn("extra", F.lit(0.5))
    with pytest.raises(SchemaMismatchError, match="table test.wider .*metadata mismatch"):
        lake.write(wider, "test.wider", mode="overwrite", partition_by=["day"])
    lake.write(wider, "test.wider", mode="overwrite", partition_by=["day"], overwrite_schema=True)
    back = lake.read("test.wider")
    assert back.columns == [*SCHEMA.names, "extra"] and [(r.id, r.extra) for r in back.collect()] == [(4, 0.5)]
    assert lake.snapshot("test.wider").schema.names == [*SCHEMA.names, "extra"]
    assert lake.read("test.wider", version=0).columns == SCHEMA.names  # the old version keeps its schema
    # the partitioning can change too
    lake.write(wider, "test.wider", mode="overwrite", partition_by=["city"], overwrite_schema=True)
    assert lake.snapshot("test.wider").partition_columns == ["city"]


def _conflict(message="[DELTA_CONCURRENT_APPEND] Files were added to partition [day=2024-01-01] by a concurrent update."):
    from delta.exceptions import ConcurrentAppendException

    return ConcurrentAppendException(message=message)


def test_conflict_with_a_concurrent_writer_is_retried(spark, lake, tmp_path, monkeypatch):
    lake.write(frame(spark, rows(range(2))), "test.race", partition_by=["day"])
    other = Lake(make_config(tmp_path), spark)
    real_save = DataFrameWriter.save
    calls = []

    def save_losing_the_first_race(self, *args, **kwargs):
        calls.append(args)
        if len(calls) == 1:
            # another writer commits while ours is in flight; Delta refuses our commit
            monkeypatch.setattr(DataFrameWriter, "save", real_save)
            other.write(frame(spark, rows([77], day=dt.date(2024, 1, 1))), "test.race", partition_by=["day"])
            monkeypatch.setattr(DataFrameWriter, "save", save_losing_the_first_race)
            raise _conflict()
        return real_save(self, *args, **kwargs)

    monkeypatch.setattr(DataFrameWriter, "save", save_losing_the_first_race)
    result = lake.write(
        frame(spark, rows([10, 11], day=dt.date(2024, 1, 1))), "test.race",
        mode="overwrite_partitions", partition_by=["day"],
    )
    assert result.attempts == 2 and len(calls) == 2 and not result.skipped
    # re-planned against the new version: the partition overwrite also replaced the racer's rows
    assert sorted(r.id for r in lake.read("test.race").collect()) == [10, 11]
    assert lake.version("test.race") == 2 and result.version == 2


def test_conflicts_beyond_the_retries_fail_loudly(spark, tmp_path, monkeypatch):
    lake = Lake(make_config(tmp_path, "lake.commit_retries=2", "lake.commit_backoff_seconds=0"), spark)
    lake.write(frame(spark, rows([1])), "test.busy")
    attempts = []

    def always_conflicting(self, *args, **kwargs):
        attempts.append(args)
        raise _conflict()

    monkeypatch.setattr(DataFrameWriter, "save", always_conflicting)
    with pytest.raises(CommitConflictError, match=r"table test.busy .*still conflicting after 3 attempts: \[DELTA_CONCURRENT_APPEND\]") as err:
        lake.write(frame(spark, rows([2])), "test.busy")
    assert err.value.table == str(lake.location("test.busy"))
    assert len(attempts) == 3
    monkeypatch.undo()
    assert lake.version("test.busy") == 0 and lake.read("test.busy").count() == 1


def test_other_delta_conflicts_are_retried_too(spark, lake, monkeypatch):
    from delta.exceptions import (
        ConcurrentTransactionException,
        MetadataChangedException,
        ProtocolChangedException,
    )

    lake.write(frame(spark, rows([1])), "test.kinds")
    real_save = DataFrameWriter.save
    queue = [ProtocolChangedException(message="p"), MetadataChangedException(message="m"),
             ConcurrentTransactionException(message="t")]

    def flaky(self, *args, **kwargs):
        if queue:
            raise queue.pop(0)
        return real_save(self, *args, **kwargs)

    monkeypatch.setattr(DataFrameWriter, "save", flaky)
    result = lake.write(frame(spark, rows([2])), "test.kinds")
    assert result.attempts == 4 and result.version == 1
    assert lake.read("test.kinds").count() == 2


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
    assert not any(t.is_alive() for t in threads)
    ids = sorted(r.id for r in lake.read("test.concurrent").collect())
    expected = sorted([0] + [o + k * 10 + j for o in (1000, 2000) for k in range(3) for j in range(2)])
    assert ids == expected
    assert lake.version("test.concurrent") == 6


def test_empty_frame_creates_a_table_with_its_schema(spark, lake):
    result = lake.write(spark.createDataFrame([], SCHEMA), "test.empty", partition_by=["day"])
    assert result.version == 0 and result.rows_added == 0
    back = lake.read("test.empty")
    assert back.count() == 0 and back.schema == SCHEMA


def test_commit_result_counts_files_and_rows_and_the_log_has_statistics(spark, lake):
    df = frame(spark, rows(range(40))).repartition(4)
    result = lake.write(df, "test.wide")
    assert result.files_added == 4 and result.rows_added == 40 and result.files_removed == 0
    assert result.write_id and result.attempts == 1
    stats = DeltaTable(lake.location("test.wide").uri).get_add_actions(flatten=True)
    assert sum(pa.table(stats)["num_records"].to_pylist()) == 40
    assert sum(f.num_records for f in lake.snapshot("test.wide").files) == 40
    assert deltalog.spark_commit_result(lake.location("test.wide"), result.write_id).rows_added == 40


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


def test_tables_with_features_delta_rs_cannot_honour_are_read_by_spark_only(spark, lake):
    handmade_table_with_feature(Path(lake.location("foreign.dv").uri), "deletionVectors")
    back = lake.read("foreign.dv")  # delta-spark supports deletion vectors
    assert back.columns == ["id"] and back.count() == 0
    with pytest.raises(UnsupportedTableError, match=r"table foreign.dv .*deletionVectors"):
        lake.snapshot("foreign.dv")  # the plain-Python file list cannot honour them


def test_missing_tables(spark, lake, tmp_path):
    from pipelines.lake import TableNotFoundError

    assert not lake.exists("test.nothing") and not Lake(lake.config).exists("test.nothing")
    with pytest.raises(TableNotFoundError, match="table test.nothing .*does not exist"):
        lake.read("test.nothing")
    with pytest.raises(TableNotFoundError, match="table test.nothing .*does not exist"):
        lake.history("test.nothing")
    lake.write(frame(spark, rows([1])), "test.something")
    assert lake.exists("test.something") and Lake(lake.config).exists("test.something")
    assert lake.version("test.something") == Lake(lake.config).version("test.something") == 0
    with pytest.raises(TableNotFoundError, match="table test.something"):
        lake.read("test.something", version=7).collect()
    assert lake.with_session(spark).read(str(tmp_path / "lakehouse" / "test" / "something")).count() == 1


def test_write_refuses_a_session_without_the_delta_extension(lake):
    # a session whose conf has no Delta extension: the error names the fix before anything runs
    no_delta = SimpleNamespace(conf=SimpleNamespace(get=lambda key, default=None: ""))
    with pytest.raises(WriterUnavailableError, match="Delta extension is not loaded .*make jars"):
        lake.write(SimpleNamespace(sparkSession=no_delta), "test.nowhere")


def test_history_for_lineage(spark, lake):
    first = lake.write(frame(spark, rows(range(4))), "test.hist", partition_by=["day"])
    second = lake.write(frame(spark, rows(range(4, 6))), "test.hist", partition_by=["day"], mode="overwrite")
    entries = lake.history("test.hist")  # Delta's DESCRIBE HISTORY
    assert [(e.version, e.operation, e.rows_added, e.write_id) for e in entries] == [
        (1, "WRITE", 2, second.write_id),
        (0, "WRITE", 4, first.write_id),
    ]
    assert entries[0].parameters["mode"] == "Overwrite" and entries[1].parameters["mode"] == "Append"
    assert entries[0].parameters["partitionBy"] == '["day"]'
    assert entries[0].timestamp_ms >= entries[1].timestamp_ms > 0
    assert [e.version for e in lake.history("test.hist", limit=1)] == [1]
    # the same commits through delta-rs (a Lake without a session)
    assert [(e.version, e.rows_added, e.write_id) for e in Lake(lake.config).history("test.hist")] == [
        (e.version, e.rows_added, e.write_id) for e in entries
    ]


CRASHING_WRITER = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {repo!r})
    from pathlib import Path
    from pyspark import TaskContext
    from pyspark.sql import functions as F
    from pipelines.lake import Lake
    from pipelines.spark import build_session
    from tests.conftest import make_config

    # one core: the two tasks run one after the other, partition 0 first
    config = make_config(Path({tmp!r}), "spark.master=local[1]", "spark.ui_enabled=false", "spark.driver_memory=512m")
    spark = build_session(config)
    marker = {marker!r}

    @F.udf("long")
    def stall_in_the_second_task(value):
        if TaskContext.get().partitionId() == 1:
            Path(marker).write_text("the first task's file is written, the commit is pending")
            time.sleep(600)
        return value

    df = spark.range(0, 100, 1, 2).select(stall_in_the_second_task("id").alias("id"), F.lit("2024-01-01").cast("date").alias("day"))
    Lake(config, spark).write(df, "test.crash", partition_by=["day"])
    """
)


def _parquet_names(table_dir: Path) -> set[str]:
    return {p.name for p in table_dir.rglob("*.parquet")}


@pytest.mark.slow
def test_write_killed_before_commit_leaves_nothing_visible_and_vacuum_cleans_up(spark, tmp_path):
    lake = Lake(make_config(tmp_path), spark)
    committed = spark.range(10).select(F.col("id"), F.lit("2024-01-01").cast("date").alias("day"))
    lake.write(committed, "test.crash", partition_by=["day"])
    table_dir = Path(lake.location("test.crash").uri)
    live = {Path(f.path).name for f in lake.snapshot("test.crash").files}
    assert _parquet_names(table_dir) == live
    marker = tmp_path / "marker"
    script = tmp_path / "crash.py"
    script.write_text(CRASHING_WRITER.format(repo=str(REPO_ROOT), tmp=str(tmp_path), marker=str(marker)))
    kill_when_marked(script, marker)  # kill -9 the writer and its JVM once its first file is written
    orphans = _parquet_names(table_dir) - live
    assert orphans  # delta-spark writes data files in place and commits them afterwards
    assert lake.version("test.crash") == 0
    assert lake.read("test.crash").count() == 10
    assert DeltaTable(str(table_dir)).to_pyarrow_table().num_rows == 10
    assert {Path(f.path).name for f in lake.snapshot("test.crash").files} == live

    kept = lake.vacuum("test.crash", retention_hours=24)  # the orphans are younger than that
    assert kept.files_deleted == [] and _parquet_names(table_dir) - live == orphans
    result = lake.vacuum("test.crash", retention_hours=0)
    assert {Path(f).name for f in result.files_deleted} == orphans
    assert _parquet_names(table_dir) == live
    assert lake.read("test.crash").count() == 10


@pytest.mark.slow  # 8-21 s: out of make test-fast (under 8 min); make test runs it
def test_vacuum_respects_the_retention_for_time_travel(spark, lake):
    lake.write(frame(spark, rows(range(3))), "test.vac", partition_by=["day"])
    lake.write(frame(spark, rows(range(3, 5))), "test.vac", partition_by=["day"], mode="overwrite")
    table_dir = Path(lake.location("test.vac").uri)
    old_files = {Path(f.path).name for f in lake.snapshot("test.vac", version=0).files}
    check_key = "spark.databricks.delta.retentionDurationCheck.enabled"
    before = spark.conf.get(check_key, "true")

    default = lake.vacuum("test.vac", dry_run=True)
    assert default.retention_hours == lake.config.lake.vacuum_retention_hours == 168 and default.files_deleted == []
    kept = lake.vacuum("test.vac", retention_hours=24)
    assert kept.files_deleted == [] and not kept.dry_run and kept.retention_hours == 24
    assert lake.read("test.vac", version=0).count() == 3

    dry = lake.vacuum("test.vac", retention_hours=0, dry_run=True)
    assert dry.dry_run and dry.retention_hours == 0 and dry.table == str(lake.location("test.vac"))
    assert {Path(f).name for f in dry.files_deleted} == old_files  # the files the overwrite removed
    assert old_files <= _parquet_names(table_dir)  # a dry run deletes nothing
    assert lake.read("test.vac", version=0).count() == 3

    done = lake.vacuum("test.vac", retention_hours=0)
    assert not done.dry_run and {Path(f).name for f in done.files_deleted} == old_files
    assert _parquet_names(table_dir) == {Path(f.path).name for f in lake.snapshot("test.vac").files}
    assert lake.read("test.vac").count() == 2
    with pytest.raises(Exception, match="FileNotFound|does not exist|FAILED_READ_FILE"):
        lake.read("test.vac", version=0).collect()  # time travel past the retention: its files are gone
    assert spark.conf.get(check_key, "true") == before  # Delta's retention guard is restored


def test_optimize_compacts_files_and_keeps_the_rows(spark, lake):
    day1, day2 = dt.date(2024, 1, 1), dt.date(2024, 1, 2)
    for k in range(3):
        lake.write(frame(spark, rows([k], day=day1)), "test.compact", partition_by=["day"])
    # 2 input partitions of 3 rows, dealt round-robin: 3 files of 2 rows
    lake.write(frame(spark, rows(range(10, 16), day=day2)).repartition(3), "test.compact", partition_by=["day"])
    before = collected(lake.read("test.compact"))

    def files_per_day():
        snap = lake.snapshot("test.compact")
        return {day: sum(1 for f in snap.files if f.partition_values["day"] == day) for day in (day1, day2)}

    assert files_per_day() == {day1: 3, day2: 3}
    only_day2 = lake.optimize("test.compact", where="day = '2024-01-02'")
    assert (only_day2["numFilesRemoved"], only_day2["numFilesAdded"]) == (3, 1)
    assert files_per_day() == {day1: 3, day2: 1}
    everything = lake.optimize("test.compact")
    assert (everything["numFilesRemoved"], everything["numFilesAdded"]) == (3, 1)
    assert files_per_day() == {day1: 1, day2: 1}
    assert collected(lake.read("test.compact")) == before
    assert [e.operation for e in lake.history("test.compact", limit=2)] == ["OPTIMIZE", "OPTIMIZE"]
    assert lake.version("test.compact") == 5
    nothing_left = lake.optimize("test.compact")
    assert nothing_left.get("numFilesRemoved", 0) == 0 and files_per_day() == {day1: 1, day2: 1}


def test_delta_spark_writer_when_the_jars_are_present(spark, tmp_path):
    from pipelines.spark import delta_extension_loaded

    assert delta_extension_loaded(spark)  # the suite's session has the jars of `make jars`
    # on the local master the jars are on the driver classpath, not shipped with spark.jars
    assert "delta-spark" in spark.conf.get("spark.driver.extraClassPath", "")
    assert "delta-spark" not in spark.conf.get("spark.jars", "")
    assert spark.conf.get("spark.sql.catalog.spark_catalog").endswith("DeltaCatalog")
    lake = Lake(make_config(tmp_path), spark)
    written = lake.write(spark.range(5).withColumn("day", F.current_date()), "test.native", partition_by=["day"])
    assert lake.read("test.native").count() == 5
    assert (written.version, written.rows_added) == (0, 5) and written.files_added >= 1
    assert (Path(lake.location("test.native").uri) / "_delta_log" / "00000000000000000000.json").is_file()


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
