"""Suite files -> GX 1.x expectation suites: good files, and errors that name the file and entry."""

from __future__ import annotations

import textwrap
from pathlib import Path

import great_expectations as gx
import great_expectations.expectations as gxe
import pytest

from pipelines.validate import SuiteError, load_suite
from pipelines.validate.suites import RowCountRule, suites_dir
from tests.conftest import CONF_DIR, make_config


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(textwrap.dedent(text))
    return path


GOOD = """\
    description: A test table.
    row_count:
      max_drop: 0.25
    expectations:
      - {expectation: ExpectTableColumnsToMatchSet, column_set: [id, user_id, price], exact_match: true}
      - {expectation: ExpectColumnValuesToBeOfType, column: price, type_: DoubleType}
      - {expectation: ExpectColumnValuesToNotBeNull, column: user_id}
      - expectation: expect_column_values_to_be_between     # GX's type name works too
        column: price
        min_value: 0
        mostly: 0.99
      - {expectation: ExpectCompoundColumnsToBeUnique, column_list: [id, user_id]}
"""


def test_a_good_file_becomes_a_gx_suite(tmp_path):
    suite = load_suite("test.table", tmp_path if write(tmp_path, "test.table", GOOD) else None)
    assert suite.name == "test.table"
    assert suite.description == "A test table."
    assert suite.row_count == RowCountRule(enabled=True, max_drop=0.25)
    assert [e.expectation for e in suite.entries][3] == "ExpectColumnValuesToBeBetween"
    gx_suite = suite.to_gx()
    assert isinstance(gx_suite, gx.ExpectationSuite)
    assert gx_suite.name == "test.table"
    classes = [type(e) for e in gx_suite.expectations]
    assert classes == [
        gxe.ExpectTableColumnsToMatchSet, gxe.ExpectColumnValuesToBeOfType, gxe.ExpectColumnValuesToNotBeNull,
        gxe.ExpectColumnValuesToBeBetween, gxe.ExpectCompoundColumnsToBeUnique,
    ]
    assert gx_suite.expectations[3].mostly == 0.99
    # each call builds new expectation instances (an instance belongs to one suite)
    assert suite.to_gx().expectations[0] is not gx_suite.expectations[0]
    # values are read from price, user_id and id only: the column set and the type are schema checks
    assert suite.data_columns() == {"price", "user_id", "id"}


def test_a_path_and_the_config_find_the_file(tmp_path):
    path = write(tmp_path, "x.y", GOOD)
    assert load_suite(path).name == "x.y"
    config = make_config(tmp_path, f"validation.suites_dir={tmp_path}")
    assert suites_dir(config) == tmp_path
    assert load_suite("x.y", config).path == path
    assert suites_dir(make_config(tmp_path)) == CONF_DIR / "expectations"


def test_an_unknown_expectation_names_file_entry_and_line(tmp_path):
    path = write(tmp_path, "bad", """\
        expectations:
          - {expectation: ExpectColumnValuesToNotBeNull, column: id}
          - {expectation: ExpectColumnValuesToNotBeNul, column: id}
    """)
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    message = str(info.value)
    assert str(path) in message
    assert "expectations[1]" in message and "line 3" in message
    assert "unknown expectation 'ExpectColumnValuesToNotBeNul'" in message
    assert "did you mean ExpectColumnValuesToNotBeNull" in message


