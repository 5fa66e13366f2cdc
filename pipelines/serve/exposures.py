"""Exposure events: one JSON line per decision of the model server, in the landing zone.

Each decision (which variant answered which user, with which model version) is written as a
clickstream-shaped JSON line into the landing folder of `serving.exposures.source`, in the
hourly arrival layout the ingest already reads (`date=YYYY-MM-DD/hour=HH/`):

    {"event_id": "exp-<request id>", "event_time": "...Z", "event_type": "exposure",
     "user_id": ..., "session_id": ..., "experiment_id": ..., "variant": ...,
     "model_version": ..., "request_id": ...}

Lines go to a hidden file (`.exposures-...jsonl.inprogress`, skipped by every listing of the
ingest) that is renamed to `exposures-<host>-<pid>-<n>.jsonl` when it is closed: every
`rotate_seconds`, when the arrival hour changes, and when the server stops. The ingest therefore
never reads a half-written file, and a file appears in the hour folder of its first line's
arrival. A crash loses at most the open file's lines (logged as the in-progress file it leaves).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass

import pyarrow.fs as pafs

from pipelines.config import ClickmlConfig
from pipelines.lake.filesystem import filesystem_for

log = logging.getLogger(__name__)

EVENT_TYPE = "exposure"
DEFAULT_ROTATE_SECONDS = 60.0


@dataclass(frozen=True)
class Exposure:
    """One decision of the server."""

    experiment_id: str
    variant: str
    user_id: str
    request_id: str
    model_version: str
    time: dt.datetime
    session_id: str | None = None

    def to_line(self) -> str:
        stamp = self.time.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{self.time.microsecond // 1000:03d}Z"
        return json.dumps({
            "event_id": f"exp-{self.request_id}",
            "event_time": stamp,
            "event_type": EVENT_TYPE,
            "user_id": self.user_id,
            "session_id": self.session_id or f"exp-{self.request_id}",
            "experiment_id": self.experiment_id,
            "variant": self.variant,
            "model_version": self.model_version,
            "request_id": self.request_id,
        }, separators=(",", ":"))


def new_request_id() -> str:
    return uuid.uuid4().hex


class ExposureLog:
    """Appends exposures to rotating files in one source's landing folder (thread-safe)."""

    def __init__(self, fs: pafs.FileSystem, base: str, rotate_seconds: float = DEFAULT_ROTATE_SECONDS,
                 clock=lambda: dt.datetime.now(dt.timezone.utc)):
        self.fs, self.base = fs, base.rstrip("/")
        self.rotate_seconds = rotate_seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._stem = f"exposures-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._seq = 0
        self._stream = None
        self._hour: str | None = None
        self._path: str | None = None
        self._opened = 0.0
        self.written = 0
        """Exposures written by this process (closed and open files)."""
        self.files = 0
        """Files closed (published to the ingest) by this process."""

    @classmethod
    def for_source(cls, config: ClickmlConfig, rotate_seconds: float = DEFAULT_ROTATE_SECONDS) -> ExposureLog:
        """The log of `serving.exposures.source`'s landing folder."""
        from pipelines.ingest.reader import source_location
        from pipelines.sources.models import load_source

        source = load_source(config.conf_dir, config.serving.exposures.source)
        if source.layout != "hourly" or source.format != "json":
            raise ValueError(
                f"serving.exposures.source: source {source.name!r} is {source.format}/{source.layout}; exposures are "
                "written as JSON lines in hourly arrival folders (a json source with layout: hourly)"
            )
        fs, base = filesystem_for(source_location(config, source))
        return cls(fs, base, rotate_seconds)

    def write(self, exposures: list[Exposure]) -> None:
        if not exposures:
            return
        with self._lock:
            now = self.clock()
            hour = now.strftime("date=%Y-%m-%d/hour=%H")
            if self._stream is not None and (hour != self._hour or time.monotonic() - self._opened >= self.rotate_seconds):
                self._close()
            if self._stream is None:
                self._open(hour)
            data = "".join(e.to_line() + "\n" for e in exposures).encode("utf-8")
            self._stream.write(data)
            self._stream.flush()
            self.written += len(exposures)

    def rotate(self) -> None:
        """Publish the open file now (e.g. on a timer, so a quiet server's lines still reach the ingest)."""
        with self._lock:
            if self._stream is not None and time.monotonic() - self._opened >= self.rotate_seconds:
                self._close()

    def close(self) -> None:
        with self._lock:
            self._close()

    def _open(self, hour: str) -> None:
        self._seq += 1
        folder = f"{self.base}/{hour}"
        self.fs.create_dir(folder, recursive=True)
        self._hour = hour
        self._path = f"{folder}/.{self._stem}-{self._seq:05d}.jsonl.inprogress"
        self._stream = self.fs.open_output_stream(self._path)
        self._opened = time.monotonic()

    def _close(self) -> None:
        if self._stream is None:
            return
        self._stream.close()
        final = f"{self.base}/{self._hour}/{self._stem}-{self._seq:05d}.jsonl"
        self.fs.move(self._path, final)
        self.files += 1
        log.info("exposures: published %s", final)
        self._stream = self._path = None
