"""Landing files of a source for a data interval, listed without Spark (for the sensor)."""

from __future__ import annotations

import datetime as dt

from pipelines.config import ClickmlConfig


def count_landing_files(config: ClickmlConfig, source_name: str, start: dt.datetime, end: dt.datetime) -> int:
    """How many data files the source's arrival folders for [start, end) hold.

    The same listing as the ingest job's (`pipelines.ingest.reader.list_landing_files`), so the
    sensor waits for exactly the files the job will read. Imported here, at run time: it loads
    pyarrow and pyspark's Python modules (no JVM).
    """
    from pipelines.ingest.reader import list_landing_files
    from pipelines.sources import load_source

    source = load_source(config.conf_dir, source_name)
    return len(list_landing_files(config, source, start, end))
