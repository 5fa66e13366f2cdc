"""The features stage: silver.events -> gold user/product/category/user x category features.

Incremental per as-of date. Each built as-of date is recorded in `gold.features_progress` with a
fingerprint of its inputs: the feature definitions and the exact silver.events files of the
event dates its longest window reads (Delta metadata; no data is read to compute it). An as-of
date is (re)built when it is new or its fingerprint changed - e.g. silver rebuilt a day after
late events arrived - so late data reaches every as-of date whose window covers it and nothing
else is recomputed. As-of dates are built in chunks, each chunk in one pass per entity.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from pyspark.sql import SparkSession

from pipelines.config import ClickmlConfig
from pipelines.features.compute import build_features
from pipelines.features.registry import definitions_hash
from pipelines.lake import Lake

log = logging.getLogger(__name__)

CHUNK_DAYS = 31
"""As-of dates built per pass (bounds the size of one pass's range join)."""

ENTITY_TABLES = {
    "user": "user_features",
    "product": "product_features",
    "category": "category_features",
    "user_category": "user_category_features",
}


class FeaturesError(RuntimeError):
    """The feature tables cannot be built as asked (no silver data, bad as-of range)."""


@dataclass
class FeaturesResult:
    built: list[dt.date] = field(default_factory=list)
    """As-of dates (re)built by this run."""
    up_to_date: int = 0
    """Requested as-of dates whose inputs had not changed."""
    rows: dict[str, int] = field(default_factory=dict)
    """Rows written per gold table."""
    seconds: float = 0.0

    def report(self) -> str:
        if not self.built:
            return f"features: {self.up_to_date} as-of date(s) already up to date"
        span = f"{self.built[0]}..{self.built[-1]}" if len(self.built) > 1 else str(self.built[0])
        rows = ", ".join(f"{name} {n:,}" for name, n in self.rows.items())
        return (
            f"features: built {len(self.built)} as-of date(s) {span} ({self.up_to_date} up to date): "
            f"{rows} ({self.seconds:.1f}s)"
        )


def silver_files_by_date(lake: Lake, table: str) -> tuple[int, dict[dt.date, list[str]]]:
    """(version, event_date -> sorted file paths) of the silver events snapshot (metadata only)."""
    snap = lake.snapshot(table)
    by_date: dict[dt.date, list[str]] = defaultdict(list)
    for f in snap.files:
        value = f.partition_values.get("event_date")
        day = value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))
        by_date[day].append(f.path)
    return snap.version, {d: sorted(paths) for d, paths in by_date.items()}


def fingerprint(as_of: dt.date, longest: int, files: dict[dt.date, list[str]], definitions: str) -> str:
    """Hash of the definitions and the silver files of event dates as_of-longest .. as_of-1."""
    h = hashlib.sha256(definitions.encode())
    for k in range(longest, 0, -1):
        day = as_of - dt.timedelta(days=k)
        h.update(f"|{day}:".encode())
        h.update(",".join(files.get(day, [])).encode())
    return h.hexdigest()[:32]


def default_as_of_dates(config: ClickmlConfig, event_dates: Sequence[dt.date]) -> list[dt.date]:
    """features.start_date .. features.end_date, defaulting to the day after the first and the
    last silver event date."""
    if not event_dates:
        raise FeaturesError("silver.events has no data: run the silver stage first")
    start = config.features.start_date or min(event_dates) + dt.timedelta(days=1)
    end = config.features.end_date or max(event_dates) + dt.timedelta(days=1)
    if end < start:
        raise FeaturesError(f"features.end_date {end} is before features.start_date {start}")
    return [start + dt.timedelta(days=k) for k in range((end - start).days + 1)]


def built_fingerprints(lake: Lake, config: ClickmlConfig) -> dict[dt.date, str]:
    """as_of_date -> fingerprint of what is built. Bounded: one row per as-of date."""
    table = config.tables.features_progress
    if not lake.exists(table):
        return {}
    rows = lake.read(table).select("as_of_date", "fingerprint").collect()  # bounded: one row per as-of date
    return {r["as_of_date"]: r["fingerprint"] for r in rows}


