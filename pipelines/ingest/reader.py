"""Find landing files and read them as raw records: text, file, line number, arrival time."""

from __future__ import annotations

import datetime as dt
import logging
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from pipelines.config import ClickmlConfig
from pipelines.lake.filesystem import filesystem_for, hidden_path, list_files
from pipelines.lake.location import TableLocation, path_location, scheme_of
from pipelines.sources import SourceConfig

log = logging.getLogger(__name__)

ARRIVAL_PATTERN = r"date=(\d{4}-\d{2}-\d{2})/hour=(\d{2})"


@dataclass(frozen=True)
class LandingFile:
    relative: str
    """Path below the source folder."""
    spark_uri: str
    size: int


def source_location(config: ClickmlConfig, source: SourceConfig) -> TableLocation:
    """The source's landing folder (its `path` under `landing.root`, unless absolute)."""
    raw = source.path
    if scheme_of(raw) == "file" and not raw.startswith(("/", "file:")):
        raw = f"{config.landing.root.rstrip('/')}/{raw}"
    return path_location(config.lake, raw)


def hours_between(start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
    """The arrival hours in [start, end)."""
    start = start.replace(minute=0, second=0, microsecond=0)
    hours = []
    while start < end:
        hours.append(start)
        start += dt.timedelta(hours=1)
    return hours


def list_landing_files(
    config: ClickmlConfig, source: SourceConfig, start: dt.datetime | None = None, end: dt.datetime | None = None
) -> list[LandingFile]:
    """Data files of the source, limited to arrival folders in [start, end) for hourly layouts."""
    location = source_location(config, source)
    fs, base = filesystem_for(location)
    if source.layout == "hourly" and start is not None and end is not None:
        folders = [f"{base}/date={h:%Y-%m-%d}/hour={h:%H}" for h in hours_between(start, end)]
    else:
        folders = [base]
    files: list[LandingFile] = []
    for folder in folders:
        for info in list_files(fs, folder):
            relative = info.path[len(base) + 1:]
            if hidden_path(relative):
                continue
            files.append(LandingFile(relative, location.spark_child(relative), int(info.size)))
    return sorted(files, key=lambda f: f.relative)


def arrival_time(path: F.Column) -> F.Column:
    """End of the arrival hour encoded in a `date=.../hour=...` path; null for other layouts.

    Kept cheap where it runs per record: one regular expression, whose match
    (`date=YYYY-MM-DD/hour=HH`, or empty) is cut at fixed offsets and cast (no pattern-based
    parse). No conditional: an empty match or an impossible date or hour (`2024-02-30`, `24`)
    casts to null, and the match is a common subexpression that Spark evaluates once.
    """
    match = F.regexp_extract(path, ARRIVAL_PATTERN, 0)
    start = F.concat(F.substring(match, 6, 10), F.lit(" "), F.substring(match, 22, 2), F.lit(":00:00"))
    return start.try_cast("timestamp") + F.expr("INTERVAL 1 HOUR")


class NumberingError(RuntimeError):
    """Per-file line numbering found a file that did not start its own scan partition (Spark
    packed or split the files despite the settings); the batch is re-read with block offsets."""


@dataclass
class RawRecords:
    """Raw records of a batch and how many there are, counted from the lines read, independently
    of the classification, for the accounting identity.

    `count` is known up front when numbering needed its own pass; otherwise it is observed during
    the one job that consumes `frame` (run it under `scan_settings(spark)`) and `records()`
    returns it after that job.
    """

    frame: DataFrame
    count: int | None = None
    observation: Observation | None = None
    settings: dict[str, str] = field(default_factory=dict)
    """Session settings the job that consumes `frame` must run under (see `scan_settings`)."""
    input_bytes: int = 0
    """Size of the files read (sizes the jobs that consume `frame`)."""

    def records(self) -> int:
        if self.count is not None:
            return self.count
        if self.observation is None:
            raise RuntimeError("raw records without a count or an observation")
        metrics = self.observation.get  # the job that consumed `frame` has finished
        if "files" in metrics and (metrics["file_starts"] != metrics["files"] or metrics["split_lines"]):
            raise NumberingError(
                f"per-file numbering: {metrics['files']} file(s) with lines but {metrics['file_starts']} scan "
                f"partition start(s) and {metrics['split_lines']} line(s) in later splits"
            )
        self.count = int(metrics["records"] or 0)
        return self.count

    @contextmanager
    def scan_settings(self, spark: SparkSession) -> Iterator[None]:
        """Apply `settings` to the session for the duration of a job, then restore them."""
        with session_settings(spark, self.settings):
            yield


@contextmanager
def session_settings(spark: SparkSession, settings: dict[str, str]) -> Iterator[None]:
    """Set SQL settings for the duration of a block (they are read when a query is planned)."""
    previous: dict[str, str | None] = {}
    for key, value in settings.items():
        previous[key] = spark.conf.get(key, None)
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)


