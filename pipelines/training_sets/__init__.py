"""Training sets: purchase propensity (point-in-time, labelled, time-split) and implicit feedback."""

from pipelines.training_sets.propensity import TrainingSetError

__all__ = ["TrainingSetError"]
