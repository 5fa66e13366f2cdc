"""Hadoop's FileSystem through the Spark driver's JVM: the same storage access Spark's own reads
and writes use (local disk, s3a://, hdfs://, with the session's settings and credentials)."""

from __future__ import annotations

from pyspark.sql import SparkSession


def _fs_and_path(spark: SparkSession, uri: str):
    jvm = spark.sparkContext._jvm
    conf = spark._jsparkSession.sessionState().newHadoopConf()
    path = jvm.org.apache.hadoop.fs.Path(uri)
    return path.getFileSystem(conf), path


def exists(spark: SparkSession, uri: str) -> bool:
    fs, path = _fs_and_path(spark, uri)
    return bool(fs.exists(path))


def delete_path(spark: SparkSession, uri: str, recursive: bool = True) -> bool:
    """Delete a file or folder; False when there was nothing to delete."""
    fs, path = _fs_and_path(spark, uri)
    return bool(fs.delete(path, recursive))