def test_bad_arguments_name_file_entry_and_argument(tmp_path):
    path = write(tmp_path, "bad", """\
        expectations:
          - {expectation: ExpectColumnValuesToNotBeNull, column: id}
          - {expectation: ExpectColumnValuesToBeUnique, colum: id}
    """)
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    message = str(info.value)
    assert f"{path}: expectations[1] (line 3) ExpectColumnValuesToBeUnique: invalid arguments" in message
    assert "colum: extra fields not permitted" in message
    assert "column: field required" in message


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ("{expectation: ExpectColumnValuesToBeBetween, column: price}", "min_value and max_value cannot both be None"),
        ("{expectation: ExpectColumnValuesToNotBeNull, column: id, mostly: 2}", "mostly"),
        ("{expectation: ExpectColumnValuesToNotBeNull, column: id, result_format: COMPLETE}", "result_format cannot be set"),
        ("{column: id}", "no `expectation: <GX expectation class>` key"),
        ("ExpectColumnValuesToNotBeNull", "an entry must be a mapping"),
        ("{expectation: Expectation}", "unknown expectation 'Expectation'"),
    ],
)
def test_entry_problems(tmp_path, entry, problem):
    path = write(tmp_path, "bad", f"expectations:\n  - {entry}\n")
    with pytest.raises(SuiteError, match="expectations\\[0\\]") as info:
        load_suite(path)
    assert problem in str(info.value)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "the file is empty"),
        ("- a\n- b\n", "the top level must be a mapping"),
        ("expectation: []\n", "unknown key(s) expectation"),
        ("expectations: []\n", "non-empty list"),
        ("expectations: [\n", "not valid YAML"),
        ("row_count: {max_drop: 2}\nexpectations: [{expectation: ExpectTableRowCountToBeBetween, min_value: 1}]\n",
         "max_drop must be a number between 0 and 1"),
        ("row_count: {drop: 0.1}\nexpectations: [{expectation: ExpectTableRowCountToBeBetween, min_value: 1}]\n",
         "row_count: unknown key(s) drop"),
    ],
)
def test_file_problems(tmp_path, text, problem):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    assert problem in str(info.value)
    assert str(path) in str(info.value)


def test_a_missing_suite_lists_the_available_ones(tmp_path):
    write(tmp_path, "a.b", GOOD)
    with pytest.raises(SuiteError, match=r"no suite file for 'c\.d' .* available: a\.b"):
        load_suite("c.d", tmp_path)


def test_row_count_can_be_turned_off_and_defaults_to_the_config(tmp_path):
    off = write(tmp_path, "off", "row_count: false\nexpectations: [{expectation: ExpectColumnToExist, column: id}]\n")
    default = write(tmp_path, "default", "expectations: [{expectation: ExpectColumnToExist, column: id}]\n")
    assert load_suite(off).row_count == RowCountRule(enabled=False)
    assert load_suite(default).row_count == RowCountRule(enabled=True, max_drop=None)
    assert load_suite(default).data_columns() == frozenset()  # a schema check reads no values


@pytest.mark.filterwarnings("ignore:.*(condition_parser|row_condition) parameter is deprecated:DeprecationWarning")
def test_a_row_condition_needs_every_column(tmp_path):
    path = write(tmp_path, "cond", """\
        expectations:
          - expectation: ExpectColumnValuesToNotBeNull
            column: price
            row_condition: 'col("event_type") == "purchase"'
            condition_parser: spark
    """)
    assert load_suite(path).data_columns() is None


@pytest.mark.parametrize("name", sorted(p.stem for p in (CONF_DIR / "expectations").glob("*.yaml")))
def test_every_shipped_suite_loads(name):
    suite = load_suite(name, CONF_DIR / "expectations", longest_window=30)
    assert suite.entries and suite.description
    assert len(suite.to_gx().expectations) == len(suite.entries)


def test_the_feature_suites_follow_the_configured_windows(tmp_path):
    # Bug: the gold feature suites named the 30-day columns, so `features.windows_days: [1, 7, 14]`
    # failed every feature gate on columns that no longer exist.
    config = make_config(tmp_path, "features.windows_days=[1, 7, 14]")
    suite = load_suite("gold.user_features", config)
    columns = {entry.arguments.get("column") for entry in suite.entries}
    assert {"events_14d", "active_days_14d", "spend_14d"} <= columns and not any("30d" in str(c) for c in columns)
    bounds = {entry.arguments["column"]: entry.arguments.get("max_value") for entry in suite.entries
              if entry.arguments.get("column") in ("active_days_14d", "days_since_last_event")}
    assert bounds == {"active_days_14d": 14, "days_since_last_event": 14}
    with pytest.raises(SuiteError, match=r"gold.user_features.yaml: uses <longest_window> .*load it with the config"):
        load_suite("gold.user_features", CONF_DIR / "expectations")


def test_the_shipped_suites_cover_the_gated_tables():
    shipped = {p.stem for p in (CONF_DIR / "expectations").glob("*.yaml")}
    assert {"bronze.events", "bronze.quarantine", "bronze.ingest_audit", "silver.events", "silver.sessions",
            "predictions"} <= shipped
