"""The feature and training-set stages on generated, ingested data: incremental as-of builds,
late data reaching exactly the as-of dates whose windows cover it, training-set balance."""

from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import functions as F

from pipelines import generate, ingest, silver
from pipelines.features import stage as features_stage
from pipelines.lake import Lake
from pipelines.training_sets import stage as training_sets_stage
from tests.conftest import make_config

START = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)


@pytest.fixture(scope="module")
def built(spark, tmp_path_factory):
    base = tmp_path_factory.mktemp("features")
    config = make_config(
        base, "generator.users=80", "generator.days=8", "generator.late_share=0", "generator.bad_records.share=0",
        "training_sets.propensity.horizon_days=1",
        "training_sets.propensity.lookback_days=3", "training_sets.propensity.min_history_days=2",
    )
    generate.run(config, spark)
    lake = Lake(config, spark)
    ingest.run(config, spark, "clickstream", START, START + dt.timedelta(days=6), lake=lake)
    silver.run(config, spark, lake=lake)
    return config, lake


@pytest.mark.slow
def test_features_build_incrementally_and_late_data_rebuilds_only_covered_dates(spark, built):
    config, lake = built
    first = features_stage.run(config, spark, lake=lake)
    assert first.built == [dt.date(2024, 1, d) for d in range(2, 8)]  # day after first .. day after last event date
    assert features_stage.run(config, spark, lake=lake).built == []  # nothing changed
    users = lake.read(config.tables.user_features)
    assert users.select("user_id", "as_of_date").distinct().count() == users.count()  # unique keys

    # Ingest one more day: silver rebuilds the days it touches (+ neighbours); the as-of dates whose
    # windows read those days (and the new Jan 8) are rebuilt, the earlier ones (Jan 2..5) are not.
    ingest.run(config, spark, "clickstream", START + dt.timedelta(days=6), START + dt.timedelta(days=7), lake=lake)
    silver.run(config, spark, lake=lake)
    second = features_stage.run(config, spark, lake=lake)
    assert second.built and min(second.built) >= dt.date(2024, 1, 6) and dt.date(2024, 1, 8) in second.built
    assert second.up_to_date == len(first.built) - len([d for d in second.built if d in first.built])

    # The incremental tables equal a full rebuild.
    incremental = sorted(map(tuple, lake.read(config.tables.user_features).collect()))  # small test table
    features_stage.run(config, spark, lake=lake, full_refresh=True)
    assert sorted(map(tuple, lake.read(config.tables.user_features).collect())) == incremental


@pytest.mark.slow
def test_training_sets_are_time_split_and_report_their_balance(spark, built):
    config, lake = built
    result = training_sets_stage.run(config, spark, lake=lake)
    assert [b.split for b in result.balance] == ["train", "validation", "test"]
    assert all(b.rows > 0 for b in result.balance) and sum(b.positives for b in result.balance) > 0
    frame = lake.read(config.tables.propensity_training)
    last_train = frame.where("split = 'train'").agg(F.max("cutoff")).first()[0]
    first_test = frame.where("split = 'test'").agg(F.min("cutoff")).first()[0]
    assert last_train < first_test
    assert frame.select("user_id", "cutoff").distinct().count() == frame.count()
    assert result.versions[config.tables.propensity_training] == lake.version(config.tables.propensity_training)
    assert set(result.implicit_rows) == {"train", "test"}
    assert "train" in result.report() and "positive" in result.report()


@pytest.mark.slow
def test_gold_and_training_set_suites_pass_on_generated_data(spark, built):
    from pipelines import validate

    config, lake = built
    training_sets_stage.run(config, spark, lake=lake)
    tables = config.tables
    for table in (tables.user_features, tables.product_features, tables.category_features,
                  tables.user_category_features, tables.propensity_training, tables.implicit_training):
        result = validate.run(config, spark, table, lake=lake)
        assert result.success, result.failure_message()


@pytest.mark.slow
def test_new_windows_replace_the_tables_schema_and_rebuild_every_date(spark, built, monkeypatch):
    # Bug: a new `features.windows_days` changes the tables' columns, and every later run, with
    # --full-refresh too, failed with a schema mismatch until the gold tables were deleted by hand.
    config, lake = built
    features_stage.run(config, spark, lake=lake)
    changed = config.model_copy(deep=True)
    changed.features.windows_days = [1, 3]
    monkeypatch.setattr(features_stage, "CHUNK_DAYS", 4)  # the table is replaced by the first chunk only
    result = features_stage.run(changed, spark, lake=lake)
    assert result.built == [dt.date(2024, 1, d) for d in range(2, 9)]
    users = lake.read(config.tables.user_features)
    assert "events_3d" in users.columns and "events_7d" not in users.columns
    assert sorted(r[0] for r in users.select("as_of_date").distinct().collect()) == result.built  # small
    progress = lake.read(config.tables.features_progress).select("as_of_date").collect()  # one row per date
    assert sorted(r[0] for r in progress) == result.built
    assert features_stage.run(changed, spark, lake=lake).built == []  # up to date under the new definitions
