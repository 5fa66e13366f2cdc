"""pyarrow filesystems for lake and landing locations (plain-Python reads and listings).

Local disk and S3 use pyarrow's own filesystems; HDFS uses hdfs-native (a Rust client speaking
the NameNode and DataNode protocols, wrapped for pyarrow through fsspec), so no libhdfs, JVM or
Hadoop install is needed on the Python side.
"""

from __future__ import annotations

from urllib.parse import urlparse

import pyarrow.fs as pafs

from pipelines.lake.location import TableLocation, scheme_of


def filesystem_for(location: TableLocation) -> tuple[pafs.FileSystem, str]:
    """The pyarrow filesystem of a table and the table's path inside it."""
    scheme = scheme_of(location.uri)
    if scheme == "file":
        return pafs.LocalFileSystem(), location.uri
    if scheme == "s3":
        options = location.storage_options
        endpoint = options.get("AWS_ENDPOINT_URL")
        kwargs: dict[str, object] = {
            "access_key": options.get("AWS_ACCESS_KEY_ID"),
            "secret_key": options.get("AWS_SECRET_ACCESS_KEY"),
            "session_token": options.get("AWS_SESSION_TOKEN"),
            "region": options.get("AWS_REGION"),
            "force_virtual_addressing": options.get("AWS_VIRTUAL_HOSTED_STYLE_REQUEST") == "true",
        }
        if endpoint:
            parsed = urlparse(endpoint)
            kwargs["endpoint_override"] = parsed.netloc or parsed.path
            kwargs["scheme"] = parsed.scheme or "https"
        fs = pafs.S3FileSystem(**{k: v for k, v in kwargs.items() if v is not None})
        return fs, location.uri.split("://", 1)[1].rstrip("/")
    if scheme in ("hdfs", "viewfs"):
        return _hdfs(location.uri)
    fs, path = pafs.FileSystem.from_uri(location.uri)
    return fs, path.rstrip("/")


def _hdfs(uri: str) -> tuple[pafs.FileSystem, str]:
    from hdfs_native.fsspec import HdfsFileSystem, ViewfsFileSystem

    parsed = urlparse(uri)
    cls = ViewfsFileSystem if parsed.scheme == "viewfs" else HdfsFileSystem
    # skip_instance_cache: fsspec clears its instance cache in every forked child (an at-fork hook),
    # and dropping an hdfs-native client there blocks forever on its runtime's threads, which a
    # fork does not copy. Horovod forks to probe its extensions, so a deep-model fit in a process
    # that had read HDFS hung (tests/integration/lake/test_pipeline_on_hdfs.py).
    fs = cls(host=parsed.hostname, port=parsed.port, skip_instance_cache=True)
    return pafs.PyFileSystem(pafs.FSSpecHandler(fs)), (parsed.path or "/").rstrip("/") or "/"


def list_files(fs: pafs.FileSystem, base: str) -> list[pafs.FileInfo]:
    """All files below `base` (recursive); empty when `base` does not exist."""
    selector = pafs.FileSelector(base, recursive=True, allow_not_found=True)
    return [info for info in fs.get_file_info(selector) if info.type == pafs.FileType.File]


def hidden_path(relative_path: str) -> bool:
    """Whether Spark's file sources skip this path: a segment starting with `.`, or with `_`
    unless it is a `key=value` partition folder (`_shard=a` is data, `_temporary` is not)."""
    return any(
        part.startswith(".") or (part.startswith("_") and "=" not in part)
        for part in relative_path.split("/")
    )
