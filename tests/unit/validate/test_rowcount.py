"""The row-count rule on tiny Delta tables (written by delta-spark): counts from the log only."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from pipelines.lake import Lake
from pipelines.validate.rowcount import CHECK_NAME, check_row_count, table_rows
from tests.conftest import make_config

SCHEMA = "id long, day string"
TABLE = "test.counts"


@pytest.fixture
def lake(tmp_path):
    return Lake(make_config(tmp_path))  # no SparkSession: the rule reads the Delta log only


@pytest.fixture
def commit(lake, spark):
    """Write a version of the table through delta-spark; returns the version."""
    writer = lake.with_session(spark)

    def commit(ids: list[int], mode: str = "append") -> int:
        frame = spark.createDataFrame([(i, "2024-01-01") for i in ids], SCHEMA)
        return writer.write(frame, TABLE, mode=mode, partition_by=["day"]).version

    return commit


def test_the_first_version_passes(lake, commit):
    version = commit(list(range(10)))
    outcome = check_row_count(lake, TABLE, version, max_drop=0.5)
    assert version == 0 and outcome.success
    assert outcome.expectation == CHECK_NAME
    assert outcome.observed["observed_value"] == 10
    assert "first version" in outcome.observed["note"]


def test_growth_passes(lake, commit):
    commit(list(range(10)))
    version = commit(list(range(10, 15)))
    outcome = check_row_count(lake, TABLE, version, max_drop=0.0)
    assert outcome.success
    assert outcome.observed == {"observed_value": 15, "previous_rows": 10, "drop": 0.0}
    assert outcome.arguments == {"max_drop": 0.0, "previous_version": 0}


def test_a_drop_beyond_max_drop_fails(lake, commit):
    commit(list(range(10)))
    version = commit([1, 2, 3, 4], mode="overwrite")
    outcome = check_row_count(lake, TABLE, version, max_drop=0.5)
    assert not outcome.success
    assert outcome.observed == {"observed_value": 4, "previous_rows": 10, "drop": 0.6}
    assert "drop=0.6" in outcome.describe() and "previous_rows=10" in outcome.describe()


def test_a_drop_within_max_drop_passes_and_older_versions_can_be_checked(lake, commit):
    commit(list(range(10)))
    commit(list(range(5)), mode="overwrite")  # exactly half
    commit([1], mode="overwrite")
    assert check_row_count(lake, TABLE, 1, max_drop=0.5).success
    assert not check_row_count(lake, TABLE, 2, max_drop=0.5).success
    assert table_rows(lake, TABLE, 0) == 10


def test_files_without_counts_skip_the_rule():
    files = [SimpleNamespace(num_records=3), SimpleNamespace(num_records=None)]
    stub = SimpleNamespace(snapshot=lambda table, version: SimpleNamespace(files=files))
    assert table_rows(stub, TABLE, 1) is None
    outcome = check_row_count(stub, TABLE, 1, max_drop=0.1)
    assert outcome.success and "numRecords" in outcome.observed["note"]