def raw_records_from_text(text: DataFrame, source: SourceConfig) -> RawRecords:
    """`value`, `source_file`, `source_block` lines -> raw records, numbered 1..n per file.

    Headers and blank lines are dropped (they are not records). Numbering does not shuffle the
    lines: within an input partition monotonically_increasing_id counts up by one per line and a
    file's block is read contiguously, so a line's number is its id minus the id of its block's
    first line plus the lines of the file's earlier blocks. Those offsets come from one small
    aggregate (a row per block read) that also counts the records; it is broadcast back. File
    scans are deterministic (same files, same splits, same ids), so the aggregate's pass and the
    later pass agree without caching the lines.
    """
    spark = text.sparkSession
    header = source.format == "csv" and source.csv is not None and source.csv.header
    keyed = text.withColumn("__id", F.monotonically_increasing_id()).withColumn("__blank", F.trim("value") == "")
    # Bounded: one row per (file, block) read.
    blocks = (
        keyed.groupBy("source_file", "source_block")
        .agg(
            F.min("__id").alias("first"),
            F.count(F.lit(1)).alias("lines"),
            F.sum(F.col("__blank").cast("long")).alias("blank"),
            F.min_by("__blank", "__id").alias("first_blank"),
        )
        .collect()
    )
    offsets, running, records = [], {}, 0
    for block in sorted(blocks, key=lambda b: (b["source_file"], b["source_block"])):
        start = running.get(block["source_file"], 0)
        offsets.append((block["source_file"], block["source_block"], block["first"], start))
        running[block["source_file"]] = start + block["lines"]
        records += block["lines"] - block["blank"]
        if header and start == 0 and not block["first_blank"]:
            records -= 1  # the header line
    table = spark.createDataFrame(offsets, "source_file string, source_block long, __first long, __start long")
    # The arrival time once per block, in the broadcast table, instead of once per line.
    table = table.withColumn("arrival_time", arrival_time(F.col("source_file")))
    line = F.col("__id") - F.col("__first") + F.col("__start") + F.lit(1)
    numbered = (
        keyed.join(F.broadcast(table), ["source_file", "source_block"], "left")
        .withColumn("source_line", line.cast("long"))
        .where(~F.col("__blank"))
    )
    if header:
        numbered = numbered.where(F.col("source_line") > 1)
    frame = numbered.select(F.col("value").alias("raw"), "source_file", "source_line", "arrival_time")
    return RawRecords(frame, records)


def read_raw_parquet_frame(frame: DataFrame, source_file: F.Column, base: DataFrame | None = None) -> DataFrame:
    """Parquet rows -> raw records: the row as JSON text plus every field as a string `f_<name>`."""
    fields = [c for c in frame.columns if c != "source_file"]
    out = (base if base is not None else frame).select(
        F.to_json(F.struct(*[F.col(f"`{c}`") for c in fields])).alias("raw"),
        source_file.alias("source_file"),
        F.lit(None).cast("long").alias("source_line"),
        *[F.col(f"`{c}`").cast("string").alias(f"f_{c}") for c in fields],
    )
    return out.withColumn("arrival_time", arrival_time(F.col("source_file")))


