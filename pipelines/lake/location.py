"""Resolve logical table names to URIs and storage options for Spark, delta-rs and pyarrow.

`bronze.events` under the root `s3a://lake/prod` is `s3a://lake/prod/bronze/events` for Spark
and `s3://lake/prod/bronze/events` for delta-rs and pyarrow; a local root stays a plain path for
delta-rs and becomes a `file:` URI for Spark.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from pipelines.config.models import LakeConfig, StorageConfig

_TABLE_NAME = re.compile(r"^[A-Za-z0-9_]+\.[A-Za-z0-9_]+$")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


@dataclass(frozen=True)
class TableLocation:
    """Where one table lives, in the spelling each engine wants."""

    name: str
    """Logical name (`layer.name`) or the path the caller gave."""
    uri: str
    """URI for delta-rs and pyarrow: an absolute local path, `s3://...` or `hdfs://...`."""
    spark_uri: str
    """URI for Spark: `file:/...`, `s3a://...` or `hdfs://...`."""
    storage_options: dict[str, str] = field(default_factory=dict, repr=False)
    """delta-rs storage options (credentials never appear in repr)."""

    @property
    def is_local(self) -> bool:
        return not _SCHEME.match(self.uri)

    def child(self, relative: str) -> str:
        """URI (delta-rs/pyarrow spelling) of a path inside the table."""
        return f"{self.uri.rstrip('/')}/{relative.lstrip('/')}"

    def spark_child(self, relative: str) -> str:
        """URI (Spark spelling) of a path inside the table."""
        return f"{self.spark_uri.rstrip('/')}/{relative.lstrip('/')}"

    def __str__(self) -> str:
        return f"{self.name} ({self.uri})" if self.name != self.uri else self.uri


def scheme_of(uri: str) -> str:
    match = _SCHEME.match(uri)
    if match:
        return match.group(1).lower()
    return "file"


def table_location(lake: LakeConfig, name: str) -> TableLocation:
    """Location of the logical table `layer.name` under the lakehouse root."""
    if not _TABLE_NAME.match(name):
        raise ValueError(f"table name {name!r} must look like '<layer>.<name>'")
    layer, table = name.split(".")
    root = lake.root.rstrip("/")
    return _location(name, f"{root}/{layer}/{table}", lake.storage)


def path_location(lake: LakeConfig, path: str) -> TableLocation:
    """Location of a table given by path or URI (absolute, or relative to the current directory)."""
    return _location(path, path, lake.storage)


def _location(name: str, raw: str, storage: StorageConfig) -> TableLocation:
    scheme = scheme_of(raw)
    if scheme == "file":
        local = urlparse(raw).path if raw.startswith("file:") else raw
        path = str(Path(local).resolve())
        # Hadoop's Path takes the string as it is, with no percent-decoding: `as_uri()` would turn a
        # space into a folder literally named `my%20lake`.
        return TableLocation(name=name, uri=path, spark_uri=f"file://{path}", storage_options={})
    if scheme in ("s3", "s3a", "s3n"):
        rest = raw.split("://", 1)[1]
        return TableLocation(
            name=name, uri=f"s3://{rest}", spark_uri=f"s3a://{rest}", storage_options=s3_storage_options(storage)
        )
    return TableLocation(name=name, uri=raw, spark_uri=raw, storage_options={})


def s3_storage_options(storage: StorageConfig) -> dict[str, str]:
    """delta-rs (object_store) options for S3 from the config."""
    options: dict[str, str] = {}
    if storage.endpoint:
        options["AWS_ENDPOINT_URL"] = storage.endpoint
    if storage.region:
        options["AWS_REGION"] = storage.region
    if storage.access_key_id:
        options["AWS_ACCESS_KEY_ID"] = storage.access_key_id
    if storage.secret_access_key:
        options["AWS_SECRET_ACCESS_KEY"] = storage.secret_access_key
    if storage.session_token:
        options["AWS_SESSION_TOKEN"] = storage.session_token
    if storage.allow_http:
        options["AWS_ALLOW_HTTP"] = "true"
    options["AWS_VIRTUAL_HOSTED_STYLE_REQUEST"] = "false" if storage.path_style else "true"
    if storage.conditional_put:
        options["AWS_CONDITIONAL_PUT"] = storage.conditional_put
    return options
