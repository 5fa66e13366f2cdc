"""Batch scoring: a registered model (by alias or version) scores the feature rows of an as-of date
into gold.predictions (binary jobs) or gold.recommendations (recommendation jobs)."""

from pipelines.score.stage import ScoreResult, ScoringError, run

__all__ = ["ScoreResult", "ScoringError", "run"]
