"""Multiclass classification metrics that agree with scikit-learn (`average="weighted"`).

Spark aggregates the predictions to a confusion matrix, one row per (label, prediction) pair; that
matrix (bounded by the number of classes squared) is the only thing collected, and every metric
is computed from it on the driver.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import BooleanType, NumericType, StringType

from pipelines.evaluate.inputs import EvaluationInputError, col, column_type, weight
from pipelines.evaluate.result import Evaluation

log = logging.getLogger(__name__)


def _class_type(predictions: DataFrame, label_col: str, prediction_col: str, table: str) -> str:
    """The common type both columns are compared in: double for numbers, string for strings."""
    roles = ((label_col, "label"), (prediction_col, "prediction"))
    types = [column_type(predictions, c, table, role) for c, role in roles]
    if all(isinstance(t, (NumericType, BooleanType)) for t in types):
        return "double"
    if all(isinstance(t, StringType) for t in types):
        return "string"
    raise EvaluationInputError(
        table,
        f"label {label_col!r} ({types[0].simpleString()}) and prediction {prediction_col!r} "
        f"({types[1].simpleString()}) must both be numeric or both be strings",
    )


def confusion_matrix(
    predictions: DataFrame,
    label_col: str = "label",
    prediction_col: str = "prediction",
    weight_col: str | None = None,
    max_classes: int = 200,
    table: str = "predictions",
) -> pd.DataFrame:
    """Rows: actual class, columns: predicted class, values: row counts (or weight sums); sorted labels."""
    cast = _class_type(predictions, label_col, prediction_col, table)
    y, p = col(label_col).cast(cast).alias("y"), col(prediction_col).cast(cast).alias("p")
    frame = predictions.select(y, p, weight(predictions, weight_col, table).alias("w"))
    complete = F.col("y").isNotNull() & F.col("p").isNotNull()
    cells = (
        frame.groupBy("y", "p")
        .agg(F.sum(F.when(complete, F.col("w"))).alias("w"), F.count(F.when(~complete, 1)).alias("skipped"),
             F.count(F.when(complete & (F.col("w").isNull() | F.isnan("w") | (F.col("w") < 0)), 1)).alias("bad_w"))
        .limit(max_classes * max_classes + 2)
        .collect()  # bounded: at most max_classes^2 (+ null) cells
    )
    skipped = sum(r["skipped"] for r in cells)
    bad_w = sum(r["bad_w"] for r in cells)
    cells = [r for r in cells if r["y"] is not None and r["p"] is not None]
    if len(cells) > max_classes * max_classes:
        raise EvaluationInputError(
            table, f"more than {max_classes} classes in {label_col!r}/{prediction_col!r} (max_classes)"
        )
    if not cells:
        raise EvaluationInputError(
            table, f"no rows with a non-null label {label_col!r} and prediction {prediction_col!r}"
        )
    if bad_w:
        raise EvaluationInputError(
            table, f"weight column {weight_col!r} must be non-null and >= 0; {bad_w} row(s) are not"
        )
    if skipped:
        log.warning("%s: skipped %d row(s) with a null %r or %r", table, skipped, label_col, prediction_col)
    labels = sorted({r["y"] for r in cells} | {r["p"] for r in cells})
    if len(labels) > max_classes:
        raise EvaluationInputError(
            table, f"more than {max_classes} classes in {label_col!r}/{prediction_col!r} ({len(labels)}; max_classes)"
        )
    matrix = pd.DataFrame(0.0, index=pd.Index(labels, name="actual"), columns=pd.Index(labels, name="predicted"))
    for r in cells:
        matrix.loc[r["y"], r["p"]] += r["w"]
    return matrix


def per_class_scores(matrix: pd.DataFrame) -> pd.DataFrame:
    """Precision, recall, F1 and support per class; 0 where undefined (scikit-learn's zero_division=0)."""
    m = matrix.to_numpy()
    tp, predicted, support = np.diag(m), m.sum(axis=0), m.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        denominator = predicted + support  # 2 TP + FP + FN
        f1 = np.where(denominator > 0, 2 * tp / denominator, 0.0)
    return pd.DataFrame(
        {"precision": precision, "recall": recall, "f1": f1, "support": support}, index=matrix.index.rename("class")
    )


def multiclass_metrics(
    predictions: DataFrame,
    label_col: str = "label",
    prediction_col: str = "prediction",
    weight_col: str | None = None,
    max_classes: int = 200,
    table: str = "predictions",
) -> Evaluation:
    """Accuracy, weighted (by support) and macro precision / recall / F1, confusion matrix.

    Classes are the union of the labels and the predictions (as in scikit-learn); a class that is
    predicted but never true has weight 0 in the weighted averages. Rows with a null label or
    prediction are skipped (logged).
    """
    matrix = confusion_matrix(predictions, label_col, prediction_col, weight_col, max_classes, table)
    scores = per_class_scores(matrix)
    total = float(scores["support"].sum())
    share = scores["support"] / total
    metrics = {
        ("rows" if weight_col is None else "total_weight"): total,
        "classes": float(len(scores)),
        "accuracy": float(np.trace(matrix.to_numpy()) / total),
        "weighted_precision": float((share * scores["precision"]).sum()),
        "weighted_recall": float((share * scores["recall"]).sum()),
        "weighted_f1": float((share * scores["f1"]).sum()),
        "macro_f1": float(scores["f1"].mean()),
    }
    evaluation = Evaluation(
        kind="multiclass",
        metrics=metrics,
        tables={"confusion": matrix, "per_class": scores},
        params={"label_col": label_col, "prediction_col": prediction_col, "weight_col": weight_col, "table": table},
    )
    log.info("%s: %s", table, evaluation.summary())
    return evaluation
