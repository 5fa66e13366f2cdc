"""Regression metrics that agree with scikit-learn: RMSE, MSE, MAE, R2 (also explicit-rating RMSE).

One aggregation pass (two with `weight_col`: the weighted mean label first, then the spread around
it); only one row of sums reaches the driver. The label variance uses Spark's numerically stable
`var_pop` rather than sum-of-squares differences.
"""

from __future__ import annotations

import logging
import math

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pipelines.evaluate.inputs import EvaluationInputError, numeric, weight
from pipelines.evaluate.result import Evaluation

log = logging.getLogger(__name__)


def regression_metrics(
    predictions: DataFrame,
    label_col: str = "label",
    prediction_col: str = "prediction",
    weight_col: str | None = None,
    table: str = "predictions",
) -> Evaluation:
    """RMSE, MSE, MAE and R2 of `prediction_col` against `label_col`.

    R2 = 1 - SS_res / SS_tot; for a constant label it is 1.0 if the predictions are exact and 0.0
    otherwise (scikit-learn's `force_finite=True`). Rows with a null label or prediction are skipped
    (logged); NaN values and negative weights raise `EvaluationInputError`.
    """
    y = numeric(predictions, label_col, table, "label").alias("y")
    p = numeric(predictions, prediction_col, table, "prediction").alias("p")
    w = weight(predictions, weight_col, table).alias("w")
    frame = predictions.select(y, p, w)
    complete = F.col("y").isNotNull() & F.col("p").isNotNull()
    kept = frame.where(complete)
    err = F.col("p") - F.col("y")
    invalid = F.isnan("y") | F.isnan("p") | F.col("w").isNull() | F.isnan("w") | (F.col("w") < 0)
    row = frame.agg(
        F.count(F.when(complete, 1)).alias("rows"),
        F.count(F.when(~complete, 1)).alias("skipped"),
        F.count(F.when(complete & invalid, 1)).alias("invalid"),
        F.sum(F.when(complete, F.col("w"))).alias("w"),
        F.sum(F.when(complete, F.col("w") * err * err)).alias("sse"),
        F.sum(F.when(complete, F.col("w") * F.abs(err))).alias("sae"),
        F.sum(F.when(complete, F.col("w") * F.col("y"))).alias("wy"),
        F.var_pop(F.when(complete, F.col("y"))).alias("var_y"),
    ).first()  # bounded: one row of sums
    if not row["rows"]:
        raise EvaluationInputError(
            table, f"no rows with a non-null label {label_col!r} and prediction {prediction_col!r}"
        )
    if row["invalid"]:
        raise EvaluationInputError(
            table, f"{row['invalid']} row(s) with NaN in {label_col!r}/{prediction_col!r} or an invalid weight"
        )
    if not row["w"] > 0:
        raise EvaluationInputError(table, f"the total weight in {weight_col!r} is zero")
    if row["skipped"]:
        log.warning("%s: skipped %d row(s) with a null %r or %r", table, row["skipped"], label_col, prediction_col)
    total = float(row["w"])
    if weight_col is None:
        ss_tot = float(row["var_y"]) * row["rows"]
    else:
        mean = row["wy"] / total
        ss_tot = float(kept.agg(F.sum(F.col("w") * (F.col("y") - mean) ** 2)).first()[0])  # bounded: one value
    sse = float(row["sse"])
    if ss_tot > 0:
        r2 = 1.0 - sse / ss_tot
    else:
        r2 = 1.0 if sse == 0 else 0.0
        log.warning("%s: %r is constant, R2 is set to %s", table, label_col, r2)
    metrics = {
        "rows": float(row["rows"]),
        "rmse": math.sqrt(sse / total),
        "mse": sse / total,
        "mae": float(row["sae"]) / total,
        "r2": r2,
        "mean_label": float(row["wy"]) / total,
    }
    if weight_col is not None:
        metrics["total_weight"] = total
    evaluation = Evaluation(
        kind="regression",
        metrics=metrics,
        params={"label_col": label_col, "prediction_col": prediction_col, "weight_col": weight_col, "table": table},
    )
    log.info("%s: %s", table, evaluation.summary())
    return evaluation
