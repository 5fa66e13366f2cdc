"""The ingest stage: landing files -> bronze.events, bronze.quarantine, bronze.ingest_audit."""

from pipelines.ingest.stage import AccountingError, IngestResult, batch_id_for_interval, run

__all__ = ["AccountingError", "IngestResult", "batch_id_for_interval", "run"]
