"""Argument handling of the multi-table gate (no Spark needed for these paths)."""

from __future__ import annotations

import io

from pipelines.validate.gates import UNUSABLE, gate_tables, table_list
from tests.conftest import make_config


def test_tables_are_repeatable_and_comma_separated():
    assert table_list(["bronze.events, bronze.quarantine", "silver.events", " ,"]) == [
        "bronze.events", "bronze.quarantine", "silver.events",
    ]


def test_a_version_needs_exactly_one_table(tmp_path):
    err = io.StringIO()
    status = gate_tables(make_config(tmp_path), None, ["a.b,c.d"], version=3, out=io.StringIO(), err=err)
    assert status == UNUSABLE
    assert "exactly one table" in err.getvalue()
