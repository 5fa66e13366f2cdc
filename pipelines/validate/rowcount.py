"""Our row-count gate: a table version may not lose more than `max_drop` of the previous version's rows.

Both counts come from the Delta log (the sum of the live files' `numRecords` statistics), so the
check reads no data. The first version of a table passes, and so does a table whose files carry
no row counts (with a warning: nothing can be compared without a scan).
"""

from __future__ import annotations

import logging

from pipelines.lake import Lake, LakeError
from pipelines.validate.result import ExpectationOutcome

log = logging.getLogger(__name__)

CHECK_NAME = "RowCountVsPreviousVersion"


def table_rows(lake: Lake, table: str, version: int) -> int | None:
    """Rows of a table version from the log's file statistics; None when a file has no count."""
    files = lake.snapshot(table, version).files
    counts = [f.num_records for f in files]
    if any(c is None for c in counts):
        return None
    return int(sum(counts))  # type: ignore[arg-type]


def check_row_count(lake: Lake, table: str, version: int, max_drop: float) -> ExpectationOutcome:
    """Compare version `version` of `table` with version `version - 1`."""
    arguments = {"max_drop": max_drop, "previous_version": version - 1 if version > 0 else None}
    rows = table_rows(lake, table, version)
    observed: dict[str, object] = {"observed_value": rows}
    if version <= 0:
        observed["note"] = "first version of the table: nothing to compare"
        return ExpectationOutcome(CHECK_NAME, arguments, True, observed)
    try:
        previous = table_rows(lake, table, version - 1)
    except LakeError as exc:  # e.g. the log of old versions was cleaned up
        log.warning("%s: row-count check skipped: version %d cannot be read: %s", table, version - 1, exc)
        observed["note"] = f"previous version unreadable: {exc}"
        return ExpectationOutcome(CHECK_NAME, arguments, True, observed)
    observed["previous_rows"] = previous
    if rows is None or previous is None:
        log.warning("%s: row-count check skipped: some files of v%d/v%d have no numRecords statistics",
                    table, version - 1, version)
        observed["note"] = "files without numRecords statistics: nothing to compare without a scan"
        return ExpectationOutcome(CHECK_NAME, arguments, True, observed)
    drop = 0.0 if previous == 0 else max(0.0, 1.0 - rows / previous)
    observed["drop"] = round(drop, 6)
    success = previous == 0 or rows >= (1.0 - max_drop) * previous
    return ExpectationOutcome(CHECK_NAME, arguments, success, observed)
