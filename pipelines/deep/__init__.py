"""Distributed deep learning on Spark: a tabular deep model (embeddings + MLP, wide-and-deep)
trained data-parallel on executors with TorchDistributor or Horovod. See docs/deep_learning.md."""

from pipelines.deep.errors import (
    BackendUnavailableError,
    DeepLearningError,
    DeepParamError,
    WorkerFailedError,
)
from pipelines.deep.estimator import (
    DeepTabularClassifier,
    DeepTabularModel,
    DeepTabularRegressor,
    SnapshotSplit,
)

__all__ = [
    "BackendUnavailableError", "DeepLearningError", "DeepParamError", "DeepTabularClassifier", "DeepTabularModel",
    "DeepTabularRegressor", "SnapshotSplit", "WorkerFailedError",
]
