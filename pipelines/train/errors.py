"""Errors of the training stage; `TrainError` is the base of all of them."""


class TrainError(Exception):
    """A training job cannot run as configured (the message names the table, column or key)."""


class TrainingDataError(TrainError, ValueError):
    """The training table is missing, lacks a column, or cannot be split as configured."""


class FeatureSpecError(TrainError, ValueError):
    """A feature column is missing or has a type the pipeline cannot use."""


class ModelSpecError(TrainError, ValueError):
    """An unknown estimator parameter or a value the estimator rejects."""


class TrackingError(TrainError, RuntimeError):
    """MLflow cannot be configured as asked."""


class TrainingError(TrainError, RuntimeError):
    """A training job cannot run (unknown job or model)."""
