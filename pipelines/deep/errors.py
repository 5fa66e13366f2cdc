"""Errors of the deep-model estimator; `DeepLearningError` is the base of all of them."""

from pipelines.train.errors import ModelSpecError, TrainError


class DeepLearningError(TrainError):
    """The deep model cannot be trained or scored as asked."""


class DeepParamError(DeepLearningError, ModelSpecError):
    """A parameter of the deep estimator is missing or has a value it cannot use."""


class WorkerFailedError(DeepLearningError, RuntimeError):
    """A training process failed (or timed out); the message names the backend and the cause."""


class BackendUnavailableError(DeepLearningError, RuntimeError):
    """The chosen distributed backend is not installed (e.g. Horovod without `make horovod`)."""
