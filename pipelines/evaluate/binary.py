"""Binary classification metrics that agree with scikit-learn, computed in Spark.

The predictions are reduced to one row per distinct score (`ScoreTable`); every metric is then an
aggregate over that frame, and only bounded results reach the driver: one row of totals, at most
`curve_points + 1` curve points, 10 deciles, 10 calibration bins. Definitions (see
docs/evaluation.md): predicted positive iff score >= threshold; ROC AUC is the trapezoidal area over
distinct thresholds (= `roc_auc_score`); PR AUC is average precision, sum_n (R_n - R_{n-1}) P_n over
distinct thresholds (= `average_precision_score`); log loss clips probabilities to
[eps, 1 - eps], eps = 2.22e-16 (= `log_loss`); `base_rate_log_loss` is the log loss of predicting
the rows' own positive rate for every row. With `weight_col`, every sum is weighted
(= scikit-learn's `sample_weight`).
"""

from __future__ import annotations

import logging
import math
import sys
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from pipelines.evaluate.result import Evaluation
from pipelines.evaluate.scores import ScoreTable

log = logging.getLogger(__name__)

EPS = sys.float_info.epsilon
"""Log-loss clipping: numpy.finfo(float64).eps, as scikit-learn's `log_loss` uses."""
STRATEGIES = ("f1", "youden", "fixed")
CALIBRATION_BINS = 10
DECILES = 10


@dataclass
class BinaryEvaluation(Evaluation):
    """Binary metrics; tables `confusion`, `deciles`, `calibration`, `roc_curve`, `pr_curve`."""

    @property
    def threshold(self) -> float:
        return self.metrics["threshold"]

    @property
    def roc_curve(self) -> pd.DataFrame:
        return self.tables["roc_curve"]

    @property
    def pr_curve(self) -> pd.DataFrame:
        return self.tables["pr_curve"]

    @property
    def deciles(self) -> pd.DataFrame:
        return self.tables["deciles"]

    @property
    def calibration(self) -> pd.DataFrame:
        return self.tables["calibration"]

    @property
    def confusion(self) -> pd.DataFrame:
        return self.tables["confusion"]


def _threshold_aggregates(scores: ScoreTable, threshold: float | None) -> dict[str, Column]:
    """Struct aggregates over `cumulative`: the best thresholds, and the counts at `threshold`."""
    p, n = scores.summary.positives, scores.summary.negatives
    s, cum_pos, cum_neg = F.col("s"), F.col("cum_pos"), F.col("cum_neg")
    out: dict[str, Column] = {}
    # F1 at threshold s = 2 TP / (2 TP + FP + FN) = 2 cum_pos / (P + cum_pos + cum_neg); ties -> higher s.
    f1 = F.lit(2.0) * cum_pos / (F.lit(p) + cum_pos + cum_neg)
    out["best_f1"] = F.max(F.struct(f1.alias("value"), s.alias("s"), cum_pos.alias("tp"), cum_neg.alias("fp")))
    if p > 0 and n > 0:
        youden = cum_pos / F.lit(p) - cum_neg / F.lit(n)
        out["best_youden"] = F.max(F.struct(youden.alias("value"), s.alias("s")))
    if threshold is not None:
        # The smallest distinct score >= threshold carries the totals of all rows predicted positive.
        at = F.struct(s.alias("s"), cum_pos.alias("tp"), cum_neg.alias("fp"))
        out["at"] = F.min(F.when(s >= F.lit(float(threshold)), at))
    return out


def _pick(strategy: str, row, summary, fallback: float, table: str) -> float:
    """The threshold a strategy chose from the aggregates; `fallback` where it is undefined."""
    if strategy == "f1":
        if summary.positives > 0:
            return float(row["best_f1"]["s"])
        log.warning("%s: no positive labels, F1 is 0 at every threshold; using threshold %s", table, fallback)
        return fallback
    best = row["best_youden"] if "best_youden" in row.asDict() else None
    if best is None:
        log.warning("%s: only one class, Youden's J is undefined; using threshold %s", table, fallback)
        return fallback
    return float(best["s"])


