"""The gate on tiny hand-made frames and Delta tables: failures name the checks and what was seen."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from pipelines.lake import Lake
from pipelines.validate import (
    ValidationError,
    ValidationResult,
    gxrun,
    run,
    validate_dataframe,
)
from tests.conftest import CONF_DIR, make_config

EVENTS_SUITE = """\
    description: tiny events
    expectations:
      - {expectation: ExpectTableColumnsToMatchSet, column_set: [event_id, user_id, event_type, price, note]}
      - {expectation: ExpectColumnValuesToBeOfType, column: price, type_: DoubleType}
      - {expectation: ExpectColumnValuesToNotBeNull, column: user_id}
      - {expectation: ExpectColumnValuesToBeBetween, column: price, min_value: 0}
      - {expectation: ExpectColumnValuesToBeUnique, column: event_id}
      - {expectation: ExpectColumnValuesToBeInSet, column: event_type, value_set: [view, purchase]}
"""
SCHEMA = "event_id string, user_id string, event_type string, price double, note string"
CLEAN = [("e1", "u1", "view", 1.0, "a"), ("e2", "u1", "purchase", 9.5, "b"), ("e3", "u2", "view", 0.0, None)]


def persisted_rdds(spark) -> int:
    return spark.sparkContext._jsc.getPersistentRDDs().size()


@pytest.fixture
def suites(tmp_path) -> Path:
    folder = tmp_path / "suites"
    folder.mkdir()
    (folder / "tiny.events.yaml").write_text(textwrap.dedent(EVENTS_SUITE))
    return folder


@pytest.fixture
def config(tmp_path, suites):
    return make_config(tmp_path, f"validation.suites_dir={suites}")


def test_corrupted_data_fails_with_each_check_and_its_observation(spark, config):
    rows = CLEAN + [("e3", None, "view", 2.0, "dup id, no user"), ("e4", "u3", "purchase", -5.0, "negative")]
    before = persisted_rdds(spark)
    with pytest.raises(ValidationError) as info:
        validate_dataframe(config, spark.createDataFrame(rows, SCHEMA), "tiny.events", name="tiny")
    message = str(info.value)
    assert "validation of dataframe (tiny.events) against suite tiny.events failed: 3 of 6 checks" in message
    assert "ExpectColumnValuesToNotBeNull(column='user_id'): unexpected_count=1 of 5 rows (20%)" in message
    assert "ExpectColumnValuesToBeBetween(column='price', min_value=0): unexpected_count=1 of 5 rows" in message
    assert "unexpected values e.g. [-5.0]" in message
    assert "ExpectColumnValuesToBeUnique(column='event_id'): unexpected_count=2 of 5 rows" in message
    assert "unexpected values e.g. ['e3', 'e3']" in message
    assert "ExpectColumnValuesToBeInSet" not in message and "ExpectTableColumnsToMatchSet" not in message
    result = info.value.result
    assert isinstance(result, ValidationResult) and not result.success
    assert [e.expectation for e in result.failed] == [
        "ExpectColumnValuesToNotBeNull", "ExpectColumnValuesToBeBetween", "ExpectColumnValuesToBeUnique",
    ]
    summary = json.loads(Path(result.summary_path).read_text())
    assert summary["success"] is False and summary["rows"] == 5 and summary["table"] is None
    unique = next(e for e in summary["expectations"] if e["expectation"] == "ExpectColumnValuesToBeUnique")
    assert unique["observed"]["unexpected_count"] == 2 and unique["observed"]["partial_unexpected_list"] == ["e3", "e3"]
    assert result.data_docs_page and Path(result.data_docs_page.removeprefix("file://")).exists()
    assert persisted_rdds(spark) == before  # the cache is released, also on failure


@pytest.mark.parametrize("materialize", ["checkpoint", "persist"])
def test_clean_data_passes_reading_only_the_columns_the_suite_uses(spark, config, tmp_path, monkeypatch, materialize):
    monkeypatch.setattr(gxrun, "MATERIALIZE", materialize)
    before = persisted_rdds(spark)
    result = validate_dataframe(config, spark.createDataFrame(CLEAN, SCHEMA), "tiny.events", raise_on_failure=True)
    assert persisted_rdds(spark) == before
    assert result.success and result.rows == 3
    assert result.columns_read == ["event_id", "user_id", "event_type", "price"]  # `note` is only in the schema
    assert result.report().startswith("validate dataframe (tiny.events) [suite tiny.events]: passed 6/6 checks on 3 rows")
    root = tmp_path / "lakehouse" / "_validation"
    assert Path(result.summary_path).parent == root / "tiny.events"
    assert (root / "data_docs" / "index.html").exists()


def test_a_missing_column_is_a_failed_check_that_says_why(spark, config):
    df = spark.createDataFrame(CLEAN, SCHEMA).drop("user_id")
    result = validate_dataframe(config, df, "tiny.events", raise_on_failure=False)
    assert not result.success
    failed = {e.expectation: e for e in result.failed}
    assert "user_id" in (failed["ExpectColumnValuesToNotBeNull"].exception or "")
    assert "ExpectTableColumnsToMatchSet" in failed


def test_a_table_version_is_gated_on_its_suite_and_its_row_count(spark, config):
    lake = Lake(config, spark)
    frame = spark.createDataFrame(CLEAN * 2, SCHEMA).withColumn("event_id", F.concat("event_id", F.monotonically_increasing_id()))
    lake.write(frame, "tiny.events", mode="overwrite")
    first = run(config, spark, "tiny.events", lake=lake)
    assert first.success and first.version == 0 and first.rows == 6
    assert first.expectations[0].expectation == "RowCountVsPreviousVersion"
    assert Path(first.summary_path).name.startswith("v0-")

    lake.write(frame.limit(2), "tiny.events", mode="overwrite")  # 6 -> 2 rows: more than half gone
    with pytest.raises(ValidationError) as info:
        run(config, spark, "tiny.events", lake=lake)
    message = str(info.value)
    assert "tiny.events v1 against suite tiny.events failed: 1 of 7 checks" in message
    assert "RowCountVsPreviousVersion(max_drop=0.5, previous_version=0): observed_value=2; previous_rows=6" in message
    assert run(config, spark, "tiny.events", version=0, lake=lake).success  # time travel: v0 still passes

    loose = make_config(Path(config.lake.root).parent, f"validation.suites_dir={config.validation.suites_dir}",
                        "validation.max_row_drop=0.9")
    assert run(loose, spark, "tiny.events", lake=Lake(loose, spark)).success


def test_predictions_suite_with_a_renamed_score_column(spark, config):
    scores = [(f"u{i}", i / 10) for i in range(11)]
    df = spark.createDataFrame(scores, "user_id string, p_buy double")
    result = validate_dataframe(config, df, CONF_DIR / "expectations" / "predictions.yaml", name="model-x",
                                columns={"probability": "p_buy"})
    assert result.success and result.table is None
    assert Path(result.summary_path).parent.name == "model-x"

    constant = spark.createDataFrame([(f"u{i}", 0.5) for i in range(5)], "user_id string, p_buy double")
    with pytest.raises(ValidationError, match=r"ExpectColumnStdevToBeBetween\(column='probability', min_value=0.001\): observed_value=0"):
        validate_dataframe(config, constant, CONF_DIR / "expectations" / "predictions.yaml", columns={"probability": "p_buy"})
    with pytest.raises(ValueError, match="lacks: score"):
        validate_dataframe(config, df, CONF_DIR / "expectations" / "predictions.yaml", columns={"probability": "score"})
