"""Training data for the workers: each reads its own shard of Parquet files with Arrow.

A `ShardSource` is a list of Parquet files (a Delta snapshot's live files, or files Spark
executors staged) plus an optional row filter (e.g. `split == "train"`). Files are assigned to
ranks balanced by row count; with fewer files than ranks, or when the row filter leaves the
ranks' shards badly unbalanced (e.g. files that hold one split each), every rank reads all files
and keeps every world-th row. The driver only builds the file list (from the Delta log or a listing); the
rows go from storage straight to the workers.

Per epoch, a rank reads its files in a shuffled order through a shuffle buffer and cuts exactly
`steps` batches of `batch_size` rows, cycling through its shard when it is smaller than the
largest one, so every rank runs the same number of steps (DDP and Horovod need that).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipelines.deep.errors import DeepLearningError
from pipelines.deep.store import Folder
from pipelines.lake.filesystem import hidden_path

log = logging.getLogger(__name__)

READ_BATCH_ROWS = 65_536


@dataclass(frozen=True)
class Piece:
    """One Parquet file, relative to the source's root."""

    path: str
    rows: int | None = None
    partition_values: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class ShardSource:
    root: Folder
    pieces: tuple[Piece, ...]
    filter_column: str | None = None
    filter_values: tuple[Any, ...] = ()
    description: str = ""

    def with_filter(self, column: str | None, values: Sequence[Any]) -> ShardSource:
        return ShardSource(self.root, self.pieces, column, tuple(values), self.description)

    def assignment(self, rank: int, world: int) -> tuple[list[Piece], bool]:
        """(this rank's files, interleaved): files balanced by rows, or every file when too few."""
        if len(self.pieces) < world:
            return list(self.pieces), True
        loads = [0] * world
        owned: list[list[Piece]] = [[] for _ in range(world)]
        for piece in sorted(self.pieces, key=lambda p: (-(p.rows or 1), p.path)):
            target = min(range(world), key=lambda r: (loads[r], r))
            owned[target].append(piece)
            loads[target] += piece.rows or 1
        return owned[rank], False


def snapshot_source(snapshot, filter_column: str | None = None, filter_values: Sequence[Any] = ()) -> ShardSource:
    """The live files of a Delta snapshot (`pipelines.lake.Snapshot`), resolved by delta-rs."""
    location = snapshot.location
    pieces = tuple(
        Piece(f.path, f.num_records, tuple(sorted(f.partition_values.items())))
        for f in snapshot.files
        if filter_column not in f.partition_values or f.partition_values[filter_column] in filter_values
    )
    return ShardSource(Folder(location.uri, dict(location.storage_options)), pieces, filter_column, tuple(filter_values),
                       f"{location} version {snapshot.version}")


def folder_source(folder: Folder, description: str = "") -> ShardSource:
    """Every `*.parquet` file below a folder (e.g. what Spark executors staged there)."""
    import pyarrow.fs as pafs

    fs, base = folder.filesystem()
    infos = fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
    pieces = []
    for info in sorted(infos, key=lambda i: i.path):
        relative = info.path[len(base) + 1:]
        if info.type == pafs.FileType.File and relative.endswith(".parquet") and not hidden_path(relative):
            pieces.append(Piece(relative))
    return ShardSource(folder, tuple(pieces), description=description or folder.uri)


