"""Find landing files and read them as raw records: text, file, line number, arrival time."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pipelines.config import ClickmlConfig
from pipelines.lake.filesystem import filesystem_for, list_files
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
            if any(part.startswith(("_", ".")) for part in relative.split("/")):
                continue
            files.append(LandingFile(relative, location.spark_child(relative), int(info.size)))
    return sorted(files, key=lambda f: f.relative)


def arrival_time(path: F.Column) -> F.Column:
    """End of the arrival hour encoded in a `date=.../hour=...` path; null for other layouts."""
    date = F.regexp_extract(path, ARRIVAL_PATTERN, 1)
    hour = F.regexp_extract(path, ARRIVAL_PATTERN, 2)
    start = F.try_to_timestamp(F.concat(date, F.lit(" "), hour, F.lit(":00:00")), F.lit("yyyy-MM-dd HH:mm:ss"))
    return F.when(date != "", start + F.expr("INTERVAL 1 HOUR"))


@dataclass
class RawRecords:
    """Raw records of a batch and how many there are (counted from the files, independently of
    the classification, for the accounting identity)."""

    frame: DataFrame
    count: int


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
    line = F.col("__id") - F.col("__first") + F.col("__start") + F.lit(1)
    numbered = (
        keyed.join(F.broadcast(table), ["source_file", "source_block"], "left")
        .withColumn("source_line", line.cast("long"))
        .where(~F.col("__blank"))
    )
    if header:
        numbered = numbered.where(F.col("source_line") > 1)
    frame = numbered.select(
        F.col("value").alias("raw"), "source_file", "source_line", arrival_time(F.col("source_file")).alias("arrival_time")
    )
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


def read_raw(spark: SparkSession, files: list[LandingFile], source: SourceConfig) -> RawRecords:
    """Raw records of the files: `raw`, `source_file`, `source_line`, `arrival_time` (+ parquet fields)."""
    uris = [f.spark_uri for f in files]
    if source.format == "parquet":
        frame = read_raw_parquet_frame(spark.read.parquet(*uris), F.col("_metadata.file_path"))
        return RawRecords(frame, frame.count())
    text = spark.read.text(uris).select(
        "value", F.col("_metadata.file_path").alias("source_file"), F.col("_metadata.file_block_start").alias("source_block")
    )
    return raw_records_from_text(text, source)
