"""Helpers for lake tests: hand-made Delta logs (features no writer here produces)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path


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
