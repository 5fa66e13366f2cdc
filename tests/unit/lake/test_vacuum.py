"""Vacuum through delta-rs alone: the retention keeps what time travel inside it reads."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs

from pipelines.lake import deltalog
from pipelines.lake.location import table_location
from pipelines.lake.vacuum import vacuum
from tests.conftest import make_config
from tests.lakehelpers import write_files

SCHEMA = pa.schema([("id", pa.int64()), ("day", pa.string())])


def _commit(location, ids, mode="append"):
    table = pa.table({"id": ids, "day": ["2024-01-01"] * len(ids)}, schema=SCHEMA)
    files = write_files(pafs.LocalFileSystem(), location.uri, table, ["day"])
    deltalog.commit(location, files, SCHEMA, mode=mode, partition_by=["day"])
    return files[0].path.split("/", 1)[0]


def _age(folder: Path, days: float) -> None:
    old = time.time() - days * 86400
    for path in [folder, *folder.rglob("*")]:
        os.utime(path, (old, old))


def test_a_folder_written_long_ago_but_removed_inside_the_retention_is_kept(tmp_path):
    # Bug: vacuum deleted every write folder without a live file whose files were older than the
    # retention, including files an overwrite removed minutes ago, so time travel to the version
    # before the overwrite failed with a missing file.
    location = table_location(make_config(tmp_path).lake, "test.vac")
    root = Path(location.uri)
    first = _commit(location, [1, 2, 3])
    _age(root / first, days=10)
    _commit(location, [4], mode="overwrite")
    abandoned = root / "write-abandoned" / "day=2024-01-01"
    abandoned.mkdir(parents=True)
    (abandoned / "part-0.parquet").write_bytes(b"never committed")
    _age(root / "write-abandoned", days=10)

    result = vacuum(location, retention_hours=168)

    # The never-committed file goes (delta-rs's full vacuum); its emptied folder, touched just
    # now, goes at a later vacuum.
    assert result.files_deleted == ["write-abandoned/day=2024-01-01/part-0.parquet"]
    assert (root / first).exists()
    assert sum(f.num_records for f in deltalog.snapshot(location, version=0).files) == 3
    assert deltalog.open_table(location, version=0).to_pyarrow_table().num_rows == 3


def test_a_fractional_retention_is_not_truncated_to_zero(tmp_path):
    # Bug: 0.5 hours became int(0) = 0 for delta-rs, which then deleted every unreferenced file,
    # including the removed files time travel inside the half hour still reads.
    location = table_location(make_config(tmp_path).lake, "test.vac")
    _commit(location, [1, 2])
    _commit(location, [3], mode="overwrite")
    result = vacuum(location, retention_hours=0.5)
    assert result.files_deleted == [] and result.staging_dirs_deleted == []
    assert deltalog.open_table(location, version=0).to_pyarrow_table().num_rows == 2
    assert vacuum(location, retention_hours=0).files_deleted  # 0 still means now


def test_write_folders_follow_the_same_rounded_up_retention_as_delta_rs(tmp_path, monkeypatch):
    # Bug: delta-rs kept removed files for ceil(0.01) = 1 h, but the write-folder cleanup used
    # the exact 36 s, so 40 s after an overwrite it deleted the folder time travel still reads.
    location = table_location(make_config(tmp_path).lake, "test.vac")
    root = Path(location.uri)
    first = _commit(location, [1, 2])
    _age(root / first, days=10)
    _commit(location, [3], mode="overwrite")
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 40)
    result = vacuum(location, retention_hours=0.01)
    assert result.staging_dirs_deleted == [] and (root / first).exists()
    assert deltalog.open_table(location, version=0).to_pyarrow_table().num_rows == 2
