"""Remove files no longer referenced by a table: old removed files and crashed writes."""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field
from urllib.parse import unquote

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
    leftovers of a write that died mid-job. delta-rs counts the retention in whole hours: a
    fraction is rounded up (0.5 keeps files for an hour; only 0 deletes every unreferenced file).
    """
    table = deltalog.open_table(location)
    if table is None:
        raise TableNotFoundError(str(location), "does not exist")
    hours = math.ceil(retention_hours)  # one retention for both: the write folders follow delta-rs
    deleted = table.vacuum(
        retention_hours=hours,
        dry_run=dry_run,
        enforce_retention_duration=False,
        full=True,
    )
    result = VacuumResult(str(location), files_deleted=sorted(deleted), dry_run=dry_run)
    result.staging_dirs_deleted = _clean_staging(location, table, hours, dry_run)
    log.info(
        "%s: vacuum%s removed %d file(s) and %d abandoned write folder(s) older than %sh",
        location, " (dry run)" if dry_run else "", len(result.files_deleted),
        len(result.staging_dirs_deleted), retention_hours,
    )
    return result


def _clean_staging(location: TableLocation, table, retention_hours: float, dry_run: bool) -> list[str]:
    """Delete `write-*` folders that hold no file of the latest version nor a file removed inside
    the retention (time travel reads those), and were last touched before the cutoff."""
    import pyarrow as pa

    fs, base = filesystem_for(location)
    cutoff = time.time() - retention_hours * 3600
    recent = _recently_removed_dirs(fs, base, table, cutoff)
    if recent is None:
        log.warning(
            "%s: a commit inside the %sh retention could not be read; abandoned write folders are kept this time",
            location, retention_hours,
        )
        return []
    live_paths = pa.table(table.get_add_actions(flatten=True)).column("path").to_pylist()
    keep = {unquote(p).split("/", 1)[0] for p in live_paths} | recent
    removed = []
    for info in fs.get_file_info(pafs.FileSelector(base, recursive=False, allow_not_found=True)):
        name = info.path.rsplit("/", 1)[-1]
        if info.type != pafs.FileType.Directory or not name.startswith(STAGING_PREFIX) or name in keep:
            continue
        files = fs.get_file_info(pafs.FileSelector(info.path, recursive=True))
        newest = max((f.mtime.timestamp() for f in files if f.mtime), default=0.0)
        if newest > cutoff:
            continue
        if not dry_run:
            fs.delete_dir(info.path)
        removed.append(name)
    return sorted(removed)


def _recently_removed_dirs(fs: pafs.FileSystem, base: str, table, cutoff: float) -> set[str] | None:
    """Top-level folders of the files that commits at or after `cutoff` removed: versions inside
    the retention still read them. Walks the commit files back from the latest; None when one it
    needs is missing (the log was cleaned further than the retention reaches)."""
    folders: set[str] = set()
    for version in range(table.version(), -1, -1):
        try:
            with fs.open_input_stream(f"{base}/_delta_log/{version:020d}.json") as stream:
                lines = stream.read().decode("utf-8").splitlines()
        except (FileNotFoundError, OSError):
            return None
        actions = [json.loads(line) for line in lines if line.strip()]
        info = next((a["commitInfo"] for a in actions if "commitInfo" in a), {})
        if info.get("timestamp") is not None and info["timestamp"] / 1000 < cutoff:
            return folders
        folders |= {unquote(a["remove"]["path"]).split("/", 1)[0] for a in actions if "remove" in a}
    return folders
