"""The ingest stage end to end: REES46 export, accounting, idempotency, late data, incremental, kill -9."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import textwrap
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from pipelines import generate, ingest
from pipelines.ingest import reader as ingest_reader
from pipelines.ingest import stage as ingest_stage
from pipelines.lake import Lake
from pipelines.sources import load_source
from tests.conftest import CONF_DIR, REPO_ROOT, make_config
from tests.processes import kill_when_marked

UTC = dt.timezone.utc
REES_HEADER = "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session"
REES_LINES = [
    "2019-10-01 00:00:00 UTC,view,44600062,2103807459595387724,,shiseido,35.79,541312140,72d76fde",
    "2019-10-01 00:00:00 UTC,view,3900821,2053013552326770905,appliances.environment.water_heater,aqua,33.20,554748717,9333dfbd",
    "2019-10-01 00:00:01 UTC,cart,17200506,2053013559792632471,furniture.living_room.sofa,,543.10,519107250,566511c2",
    "2019-10-01 00:00:01 UTC,cart,17200506,2053013559792632471,furniture.living_room.sofa,,543.10,519107250,566511c2",
    "2019-10-01 00:00:02 UTC,purchase,1307067,2053013558920217191,computers.notebook,lenovo,251.74,550050854,7c90fc70",
    "2019-10-01 00:00:03 UTC,view,1004237,2053013555631882655,electronics.smartphone,apple,-1.00,535871217,c6bd7419",
    "2019-10-01 00:00:04 UTC,wishlist,1004237,2053013555631882655,electronics.smartphone,apple,1081.98,535871217,c6bd7419",
    "2019-10-01 00:00:05 UTC,view,1004237",
    "2019-10-01 00:00:06 UTC,view,1480613,2053013561092866779,computers.desktop,pulser,908.62,,30d87a2c",
    "not a date,view,1480613,2053013561092866779,computers.desktop,pulser,908.62,512742880,30d87a2c",
]


def write_rees46(landing: Path) -> None:
    folder = landing / "rees46" / "date=2019-10-01" / "hour=00"
    folder.mkdir(parents=True)
    (folder / "export-a.csv").write_text("\n".join([REES_HEADER] + REES_LINES[:5]) + "\n")
    with gzip.open(folder / "export-b.csv.gz", "wt") as out:  # gzip is read transparently
        out.write("\n".join([REES_HEADER] + REES_LINES[5:]) + "\n\n")


def table_versions(lake, config):
    tables = (config.tables.bronze_events, config.tables.bronze_quarantine, config.tables.ingest_audit)
    return {t: lake.version(t) for t in tables if lake.exists(t)}


@pytest.mark.slow  # 5-8 s: out of make test-fast (under 8 min); make test runs it
def test_rees46_export(spark, tmp_path):
    config = make_config(tmp_path)
    write_rees46(Path(config.landing.root))
    lake = Lake(config, spark)
    (result,) = ingest.run(config, spark, "rees46", dt.datetime(2019, 10, 1), dt.datetime(2019, 10, 1, 1), lake=lake)
    assert result.files == 2 and result.records_read == 10
    assert result.bronze_written == 4 and result.duplicates_in_batch == 1
    assert result.quarantined_by_reason == {
        "invalid_price": 1, "unknown_event_type": 1, "malformed_record": 1, "missing_required_field": 1, "wrong_type": 1,
    }
    bronze = lake.read(config.tables.bronze_events)
    rows = {r.product_id: r for r in bronze.collect()}  # tiny
    assert rows["44600062"].event_type == "product_view" and rows["44600062"].category is None
    assert rows["1307067"].event_type == "purchase" and rows["1307067"].price == 251.74
    assert rows["1307067"].source == "rees46" and rows["1307067"].batch_id == result.batch_id
    assert {r.currency for r in rows.values()} == {"USD"}
    quarantine = lake.read(config.tables.bronze_quarantine).collect()
    bad_price = [q for q in quarantine if q.reason == "invalid_price"][0]
    assert bad_price.source_file.endswith("export-b.csv.gz") and bad_price.source_line == 2  # line 1 is the header
    assert bad_price.raw == REES_LINES[5]
    audit = lake.read(config.tables.ingest_audit).collect()
    assert len(audit) == 1 and audit[0].records_read == 10 and audit[0].quarantined == 5


def test_accounting_identity_violation_commits_nothing(spark, tmp_path, monkeypatch):
    config = make_config(tmp_path)
    write_rees46(Path(config.landing.root))
    lake = Lake(config, spark)
    original = ingest_stage.label_outcomes

    def lossy(*args, **kwargs):
        # a bug that drops one record (line 3 of the plain CSV file)
        return original(*args, **kwargs).where((F.col("source_line") != 3) | F.col("source_file").endswith(".gz"))

    monkeypatch.setattr(ingest_stage, "label_outcomes", lossy)
    with pytest.raises(ingest.AccountingError, match=r"read 10 records but accounted for 9 .*nothing was committed"):
        ingest.run(config, spark, "rees46", dt.datetime(2019, 10, 1), dt.datetime(2019, 10, 1, 1), lake=lake)
    assert table_versions(lake, config) == {}


@pytest.fixture(scope="module")
def generated(spark, tmp_path_factory):
    """A small generated landing zone (shared by the tests below; each ingests into its own lake)."""
    base = tmp_path_factory.mktemp("generated")
    config = make_config(
        base, "generator.users=40", "generator.days=2", "generator.bad_records.share=0.08", "generator.late_share=0.05"
    )
    result = generate.run(config, spark)
    return config.landing.root, result


def lake_for(spark, tmp_path, landing):
    config = make_config(tmp_path, f"landing.root={landing}")
    return config, Lake(config, spark)


def hour_batches(start, hours):
    return [(start + dt.timedelta(hours=h), start + dt.timedelta(hours=h + 1)) for h in range(hours)]


def test_rerun_changes_no_table(spark, tmp_path, generated):
    landing, _ = generated
    config, lake = lake_for(spark, tmp_path, landing)
    start, end = dt.datetime(2024, 1, 1, tzinfo=UTC), dt.datetime(2024, 1, 2, tzinfo=UTC)
    (first,) = ingest.run(config, spark, "clickstream", start, end, lake=lake)
    versions = table_versions(lake, config)
    (again,) = ingest.run(config, spark, "clickstream", start, end, lake=lake)
    assert again.skipped and again.records_read == first.records_read
    assert table_versions(lake, config) == versions


@pytest.mark.slow  # 8-21 s: out of make test-fast (under 8 min); make test runs it
def test_every_landed_line_is_accounted_for_and_late_data_lands_on_its_date(spark, tmp_path, generated):
    landing, gen = generated
    config, lake = lake_for(spark, tmp_path, landing)
    results = []
    for start, end in [(dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 2)), (dt.datetime(2024, 1, 2), dt.datetime(2024, 1, 6))]:
        results += ingest.run(config, spark, "clickstream", start, end, lake=lake)
    read = sum(r.records_read for r in results)
    assert read == gen.lines
    bronze = lake.read(config.tables.bronze_events)
    assert bronze.count() == gen.events  # every valid event exactly once, duplicates dropped
    assert sum(r.bronze_written for r in results) == gen.events
    assert sum(r.quarantined + r.duplicates_in_batch + r.duplicates_in_bronze for r in results) == gen.bad_lines
    # late events arrived in a later folder but are stored under their own event date
    late = bronze.where(F.to_date(F.regexp_extract("source_file", r"date=(\d{4}-\d{2}-\d{2})", 1)) > F.col("event_date"))
    assert late.count() > 0
    assert bronze.where(F.col("event_date") != F.to_date("event_time")).count() == 0


def test_incremental_takes_each_file_once(spark, tmp_path, generated):
    landing, gen = generated
    config, lake = lake_for(spark, tmp_path, landing)
    first = ingest.run(config, spark, "clickstream", lake=lake)
    assert sum(r.records_read for r in first) == gen.lines
    assert lake.read(config.tables.bronze_events).count() == gen.events
    assert ingest.run(config, spark, "clickstream", lake=lake) == []  # nothing new


@pytest.mark.slow
def test_a_new_checkpoint_still_takes_new_files(spark, tmp_path, generated):
    # Bug: batch ids were <source>:stream:<epoch>; a deleted checkpoint restarted at epoch 0, the
    # audit said those batches were complete, and the files of the new epochs (a new one among
    # them) reached neither bronze nor the quarantine.
    import shutil

    from pipelines.ingest.incremental import checkpoint_location

    source_landing, gen = generated
    landing = tmp_path / "landing"
    shutil.copytree(source_landing, landing)
    config, lake = lake_for(spark, tmp_path, landing)
    ingest.run(config, spark, "clickstream", lake=lake)
    shutil.rmtree(checkpoint_location(config, load_source(config.conf_dir, "clickstream")).removeprefix("file://"))
    existing = next(p for p in sorted(landing.rglob("*.jsonl")) if p.stat().st_size)
    record = next(json.loads(line) for line in existing.read_text().splitlines() if line.startswith("{"))
    record["event_id"] = "brand-new-event"
    (existing.parent / "part-99999.jsonl").write_text(json.dumps(record) + "\n")

    again = ingest.run(config, spark, "clickstream", lake=lake)
    assert sum(r.records_read for r in again) == gen.lines + 1
    new = lake.read(config.tables.bronze_events).where(F.col("event_id") == "brand-new-event").count()
    quarantined = lake.read(config.tables.bronze_quarantine).where(F.col("raw").contains("brand-new-event")).count()
    assert new + quarantined == 1


@pytest.mark.slow  # 5-8 s: out of make test-fast (under 8 min); make test runs it
def test_a_rerun_micro_batch_classifies_against_the_same_time(spark, tmp_path, generated, monkeypatch):
    # Bug: incremental batches took the wall clock as the reference of the time window (what
    # records without an arrival time, from flat layouts, are judged against), so a batch re-run
    # after a crash could classify a record differently from the attempt that had committed it.
    import time

    from pipelines.ingest import incremental

    landing, gen = generated
    config, lake = lake_for(spark, tmp_path, landing)
    seen = []
    original = incremental.process_batch

    def fail_first(*args, reference_time, **kwargs):
        seen.append(reference_time)
        if len(seen) == 1:
            raise RuntimeError("crash in the first attempt")
        return original(*args, reference_time=reference_time, **kwargs)

    monkeypatch.setattr(incremental, "process_batch", fail_first)
    with pytest.raises(Exception, match="crash in the first attempt"):
        ingest.run(config, spark, "clickstream", lake=lake)
    time.sleep(1.5)  # the wall clock moves on; the re-run epoch's time must not
    results = ingest.run(config, spark, "clickstream", lake=lake)
    assert seen[0] == seen[1] and seen[0].tzinfo is not None
    assert abs((seen[0] - dt.datetime.now(UTC)).total_seconds()) < 600
    assert sum(r.records_read for r in results) == gen.lines


KILLED_INGEST = textwrap.dedent(
    """
    import datetime as dt, sys, time
    from pathlib import Path
    sys.path.insert(0, {repo!r})
    from pipelines import ingest
    from pipelines.ingest import stage
    from pipelines.spark import build_session
    from tests.conftest import make_config

    config = make_config(Path({tmp!r}), "landing.root={landing}", "spark.ui_enabled=false", "spark.driver_memory=512m")
    spark = build_session(config)
    original = stage._commit
    calls = []

    def commit_then_stall(lake, staged, *args):
        original(lake, staged, *args)
        calls.append(staged.table)
        if len(calls) == {after}:
            Path({marker!r}).write_text(staged.table)
            time.sleep(600)

    stage._commit = commit_then_stall
    ingest.run(config, spark, "clickstream", dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 2))
    """
)


@pytest.fixture(scope="module")
def batch_reference(spark, generated, tmp_path_factory):
    """The lake of an uninterrupted batch ingest of the first day: what every killed-and-rerun
    batch ingest below must end like (made once for them all)."""
    config, lake = lake_for(spark, tmp_path_factory.mktemp("batch-reference"), generated[0])
    ingest.run(config, spark, "clickstream", *KILL_WINDOW, lake=lake)
    return lake


@pytest.fixture(scope="module")
def stream_reference(spark, generated, tmp_path_factory):
    """The lake of an uninterrupted incremental ingest (20 files per micro-batch), likewise."""
    config, lake = lake_for(spark, tmp_path_factory.mktemp("stream-reference"), generated[0])
    config.ingest.max_files_per_trigger = 20
    ingest.run(config, spark, "clickstream", lake=lake)
    return lake


KILL_WINDOW = (dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 2))


def comparable(lake, table, drop=("ingested_at", "started_at", "finished_at", "seconds"), stream=False):
    """Rows as sorted string tuples; `stream`: the query id in stream batch ids masked."""
    df = lake.read(table)
    df = df.drop(*[c for c in drop if c in df.columns])
    if stream:
        df = df.withColumn("batch_id", F.regexp_replace("batch_id", ":stream:[^:]+:", ":stream:<query>:"))
    return sorted(tuple(str(v) for v in r) for r in df.collect())  # small test tables


@pytest.mark.slow
@pytest.mark.parametrize("after", [1, 2])  # killed after the quarantine commit / after the bronze commit
def test_killed_and_rerun_ends_like_an_uninterrupted_run(spark, tmp_path, generated, batch_reference, after):
    landing, _ = generated
    reference, window = batch_reference, KILL_WINDOW

    victim_root = tmp_path / "victim"
    marker = tmp_path / "marker"
    script = tmp_path / "killed.py"
    script.write_text(
        KILLED_INGEST.format(repo=str(REPO_ROOT), tmp=str(victim_root), landing=landing, marker=str(marker), after=after)
    )
    kill_when_marked(script, marker)

    config, victim = lake_for(spark, victim_root, landing)
    assert not victim.exists(config.tables.ingest_audit)  # the batch was not complete
    (rerun,) = ingest.run(config, spark, "clickstream", *window, lake=victim)
    assert not rerun.skipped
    for table in (config.tables.bronze_events, config.tables.bronze_quarantine, config.tables.ingest_audit):
        assert comparable(victim, table) == comparable(reference, table), table


KILLED_STREAM = KILLED_INGEST.replace(
    'ingest.run(config, spark, "clickstream", dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 2))',
    'ingest.run(config, spark, "clickstream")',
).replace('"spark.driver_memory=512m"', '"spark.driver_memory=512m", "ingest.max_files_per_trigger=20"')


@pytest.mark.slow
# 2: the first micro-batch's bronze committed, its audit not; 3: the first micro-batch complete and
# checkpointed, the second one's quarantine committed.
@pytest.mark.parametrize("after", [2, 3])
@pytest.mark.slow
def test_incremental_killed_mid_batch_and_rerun_ends_like_an_uninterrupted_run(spark, tmp_path, generated, stream_reference, after):
    landing, gen = generated
    reference = stream_reference

    victim_root, marker, script = tmp_path / "victim", tmp_path / "marker", tmp_path / "killed.py"
    script.write_text(
        KILLED_STREAM.format(repo=str(REPO_ROOT), tmp=str(victim_root), landing=landing, marker=str(marker), after=after)
    )
    kill_when_marked(script, marker)

    config, victim = lake_for(spark, victim_root, landing)
    config.ingest.max_files_per_trigger = 20
    results = ingest.run(config, spark, "clickstream", lake=victim)  # resumes from the checkpoint
    assert results and not any(r.skipped for r in results)  # the restart re-ran only unfinished batches
    # Batch ids carry the stream's query id: the restart kept the killed run's (one id in the
    # victim's tables); the reference stream has its own, so it is masked in the comparison.
    audit_ids = {r.batch_id.split(":")[2] for r in victim.read(config.tables.ingest_audit).select("batch_id").collect()}
    assert len(audit_ids) == 1
    for table in (config.tables.bronze_events, config.tables.bronze_quarantine, config.tables.ingest_audit):
        assert comparable(victim, table, stream=True) == comparable(reference, table, stream=True), table
    assert victim.read(config.tables.bronze_events).count() == gen.events


def bronze_leftovers(lake, config):
    """Parquet files under bronze.events that its log does not reference, and staged files left
    under the lake's _staging/ folder once the batch ended."""
    location = lake.location(config.tables.bronze_events)
    root = Path(location.uri)
    live = {f.path for f in lake.snapshot(config.tables.bronze_events).files}
    unreferenced = [
        str(p.relative_to(root)) for p in root.rglob("*.parquet")
        if "_delta_log" not in p.parts and str(p.relative_to(root)) not in live
    ]
    staging = Path(config.lake.root) / "_staging"
    staged = [str(p.relative_to(staging)) for p in staging.rglob("*.parquet")] if staging.exists() else []
    return sorted(unreferenced + staged)


