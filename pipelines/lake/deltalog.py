"""The Delta transaction log through delta-rs: snapshots, protocol checks, history and commits.

This module never touches Spark, so files written by anything (Spark executors, pyarrow, another
engine) can be committed, and tables can be inspected from any Python process.
"""

from __future__ import annotations

import json
import logging
import random
import time
import uuid
from urllib.parse import unquote
from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

import pyarrow as pa
from deltalake import DeltaTable, Schema
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError as RsTableNotFoundError
from deltalake.transaction import (
    AddAction,
    CommitProperties,
    RemoveAction,
    Transaction,
    create_table_with_add_actions,
)

from pipelines.lake.errors import (
    CommitConflictError,
    LakeError,
    SchemaMismatchError,
    TableNotFoundError,
    UnsupportedTableError,
)
from pipelines.lake.location import TableLocation
from pipelines.lake.stats import DataFile, partition_values_from_path

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
        raise TableNotFoundError(str(location), "does not exist (no Delta table at this location)")
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


def check_schema(
    location: TableLocation,
    existing: pa.Schema,
    incoming: pa.Schema,
    existing_partitions: Sequence[str],
    partition_by: Sequence[str],
) -> None:
    """Raise `SchemaMismatchError` unless `incoming` can be written into the table as it is."""
    if list(partition_by) != list(existing_partitions):
        raise SchemaMismatchError(
            str(location),
            f"is partitioned by [{', '.join(existing_partitions)}] but the write is partitioned by "
            f"[{', '.join(partition_by)}]",
        )
    have = {f.name: f for f in existing}
    got = {f.name: f for f in incoming}
    problems = []
    missing = [n for n in have if n not in got]
    extra = [n for n in got if n not in have]
    if missing:
        problems.append(f"missing column(s) {', '.join(missing)}")
    if extra:
        problems.append(f"unknown column(s) {', '.join(extra)}")
    for name in have.keys() & got.keys():
        if not _same_type(have[name].type, got[name].type):
            problems.append(f"column {name} is {have[name].type} in the table but {got[name].type} in the data")
    if problems:
        raise SchemaMismatchError(
            str(location),
            "data does not match the table schema: " + "; ".join(sorted(problems))
            + " (use mode='overwrite' with overwrite_schema=True to replace the schema)",
        )


def _same_type(a: pa.DataType, b: pa.DataType) -> bool:
    """Type equality modulo string/large_string, binary width and timestamp time zone spelling."""
    if a.equals(b):
        return True
    if pa.types.is_string(a) or pa.types.is_large_string(a) or pa.types.is_string_view(a):
        return pa.types.is_string(b) or pa.types.is_large_string(b) or pa.types.is_string_view(b)
    if pa.types.is_binary(a) or pa.types.is_large_binary(a):
        return pa.types.is_binary(b) or pa.types.is_large_binary(b)
    if pa.types.is_timestamp(a) and pa.types.is_timestamp(b):
        return (a.tz is None) == (b.tz is None)
    if pa.types.is_list(a) or pa.types.is_large_list(a):
        return (pa.types.is_list(b) or pa.types.is_large_list(b)) and _same_type(a.value_type, b.value_type)
    if pa.types.is_struct(a) and pa.types.is_struct(b):
        return a.num_fields == b.num_fields and all(
            a.field(i).name == b.field(i).name and _same_type(a.field(i).type, b.field(i).type) for i in range(a.num_fields)
        )
    if pa.types.is_map(a) and pa.types.is_map(b):
        return _same_type(a.key_type, b.key_type) and _same_type(a.item_type, b.item_type)
    return False


