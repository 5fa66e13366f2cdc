"""Landing-zone sources described by config (`conf/sources/<name>.yaml`), not code."""

from pipelines.sources.models import (
    CANONICAL_EVENT_TYPES,
    CANONICAL_FIELDS,
    SourceConfig,
    load_source,
    available_sources,
)

__all__ = ["CANONICAL_EVENT_TYPES", "CANONICAL_FIELDS", "SourceConfig", "available_sources", "load_source"]
