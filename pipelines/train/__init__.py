"""Model training: any tabular table described by config -> Spark ML pipelines, evaluated,
logged to MLflow, registered and promoted (champion/challenger)."""

from pipelines.train.data import TrainingDataError
from pipelines.train.estimators import ModelSpecError
from pipelines.train.preprocess import FeatureSpecError
from pipelines.train.stage import TrainingError
from pipelines.train.tracking import TrackingError

TrainError = (TrainingDataError, ModelSpecError, FeatureSpecError, TrainingError, TrackingError)
"""Every error a misconfigured or impossible training job raises (for `except TrainError`)."""

__all__ = ["FeatureSpecError", "ModelSpecError", "TrainError", "TrainingDataError", "TrainingError", "TrackingError"]
