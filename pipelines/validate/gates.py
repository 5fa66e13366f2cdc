"""Gate several tables in one go, for the job and the command line: reports out, exit status back."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import TextIO

from pyspark.sql import SparkSession

from pipelines.config import ClickmlConfig
from pipelines.lake import Lake, LakeError
from pipelines.validate.errors import SuiteError, ValidationError
from pipelines.validate.stage import run

PASSED, FAILED, UNUSABLE = 0, 1, 2
"""Exit statuses: every gate passed; a gate failed; a table or suite could not be used."""


def table_list(entries: Iterable[str]) -> list[str]:
    """`["a.b,c.d", "e.f"]` -> `["a.b", "c.d", "e.f"]` (repeatable and comma-separated arguments)."""
    return [t.strip() for entry in entries for t in entry.split(",") if t.strip()]


def gate_tables(
    config: ClickmlConfig,
    spark: SparkSession,
    tables: Iterable[str],
    version: int | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Validate every table (all of them, even after a failure); print one report line per table
    to `out`, failure details to `err`; return the worst exit status."""
    out, err = out or sys.stdout, err or sys.stderr
    names = table_list(tables)
    if version is not None and len(names) != 1:
        print("validate: a version goes with exactly one table", file=err)
        return UNUSABLE
    lake = Lake(config, spark)
    status = PASSED
    for table in names:
        try:
            print(run(config, spark, table, version=version, lake=lake).report(), file=out)
        except ValidationError as exc:
            print(exc.result.report(), file=out)
            print(exc, file=err)
            status = max(status, FAILED)
        except (SuiteError, LakeError) as exc:
            print(f"validate {table}: cannot run: {exc}", file=err)
            status = UNUSABLE
    return status
