"""The checkpoint store: a folder under the lakehouse on local disk, HDFS or S3.

URIs: a local path or `file:` URI, `hdfs://...`, `s3://` / `s3a://` (credentials from the lake's
storage options). Workers write and read through pyarrow filesystems, so the same code runs on
the driver and on executors; the store is picklable (it keeps the URI and options, not a client).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from typing import Any

import pyarrow.fs as pafs


@dataclass(frozen=True)
class Folder:
    """A folder on local disk, HDFS or S3 that any process can open."""

    uri: str
    """The folder's URI (local path, `file:`, `hdfs://`, `s3://` or `s3a://`)."""
    storage_options: dict[str, str] = field(default_factory=dict, repr=False)
    """delta-rs style S3 options (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...) for s3 URIs."""

    def filesystem(self) -> tuple[pafs.FileSystem, str]:
        from pipelines.lake.filesystem import filesystem_for
        from pipelines.lake.location import TableLocation

        uri = self.uri
        if uri.startswith("s3a://"):
            uri = "s3://" + uri[len("s3a://"):]
        elif uri.startswith("file:"):
            uri = "/" + uri[len("file:"):].lstrip("/")
        location = TableLocation(name=uri, uri=uri, spark_uri=uri, storage_options=dict(self.storage_options))
        return filesystem_for(location)

    def child(self, name: str) -> Folder:
        return type(self)(f"{self.uri.rstrip('/')}/{name}", self.storage_options)

    def put(self, name: str, payload: bytes) -> str:
        """Write `name` atomically where the filesystem allows (temp file + move on local disk)."""
        fs, base = self.filesystem()
        fs.create_dir(base, recursive=True)
        path = f"{base}/{name}"
        if isinstance(fs, pafs.LocalFileSystem):
            tmp = f"{path}.tmp"
            with fs.open_output_stream(tmp) as out:
                out.write(payload)
            fs.move(tmp, path)
        else:  # object stores: a single PUT is atomic
            with fs.open_output_stream(path) as out:
                out.write(payload)
        return f"{self.uri.rstrip('/')}/{name}"

    def get(self, name: str) -> bytes:
        fs, base = self.filesystem()
        with fs.open_input_stream(f"{base}/{name}") as stream:
            return stream.read()

    def exists(self, name: str) -> bool:
        fs, base = self.filesystem()
        return fs.get_file_info(f"{base}/{name}").type == pafs.FileType.File

    def put_json(self, name: str, value: Any) -> str:
        return self.put(name, json.dumps(value, indent=2, default=str).encode())

    def get_json(self, name: str) -> Any:
        return json.loads(self.get(name))

    def put_torch(self, name: str, value: Any) -> str:
        import torch

        buffer = io.BytesIO()
        torch.save(value, buffer)
        return self.put(name, buffer.getvalue())

    def get_torch(self, name: str) -> Any:
        import torch

        return torch.load(io.BytesIO(self.get(name)), map_location="cpu", weights_only=False)


class CheckpointStore(Folder):
    """Where one training run keeps `best.pt` (the best epoch so far) and `history.json`."""
