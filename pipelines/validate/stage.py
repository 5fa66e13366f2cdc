"""The validation gate: a table version (or a DataFrame) against its suite file.

    result = validate.run(config, spark, "silver.sessions")            # latest version
    result = validate.run(config, spark, "bronze.events", version=12)
    validate.validate_dataframe(config, predictions, "predictions", columns={"probability": "p_buy"})

A failed gate raises `ValidationError` after the JSON summary and the Data Docs page were written.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Mapping
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession

from pipelines.config import ClickmlConfig
from pipelines.config.models import TablesConfig
from pipelines.lake import Lake
from pipelines.validate.errors import ValidationError
from pipelines.validate.gxrun import DocsTarget, run_suite
from pipelines.validate.result import ExpectationOutcome, ValidationResult
from pipelines.validate.results import (
    local_root,
    results_root,
    summary_relative_path,
    write_summary,
)
from pipelines.validate.rowcount import check_row_count
from pipelines.validate.suites import Suite, load_suite

log = logging.getLogger(__name__)


def table_name(config: ClickmlConfig, name: str) -> str:
    """A logical table name; a `tables` key (`silver_sessions`) is resolved to its value."""
    if name in TablesConfig.model_fields:
        return getattr(config.tables, name)
    return name


def run(
    config: ClickmlConfig,
    spark: SparkSession,
    table: str,
    version: int | None = None,
    lake: Lake | None = None,
    suite: Suite | str | Path | None = None,
) -> ValidationResult:
    """Validate version `version` (default: the latest) of `table` against its suite.

    The suite defaults to `<validation.suites_dir>/<table>.yaml`. Raises `ValidationError` when a
    check fails (the result is on the exception).
    """
    started = dt.datetime.now(dt.timezone.utc)
    clock = time.monotonic()
    lake = lake or Lake(config, spark)
    table = table_name(config, table)
    loaded = _load(config, suite if suite is not None else table)
    version = lake.version(table) if version is None else version
    checks: list[ExpectationOutcome] = []
    if loaded.row_count.enabled:
        max_drop = loaded.row_count.max_drop
        checks.append(check_row_count(lake, table, version, config.validation.max_row_drop if max_drop is None else max_drop))
    frame = lake.read(table, version=version)
    return _validate(config, frame, loaded, table, table, version, checks, started, clock, raise_on_failure=True)


def validate_dataframe(
    config: ClickmlConfig,
    df: DataFrame,
    suite: Suite | str | Path,
    *,
    name: str | None = None,
    columns: Mapping[str, str] | None = None,
    raise_on_failure: bool = True,
) -> ValidationResult:
    """Validate any DataFrame against a suite (e.g. model predictions against `predictions`).

    name: where results go (`<results_root>/<name>/`), default the suite's name.
    columns: the suite's column names -> this DataFrame's, for suites written against generic
    names (the `predictions` suite checks `probability`: `columns={"probability": "p_buy"}`).
    The row-count rule needs a table version, so it does not apply here.
    """
    started = dt.datetime.now(dt.timezone.utc)
    clock = time.monotonic()
    loaded = _load(config, suite)
    if columns:
        missing = sorted(source for source in columns.values() if source not in df.columns)
        if missing:
            raise ValueError(f"columns mapping names column(s) the DataFrame lacks: {', '.join(missing)} "
                             f"(it has {', '.join(df.columns)})")
        df = df.withColumnsRenamed({source: target for target, source in columns.items()})
    subject = name or loaded.name
    return _validate(config, df, loaded, subject, None, None, [], started, clock, raise_on_failure=raise_on_failure)


def _load(config: ClickmlConfig, suite: Suite | str | Path) -> Suite:
    return suite if isinstance(suite, Suite) else load_suite(suite, config)


def _validate(
    config: ClickmlConfig,
    df: DataFrame,
    suite: Suite,
    subject: str,
    table: str | None,
    version: int | None,
    checks: list[ExpectationOutcome],
    started: dt.datetime,
    clock: float,
    raise_on_failure: bool,
) -> ValidationResult:
    root = results_root(config)
    local = local_root(root)
    docs = DocsTarget(local) if local is not None else None
    if docs is None:
        log.warning("validate %s: results root %s is not a local folder: JSON summary only, no Data Docs "
                    "(set validation.results_root to a local or mounted path for the HTML)", subject, root)
    run_name = f"v{version}" if version is not None else subject
    frame_run = run_suite(df, suite, subject, run_name, started, docs)
    outcomes = checks + frame_run.outcomes
    result = ValidationResult(
        suite=suite.name,
        success=all(o.success for o in outcomes),
        expectations=outcomes,
        table=table,
        version=version,
        rows=frame_run.rows,
        started_at=started,
        suite_file=str(suite.path) if suite.path else None,
        columns_read=frame_run.columns_read,
        timings=frame_run.timings,
        data_docs_index=frame_run.docs_index,
        data_docs_page=frame_run.docs_page,
    )
    result.duration_seconds = time.monotonic() - clock
    result.summary_path = write_summary(config, root, summary_relative_path(subject, version, started), result.to_dict())
    if result.data_docs_page:
        log.info("validate %s: data docs %s (index %s)", subject, result.data_docs_page, result.data_docs_index)
    log.info("validate %s: summary %s", subject, result.summary_path)
    if not result.success:
        log.error("%s", result.failure_message())
        if raise_on_failure:
            raise ValidationError(result)
    else:
        log.info("%s", result.report())
    return result
