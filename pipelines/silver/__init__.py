"""The silver stage: sessions rebuilt per user, bots removed, one row per session."""

from pipelines.silver.stage import SilverResult, run

__all__ = ["SilverResult", "run"]
