"""Landing-zone sources described by config (`conf/sources/<name>.yaml`), not code."""

from pipelines.sources.models import (
    CANONICAL_EVENT_TYPES,
    CANONICAL_FIELDS,
    KafkaOptions,
    SourceConfig,
    available_sources,
    load_source,
)

__all__ = ["CANONICAL_EVENT_TYPES", "CANONICAL_FIELDS", "KafkaOptions", "SourceConfig", "available_sources", "load_source"]
