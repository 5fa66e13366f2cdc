"""Where validation results go: `<results_root>/<table>/v<version>-<time>.json` and the Data Docs site.

The results root is `validation.results_root`, by default `<lake.root>/_validation`. JSON
summaries are written to any root the lake layer can reach (local, S3, HDFS). The Data Docs site
and the GX stores behind it need a local (or mounted) folder: this GX build has filesystem store
backends only, so with a remote root the run logs where its summary went and skips the HTML.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from pipelines.config import ClickmlConfig
from pipelines.lake.filesystem import filesystem_for
from pipelines.lake.location import path_location, scheme_of

log = logging.getLogger(__name__)

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def results_root(config: ClickmlConfig) -> str:
    """The results root as configured: an absolute local path or a URI."""
    root = config.validation.results_root or f"{config.lake.root.rstrip('/')}/_validation"
    if _SCHEME.match(root):
        return root
    path = Path(root)
    return str(path if path.is_absolute() else (Path(config.project_root) / path).resolve())


def local_root(root: str) -> Path | None:
    """The root as a local folder, or None when it is remote."""
    if scheme_of(root) != "file":
        return None
    return Path(urlparse(root).path) if root.startswith("file:") else Path(root)


def run_stamp(moment: dt.datetime) -> str:
    """`20240101T101500.123Z`: sortable, unique per millisecond, safe in file names."""
    utc = moment.astimezone(dt.timezone.utc)
    return utc.strftime("%Y%m%dT%H%M%S") + f".{utc.microsecond // 1000:03d}Z"


def summary_relative_path(subject: str, version: int | None, moment: dt.datetime) -> str:
    """`<subject>/v<version>-<stamp>.json` (`<subject>/<stamp>.json` without a version)."""
    prefix = f"v{version}-" if version is not None else ""
    return f"{_safe(subject)}/{prefix}{run_stamp(moment)}.json"


def write_summary(config: ClickmlConfig, root: str, relative: str, payload: dict[str, Any]) -> str:
    """Write the JSON summary; returns its path (local) or URI (remote)."""
    return write_file(config, root, relative, json.dumps(payload, indent=2, sort_keys=False, default=str).encode("utf-8"))


def write_file(config: ClickmlConfig, root: str, relative: str, data: bytes) -> str:
    """Write `data` to `<root>/<relative>` (local, or any filesystem the lake layer reaches);
    returns its path (local) or URI (remote)."""
    local = local_root(root)
    if local is not None:
        target = local / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(target)  # readers never see a half-written summary
        return str(target)
    location = path_location(config.lake, f"{root.rstrip('/')}/{relative}")
    fs, path = filesystem_for(location)
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    with fs.open_output_stream(path) as out:
        out.write(data)
    return location.uri


def _safe(name: str) -> str:
    """A path segment: letters, digits, `.`, `_`, `-` kept, anything else replaced by `_`."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", name).strip(".")
    return cleaned or "_"
