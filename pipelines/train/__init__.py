"""Model training: any tabular table described by config -> Spark ML pipelines, evaluated,
logged to MLflow, registered and promoted (champion/challenger)."""

from pipelines.train.errors import (
    FeatureSpecError,
    ModelSpecError,
    TrackingError,
    TrainError,
    TrainingDataError,
    TrainingError,
)

__all__ = ["FeatureSpecError", "ModelSpecError", "TrackingError", "TrainError", "TrainingDataError", "TrainingError"]
