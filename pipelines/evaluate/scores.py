"""Binary predictions reduced to one row per distinct score, with exact cumulative sums, all in Spark.

Every threshold-based quantity (the ROC and PR curves, their areas, F1 at each threshold, deciles)
is a function of the positive and negative weight at or above each distinct score. The predictions
are read once: a `groupBy(score)` gives one row per distinct score (ties merged, as scikit-learn's
`_binary_clf_curve` merges them). Cumulative sums in descending score order are then computed
without moving all rows to one partition: the distinct scores are cut into score ranges at
approximate quantiles (a deterministic, bounded list of cut points), the per-range totals are
collected (one row per range) and turned into offsets on the driver, and a window per range adds
its running sums to its offset. Both frames are persisted until `close()`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from pyspark import StorageLevel
from pyspark.ml.feature import Bucketizer
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from pipelines.evaluate.inputs import EvaluationInputError, binary_label, col, positive_probability, weight

log = logging.getLogger(__name__)

ROWS_PER_RANGE = 200_000
"""Distinct scores per score range (one window partition) when computing cumulative sums."""
MAX_RANGES = 512


@dataclass(frozen=True)
class ScoreSummary:
    """Totals over the rows evaluated (rows with a null label or score are skipped)."""

    rows: int
    skipped: int
    distinct_scores: int
    positive_rows: int
    weight: float
    positives: float
    """Total weight of positive rows (= their count when unweighted)."""
    negatives: float

    @property
    def base_rate(self) -> float:
        return self.positives / self.weight


class ScoreTable:
    """Persisted per-score aggregates of binary predictions; use as a context manager.

    `distinct`: (s, rows, w, pos_w, neg_w), one row per distinct score.
    `cumulative`: adds idx (1 = highest score), cum_rows, cum_w, cum_pos, cum_neg: totals over
    the rows whose score is >= s, i.e. the rows predicted positive at threshold s.
    """

    def __init__(
        self,
        predictions: DataFrame,
        label_col: str = "label",
        score_col: str = "probability",
        weight_col: str | None = None,
        table: str = "predictions",
    ):
        self.table = table
        self.label_col, self.score_col, self.weight_col = label_col, score_col, weight_col
        self._spark = predictions.sparkSession
        y = binary_label(predictions, label_col, table).alias("y")
        s = positive_probability(predictions, score_col, table).alias("s")
        w = weight(predictions, weight_col, table).alias("w")
        # Null in the input column: skipped. Present but unusable (a label that is not 0/1, a score
        # outside [0, 1], a string that is no number, a vector too short): an error.
        complete = ~F.col("y_null") & ~F.col("s_null")
        y_c, s_c, w_c = F.col("y"), F.col("s"), F.col("w")

        def kept(value: Column) -> Column:
            return F.sum(F.when(complete, value))

        def count_if(condition: Column) -> Column:
            return F.count(F.when(condition, 1))

        grouped = (
            predictions.select(
                y, s, w, col(label_col).isNull().alias("y_null"), col(score_col).isNull().alias("s_null")
            )
            .groupBy("s")
            .agg(
                count_if(complete).alias("rows"),
                count_if(~complete).alias("skipped"),
                count_if(complete & ~F.coalesce(y_c.isin(0.0, 1.0), F.lit(False))).alias("bad_labels"),
                count_if(complete & (s_c.isNull() | F.isnan(s_c) | (s_c < 0) | (s_c > 1))).alias("bad_scores"),
                count_if(complete & (w_c.isNull() | F.isnan(w_c) | (w_c < 0))).alias("bad_weights"),
                kept(y_c).cast("long").alias("pos_rows"),
                kept(w_c * y_c).alias("pos_w"),
                kept(w_c * (1.0 - y_c)).alias("neg_w"),
            )
        )
        self._grouped = grouped.persist(StorageLevel.MEMORY_AND_DISK)
        self._cumulative: DataFrame | None = None
        try:
            self.summary = self._summarize()
        except Exception:
            self.close()
            raise
        self.distinct = self._grouped.where(F.col("rows") > 0).select(
            "s", "rows", (F.col("pos_w") + F.col("neg_w")).alias("w"), "pos_w", "neg_w"
        )

    def _summarize(self) -> ScoreSummary:
        g = self._grouped
        present = F.col("rows") > 0
        row = g.agg(
            F.sum("rows").alias("rows"),
            F.sum("skipped").alias("skipped"),
            F.sum("bad_labels").alias("bad_labels"),
            F.sum("bad_weights").alias("bad_weights"),
            F.sum("bad_scores").alias("bad_scores"),
            F.min(F.when(present, F.col("s"))).alias("min_s"),
            F.max(F.when(present, F.col("s"))).alias("max_s"),
            F.count(F.when(present & F.col("s").isNotNull(), 1)).alias("distinct"),
            F.sum("pos_rows").alias("pos_rows"),
            F.sum("pos_w").alias("pos_w"),
            F.sum("neg_w").alias("neg_w"),
        ).first()  # bounded: one row of totals
        t, label, score = self.table, self.label_col, self.score_col
        if not row["rows"]:
            why = f" ({row['skipped']} row(s) have a null label or score)" if row["skipped"] else ""
            raise EvaluationInputError(
                t, f"no rows to evaluate with a label in {label!r} and a score in {score!r}{why}"
            )
        if row["bad_labels"]:
            raise EvaluationInputError(
                t, f"label column {label!r} must hold 0/1; {row['bad_labels']} row(s) hold other values"
            )
        if row["bad_scores"]:
            raise EvaluationInputError(
                t,
                f"score column {score!r} must hold probabilities in [0, 1]; {row['bad_scores']} row(s) do not "
                f"(min {row['min_s']}, max {row['max_s']})",
            )
        if row["bad_weights"]:
            raise EvaluationInputError(
                t, f"weight column {self.weight_col!r} must be non-null and >= 0; {row['bad_weights']} row(s) are not"
            )
        if not (row["pos_w"] or 0.0) + (row["neg_w"] or 0.0) > 0:
            raise EvaluationInputError(t, f"the total weight in {self.weight_col!r} is zero")
        if row["skipped"]:
            log.warning("%s: skipped %d row(s) with a null %r or %r", t, row["skipped"], label, score)
        return ScoreSummary(
            rows=int(row["rows"]),
            skipped=int(row["skipped"]),
            distinct_scores=int(row["distinct"]),
            positive_rows=int(row["pos_rows"] or 0),
            weight=float(row["pos_w"] + row["neg_w"]),
            positives=float(row["pos_w"]),
            negatives=float(row["neg_w"]),
        )

    @property
    def cumulative(self) -> DataFrame:
        """The distinct scores in descending order with cumulative sums (built once, persisted)."""
        if self._cumulative is None:
            self._cumulative = self._build_cumulative().persist(StorageLevel.MEMORY_AND_DISK)
        return self._cumulative

    def _build_cumulative(self) -> DataFrame:
        n = self.summary.distinct_scores
        ranges = min(MAX_RANGES, max(1, math.ceil(n / ROWS_PER_RANGE)))
        d = self.distinct
        if ranges == 1:
            # Small enough for one window partition: no offsets needed. Spark folds the literal
            # key away and warns "WindowExec: No Partition Defined for Window operation! Moving all
            # data to a single partition": expected here (at most ROWS_PER_RANGE distinct scores),
            # so that warning goes to the command's log file, not the console
            # (pipelines/spark/log4j2-clickml.properties). Larger frames take the ranges below.
            d = d.select("*", F.lit(0.0).alias("score_range"), *[F.lit(0).alias(c) for c in ("off_n", "off_rows")],
                         *[F.lit(0.0).alias(c) for c in ("off_w", "off_pos", "off_neg")])
        else:
            probs = [i / ranges for i in range(1, ranges)]
            cuts = sorted(set(d.approxQuantile("s", probs, 1.0 / (4 * ranges))))  # bounded: ranges - 1 values
            splits = [-math.inf, *cuts, math.inf]
            d = Bucketizer(splits=splits, inputCol="s", outputCol="score_range").transform(d)
            d = d.join(F.broadcast(self._offsets(d)), "score_range")
        order = Window.partitionBy("score_range").orderBy(F.desc("s"))
        running = order.rowsBetween(Window.unboundedPreceding, Window.currentRow)
        return d.select(
            "s", "rows", "w", "pos_w", "neg_w",
            (F.col("off_n") + F.row_number().over(order)).alias("idx"),
            (F.col("off_rows") + F.sum("rows").over(running)).alias("cum_rows"),
            (F.col("off_w") + F.sum("w").over(running)).alias("cum_w"),
            (F.col("off_pos") + F.sum("pos_w").over(running)).alias("cum_pos"),
            (F.col("off_neg") + F.sum("neg_w").over(running)).alias("cum_neg"),
        )

    def _offsets(self, d: DataFrame) -> DataFrame:
        """Per score range: the totals of all ranges with higher scores (a small frame)."""
        totals = sorted(
            d.groupBy("score_range")
            .agg(F.count(F.lit(1)).alias("n"), F.sum("rows").alias("rows"), F.sum("w").alias("w"),
                 F.sum("pos_w").alias("pos"), F.sum("neg_w").alias("neg"))
            .collect(),  # bounded: one row per score range
            key=lambda r: -r["score_range"],
        )
        offsets, acc = [], (0, 0, 0.0, 0.0, 0.0)
        for r in totals:  # highest scores first
            offsets.append((float(r["score_range"]), *acc))
            acc = (acc[0] + r["n"], acc[1] + r["rows"], acc[2] + r["w"], acc[3] + r["pos"], acc[4] + r["neg"])
        schema = "score_range double, off_n long, off_rows long, off_w double, off_pos double, off_neg double"
        return self._spark.createDataFrame(offsets, schema)

    def close(self) -> None:
        """Release the persisted frames."""
        if self._cumulative is not None:
            self._cumulative.unpersist()
            self._cumulative = None
        self._grouped.unpersist()

    def __enter__(self) -> ScoreTable:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