def _check_strategy(strategy: str, threshold: float) -> None:
    if strategy not in STRATEGIES:
        raise ValueError(f"threshold strategy must be one of {STRATEGIES}, got {strategy!r}")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")


def choose_threshold(
    predictions: DataFrame,
    label_col: str = "label",
    score_col: str = "probability_1",
    strategy: str = "f1",
    threshold: float = 0.5,
    weight_col: str | None = None,
    table: str = "predictions",
) -> float:
    """A decision threshold chosen on these predictions (e.g. the validation set).

    `f1`: the distinct score maximizing F1 (predicted positive iff score >= it; ties -> the higher
    score); `youden`: the score maximizing TPR - FPR; `fixed`: `threshold` itself. Exact: every
    distinct score is a candidate. Where the rule is undefined (one class only), `threshold`.
    """
    _check_strategy(strategy, threshold)
    if strategy == "fixed":
        return float(threshold)
    with ScoreTable(predictions, label_col, score_col, weight_col, table) as scores:
        aggs = _threshold_aggregates(scores, None)
        row = scores.cumulative.agg(*[c.alias(k) for k, c in aggs.items()]).first()  # bounded: one row
        chosen = _pick(strategy, row, scores.summary, threshold, table)
    log.info("%s: threshold %.6g chosen by %s", table, chosen, strategy)
    return chosen


def binary_metrics(
    predictions: DataFrame,
    label_col: str = "label",
    score_col: str = "probability_1",
    threshold: float | None = None,
    weight_col: str | None = None,
    curve_points: int = 1000,
    strategy: str = "f1",
    table: str = "predictions",
) -> BinaryEvaluation:
    """Evaluate P(positive) scores against 0/1 labels.

    `score_col`: a double in [0, 1] or a Spark ML probability vector (element 1 is used).
    `threshold`: predicted positive iff score >= threshold; when None it is chosen on these same
    predictions by `strategy` (see `choose_threshold`), which is optimistic: prefer choosing it on
    a validation set and passing it here for the test set. Rows with a null label or score are
    skipped (logged); other invalid values raise `EvaluationInputError`.
    """
    if curve_points < 2:
        raise ValueError(f"curve_points must be >= 2, got {curve_points}")
    if threshold is None and strategy == "fixed":
        threshold = 0.5
    _check_strategy(strategy, 0.5 if threshold is None else threshold)
    with ScoreTable(predictions, label_col, score_col, weight_col, table) as scores:
        summary = scores.summary
        row = _main_aggregate(scores, threshold)
        if threshold is None:
            chosen, rule = _pick(strategy, row, summary, 0.5, table), strategy
            at = row["best_f1"] if rule == "f1" and summary.positives > 0 else _counts_at(scores, chosen)
        else:
            chosen, rule, at = float(threshold), "fixed", row["at"]
        tp, fp = (float(at["tp"]), float(at["fp"])) if at is not None else (0.0, 0.0)
        roc, pr = _curves(scores, curve_points)
        deciles = _deciles(scores)
        calibration = _calibration(scores)

    p, n, total = summary.positives, summary.negatives, summary.weight
    fn, tn = p - tp, n - fp
    auc = row["auc"] / (p * n) if p > 0 and n > 0 else math.nan
    ap = row["ap"] / p if p > 0 else math.nan
    if not (p > 0 and n > 0):
        log.warning(
            "%s: only one class in %r (%d rows, %d positive): roc_auc is undefined (NaN)%s",
            table, label_col, summary.rows, summary.positive_rows, "" if p > 0 else ", and so is pr_auc",
        )
    metrics = {
        "rows": float(summary.rows),
        "positives": float(summary.positive_rows),
        "base_rate": summary.base_rate,
        "roc_auc": auc,
        "pr_auc": ap,
        "log_loss": row["log_loss"] / total,
        "base_rate_log_loss": _base_rate_log_loss(p / total if total > 0 else math.nan),
        "brier_score": row["brier"] / total,
        "threshold": chosen,
        "accuracy": (tp + tn) / total,
        "precision": tp / (tp + fp) if tp + fp > 0 else 0.0,
        "recall": tp / p if p > 0 else 0.0,
        "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn > 0 else 0.0,
        "true_positives": tp,
        "false_positives": fp,
        "true_negatives": tn,
        "false_negatives": fn,
        "top_decile_lift": float(deciles["lift"].iloc[0]) if len(deciles) else math.nan,
        "calibration_error": _calibration_error(calibration, total),
    }
    if weight_col is not None:
        metrics["total_weight"] = total
    confusion = pd.DataFrame(
        [[tn, fp], [fn, tp]], index=pd.Index([0, 1], name="actual"), columns=["predicted_0", "predicted_1"]
    )
    evaluation = BinaryEvaluation(
        kind="binary",
        metrics=metrics,
        tables={"confusion": confusion, "deciles": deciles, "calibration": calibration,
                "roc_curve": roc, "pr_curve": pr},
        params={"label_col": label_col, "score_col": score_col, "weight_col": weight_col, "threshold_rule": rule,
                "table": table, "skipped_rows": summary.skipped},
    )
    log.info("%s: %s", table, evaluation.summary())
    return evaluation


