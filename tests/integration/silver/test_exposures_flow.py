"""Exposures of the model server flow like any event: landing -> bronze -> silver.exposures,
while silver.events keeps only what users did; a bronze table written before exposures existed
gains their columns."""

from __future__ import annotations

import datetime as dt
import json

import pyarrow.fs as pafs
import pytest
from pyspark.sql import functions as F

from pipelines import ingest, silver
from pipelines.ingest import stage as ingest_stage
from pipelines.lake import Lake
from pipelines.serve.exposures import Exposure, ExposureLog
from tests.conftest import make_config

HOUR = dt.datetime(2024, 1, 3, 10, tzinfo=dt.timezone.utc)


@pytest.mark.slow  # 8-21 s: out of make test-fast (under 8 min); make test runs it
def test_exposures_reach_silver_exposures_and_stay_out_of_user_events(spark, tmp_path):
    config = make_config(tmp_path)
    lake = Lake(config, spark)
    # bronze as an older clickml wrote it: no exposure columns
    old_columns = [c for c in ingest_stage.BRONZE_COLUMNS if c not in ("experiment_id", "variant", "model_version")]
    old = spark.createDataFrame([("old-1", dt.datetime(2024, 1, 2, 9), "page_view", "u0", "s0", "clickstream", "b0",
                                  dt.date(2024, 1, 2))],
                                "event_id string, event_time timestamp, event_type string, user_id string, session_id string, "
                                "source string, batch_id string, event_date date")
    for name in old_columns:
        if name not in old.columns:
            old = old.withColumn(name, F.lit(None).cast("long" if name == "source_line" else
                                                        "double" if name == "price" else
                                                        "timestamp" if name == "ingested_at" else "string"))
    lake.write(old.select(*old_columns), config.tables.bronze_events, mode="append", partition_by=["event_date"])

    log = ExposureLog(pafs.LocalFileSystem(), str(tmp_path / "landing" / "clickstream"), clock=lambda: HOUR + dt.timedelta(minutes=20))
    at = HOUR + dt.timedelta(minutes=5)
    log.write([Exposure("propensity_ab", "treatment", "u1", "r1", "4", at),
               Exposure("propensity_ab", "control", "u2", "r2", "3", at, session_id="s2")])
    log.close()
    folder = tmp_path / "landing" / "clickstream" / "date=2024-01-03" / "hour=10"
    user_events = [
        {"event_id": "e1", "event_time": "2024-01-03T10:06:00Z", "event_type": "product_view", "user_id": "u1",
         "session_id": "s1", "product_id": "p1", "price": 5.0},
        {"event_id": "e2", "event_time": "2024-01-03T10:09:00Z", "event_type": "purchase", "user_id": "u1",
         "session_id": "s1", "product_id": "p1", "price": 5.0},
    ]
    (folder / "part-00000.jsonl").write_text("".join(json.dumps(e) + "\n" for e in user_events))

    (result,) = ingest.run(config, spark, "clickstream", HOUR.replace(tzinfo=None), (HOUR + dt.timedelta(hours=1)).replace(tzinfo=None),
                           lake=lake)
    assert result.records_read == 4 and result.bronze_written == 4 and result.quarantined == 0
    bronze = {r.event_id: r for r in lake.read(config.tables.bronze_events).collect()}  # tiny
    assert bronze["old-1"].experiment_id is None  # the old row reads the added columns as null
    assert (bronze["exp-r1"].event_type, bronze["exp-r1"].variant, bronze["exp-r1"].model_version) == ("exposure", "treatment", "4")

    report = silver.run(config, spark, lake=lake)
    assert report.exposures_written == 2
    exposures = {r.request_id: r for r in lake.read(config.tables.silver_exposures).collect()}
    assert set(exposures) == {"r1", "r2"}
    assert (exposures["r1"].experiment_id, exposures["r1"].user_id, exposures["r1"].exposure_time) == \
        ("propensity_ab", "u1", at.replace(tzinfo=None))
    events = lake.read(config.tables.silver_events)
    assert events.where(F.col("event_type") == "exposure").count() == 0
    assert {r.event_id for r in events.collect()} == {"old-1", "e1", "e2"}
    sessions = lake.read(config.tables.silver_sessions).where(F.col("user_id") == "u1").collect()
    assert len(sessions) == 1 and sessions[0].events == 2  # the exposure is not part of the session