@pytest.mark.slow  # 8-21 s: out of make test-fast (under 8 min); make test runs it
def test_per_file_numbering_ingests_like_numbering_by_block(spark, tmp_path, generated, monkeypatch):
    landing, _ = generated
    window = (dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 2))
    block_config, by_block = lake_for(spark, tmp_path / "block", landing)
    (blocks,) = ingest.run(block_config, spark, "clickstream", *window, lake=by_block)
    monkeypatch.setattr(ingest_reader, "PER_FILE_MIN_AVERAGE_BYTES", 0)  # the small test files too
    config, per_file = lake_for(spark, tmp_path / "per-file", landing)
    (files,) = ingest.run(config, spark, "clickstream", *window, lake=per_file)
    assert files.records_read == blocks.records_read > 0
    for table in (config.tables.bronze_events, config.tables.bronze_quarantine):
        assert comparable(per_file, table) == comparable(by_block, table), table
    assert bronze_leftovers(per_file, config) == []


@pytest.mark.slow
def test_numbering_falls_back_to_blocks_when_files_share_a_partition(spark, tmp_path, generated, monkeypatch):
    landing, _ = generated
    window = (dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 2))
    reference_config, reference = lake_for(spark, tmp_path / "reference", landing)
    ingest.run(reference_config, spark, "clickstream", *window, lake=reference)
    # Settings under which Spark packs every file into one partition: per-file numbering's
    # premise fails, the check notices, and the batch is numbered by block instead.
    monkeypatch.setattr(ingest_reader, "PER_FILE_MIN_AVERAGE_BYTES", 0)
    monkeypatch.setattr(ingest_reader, "PER_FILE_SCAN", {
        "spark.sql.files.openCostInBytes": "0", "spark.sql.files.maxPartitionBytes": str(1 << 30),
        "spark.sql.files.minPartitionNum": "1",
    })
    config, lake = lake_for(spark, tmp_path / "packed", landing)
    (result,) = ingest.run(config, spark, "clickstream", *window, lake=lake)
    assert not result.skipped
    for table in (config.tables.bronze_events, config.tables.bronze_quarantine, config.tables.ingest_audit):
        assert comparable(lake, table) == comparable(reference, table), table
    assert bronze_leftovers(lake, config) == []