# Per-file numbering reads each file whole in a task of its own: it saves the numbering pass (a
# scan of the text and a join per line) but costs a task per file, an observation in the main job
# and a regular expression per line (the arrival time). Measured at 10M events in 215 files of
# 14 MB on 2 cores, it was slower than the numbering pass (117 s against 107 s: the small tasks
# write several event-date files each), so it is kept for files near Spark's split size, where
# packing files into partitions gains nothing.
PER_FILE_MIN_AVERAGE_BYTES = 64 * 1024 * 1024
PER_FILE_MAX_BYTES = 128 * 1024 * 1024
PER_FILE_MAX_FILES = 20_000
_HUGE = str(1 << 50)
PER_FILE_SCAN = {
    # A split as large as any file and an opening cost that fills a partition: every file is
    # read whole, alone in its partition (FilePartition.getFilePartitions packs files while the
    # running size plus the opening cost stays under the split size).
    "spark.sql.files.maxPartitionBytes": _HUGE,
    "spark.sql.files.openCostInBytes": _HUGE,
    "spark.sql.files.maxPartitionNum": str(2**31 - 1),
}
_ROW_IN_PARTITION = (1 << 33) - 1  # monotonically_increasing_id: partition << 33 | row in partition


def raw_records_per_file(text: DataFrame, source: SourceConfig) -> RawRecords:
    """Raw records numbered without a separate pass: each file is its own scan partition, so a
    line's number is its row index in the partition plus one.

    The job that consumes the frame must run under `PER_FILE_SCAN` (`RawRecords.scan_settings`).
    The same job observes the record count and checks the premise: as many partition starts as
    files with lines, and no line from a later split of a file. `records()` raises
    `NumberingError` when the premise did not hold.
    """
    header = source.format == "csv" and source.csv is not None and source.csv.header
    index = F.monotonically_increasing_id().bitwiseAND(F.lit(_ROW_IN_PARTITION))
    lines = text.select("value", "source_file", "source_block", index.alias("__index"))
    keep = F.trim("value") != ""
    if header:
        keep = keep & (F.col("__index") > 0)
    lines = lines.withColumn("__keep", keep)
    observation = Observation("ingest-raw")
    observed = lines.observe(
        observation,
        F.sum(F.col("__keep").cast("long")).alias("records"),
        F.sum((F.col("__index") == 0).cast("long")).alias("file_starts"),
        F.size(F.collect_set("source_file")).alias("files"),
        F.sum((F.col("source_block") != 0).cast("long")).alias("split_lines"),
    )
    frame = observed.where("__keep").select(
        F.col("value").alias("raw"), "source_file", (F.col("__index") + 1).alias("source_line"),
        arrival_time(F.col("source_file")).alias("arrival_time"),
    )
    return RawRecords(frame, observation=observation, settings=dict(PER_FILE_SCAN))


def per_file_numbering(files: list[LandingFile]) -> bool:
    """Whether to number the files' lines one scan partition per file (see PER_FILE_*)."""
    if not 0 < len(files) <= PER_FILE_MAX_FILES or any(f.size > PER_FILE_MAX_BYTES for f in files):
        return False
    return sum(f.size for f in files) / len(files) >= PER_FILE_MIN_AVERAGE_BYTES


def read_raw(spark: SparkSession, files: list[LandingFile], source: SourceConfig, per_file: bool | None = None) -> RawRecords:
    """Raw records of the files: `raw`, `source_file`, `source_line`, `arrival_time` (+ parquet fields).

    `per_file` forces (True) or forbids (False) per-file numbering; by default it is used when
    `per_file_numbering(files)`.
    """
    uris = [f.spark_uri for f in files]
    if source.format == "parquet":
        frame = read_raw_parquet_frame(spark.read.parquet(*uris), F.col("_metadata.file_path"))
        observation = Observation("ingest-raw")
        raw = RawRecords(frame.observe(observation, F.count(F.lit(1)).alias("records")), observation=observation)
    else:
        text = spark.read.text(uris).select(
            "value", F.col("_metadata.file_path").alias("source_file"),
            F.col("_metadata.file_block_start").alias("source_block"),
        )
        if per_file if per_file is not None else per_file_numbering(files):
            raw = raw_records_per_file(text, source)
        else:
            raw = raw_records_from_text(text, source)
    raw.input_bytes = sum(f.size for f in files)
    return raw
