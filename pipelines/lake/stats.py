"""Describe data files for a Delta commit: size, partition values and Parquet-footer statistics.

Statistics follow the Delta protocol's per-file `stats` JSON: `numRecords`, and per top-level
column `minValues`, `maxValues` and `nullCount`. Only footers are read, never data pages.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
from dataclasses import dataclass
from typing import Any, Iterable
from urllib.parse import unquote

import pyarrow.parquet as pq

HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"
STRING_PREFIX = 32  # Delta's default truncation of string statistics


@dataclass(frozen=True)
class DataFile:
    """One Parquet file ready to be added to a Delta table."""

    path: str
    """Path relative to the table root, `/`-separated, not URI-encoded."""
    size: int
    modification_time: int
    """Milliseconds since the epoch."""
    partition_values: dict[str, str | None]
    num_records: int
    stats: str
    """The Delta `stats` JSON string."""


def partition_values_from_path(relative_path: str, partition_by: Iterable[str]) -> dict[str, str | None]:
    """Partition values from hive-style directories (`date=2024-01-01/`), as Delta strings."""
    found: dict[str, str | None] = {}
    for segment in relative_path.split("/")[:-1]:
        key, sep, value = segment.partition("=")
        if sep:
            value = unquote(value)
            found[key] = None if value == HIVE_NULL else value
    wanted = list(partition_by)
    missing = [c for c in wanted if c not in found]
    if missing:
        raise ValueError(f"file {relative_path} has no directory for partition column(s) {', '.join(missing)}")
    return {c: found[c] for c in wanted}


def footer_stats(metadata: pq.FileMetaData) -> tuple[int, str]:
    """(row count, Delta stats JSON) from a Parquet footer."""
    num_rows = metadata.num_rows
    mins: dict[str, Any] = {}
    maxs: dict[str, Any] = {}
    nulls: dict[str, int] = {}
    columns = _top_level_columns(metadata)
    for name, index in columns.items():
        lo, hi, null_count, complete = None, None, 0, True
        for rg in range(metadata.num_row_groups):
            stats = metadata.row_group(rg).column(index).statistics
            if stats is None:
                complete = False
                break
            if stats.has_null_count:
                null_count += stats.null_count
            else:
                complete = False
                break
            if metadata.row_group(rg).num_rows == stats.null_count:
                continue  # all nulls: no min/max in this row group
            if not stats.has_min_max:
                lo = hi = _UNKNOWN
                continue
            if lo is not _UNKNOWN:
                lo = stats.min if lo is None else min(lo, stats.min)
                hi = stats.max if hi is None else max(hi, stats.max)
        if not complete:
            continue
        nulls[name] = null_count
        if lo is None or lo is _UNKNOWN:
            continue
        low, high = _json_value(lo, upper=False), _json_value(hi, upper=True)
        if low is not None:
            mins[name] = low
        if high is not None:
            maxs[name] = high
    stats_json = {"numRecords": num_rows, "minValues": mins, "maxValues": maxs, "nullCount": nulls}
    return num_rows, json.dumps(stats_json, separators=(",", ":"))


_UNKNOWN = object()


def _top_level_columns(metadata: pq.FileMetaData) -> dict[str, int]:
    """Leaf column index of each top-level primitive column (nested columns get no statistics)."""
    result = {}
    schema = metadata.schema
    for index in range(len(schema)):
        path = schema.column(index).path
        if "." not in path:
            result[path] = index
    return result


def _json_value(value: Any, upper: bool) -> Any:
    """A statistics value as Delta writes it; None when it cannot be represented safely."""
    if isinstance(value, bool):
        return None  # Delta keeps no min/max for booleans
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, int):
        return value
    if isinstance(value, decimal.Decimal):
        # A float cannot hold every decimal: round outwards (a min never above the true minimum,
        # a max never below the true maximum), so data skipping never drops a matching file.
        if not value.is_finite():
            return None
        number = float(value)
        if upper and decimal.Decimal(number) < value:
            number = math.nextafter(number, math.inf)
        elif not upper and decimal.Decimal(number) > value:
            number = math.nextafter(number, -math.inf)
        return number
    if isinstance(value, str):
        if len(value) <= STRING_PREFIX:
            return value
        return None if upper else value[:STRING_PREFIX]
    if isinstance(value, dt.datetime):
        return _timestamp(value, upper)
    if isinstance(value, dt.date):
        return value.isoformat()
    return None  # bytes and other physical types: no statistics


def _timestamp(value: dt.datetime, upper: bool) -> str:
    """Millisecond precision, as the protocol wants; the max is rounded up so skipping stays safe."""
    aware = value.tzinfo is not None
    if aware:
        value = value.astimezone(dt.timezone.utc)
    if upper and value.microsecond % 1000:
        value = value + dt.timedelta(microseconds=1000 - value.microsecond % 1000)
    text = value.replace(tzinfo=None).isoformat(timespec="milliseconds")
    return text + "Z" if aware else text


def describe_file(fs, table_path: str, relative_path: str, partition_by: Iterable[str]) -> DataFile:
    """Read one file's footer and build its `DataFile`."""
    full = f"{table_path.rstrip('/')}/{relative_path}"
    info = fs.get_file_info(full)
    with fs.open_input_file(full) as handle:
        metadata = pq.ParquetFile(handle).metadata
    num_rows, stats = footer_stats(metadata)
    mtime = int(info.mtime.timestamp() * 1000) if info.mtime else 0
    return DataFile(
        path=relative_path,
        size=int(info.size),
        modification_time=mtime,
        partition_values=partition_values_from_path(relative_path, partition_by),
        num_records=num_rows,
        stats=stats,
    )