def _base_rate_log_loss(rate: float) -> float:
    """Log loss of predicting `rate` (the evaluated rows' own positive rate) for every row: the
    floor a model's scores must beat to carry any information as probabilities."""
    if math.isnan(rate):
        return math.nan
    b = min(max(rate, EPS), 1.0 - EPS)
    return -(rate * math.log(b) + (1.0 - rate) * math.log(1.0 - b))


def _clip(p: Column) -> Column:
    """Probabilities clipped to [eps, 1 - eps], as scikit-learn's `log_loss` clips them."""
    return F.greatest(F.least(p, F.lit(1.0 - EPS)), F.lit(EPS))


def _main_aggregate(scores: ScoreTable, threshold: float | None):
    """One pass over the distinct scores: AUC and AP numerators, loss sums, threshold aggregates."""
    s, pos, neg = F.col("s"), F.col("pos_w"), F.col("neg_w")
    cum_pos, cum_w = F.col("cum_pos"), F.col("cum_pos") + F.col("cum_neg")
    aggs = {
        # Trapezoid between consecutive thresholds: dFPR * (TPR_prev + TPR) / 2, times P * N.
        "auc": F.sum(neg * (cum_pos - pos / 2.0)),
        # Average precision: dRecall * precision at each threshold, times P.
        "ap": F.sum(F.when(pos > 0, pos * cum_pos / cum_w)),
        "log_loss": F.sum(-(pos * F.log(_clip(s)) + neg * F.log(_clip(1.0 - s)))),
        "brier": F.sum(pos * (1.0 - s) * (1.0 - s) + neg * s * s),
        **_threshold_aggregates(scores, threshold),
    }
    return scores.cumulative.agg(*[c.alias(k) for k, c in aggs.items()]).first()  # bounded: one row


def _counts_at(scores: ScoreTable, threshold: float):
    row = scores.cumulative.agg(_threshold_aggregates(scores, threshold)["at"].alias("at")).first()  # one row
    return row["at"]