@pytest.mark.slow  # 8-21 s: out of make test-fast (under 8 min); make test runs it
def test_replayed_file_is_counted_as_already_in_bronze(spark, tmp_path, generated):
    landing, _ = generated
    # A file that arrived by 10:00, so that its events are valid for an arrival at 11:00.
    hours = sorted((Path(landing) / "clickstream" / "date=2024-01-01").glob("hour=0[0-9]"))
    source_file = sorted(hours[-1].glob("*.jsonl"))[0]
    config = make_config(tmp_path)
    first_hour = Path(config.landing.root) / "clickstream" / "date=2024-01-01" / "hour=10"
    replay_hour = Path(config.landing.root) / "clickstream" / "date=2024-01-02" / "hour=10"
    for folder in (first_hour, replay_hour):
        folder.mkdir(parents=True)
        (folder / "part-00000.jsonl").write_text(source_file.read_text())
    lake = Lake(config, spark)
    (first,) = ingest.run(config, spark, "clickstream", dt.datetime(2024, 1, 1, 10), dt.datetime(2024, 1, 1, 11), lake=lake)
    (replay,) = ingest.run(config, spark, "clickstream", dt.datetime(2024, 1, 2, 10), dt.datetime(2024, 1, 2, 11), lake=lake)
    assert first.bronze_written > 0 and first.duplicates_in_bronze == 0
    # Every event that went to bronze the first time is already there; the staged bronze files of
    # its dates were rewritten without them. (Lines quarantined for their time the first time may
    # be valid against the later arrival hour: those are new.)
    assert replay.duplicates_in_bronze == first.bronze_written
    assert replay.records_read == (
        replay.bronze_written + replay.quarantined + replay.duplicates_in_batch + replay.duplicates_in_bronze
    )
    bronze = lake.read(config.tables.bronze_events)
    assert bronze.count() == bronze.select("event_id").distinct().count() == first.bronze_written + replay.bronze_written
    assert bronze_leftovers(lake, config) == []


