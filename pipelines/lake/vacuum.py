"""Remove files no longer referenced by a table: old removed files and crashed writes."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import pyarrow.fs as pafs

from pipelines.lake import deltalog
from pipelines.lake.errors import TableNotFoundError
from pipelines.lake.filesystem import filesystem_for
from pipelines.lake.location import TableLocation
from pipelines.lake.spark_io import STAGING_PREFIX

log = logging.getLogger(__name__)


@dataclass
class VacuumResult:
    table: str
    files_deleted: list[str] = field(default_factory=list)
    staging_dirs_deleted: list[str] = field(default_factory=list)
    dry_run: bool = False


def vacuum(location: TableLocation, retention_hours: float, dry_run: bool = False) -> VacuumResult:
    """Delete unreferenced data files older than `retention_hours`.

    Covers files removed by overwrites (past the retention, so time travel inside it still
    works), files of writes that crashed before their commit, and Spark's `_temporary`
    leftovers of a write that died mid-job.
    """
    table = deltalog.open_table(location)
    if table is None:
        raise TableNotFoundError(str(location), "does not exist")
    deleted = table.vacuum(
        retention_hours=int(retention_hours),
        dry_run=dry_run,
        enforce_retention_duration=False,
        full=True,
    )
    result = VacuumResult(str(location), files_deleted=sorted(deleted), dry_run=dry_run)
    result.staging_dirs_deleted = _clean_staging(location, table, retention_hours, dry_run)
    log.info(
        "%s: vacuum%s removed %d file(s) and %d abandoned write folder(s) older than %sh",
        location, " (dry run)" if dry_run else "", len(result.files_deleted),
        len(result.staging_dirs_deleted), retention_hours,
    )
    return result


def _clean_staging(location: TableLocation, table, retention_hours: float, dry_run: bool) -> list[str]:
    """Delete `write-*` folders that hold no live file and were last touched before the cutoff."""
    import pyarrow as pa

    fs, base = filesystem_for(location)
    live_dirs = {p.split("/", 1)[0] for p in pa.table(table.get_add_actions(flatten=True)).column("path").to_pylist()}
    cutoff = time.time() - retention_hours * 3600
    removed = []
    for info in fs.get_file_info(pafs.FileSelector(base, recursive=False, allow_not_found=True)):
        name = info.path.rsplit("/", 1)[-1]
        if info.type != pafs.FileType.Directory or not name.startswith(STAGING_PREFIX) or name in live_dirs:
            continue
        files = fs.get_file_info(pafs.FileSelector(info.path, recursive=True))
        newest = max((f.mtime.timestamp() for f in files if f.mtime), default=0.0)
        if newest > cutoff:
            continue
        if not dry_run:
            fs.delete_dir(info.path)
        removed.append(name)
    return sorted(removed)
