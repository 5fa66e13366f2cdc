"""Read a small landing folder with plain Python and classify every line (test helper)."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import re
from dataclasses import dataclass, field

from pipelines.generate import events as ev

FOLDER = re.compile(r"^date=(\d{4}-\d{2}-\d{2})/hour=(\d{2})$")
FILE = re.compile(r"^part-\d{5}\.jsonl(\.gz)?$")


def parse_time(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass
class Line:
    text: str
    folder_hour: dt.datetime
    record: dict | None


@dataclass
class Landing:
    files: dict[str, bytes] = field(default_factory=dict)  # relative path -> decompressed content
    lines: list[Line] = field(default_factory=list)


def read_landing(root: str) -> Landing:
    landing = Landing()
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            relative = os.path.relpath(path, root)
            parent = os.path.dirname(relative)
            match = FOLDER.match(parent)
            assert match and FILE.match(name), f"unexpected file in the landing zone: {relative}"
            opener = gzip.open if name.endswith(".gz") else open
            with opener(path, "rb") as handle:
                content = handle.read()
            landing.files[relative] = content
            hour = dt.datetime.fromisoformat(f"{match.group(1)}T{match.group(2)}:00:00+00:00")
            for text in content.decode("utf-8").splitlines():
                try:
                    record = json.loads(text)
                except json.JSONDecodeError:
                    record = None
                landing.lines.append(Line(text, hour, record))
    return landing


def classify(landing: Landing) -> list[tuple[str, Line]]:
    """(kind, line) for every line: `valid` or one of the bad-record kinds."""
    seen: set[str] = set()
    result = []
    # the first arrival of a line is the original, later identical copies are duplicates
    for line in sorted(landing.lines, key=lambda l: (l.folder_hour, l.text)):
        record = line.record
        if record is None:
            kind = "malformed_json"
        elif any(f not in record for f in ev.REQUIRED_FIELDS):
            kind = "missing_field"
        elif not isinstance(record["event_time"], str) or isinstance(record.get("price"), str):
            kind = "wrong_type"
        elif record["event_type"] not in ev.EVENT_TYPES:
            kind = "unknown_event_type"
        elif parse_time(record["event_time"]) < line.folder_hour - dt.timedelta(days=300):
            kind = "too_old"
        elif parse_time(record["event_time"]) > line.folder_hour + dt.timedelta(days=1, hours=1):
            kind = "future"
        elif line.text in seen:
            kind = "duplicate"
        else:
            kind = "valid"
        seen.add(line.text)
        result.append((kind, line))
    return result
