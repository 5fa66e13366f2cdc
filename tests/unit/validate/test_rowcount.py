"""The row-count rule on tiny Delta tables committed without Spark: counts from the log only."""

from __future__ import annotations

from types import SimpleNamespace

import pyarrow as pa
import pyarrow.fs as pafs
import pytest

from pipelines.lake import Lake, deltalog
from pipelines.validate.rowcount import CHECK_NAME, check_row_count, table_rows
from tests.conftest import make_config
from tests.lakehelpers import write_files

SCHEMA = pa.schema([("id", pa.int64()), ("day", pa.string())])
TABLE = "test.counts"


@pytest.fixture
def lake(tmp_path):
    return Lake(make_config(tmp_path))  # no SparkSession: the rule reads the Delta log only


def commit(lake: Lake, ids: list[int], mode: str = "append") -> int:
    location = lake.location(TABLE)
    table = pa.table({"id": ids, "day": ["2024-01-01"] * len(ids)}, schema=SCHEMA)
    files = write_files(pafs.LocalFileSystem(), location.uri, table, ["day"])
    return deltalog.commit(location, files, SCHEMA, mode=mode, partition_by=["day"]).version


def test_the_first_version_passes(lake):
    version = commit(lake, list(range(10)))
    outcome = check_row_count(lake, TABLE, version, max_drop=0.5)
    assert version == 0 and outcome.success
    assert outcome.expectation == CHECK_NAME
    assert outcome.observed["observed_value"] == 10
    assert "first version" in outcome.observed["note"]


def test_growth_passes(lake):
    commit(lake, list(range(10)))
    version = commit(lake, list(range(10, 15)))
    outcome = check_row_count(lake, TABLE, version, max_drop=0.0)
    assert outcome.success
    assert outcome.observed == {"observed_value": 15, "previous_rows": 10, "drop": 0.0}
    assert outcome.arguments == {"max_drop": 0.0, "previous_version": 0}


def test_a_drop_beyond_max_drop_fails(lake):
    commit(lake, list(range(10)))
    version = commit(lake, [1, 2, 3, 4], mode="overwrite")
    outcome = check_row_count(lake, TABLE, version, max_drop=0.5)
    assert not outcome.success
    assert outcome.observed == {"observed_value": 4, "previous_rows": 10, "drop": 0.6}
    assert "drop=0.6" in outcome.describe() and "previous_rows=10" in outcome.describe()


def test_a_drop_within_max_drop_passes_and_older_versions_can_be_checked(lake):
    commit(lake, list(range(10)))
    commit(lake, list(range(5)), mode="overwrite")  # exactly half
    commit(lake, [1], mode="overwrite")
    assert check_row_count(lake, TABLE, 1, max_drop=0.5).success
    assert not check_row_count(lake, TABLE, 2, max_drop=0.5).success
    assert table_rows(lake, TABLE, 0) == 10


def test_files_without_counts_skip_the_rule():
    files = [SimpleNamespace(num_records=3), SimpleNamespace(num_records=None)]
    stub = SimpleNamespace(snapshot=lambda table, version: SimpleNamespace(files=files))
    assert table_rows(stub, TABLE, 1) is None
    outcome = check_row_count(stub, TABLE, 1, max_drop=0.1)
    assert outcome.success and "numRecords" in outcome.observed["note"]