@dataclass
class ShardReader:
    """Reads one rank's shard; `columns` are the columns the model needs (features, label, weight)."""

    source: ShardSource
    rank: int
    world: int
    columns: Sequence[str]
    seed: int = 0
    shuffle_buffer: int = 10_000
    interleave: bool = False
    """Read every file and keep every world-th row (exact balance, `world` times the reads)."""
    _pieces: list[Piece] = field(init=False)
    _interleaved: bool = field(init=False)

    def __post_init__(self) -> None:
        self._pieces, self._interleaved = self.source.assignment(self.rank, self.world)
        if self.interleave:
            self._pieces, self._interleaved = list(self.source.pieces), True
        self._fs, self._base = self.source.root.filesystem()

    @property
    def interleaved(self) -> bool:
        return self._interleaved

    def assignment_pieces(self) -> list[Piece]:
        return list(self._pieces)

    def _read_piece(self, piece: Piece) -> Iterator[pa.Table]:
        partition = dict(piece.partition_values)
        path = f"{self._base}/{piece.path}"
        try:
            parquet = pq.ParquetFile(self._fs.open_input_file(path))
            names = set(parquet.schema_arrow.names)
            wanted = [c for c in self.columns if c in names]
            missing = [c for c in self.columns if c not in names and c not in partition]
            if missing:
                raise DeepLearningError(f"{path}: column(s) {missing} not in the file (columns: {sorted(names)})")
            filter_column = self.source.filter_column
            if filter_column and filter_column in names and filter_column not in wanted:
                wanted.append(filter_column)
            for batch in parquet.iter_batches(batch_size=READ_BATCH_ROWS, columns=wanted):
                table = pa.Table.from_batches([batch])
                if filter_column and filter_column in names:
                    table = table.filter(pc.is_in(table[filter_column], value_set=pa.array(self.source.filter_values)))
                for column, value in partition.items():
                    if column in self.columns:
                        table = table.append_column(column, pa.array([value] * table.num_rows))
                yield table.select(list(dict.fromkeys(self.columns)))  # one column order for every file
        except DeepLearningError:
            raise
        except (OSError, pa.ArrowException) as exc:
            raise DeepLearningError(f"rank {self.rank}: cannot read {path} ({self.source.description}): {exc}") from exc

    def _tables(self, order: Sequence[Piece]) -> Iterator[pa.Table]:
        seen = 0
        for piece in order:
            for table in self._read_piece(piece):
                if self._interleaved:
                    keep = (np.arange(seen, seen + table.num_rows) % self.world) == self.rank
                    seen += table.num_rows
                    table = table.filter(pa.array(keep))
                if table.num_rows:
                    yield table

    def _rows(self, order: Sequence[Piece]) -> Iterator[pd.DataFrame]:
        for table in self._tables(order):
            yield table.to_pandas()

    def count(self) -> int:
        """Rows in this rank's shard (reads only the filter column when there is a filter)."""
        if not self.source.filter_column and not self._interleaved and all(p.rows is not None for p in self._pieces):
            return sum(p.rows for p in self._pieces)  # type: ignore[misc]
        return sum(table.num_rows for table in self._tables(self._pieces))

    def scan(self) -> Iterator[pd.DataFrame]:
        """The shard once, in file order (validation)."""
        return self._rows(self._pieces)

    def batches(self, epoch: int, steps: int, batch_size: int) -> Iterator[pd.DataFrame]:
        """Exactly `steps` shuffled batches of `batch_size` rows for this epoch."""
        for chunk in self.table_chunks(epoch, steps, batch_size):
            for start in range(0, chunk.num_rows, batch_size):
                yield chunk.slice(start, batch_size).to_pandas()

    def table_chunks(self, epoch: int, steps: int, batch_size: int) -> Iterator[pa.Table]:
        """This epoch's `steps` batches, several at a time: shuffled Arrow tables of whole batches.

        Cutting each chunk into consecutive `batch_size` slices gives `batches` exactly; the
        training loop encodes a chunk from Arrow, moves it to the device at once and slices it there.
        """
        rng = np.random.default_rng([self.seed, epoch, self.rank])
        buffer: list[pa.Table] = []
        buffered = 0
        produced = 0

        def flush() -> pa.Table:
            """Shuffle the buffer; whole batches (no more than the steps left) go, the rest stays."""
            nonlocal buffer, buffered, produced
            try:
                rows = pa.concat_tables(buffer, promote_options="permissive")  # e.g. int32 and int64 files
            except pa.ArrowException as exc:
                raise DeepLearningError(f"rank {self.rank}: the files of {self.source.description} disagree on "
                                        f"the types of {list(self.columns)}: {exc}") from exc
            rows = rows.take(rng.permutation(rows.num_rows))
            full = (rows.num_rows // batch_size) * batch_size
            buffer, buffered = [rows.slice(full)], rows.num_rows - full
            count = min(full // batch_size, steps - produced)
            produced += count
            return rows.slice(0, count * batch_size)

        while produced < steps:
            order = [self._pieces[i] for i in rng.permutation(len(self._pieces))]
            empty_pass = True
            for table in self._tables(order):
                empty_pass = False
                buffer.append(table)
                buffered += table.num_rows
                if buffered < max(self.shuffle_buffer, batch_size):
                    continue
                yield flush()
                if produced == steps:
                    return
            if empty_pass:
                raise DeepLearningError(f"rank {self.rank}: no rows in its shard of {self.source.description}")
            # end of a pass: drain what is left before cycling to the next pass
            if buffered >= batch_size:
                yield flush()
