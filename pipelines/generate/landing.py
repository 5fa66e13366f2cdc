"""Writing lines to the landing zone as a Kafka-to-storage sink leaves them.

Layout: `<root>/date=YYYY-MM-DD/hour=HH/part-NNNNN.jsonl[.gz]`, the folder being the line's
arrival hour (UTC). Spark writes the files (text writer, partitioned by date, hour and file
bucket); the driver then renames them through the Hadoop FileSystem API (local, HDFS, S3A),
so a folder holds exactly `files_per_hour` or fewer files with stable names, sorted by arrival
time, and nothing else (no `_SUCCESS`, no checksum files).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pipelines.generate import clock

log = logging.getLogger("pipelines.generate")

LINES_PER_WRITE_PARTITION = 1_000_000
_BUCKET_DIR = "bucket="


@dataclass(frozen=True)
class LandedFiles:
    """What `write_lines` left: the root and the number of files and hour folders."""

    root: str
    files: int
    hours: int


def _hadoop(spark: SparkSession, path: str):
    jvm = spark.sparkContext._jvm
    hpath = jvm.org.apache.hadoop.fs.Path(path)
    fs = hpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    return jvm, fs, hpath


def remove_folder(spark: SparkSession, path: str) -> bool:
    """Delete a folder (recursively) through Hadoop; True if something was deleted."""
    _, fs, hpath = _hadoop(spark, path)
    if fs.exists(hpath):
        return bool(fs.delete(hpath, True))
    return False


def write_lines(
    spark: SparkSession,
    lines_df: DataFrame,
    root: str,
    gzip: bool = False,
    files_per_hour: int = 1,
    expected_lines: int | None = None,
) -> LandedFiles:
    """Replace `root` with the lines of `lines_df` (columns line, arrival_ms, and any others).

    Lines are grouped by arrival hour and a bucket (a hash of the line modulo `files_per_hour`),
    each group written as one file sorted by (arrival_ms, line): the output is byte-identical for
    identical input whatever the cluster's parallelism.
    """
    partitions = max(1, math.ceil((expected_lines or 0) / LINES_PER_WRITE_PARTITION))
    staged = lines_df.select(
        "line",
        "arrival_ms",
        clock.date_string(F.col("arrival_ms")).alias("date"),
        clock.hour_string(F.col("arrival_ms")).alias("hour"),
        F.pmod(F.xxhash64(F.col("line")), F.lit(files_per_hour)).cast("int").alias("bucket"),
    )
    ordered = staged.repartition(partitions, "date", "hour", "bucket").sortWithinPartitions(
        "date", "hour", "bucket", "arrival_ms", "line"
    )
    if remove_folder(spark, root):
        log.info("replaced the landing folder %s (the generator overwrites its source folder)", root)
    (
        ordered.select("line", "date", "hour", "bucket")
        .write.mode("overwrite")
        .option("compression", "gzip" if gzip else "none")
        .partitionBy("date", "hour", "bucket")
        .text(root)
    )
    return finalize(spark, root, ".jsonl.gz" if gzip else ".jsonl")


def finalize(spark: SparkSession, root: str, extension: str) -> LandedFiles:
    """Move `date=/hour=/bucket=B/part-*` to `date=/hour=/part-0000B<extension>`; drop markers,
    checksums and the bucket folders. Lists folders, not rows: bounded by the number of files."""
    jvm, fs, hpath = _hadoop(spark, root)
    Path = jvm.org.apache.hadoop.fs.Path
    raw = fs.getRawFileSystem() if _is_checksum_fs(fs) else None
    files = hours = 0
    if not fs.exists(hpath):  # nothing was generated
        return LandedFiles(root=root, files=0, hours=0)
    for date_status in fs.listStatus(hpath):
        date_path = date_status.getPath()
        if not date_status.isDirectory():
            fs.delete(date_path, False)  # _SUCCESS and the like
            continue
        for hour_status in fs.listStatus(date_path):
            if not hour_status.isDirectory():
                continue
            hours += 1
            hour_path = hour_status.getPath()
            for bucket_status in fs.listStatus(hour_path):
                name = bucket_status.getPath().getName()
                if not (bucket_status.isDirectory() and name.startswith(_BUCKET_DIR)):
                    continue
                bucket = int(name[len(_BUCKET_DIR):])
                parts = sorted(
                    s.getPath().toString()
                    for s in fs.listStatus(bucket_status.getPath())
                    if s.getPath().getName().startswith("part-")
                )
                for index, part in enumerate(parts):
                    suffix = "" if index == 0 else f"-{index:03d}"
                    target = Path(hour_path, f"part-{bucket:05d}{suffix}{extension}")
                    if not fs.rename(Path(part), target):
                        raise OSError(f"could not rename {part} to {target.toString()}")
                    files += 1
                    if raw is not None:
                        raw.delete(fs.getChecksumFile(target), False)
                fs.delete(bucket_status.getPath(), True)
    return LandedFiles(root=root, files=files, hours=hours)


def _is_checksum_fs(fs) -> bool:
    """Whether `fs` keeps `.crc` side files (Hadoop's LocalFileSystem does)."""
    try:
        jvm = fs.getClass().getClassLoader()
        checksum = fs.getClass().forName("org.apache.hadoop.fs.ChecksumFileSystem", False, jvm)
        return bool(checksum.isInstance(fs))
    except Exception:  # noqa: BLE001 - any py4j oddity: leave checksum files alone
        return False
