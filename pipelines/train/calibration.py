"""Calibrated probabilities for binary models.

Class weighting (`class_weights: balanced`) and boosting's margins give scores that rank well but
are not probabilities: on the demo data a balanced logistic regression predicts ~0.5 where ~8% of
users buy. A `Calibrator` maps a model's raw P(1) to a calibrated one; it is fitted on the
validation split (never on the test split) and stored inside the registered model, so scoring and
serving apply it:

- `platt`: sigmoid(slope * logit(p) + intercept), a one-feature logistic regression (Spark MLlib);
- `isotonic`: Spark MLlib's isotonic regression of the label on p, a non-decreasing piecewise
  linear map (`numpy.interp` of its knots: the same interpolation as Spark's model);
- `none`: the raw score.

`auto` (the default) fits Platt and isotonic on one half of the validation rows, measures their log
loss (and the raw score's) on the other half, and refits the winner on the whole validation split:
choosing on the rows a calibrator was fitted on would always favour isotonic, which can overfit.

Everything is computed in Spark; only the fitted parameters (two numbers, or the isotonic knots:
one pair per pooled block, thinned to `MAX_KNOTS`) reach the driver.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from pyspark import StorageLevel, keyword_only
from pyspark.ml import PipelineModel, Transformer
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.util import DefaultParamsReadable, DefaultParamsWritable
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.functions import pandas_udf

log = logging.getLogger(__name__)

METHODS = ("auto", "platt", "isotonic", "none")
P_CLIP = 1e-6
"""Calibrated (and, for Platt's logit, raw) probabilities are kept in [P_CLIP, 1 - P_CLIP]: an
isotonic block of only negatives would otherwise predict exactly 0 and cost an infinite log loss."""
MAX_KNOTS = 2000
"""Isotonic knots kept (evenly spaced in rank when Spark's model has more): bounds the model's size."""
HOLDOUT_SHARE = 0.5
"""Share of the validation rows `auto` holds out to compare the methods."""
MIN_ROWS = 20
"""Fewer rows of either class in the validation split than this: `auto` fits Platt scaling
alone, without holding rows out (two parameters fit a few dozen rows; isotonic would not)."""
MIN_PLATT_ROWS = 5
"""Fewer rows of either class than this: the raw score is kept."""


class CalibrationError(ValueError):
    """A calibrator that cannot be built from the given parameters."""


@dataclass(frozen=True)
class Calibrator:
    """A fitted map from raw P(1) to calibrated P(1)."""

    method: str = "none"
    slope: float = 1.0
    intercept: float = 0.0
    knots_x: tuple[float, ...] = ()
    knots_y: tuple[float, ...] = ()
    holdout_log_loss: dict[str, float] = field(default_factory=dict, compare=False)
    """`auto`: the held-out log loss of each candidate (for the logs and the MLflow run)."""

    def __post_init__(self) -> None:
        if self.method not in ("platt", "isotonic", "none"):
            raise CalibrationError(f"unknown calibration method {self.method!r}; one of platt, isotonic, none")
        if self.method == "isotonic":
            if len(self.knots_x) != len(self.knots_y) or not self.knots_x:
                raise CalibrationError(f"isotonic calibration needs as many x as y knots (got {len(self.knots_x)} and {len(self.knots_y)})")
            if any(b < a for a, b in zip(self.knots_x, self.knots_x[1:])):
                raise CalibrationError("isotonic knots_x must be non-decreasing")
        if self.method == "platt" and not (math.isfinite(self.slope) and math.isfinite(self.intercept)):
            raise CalibrationError(f"Platt scaling needs finite coefficients (slope {self.slope}, intercept {self.intercept})")

    # -- applying -----------------------------------------------------------------------------
    def apply(self, p: np.ndarray) -> np.ndarray:
        """Calibrated P(1) for raw P(1) values (numpy; what in-process scoring uses)."""
        p = np.asarray(p, dtype=np.float64)
        if self.method == "none":
            return p
        if self.method == "platt":
            q = np.clip(p, P_CLIP, 1.0 - P_CLIP)
            z = self.slope * np.log(q / (1.0 - q)) + self.intercept
            out = 1.0 / (1.0 + np.exp(-z))
        else:
            out = np.interp(p, np.asarray(self.knots_x), np.asarray(self.knots_y))
        return np.where(np.isnan(p), np.nan, np.clip(out, P_CLIP, 1.0 - P_CLIP))

    def column(self, p: Column) -> Column:
        """The same map as a Spark column expression (isotonic: a pandas UDF over `apply`)."""
        if self.method == "none":
            return p
        if self.method == "platt":
            q = F.least(F.greatest(p, F.lit(P_CLIP)), F.lit(1.0 - P_CLIP))
            z = F.lit(self.slope) * F.log(q / (F.lit(1.0) - q)) + F.lit(self.intercept)
            out = F.lit(1.0) / (F.lit(1.0) + F.exp(-z))
            return F.least(F.greatest(out, F.lit(P_CLIP)), F.lit(1.0 - P_CLIP))
        calibrator = self

        @pandas_udf("double")
        def isotonic(values: pd.Series) -> pd.Series:
            return pd.Series(calibrator.apply(values.to_numpy(dtype=np.float64, na_value=np.nan)))

        return isotonic(p.cast("double"))

    # -- persistence --------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"method": self.method, "slope": self.slope, "intercept": self.intercept,
                "knots_x": list(self.knots_x), "knots_y": list(self.knots_y)}

    @classmethod
    def from_dict(cls, values: dict) -> Calibrator:
        return cls(values.get("method", "none"), float(values.get("slope", 1.0)), float(values.get("intercept", 0.0)),
                   tuple(float(x) for x in values.get("knots_x", ())), tuple(float(y) for y in values.get("knots_y", ())))

    def describe(self) -> str:
        if self.method == "platt":
            what = f"platt (slope {self.slope:.4g}, intercept {self.intercept:.4g})"
        elif self.method == "isotonic":
            what = f"isotonic ({len(self.knots_x)} knots)"
        else:
            what = "none (raw scores)"
        if self.holdout_log_loss:
            what += "; held-out log loss " + ", ".join(f"{k} {v:.4f}" for k, v in self.holdout_log_loss.items())
        return what


# -- fitting ----------------------------------------------------------------------------------
_Y, _P, _W = "__cal_y", "__cal_p", "__cal_w"


def _logit(p: Column) -> Column:
    q = F.least(F.greatest(p, F.lit(P_CLIP)), F.lit(1.0 - P_CLIP))
    return F.log(q / (F.lit(1.0) - q))


def fit_platt(frame: DataFrame) -> Calibrator:
    """Platt scaling on (`_Y`, `_P`, `_W`) rows: a one-feature, unregularised logistic regression."""
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.functions import array_to_vector

    features = frame.select(F.col(_Y), F.col(_W), array_to_vector(F.array(_logit(F.col(_P)))).alias("__cal_x"))
    model = LogisticRegression(featuresCol="__cal_x", labelCol=_Y, weightCol=_W, regParam=0.0, standardization=False,
                               maxIter=100, tol=1e-10).fit(features)
    slope, intercept = float(model.coefficients[0]), float(model.intercept)
    if slope < 0:
        # The scores rank these rows backwards. A calibration must keep the model's order (never
        # invert it on the validation rows); the best non-decreasing Platt map is then the
        # constant base rate (slope 0), which makes the model's lack of signal visible.
        rate = frame.agg((F.sum(F.col(_W) * F.col(_Y)) / F.sum(_W)).alias("r")).first()["r"]  # bounded: one row
        rate = min(max(float(rate), P_CLIP), 1.0 - P_CLIP)
        log.warning("Platt scaling: the scores rank the validation rows backwards (fitted slope %.4g); "
                    "calibrating to the constant base rate %.4g", slope, rate)
        slope, intercept = 0.0, math.log(rate / (1.0 - rate))
    return Calibrator("platt", slope, intercept)


def fit_isotonic(frame: DataFrame) -> Calibrator:
    """Isotonic regression of `_Y` on `_P` (Spark MLlib), its knots thinned to `MAX_KNOTS`."""
    from pyspark.ml.regression import IsotonicRegression

    model = IsotonicRegression(featuresCol=_P, labelCol=_Y, weightCol=_W, isotonic=True).fit(frame)
    # Bounded: two knots per pooled block of the validation scores (MAX_KNOTS kept below).
    xs, ys = model.boundaries.toArray(), model.predictions.toArray()
    if len(xs) > MAX_KNOTS:
        keep = np.unique(np.linspace(0, len(xs) - 1, MAX_KNOTS).round().astype(int))
        log.info("isotonic calibration: %d knots thinned to %d", len(xs), len(keep))
        xs, ys = xs[keep], ys[keep]
    return Calibrator("isotonic", knots_x=tuple(float(x) for x in xs), knots_y=tuple(float(y) for y in ys))


def log_losses(frame: DataFrame, calibrators: dict[str, Calibrator]) -> dict[str, float]:
    """Weighted mean log loss of each calibrator on (`_Y`, `_P`, `_W`) rows, in one Spark pass."""
    y, w = F.col(_Y), F.col(_W)
    aggs = [F.sum(w).alias("__total")]
    for name, calibrator in calibrators.items():
        q = F.least(F.greatest(calibrator.column(F.col(_P)), F.lit(P_CLIP)), F.lit(1.0 - P_CLIP))
        aggs.append(F.sum(-w * (y * F.log(q) + (F.lit(1.0) - y) * F.log(F.lit(1.0) - q))).alias(name))
    row = frame.agg(*aggs).first()  # bounded: one row
    total = float(row["__total"] or 0.0)
    return {name: (float(row[name]) / total if total > 0 else math.nan) for name in calibrators}


def fit_calibrator(
    scored: DataFrame,
    label_col: str,
    score_col: str,
    weight_col: str | None = None,
    method: str = "auto",
    seed: int = 42,
    table: str = "validation",
) -> Calibrator:
    """Fit the calibration of `score_col` (raw P(1)) against the 0/1 `label_col` on `scored` (the
    validation predictions). `method` is one of `METHODS`. Rows with a null label or score are
    left out; with fewer than `MIN_ROWS` rows of either class only Platt scaling is fitted, with
    fewer than `MIN_PLATT_ROWS` the raw score is kept (both logged)."""
    if method not in METHODS:
        raise CalibrationError(f"calibration must be one of {', '.join(METHODS)}, got {method!r}")
    if method == "none":
        return Calibrator("none")
    weight = F.col(weight_col).cast("double") if weight_col else F.lit(1.0)
    frame = (
        scored.select(F.col(label_col).cast("double").alias(_Y), F.col(score_col).cast("double").alias(_P), weight.alias(_W))
        .where(F.col(_Y).isNotNull() & F.col(_P).isNotNull() & ~F.isnan(_P) & F.col(_W).isNotNull())
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    try:
        counts = frame.agg(F.count("*").alias("rows"), F.sum(F.col(_Y)).alias("positives")).first()  # bounded: one row
        rows, positives = int(counts["rows"]), int(counts["positives"] or 0)
        fewest = min(positives, rows - positives)
        if fewest < MIN_PLATT_ROWS:
            log.warning("%s: %d rows, %d positive: too few of a class to calibrate (< %d); keeping the raw scores",
                        table, rows, positives, MIN_PLATT_ROWS)
            return Calibrator("none")
        if fewest < MIN_ROWS and method != "platt":
            log.warning("%s: %d rows, %d positive: too few of a class (< %d) to compare calibrations or fit "
                        "isotonic regression; fitting Platt scaling on all of them", table, rows, positives, MIN_ROWS)
            method = "platt"
        if method == "platt":
            chosen = fit_platt(frame)
        elif method == "isotonic":
            chosen = fit_isotonic(frame)
        else:
            chosen = _auto(frame, seed, table)
        log.info("%s: calibration %s", table, chosen.describe())
        return chosen
    finally:
        frame.unpersist()


def _auto(frame: DataFrame, seed: int, table: str) -> Calibrator:
    """Platt or isotonic (or none), by log loss on held-out validation rows; the winner refitted on all."""
    fit_part, holdout = frame.randomSplit([1.0 - HOLDOUT_SHARE, HOLDOUT_SHARE], seed=seed)
    candidates = {"none": Calibrator("none"), "platt": fit_platt(fit_part), "isotonic": fit_isotonic(fit_part)}
    losses = log_losses(holdout, candidates)
    finite = {k: v for k, v in losses.items() if math.isfinite(v)}
    if not finite:
        log.warning("%s: no held-out validation rows to compare calibrations on; using Platt scaling", table)
        best = "platt"
    else:
        best = min(finite, key=finite.get)
    refit = {"platt": fit_platt, "isotonic": fit_isotonic}[best](frame) if best != "none" else Calibrator("none")
    return dataclasses.replace(refit, holdout_log_loss=losses)


# -- inside a Spark pipeline model --------------------------------------------------------------


class CalibratedProbability(Transformer, DefaultParamsReadable, DefaultParamsWritable):
    """The last stage of a calibrated binary pipeline model: replaces the `probability` vector by
    [1 - q, q] with q the calibrated P(1), and `prediction` by q >= 0.5 (Spark's own rule, now on
    the calibrated probability; the job's decision threshold is chosen on the validation split
    and applied separately). `rawPrediction` keeps the classifier's margins. Saved with the
    pipeline (Spark's params metadata), so `mlflow.spark.load_model` restores it."""

    calibration = Param(Params._dummy(), "calibration", "the fitted Calibrator, as JSON", TypeConverters.toString)
    probabilityCol = Param(Params._dummy(), "probabilityCol", "probability vector column", TypeConverters.toString)
    predictionCol = Param(Params._dummy(), "predictionCol", "prediction column", TypeConverters.toString)

    @keyword_only
    def __init__(self, calibration: str = '{"method": "none"}', probabilityCol: str = "probability",
                 predictionCol: str = "prediction"):
        super().__init__()
        self._setDefault(calibration='{"method": "none"}', probabilityCol="probability", predictionCol="prediction")
        self._set(**self._input_kwargs)

    @classmethod
    def of(cls, calibrator: Calibrator) -> CalibratedProbability:
        return cls(calibration=json.dumps(calibrator.to_dict()))

    @property
    def calibrator(self) -> Calibrator:
        return Calibrator.from_dict(json.loads(self.getOrDefault(self.calibration)))

    def _transform(self, dataset: DataFrame) -> DataFrame:
        from pyspark.ml.functions import array_to_vector, vector_to_array

        probability, prediction = self.getOrDefault(self.probabilityCol), self.getOrDefault(self.predictionCol)
        calibrated = "__calibrated_p1"
        out = dataset.withColumn(calibrated, self.calibrator.column(vector_to_array(F.col(probability)).getItem(1)))
        q = F.col(calibrated)
        out = out.withColumn(probability, array_to_vector(F.array(F.lit(1.0) - q, q)))
        if prediction in dataset.columns:
            out = out.withColumn(prediction, (q >= F.lit(0.5)).cast("double"))
        return out.drop(calibrated)


def calibrated_model(model: PipelineModel, calibrator: Calibrator) -> PipelineModel:
    """`model` with `calibrator` as its last stage (a model already calibrated is recalibrated)."""
    stages = [s for s in model.stages if not isinstance(s, CalibratedProbability)]
    return PipelineModel(stages=[*stages, CalibratedProbability.of(calibrator)])


def uncalibrated(model: PipelineModel) -> PipelineModel:
    """`model` without its calibration stage (raw scores), as trained."""
    return PipelineModel(stages=[s for s in model.stages if not isinstance(s, CalibratedProbability)])


def calibrator_of(model) -> Calibrator | None:
    """The calibrator inside a pipeline or deep model; None when it has none."""
    if isinstance(model, PipelineModel):
        found = [s for s in model.stages if isinstance(s, CalibratedProbability)]
        return found[-1].calibrator if found else None
    state = getattr(model, "state", None)  # a deep model keeps it in its state
    return state.calibrator() if state is not None else None