@pytest.mark.slow
def test_a_retry_restamped_across_midnight_is_already_in_bronze(spark, tmp_path):
    # Bug: the check against bronze matched the event id on the same event date only, so a
    # client retry re-stamped after midnight landed in bronze a second time.
    config = make_config(tmp_path)
    event = {"event_id": "e1", "event_time": "2024-01-02T23:59:58Z", "event_type": "search", "user_id": "u1",
             "session_id": "s1", "price": 1.5}
    batches = [
        ("2024-01-03", "00", [event, {**event, "event_id": "e2"}]),
        ("2024-01-03", "01", [{**event, "event_time": "2024-01-03T00:00:03Z"},  # e1 again, the next day
                              {**event, "event_id": "e3", "event_time": "2024-01-03T00:00:04Z"}]),
        ("2024-01-05", "01", [{**event, "event_id": "e2", "event_time": "2024-01-05T00:20:00Z"}]),  # 3 days on: new
    ]
    for date, hour, lines in batches:
        folder = Path(config.landing.root) / "clickstream" / f"date={date}" / f"hour={hour}"
        folder.mkdir(parents=True)
        (folder / "p.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    lake = Lake(config, spark)
    results = []
    for date, hour, _ in batches:
        start = dt.datetime.fromisoformat(f"{date}T{hour}:00")
        results += ingest.run(config, spark, "clickstream", start, start + dt.timedelta(hours=1), lake=lake)
    assert [(r.bronze_written, r.duplicates_in_bronze) for r in results] == [(2, 0), (1, 1), (1, 0)]
    rows = lake.read(config.tables.bronze_events).select("event_id", "event_date").collect()  # tiny
    assert sorted((r.event_id, r.event_date.isoformat()) for r in rows) == [
        ("e1", "2024-01-02"), ("e2", "2024-01-02"), ("e2", "2024-01-05"), ("e3", "2024-01-03")]
    assert bronze_leftovers(lake, config) == []


def test_valid_events_without_an_event_time_go_to_bronze(spark, tmp_path):
    """A source that does not require event_time: its valid events without one have no event
    date; they are staged beside the quarantined records and still end in bronze."""
    config = make_config(tmp_path)
    folder = Path(config.landing.root) / "clickstream" / "date=2024-01-03" / "hour=10"
    folder.mkdir(parents=True)
    event = {"event_id": "e1", "event_time": "2024-01-03T10:15:02Z", "event_type": "search", "user_id": "u1",
             "session_id": "s1", "price": 1.5}
    lines = [
        event,
        {**event, "event_id": "e2"},
        {**event, "event_id": "e3", "event_time": None},  # valid here: no event date
        {**event, "event_id": "e3", "event_time": None},  # its duplicate
        {**event, "event_id": "e4", "event_type": "hover"},
    ]
    (folder / "p.jsonl").write_text("\n".join([json.dumps(x) for x in lines] + ['{"broken'] ) + "\n")
    source = load_source(CONF_DIR, "clickstream").model_copy(update={"required": ["event_id", "event_type", "user_id"]})
    spark = spark.newSession()  # the stage observes; `run` does this itself, ingest_interval does not
    lake = Lake(config, spark)
    result = ingest_stage.ingest_interval(config, spark, lake, source, dt.datetime(2024, 1, 3, 10), dt.datetime(2024, 1, 3, 11))
    assert (result.records_read, result.bronze_written, result.duplicates_in_batch) == (6, 3, 1)
    assert result.quarantined_by_reason == {"unknown_event_type": 1, "malformed_record": 1}
    assert result.event_dates == [dt.date(2024, 1, 3)]
    rows = {r.event_id: r for r in lake.read(config.tables.bronze_events).collect()}  # tiny
    assert set(rows) == {"e1", "e2", "e3"} and rows["e3"].event_date is None and rows["e3"].source_line == 3
    assert bronze_leftovers(lake, config) == []


def test_model_selection_still_works_in_the_callers_session_after_ingesting(spark, tmp_path):
    """Regression: the stage counts records with DataFrame.observe, after which Spark 4.1 fails
    every MLlib model selection in that session ("Task not serializable: ObservationManager");
    `run` works in a child session so the caller's (the demo's, a job's) stays usable."""
    from tests.sparkml import model_selection_works

    config = make_config(tmp_path)
    folder = Path(config.landing.root) / "clickstream" / "date=2024-01-03" / "hour=10"
    folder.mkdir(parents=True)
    event = {"event_id": "e1", "event_time": "2024-01-03T10:15:02Z", "event_type": "page_view", "user_id": "u1",
             "session_id": "s1"}
    # a malformed line: quarantined records are counted with an observation
    (folder / "p.jsonl").write_text(json.dumps(event) + "\n" + '{"broken' + "\n")
    result = ingest_stage.run(config, spark, "clickstream", dt.datetime(2024, 1, 3, 10), dt.datetime(2024, 1, 3, 11))
    assert result[0].records_read == 2 and result[0].quarantined == 1
    assert model_selection_works(spark)


def test_an_audit_table_of_an_older_version_gains_the_offsets_column(spark, tmp_path):
    # Bug guard: the audit row now has `offsets` (Kafka batches); appending it to an audit table
    # written before failed the schema check.
    config = make_config(tmp_path)
    lake = Lake(config, spark)
    old_schema = ingest_stage.T.StructType([f for f in ingest_stage.AUDIT_SCHEMA.fields if f.name != "offsets"])
    old_row = spark.createDataFrame([tuple(None for _ in old_schema.fields)], old_schema).withColumn("batch_id", F.lit("old"))
    lake.write(old_row, config.tables.ingest_audit, mode="append")
    write_dir = tmp_path / "landing" / "rees46" / "date=2019-10-01" / "hour=00"
    write_dir.mkdir(parents=True)
    (write_dir / "part.csv").write_text(
        "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session\n"
        "2019-10-01 00:00:00 UTC,view,1,2,cat,b,1.5,7,s\n"
    )
    (result,) = ingest.run(config, spark, "rees46", dt.datetime(2019, 10, 1), dt.datetime(2019, 10, 1, 1), lake=lake)
    assert result.bronze_written == 1
    rows = {r["batch_id"]: r["offsets"] for r in lake.read(config.tables.ingest_audit).collect()}
    assert rows == {"old": None, result.batch_id: []}
