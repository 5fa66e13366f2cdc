"""The evaluate stage: metrics that agree with scikit-learn, computed in Spark, and PNG plots.

Predictions stay distributed; only bounded results (totals, curve points, deciles, calibration
bins, confusion matrices) reach the driver. See docs/evaluation.md for the definitions.
"""

from pipelines.evaluate.binary import BinaryEvaluation, binary_metrics, choose_threshold
from pipelines.evaluate.inputs import EvaluationInputError
from pipelines.evaluate.multiclass import confusion_matrix, multiclass_metrics
from pipelines.evaluate.plots import (
    plot_calibration,
    plot_feature_importance,
    plot_lift,
    plot_pr,
    plot_roc,
    write_plots,
)
from pipelines.evaluate.ranking import flatten_recommendations, ranking_metrics
from pipelines.evaluate.regression import regression_metrics
from pipelines.evaluate.result import Evaluation

__all__ = [
    "BinaryEvaluation",
    "Evaluation",
    "EvaluationInputError",
    "binary_metrics",
    "choose_threshold",
    "confusion_matrix",
    "flatten_recommendations",
    "multiclass_metrics",
    "plot_calibration",
    "plot_feature_importance",
    "plot_lift",
    "plot_pr",
    "plot_roc",
    "ranking_metrics",
    "regression_metrics",
    "write_plots",
]
