"""The Delta transaction log read through delta-rs: snapshots, protocol checks, history.

A reader only: every table is written by delta-spark (`pipelines.lake.delta_spark`). This module
never touches Spark, so tables can be inspected from any Python process (`clickml lake files`,
the deep-learning shard reader, tests that check tables independently of Spark), on local disk,
S3 and HDFS alike.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

import pyarrow as pa
from deltalake import DeltaTable
from deltalake.exceptions import DeltaError
from deltalake.exceptions import TableNotFoundError as RsTableNotFoundError

from pipelines.lake.errors import LakeError, TableNotFoundError, UnsupportedTableError
from pipelines.lake.location import TableLocation

log = logging.getLogger(__name__)

WriteMode = Literal["append", "overwrite", "overwrite_partitions"]
WRITE_MODES: tuple[str, ...] = ("append", "overwrite", "overwrite_partitions")

# Reader features whose tables this layer reads correctly: it resolves the file list through
# delta-rs and reads whole Parquet files, so anything that changes how rows inside a file are
# interpreted (deletion vectors, column mapping, type widening, ...) is refused.
SUPPORTED_READER_FEATURES = frozenset({"timestampNtz", "v2Checkpoint", "vacuumProtocolCheck"})
COMMIT_WRITE_ID = "clickml.write_id"
COMMIT_ROWS = "clickml.rows_added"
COMMIT_OPERATION = "clickml.operation"


@dataclass(frozen=True)
class Txn:
    """An application transaction: commits with an (app_id, version) already recorded are no-ops."""

    app_id: str
    version: int

    @classmethod
    def for_batch(cls, app_id: str, batch_id: str) -> Txn:
        """One transaction per batch id: re-running the same batch commits nothing."""
        return cls(app_id=f"{app_id}/{batch_id}", version=0)


@dataclass
class CommitResult:
    """What a write did."""

    table: str
    version: int | None
    """Table version written (None when the commit was skipped)."""
    files_added: int = 0
    files_removed: int = 0
    rows_added: int = 0
    skipped: bool = False
    """True when the transaction id had already been committed (idempotent re-run)."""
    attempts: int = 1
    write_id: str = ""


@dataclass
class SnapshotFile:
    """One data file of a snapshot."""

    uri: str
    """Absolute URI (delta-rs spelling)."""
    path: str
    """Path relative to the table root, decoded."""
    partition_values: dict[str, Any] = field(default_factory=dict)
    """Typed partition values."""
    size: int = 0
    num_records: int | None = None


@dataclass
class Snapshot:
    """A resolved table version: its schema, partitioning and exact file list."""

    location: TableLocation
    version: int
    schema: pa.Schema
    partition_columns: list[str]
    files: list[SnapshotFile]


@dataclass(frozen=True)
class HistoryEntry:
    """One commit of a table, for lineage."""

    version: int
    timestamp_ms: int
    operation: str
    rows_added: int | None
    write_id: str | None
    parameters: dict[str, Any]


def open_table(location: TableLocation, version: int | None = None) -> DeltaTable | None:
    """The table at `version` (latest when None); None when there is no Delta table there."""
    if not DeltaTable.is_deltatable(location.uri, storage_options=location.storage_options or None):
        if version is not None:
            raise TableNotFoundError(str(location), "is not a Delta table (no _delta_log)")
        return None
    try:
        return DeltaTable(location.uri, version=version, storage_options=location.storage_options or None)
    except (RsTableNotFoundError, DeltaError, OSError) as exc:
        if version is not None:
            raise TableNotFoundError(str(location), f"has no version {version}: {exc}") from exc
        raise LakeError(str(location), f"cannot be opened: {exc}") from exc


def check_readable(table: DeltaTable, location: TableLocation) -> None:
    """Refuse tables that use Delta features this layer cannot read correctly."""
    protocol = table.protocol()
    reader_features = set(protocol.reader_features or [])
    unsupported = sorted(reader_features - SUPPORTED_READER_FEATURES)
    if protocol.min_reader_version > 3:
        raise UnsupportedTableError(str(location), f"needs Delta reader version {protocol.min_reader_version}; this reader supports up to 3")
    mapping = (table.metadata().configuration or {}).get("delta.columnMapping.mode", "none")
    if mapping and mapping != "none" and "columnMapping" not in unsupported:
        unsupported.append("columnMapping")
    if unsupported:
        raise UnsupportedTableError(
            str(location),
            f"uses Delta reader feature(s) {', '.join(sorted(unsupported))} which this reader does not support "
            f"(supported: {', '.join(sorted(SUPPORTED_READER_FEATURES))}); read it with Spark and the Delta jars, "
            "or rewrite it without those features",
        )


def table_schema(table: DeltaTable) -> pa.Schema:
    return pa.schema(table.schema().to_arrow())


def snapshot(
    location: TableLocation,
    version: int | None = None,
    partition_filters: Sequence[tuple[str, str, Any]] | None = None,
) -> Snapshot:
    """Resolve a table version to its schema and exact list of live files."""
    table = open_table(location, version)
    if table is None:
        raise TableNotFoundError.missing(location)
    check_readable(table, location)
    partition_columns = list(table.metadata().partition_columns)
    actions = pa.table(table.get_add_actions(flatten=True))
    files: list[SnapshotFile] = []
    if actions.num_rows:
        wanted = None
        if partition_filters:
            wanted = set(_filtered_paths(table, location, partition_filters))
        columns = actions.to_pydict()
        for i, raw_path in enumerate(columns["path"]):
            path = _decode(raw_path)
            if wanted is not None and _match_key(raw_path) not in wanted:
                continue
            values = {c: columns[f"partition.{c}"][i] for c in partition_columns}
            records = columns.get("num_records", [None] * actions.num_rows)[i]
            files.append(
                SnapshotFile(
                    uri=location.child(path),
                    path=path,
                    partition_values=values,
                    size=int(columns["size_bytes"][i]),
                    num_records=None if records is None else int(records),
                )
            )
    return Snapshot(
        location=location,
        version=table.version(),
        schema=table_schema(table),
        partition_columns=partition_columns,
        files=files,
    )


def _filtered_paths(table: DeltaTable, location: TableLocation, filters: Sequence[tuple[str, str, Any]]) -> set[str]:
    """Match keys (`_match_key`) of the files that `filters` keep, relative to the table root."""
    root = _match_key(location.uri).rstrip("/") + "/"
    keys = set()
    for uri in table.file_uris(file_pruning_predicate=list(filters)):
        plain = _match_key(uri)
        if plain.startswith("file://") and not root.startswith("file://"):
            plain = plain[len("file://"):]
        if not plain.startswith(root):
            raise LakeError(str(location), f"delta-rs listed {uri}, which is not under the table root")
        keys.add(plain[len(root):])
    return keys


def _match_key(path: str) -> str:
    """`path` with every percent-escape undone: only to match paths, never to open them.

    delta-rs escapes a local table root in `file_uris` but not in the add paths, and decodes the
    add paths once (a partition folder Spark named `city=New York%2FNY` keeps its `%2F`), so the
    two sides are compared fully decoded."""
    previous = None
    while previous != path:
        previous, path = path, _decode(path)
    return path


def _decode(path: str) -> str:
    from urllib.parse import unquote

    return unquote(path)


def history(location: TableLocation, limit: int | None = None) -> list[HistoryEntry]:
    """Commits newest first: version, time, operation, rows added, clickml write id."""
    table = open_table(location)
    if table is None:
        raise TableNotFoundError(str(location), "does not exist")
    entries = []
    for commit in table.history(limit):
        metrics = commit.get("operationMetrics") or {}
        rows = commit.get(COMMIT_ROWS)
        if rows is None:
            rows = metrics.get("num_added_rows", metrics.get("numOutputRows"))
        operation = commit.get(COMMIT_OPERATION) or commit.get("operation", "UNKNOWN")
        entries.append(
            HistoryEntry(
                version=int(commit["version"]),
                timestamp_ms=int(commit.get("timestamp", 0)),
                operation=str(operation),
                rows_added=None if rows is None else int(rows),
                write_id=write_id_of(commit),
                parameters=dict(commit.get("operationParameters") or {}),
            )
        )
    return entries


def write_id_of(commit: dict[str, Any]) -> str | None:
    """Our write id in a commitInfo: a key of its own (delta-rs commits) or inside the JSON
    `userMetadata` (Delta Spark commits, `option("userMetadata", ...)`)."""
    if commit.get(COMMIT_WRITE_ID):
        return str(commit[COMMIT_WRITE_ID])
    metadata = commit.get("userMetadata")
    if isinstance(metadata, str) and metadata.startswith("{"):
        try:
            value = json.loads(metadata).get(COMMIT_WRITE_ID)
        except ValueError:
            return None
        return None if value is None else str(value)
    return None


def _metric(metrics: dict[str, Any], *names: str) -> int:
    for name in names:
        if metrics.get(name) is not None:
            return int(metrics[name])  # Delta Spark writes its metrics as strings
    return 0


COMMIT_LOOKBACK = 100
"""Commits searched, newest first, for the one carrying a write id (others may land after ours)."""


def _find_commit(table: DeltaTable | None, write_id: str) -> dict[str, Any] | None:
    """The commitInfo carrying `write_id` among the last `COMMIT_LOOKBACK` commits, if any."""
    if table is not None:
        for commit in table.history(COMMIT_LOOKBACK):
            if write_id_of(commit) == write_id:
                return commit
    return None


def _commit_result(location: TableLocation, commit: dict[str, Any], write_id: str) -> CommitResult:
    metrics = commit.get("operationMetrics") or {}
    return CommitResult(
        str(location), int(commit["version"]),
        files_added=_metric(metrics, "numFiles", "numAddedFiles", "num_added_files"),
        files_removed=_metric(metrics, "numRemovedFiles", "num_removed_files"),
        rows_added=_metric(metrics, "numOutputRows", "num_added_rows"),
        write_id=write_id,
    )


def spark_commit_result(location: TableLocation, write_id: str) -> CommitResult:
    """The result of a Delta Spark write, read back from its commit (found by our write id):
    version, rows and files added, files removed.

    Raises `LakeError` when the commit is not found (the write did not commit, or more than
    `COMMIT_LOOKBACK` commits landed after it)."""
    commit = _find_commit(open_table(location), write_id)
    if commit is None:
        raise LakeError(str(location), f"no commit with write id {write_id} among its last {COMMIT_LOOKBACK} commits")
    return _commit_result(location, commit, write_id)


def transaction_version(location: TableLocation, app_id: str) -> int | None:
    """The latest committed version of an application transaction, or None."""
    table = open_table(location)
    return None if table is None else table.transaction_version(app_id)