def commit(
    location: TableLocation,
    files: Sequence[DataFile],
    schema: pa.Schema,
    mode: WriteMode = "append",
    partition_by: Sequence[str] = (),
    txn: Txn | None = None,
    overwrite_schema: bool = False,
    retries: int = 5,
    backoff_seconds: float = 0.2,
    operation: str = "WRITE",
    write_id: str | None = None,
    before_commit: Any = None,
    replace_partitions: Sequence[dict[str, Any]] = (),
) -> CommitResult:
    """Commit already-written files to the table in one atomic Delta transaction.

    - `append` adds the files; `overwrite` replaces every file (and the schema when
      `overwrite_schema`); `overwrite_partitions` replaces only the partitions that `files` hold.
    - With `txn`, a transaction already recorded in the table makes this a no-op (`skipped`).
    - A commit that loses a race with a concurrent writer is re-planned against the new table
      version and retried up to `retries` times with jittered exponential back-off.
    - `replace_partitions` (with `overwrite_partitions`): partitions to empty even when `files`
      has no rows for them, e.g. `[{"event_date": "2024-01-02"}]`.
    - `before_commit(attempt)` is called just before each attempt (tests use it to inject races).
    """
    if mode not in WRITE_MODES:
        raise ValueError(f"mode must be one of {', '.join(WRITE_MODES)}, got {mode!r}")
    partition_by = list(partition_by)
    write_id = write_id or uuid.uuid4().hex
    rows = sum(f.num_records for f in files)
    adds = [
        AddAction(f.path, f.size, f.partition_values, f.modification_time, True, f.stats) for f in files
    ]
    written_partitions = {_partition_key(f.partition_values, partition_by) for f in files}
    written_partitions |= {tuple(_partition_string(p.get(c)) for c in partition_by) for p in replace_partitions}
    delta_schema = Schema.from_arrow(schema)
    metadata = {COMMIT_WRITE_ID: write_id, COMMIT_ROWS: str(rows), COMMIT_OPERATION: operation}

    for attempt in range(1, retries + 2):
        table = open_table(location)
        if table is not None and txn is not None:
            done = table.transaction_version(txn.app_id)
            if done is not None and done >= txn.version:
                ours = _find_commit(table, write_id) if attempt > 1 else None
                if ours is not None:  # an earlier attempt of this call landed, then raised
                    landed = _commit_result(location, ours, write_id)
                    log.info("%s: committed version %s (%s) by attempt %d", location, landed.version, mode, attempt - 1)
                    return CommitResult(str(location), landed.version, len(files), landed.files_removed, rows, False,
                                        attempt, write_id)
                log.info("%s: transaction %s v%s already committed; nothing to do", location, txn.app_id, txn.version)
                return CommitResult(str(location), None, skipped=True, attempts=attempt, write_id=write_id)
        properties = CommitProperties(
            custom_metadata=metadata,
            max_commit_retries=0,  # conflicts come back to this loop, which re-plans the commit
            app_transactions=[Transaction(txn.app_id, txn.version)] if txn else None,
        )
        if before_commit is not None:
            before_commit(attempt)
        try:
            if table is None:
                create_table_with_add_actions(
                    location.uri,
                    delta_schema,
                    adds,
                    mode="error",
                    partition_by=partition_by or None,
                    storage_options=location.storage_options or None,
                    commit_properties=properties,
                )
                removed = 0
            else:
                check_readable(table, location)
                existing_partitions = list(table.metadata().partition_columns)
                replacing = mode == "overwrite" and overwrite_schema
                if not replacing:
                    check_schema(location, table_schema(table), schema, existing_partitions, partition_by)
                if mode == "overwrite":
                    removed = pa.table(table.get_add_actions(flatten=True)).num_rows
                    table.create_write_transaction(
                        adds, "overwrite", delta_schema if replacing else table.schema(),
                        partition_by=partition_by if replacing else existing_partitions,
                        commit_properties=properties,
                    )
                else:
                    removes = _removes_for(table, written_partitions, partition_by) if mode == "overwrite_partitions" else []
                    removed = len(removes)
                    table.create_write_transaction(
                        adds + removes, "append", table.schema(), partition_by=existing_partitions,
                        commit_properties=properties,
                    )
        except CommitFailedError as exc:
            if attempt > retries:
                raise CommitConflictError(
                    str(location), f"commit still conflicted with concurrent writers after {attempt} attempts: {exc}"
                ) from exc
            delay = backoff_seconds * (2 ** (attempt - 1)) * (0.5 + random.random())
            log.warning("%s: concurrent commit (attempt %d/%d): %s; retrying in %.2fs", location, attempt, retries + 1, exc, delay)
            time.sleep(delay)
            continue
        except DeltaError as exc:
            if table is None and DeltaTable.is_deltatable(location.uri, storage_options=location.storage_options or None):
                # Another writer created the table first: plan again against it.
                if attempt > retries:
                    raise CommitConflictError(str(location), f"table creation raced with another writer: {exc}") from exc
                continue
            raise LakeError(str(location), f"commit failed: {exc}") from exc
        version = _committed_version(location, write_id)
        log.info(
            "%s: committed version %s (%s): %d file(s), %d row(s) added, %d file(s) removed",
            location, version, mode, len(files), rows, removed,
        )
        return CommitResult(str(location), version, len(files), removed, rows, False, attempt, write_id)
    raise AssertionError("unreachable")  # pragma: no cover


def _partition_key(values: dict[str, Any], partition_by: Sequence[str]) -> tuple[Any, ...]:
    return tuple(None if values.get(c) is None else str(values.get(c)) for c in partition_by)


def _removes_for(table: DeltaTable, partitions: set[tuple[Any, ...]], partition_by: Sequence[str]) -> list[RemoveAction]:
    """Remove actions for every live file in one of `partitions` (null-safe, exact)."""
    if not partitions:
        return []
    if not partition_by:
        raise ValueError("overwrite_partitions needs a partitioned table")
    # The folder names spell the values as the new files' keys do (Spark's strings); typed log
    # values re-stringified would not (a timestamp's zone, 1.0E20 against 1e+20).
    actions = pa.table(table.get_add_actions(flatten=False)).to_pylist()
    now = int(time.time() * 1000)
    removes = []
    for action in actions:
        path = unquote(action["path"])  # the log spells paths URI-encoded; delta-rs encodes a remove's again
        try:
            strings = partition_values_from_path(path, partition_by)
        except ValueError:  # not a hive-style path: the typed values, spelled as the log does
            values = action.get("partition") or {}
            strings = {c: _partition_string(values.get(c)) for c in partition_by}
        if tuple(strings[c] for c in partition_by) in partitions:
            removes.append(RemoveAction(path, True, now, int(action["size_bytes"]), strings))
    return removes


def _partition_string(value: Any) -> str | None:
    """A typed partition value as the Delta log spells it."""
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value).lower()
    if hasattr(value, "isoformat") and not isinstance(value, str):
        text = value.isoformat(sep=" ") if hasattr(value, "hour") else value.isoformat()
        return text
    return str(value)


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


def _committed_version(location: TableLocation, write_id: str) -> int:
    """The version our commit landed at (others may have committed right after it)."""
    table = open_table(location)
    assert table is not None
    commit = _find_commit(table, write_id)
    return table.version() if commit is None else int(commit["version"])


def transaction_version(location: TableLocation, app_id: str) -> int | None:
    """The latest committed version of an application transaction, or None."""
    table = open_table(location)
    return None if table is None else table.transaction_version(app_id)