def _curves(scores: ScoreTable, points: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """ROC and PR curves at (at most) `points` of the distinct thresholds, evenly spaced in rank."""
    n = scores.summary.distinct_scores
    step = max(1, math.ceil(n / (points - 1)))
    idx = F.col("idx")
    rows = (
        scores.cumulative.where(((idx - 1) % step == 0) | (idx == n))
        .select("s", "cum_pos", "cum_neg")
        .collect()  # bounded: at most `points` rows
    )
    pts = pd.DataFrame(rows, columns=["threshold", "tp", "fp"]).sort_values("threshold", ascending=False)
    p, neg = scores.summary.positives, scores.summary.negatives
    tpr = pts["tp"] / p if p > 0 else pd.Series(np.nan, index=pts.index)
    fpr = pts["fp"] / neg if neg > 0 else pd.Series(np.nan, index=pts.index)
    roc = pd.concat(
        [pd.DataFrame({"threshold": [math.inf], "fpr": [0.0], "tpr": [0.0]}),
         pd.DataFrame({"threshold": pts["threshold"], "fpr": fpr, "tpr": tpr})],
        ignore_index=True,
    )
    predicted = pts["tp"] + pts["fp"]
    precision = np.where(predicted > 0, pts["tp"] / predicted.where(predicted > 0, 1.0), 1.0)
    pr = pd.concat(
        [pd.DataFrame({"threshold": [math.inf], "recall": [0.0], "precision": [1.0]}),
         pd.DataFrame({"threshold": pts["threshold"], "recall": tpr, "precision": precision})],
        ignore_index=True,
    )
    return roc, pr


def _deciles(scores: ScoreTable) -> pd.DataFrame:
    """Lift and cumulative gain by decile of score (highest first).

    A row's decile is floor(10 * weight ranked strictly above it / total weight) + 1, so tied scores
    share a decile (that of their first row: pandas `rank(method="min")`), and heavy ties can leave
    a decile empty; only non-empty deciles are listed.
    """
    total, positives = scores.summary.weight, scores.summary.positives
    before = F.col("cum_w") - F.col("w")
    decile = F.least(F.floor(before * DECILES / F.lit(total)) + 1, F.lit(DECILES)).cast("int")
    rows = (
        scores.cumulative.groupBy(decile.alias("decile"))
        .agg(F.sum("rows").alias("rows"), F.sum("w").alias("weight"), F.sum("pos_w").alias("positives"),
             F.min("s").alias("min_score"), F.max("s").alias("max_score"))
        .collect()  # bounded: at most 10 rows
    )
    d = pd.DataFrame(rows, columns=["decile", "rows", "weight", "positives", "min_score", "max_score"])
    d = d.sort_values("decile", ignore_index=True)
    base = positives / total
    d["response_rate"] = d["positives"] / d["weight"]
    d["lift"] = d["response_rate"] / base if base > 0 else np.nan
    d["cumulative_population"] = d["weight"].cumsum() / total
    d["cumulative_gain"] = d["positives"].cumsum() / positives if positives > 0 else np.nan
    d["cumulative_lift"] = (d["positives"].cumsum() / d["weight"].cumsum()) / base if base > 0 else np.nan
    return d


def _calibration(scores: ScoreTable) -> pd.DataFrame:
    """Mean predicted probability vs observed positive rate in 10 equal-width bins (non-empty only).

    Bin i holds scores in (edge_i, edge_{i+1}] (the first also holds 0), edges from
    numpy.linspace(0, 1, 11): scikit-learn's `calibration_curve(strategy="uniform")`.
    """
    edges = np.linspace(0.0, 1.0, CALIBRATION_BINS + 1)
    s = F.col("s")
    bin_ = sum((s > F.lit(float(e))).cast("int") for e in edges[1:-1])
    rows = (
        scores.distinct.groupBy(bin_.alias("bin"))
        .agg(F.sum("rows").alias("rows"), F.sum("w").alias("weight"), F.sum(s * F.col("w")).alias("score_sum"),
             F.sum("pos_w").alias("positives"))
        .collect()  # bounded: at most 10 rows
    )
    c = pd.DataFrame(rows, columns=["bin", "rows", "weight", "score_sum", "positives"])
    c = c.sort_values("bin", ignore_index=True)
    c.insert(1, "lower", edges[c["bin"]])
    c.insert(2, "upper", edges[c["bin"] + 1])
    c["mean_predicted"] = c["score_sum"] / c["weight"]
    c["observed_rate"] = c["positives"] / c["weight"]
    return c.drop(columns="score_sum")


def _calibration_error(calibration: pd.DataFrame, total: float) -> float:
    """Expected calibration error: bin-weighted mean |observed rate - mean predicted|."""
    gap = (calibration["observed_rate"] - calibration["mean_predicted"]).abs()
    return float((calibration["weight"] * gap).sum() / total)

