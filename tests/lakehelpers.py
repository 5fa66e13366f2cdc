"""Helpers for lake tests: Parquet files written without Spark, hand-made Delta logs."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from pipelines.lake.stats import DataFile, describe_file


def write_files(fs: pafs.FileSystem, table_path: str, table: pa.Table, partition_by: list[str]) -> list[DataFile]:
    """Write `table` as hive-partitioned Parquet under `table_path/write-<id>/`; describe the files."""
    write_dir = f"write-{uuid.uuid4().hex}"
    groups = {(): table} if not partition_by else _split(table, partition_by)
    files = []
    for key, part in groups.items():
        folders = "/".join(f"{c}={'__HIVE_DEFAULT_PARTITION__' if v is None else v}" for c, v in zip(partition_by, key))
        relative = f"{write_dir}/{folders + '/' if folders else ''}part-{uuid.uuid4().hex[:8]}.parquet"
        fs.create_dir(f"{table_path}/{relative.rsplit('/', 1)[0]}", recursive=True)
        with fs.open_output_stream(f"{table_path}/{relative}") as out:
            pq.write_table(part.drop(partition_by), out)
        files.append(describe_file(fs, table_path, relative, partition_by))
    return files


def _split(table: pa.Table, partition_by: list[str]) -> dict[tuple, pa.Table]:
    rows = table.to_pylist()
    keys = sorted({tuple(r[c] for c in partition_by) for r in rows}, key=str)
    return {
        key: pa.Table.from_pylist([r for r in rows if tuple(r[c] for c in partition_by) == key], schema=table.schema)
        for key in keys
    }


def handmade_table_with_feature(path: Path, feature: str) -> None:
    """A Delta table whose protocol requires `feature` (e.g. deletionVectors)."""
    log = path / "_delta_log"
    log.mkdir(parents=True)
    schema = {"type": "struct", "fields": [{"name": "id", "type": "long", "nullable": True, "metadata": {}}]}
    configuration = {"delta.enableDeletionVectors": "true"} if feature == "deletionVectors" else {}
    actions = [
        {"commitInfo": {"timestamp": 1700000000000, "operation": "CREATE TABLE"}},
        {"protocol": {"minReaderVersion": 3, "minWriterVersion": 7, "readerFeatures": [feature], "writerFeatures": [feature]}},
        {
            "metaData": {
                "id": str(uuid.uuid4()),
                "format": {"provider": "parquet", "options": {}},
                "schemaString": json.dumps(schema),
                "partitionColumns": [],
                "configuration": configuration,
                "createdTime": 1700000000000,
            }
        },
    ]
    (log / "00000000000000000000.json").write_text("\n".join(json.dumps(a) for a in actions) + "\n")