def run(
    config: ClickmlConfig,
    spark: SparkSession,
    lake: Lake | None = None,
    as_of_dates: Sequence[dt.date] | None = None,
    full_refresh: bool = False,
) -> FeaturesResult:
    """Build the gold feature tables for `as_of_dates` (default: the configured range) whose
    inputs changed since they were last built (all of them with `full_refresh`)."""
    lake = lake or Lake(config, spark)
    tables = config.tables
    started = time.time()
    windows = config.features.windows_days
    longest = max(windows)
    if not lake.exists(tables.silver_events):
        raise FeaturesError(f"{tables.silver_events} does not exist: run the silver stage first")
    silver_version, files = silver_files_by_date(lake, tables.silver_events)
    requested = sorted(set(as_of_dates)) if as_of_dates else default_as_of_dates(config, list(files))
    definitions = definitions_hash(windows)
    wanted = {d: fingerprint(d, longest, files, definitions) for d in requested}
    built = {} if full_refresh else built_fingerprints(lake, config)
    todo = [d for d in requested if built.get(d) != wanted[d]]
    result = FeaturesResult(up_to_date=len(requested) - len(todo))
    log.info(
        "features: %d as-of date(s) requested (%s..%s), %d to build, windows %s, silver v%d",
        len(requested), requested[0], requested[-1], len(todo), windows, silver_version,
    )
    for start in range(0, len(todo), CHUNK_DAYS):
        chunk = todo[start : start + CHUNK_DAYS]
        _build_chunk(config, spark, lake, chunk, longest, silver_version, {d: wanted[d] for d in chunk}, result)
        log.info("features: %d/%d as-of date(s) built (through %s)", start + len(chunk), len(todo), chunk[-1])
    result.built = todo
    result.seconds = time.time() - started
    log.info("%s", result.report())
    return result


def _build_chunk(
    config: ClickmlConfig,
    spark: SparkSession,
    lake: Lake,
    chunk: list[dt.date],
    longest: int,
    silver_version: int,
    fingerprints: dict[dt.date, str],
    result: FeaturesResult,
) -> None:
    tables = config.tables
    needed = sorted({d - dt.timedelta(days=k) for d in chunk for k in range(1, longest + 1)})
    events = lake.read(
        tables.silver_events, version=silver_version,
        partition_filters=[("event_date", "in", [d.isoformat() for d in needed])],
    )
    frames = build_features(events, chunk, config.features.windows_days)
    replaced = [{"as_of_date": d} for d in chunk]
    replaced_tables = []
    for entity, frame in frames.items():
        name = getattr(tables, ENTITY_TABLES[entity])
        if lake.exists(name) and _columns(lake.read(name).schema) != _columns(frame.schema):
            # New definitions (e.g. another `features.windows_days`) change the columns: every
            # requested as-of date is being rebuilt (the definitions are in each fingerprint);
            # the table starts over with the new schema from this chunk.
            log.warning("features: %s gets a new schema (feature definitions changed); replacing the table", name)
            written = lake.write(frame, name, mode="overwrite", partition_by=["as_of_date"], overwrite_schema=True)
            replaced_tables.append(name)
        else:
            written = lake.write(
                frame, name, mode="overwrite_partitions", partition_by=["as_of_date"], replace_partitions=replaced
            )
        result.rows[name] = result.rows.get(name, 0) + written.rows_added
    # Progress last: a run killed before this line rebuilds the chunk (the writes above replace
    # whole as-of partitions, so that is idempotent). After a table was replaced, progress starts
    # over too, so that it lists exactly the as-of dates the tables hold.
    now = dt.datetime.now(dt.timezone.utc)
    progress = spark.createDataFrame(
        [(d, fingerprints[d], silver_version, now) for d in chunk],
        "as_of_date date, fingerprint string, silver_version long, built_at timestamp",
    )
    if replaced_tables:
        lake.write(progress, tables.features_progress, mode="overwrite", partition_by=["as_of_date"])
    else:
        lake.write(progress, tables.features_progress, mode="overwrite_partitions", partition_by=["as_of_date"],
                   replace_partitions=replaced)


def _columns(schema) -> dict[str, str]:
    """Column name -> type of a Spark schema (nullability aside: the lake's reads make every column nullable)."""
    return {f.name: f.dataType.simpleString() for f in schema.fields}
