"""Logging set-up for commands and jobs: timestamps, logger names, one line per event."""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def configure_logging(level: str = "INFO") -> None:
    """Send `pipelines.*` logs to stderr at `level`; third-party loggers stay at WARNING."""
    root = logging.getLogger()
    if not any(getattr(h, "_clickml", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(FORMAT, "%H:%M:%S"))
        handler._clickml = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("pipelines").setLevel(level)
    logging.getLogger("py4j").setLevel(logging.WARNING)
