"""Exceptions of the lake layer. Every message names the table (logical name and URI)."""

from __future__ import annotations


class LakeError(Exception):
    """Base class: something went wrong reading or writing a lakehouse table."""

    def __init__(self, table: str, message: str):
        self.table = table
        super().__init__(f"table {table}: {message}")


class TableNotFoundError(LakeError):
    """The table (or the requested version of it) does not exist."""

    @classmethod
    def missing(cls, location) -> TableNotFoundError:
        """No Delta table at all at `location` (a `TableLocation`)."""
        return cls(str(location), "does not exist (no Delta table at this location)")


class SchemaMismatchError(LakeError):
    """The data written does not fit the table's schema or partitioning."""


class UnsupportedTableError(LakeError):
    """The table uses Delta features that this reader cannot honour (deletion vectors, ...)."""


class CommitConflictError(LakeError):
    """The commit kept conflicting with concurrent writers after all retries."""


class WriterUnavailableError(LakeError):
    """The configured writer cannot run here (e.g. delta-spark without the Delta jars)."""
