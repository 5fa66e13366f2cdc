"""SparkSession factory: one place that turns config into a session."""

from pipelines.spark.session import (
    build_session,
    delta_extension_loaded,
    session_jars,
    session_settings,
)

__all__ = ["build_session", "delta_extension_loaded", "session_jars", "session_settings"]
