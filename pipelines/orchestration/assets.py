"""Airflow Assets for lakehouse tables: the DAGs that write a table declare it as an outlet, the
DAGs that read it schedule on it or list it as an inlet.

The URI is computed here from `lake.root` without importing the lake layer (which loads pyspark
and delta-rs), to keep DAG parsing light; it spells the table's location the way
`pipelines.lake.location` does: `file:///abs/path/<layer>/<table>` or `s3://bucket/.../<layer>/<table>`.
"""

from __future__ import annotations

import re
from pathlib import Path

from pipelines.config import ClickmlConfig

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def table_uri(config: ClickmlConfig, table: str) -> str:
    """The Asset URI of the logical table `layer.name`."""
    layer, name = table.split(".", 1)
    root = config.lake.root.rstrip("/")
    match = _SCHEME.match(root)
    scheme = match.group(1).lower() if match else "file"
    if scheme == "file":
        local = root[len("file:"):].lstrip("/") if root.startswith("file:") else root
        local = "/" + local if root.startswith("file:") else local
        return (Path(local).resolve() / layer / name).as_uri()
    if scheme in ("s3a", "s3n"):
        root = "s3://" + root.split("://", 1)[1]
    return f"{root}/{layer}/{name}"


def table_asset(config: ClickmlConfig, table: str):
    """The Asset of a table: name is the logical name, URI its location, group `lakehouse`."""
    from airflow.sdk import Asset

    return Asset(name=table, uri=table_uri(config, table), group="lakehouse")
