"""The lake layer: Delta tables by logical name, written by delta-spark, read by Spark or delta-rs.

    lake = Lake(config, spark)
    lake.write(df, "bronze.events", mode="append", partition_by=["event_date"], txn=Txn.for_batch("ingest", batch))
    lake.read("bronze.events", version=3)
"""

from pipelines.lake.catalog import Lake
from pipelines.lake.delta_spark import VacuumResult
from pipelines.lake.deltalog import CommitResult, HistoryEntry, Snapshot, Txn
from pipelines.lake.errors import (
    CommitConflictError,
    LakeError,
    SchemaMismatchError,
    TableNotFoundError,
    UnsupportedTableError,
    WriterUnavailableError,
)
from pipelines.lake.location import TableLocation

__all__ = [
    "CommitConflictError",
    "CommitResult",
    "HistoryEntry",
    "Lake",
    "LakeError",
    "SchemaMismatchError",
    "Snapshot",
    "TableLocation",
    "TableNotFoundError",
    "Txn",
    "UnsupportedTableError",
    "VacuumResult",
    "WriterUnavailableError",
]
