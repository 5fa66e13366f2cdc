"""Calibration of binary models' probabilities (pipelines/train/calibration.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.functions import vector_to_array
from pyspark.sql import functions as F

from pipelines.train.calibration import (
    CalibratedProbability,
    CalibrationError,
    Calibrator,
    calibrated_model,
    calibrator_of,
    fit_calibrator,
    uncalibrated,
)


def _miscalibrated(n: int, seed: int = 7, shift: float = 2.4, slope: float = 1.0):
    """(label, raw score): the truth P(1) = sigmoid(z) with ~8% positives; the score is
    sigmoid(z / slope + shift), the way balanced class weights push scores up."""
    rng = np.random.default_rng(seed)
    z = rng.normal(-3.0, 1.2, n)
    truth = 1.0 / (1.0 + np.exp(-z))
    label = (rng.random(n) < truth).astype(float)
    score = 1.0 / (1.0 + np.exp(-(z / slope + shift)))
    return label, score


def _frame(spark, label, score):
    return spark.createDataFrame([(float(y), float(s)) for y, s in zip(label, score)], "label double, s double")


def _log_loss(y, p):
    p = np.clip(p, 1e-15, 1 - 1e-15)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def test_platt_recovers_the_logistic_map_and_agrees_with_scikit_learn(spark):
    from sklearn.linear_model import LogisticRegression as SkLogistic

    label, score = _miscalibrated(6000, slope=0.8)
    calibrator = fit_calibrator(_frame(spark, label, score), "label", "s", method="platt")
    logit = np.log(score / (1 - score)).reshape(-1, 1)
    reference = SkLogistic(C=math.inf, tol=1e-10, max_iter=1000).fit(logit, label)
    assert calibrator.method == "platt"
    assert calibrator.slope == pytest.approx(reference.coef_[0][0], abs=1e-4)
    assert calibrator.intercept == pytest.approx(reference.intercept_[0], abs=1e-4)
    # The generating map: slope 0.8 on logit(score) - 0.8 * 2.4 (noise of a 6000-row fit).
    assert calibrator.slope == pytest.approx(0.8, abs=0.1)


def test_isotonic_agrees_with_scikit_learn(spark):
    from sklearn.isotonic import IsotonicRegression as SkIsotonic

    label, score = _miscalibrated(3000)
    calibrator = fit_calibrator(_frame(spark, label, score), "label", "s", method="isotonic")
    probe = np.linspace(score.min(), score.max(), 200)
    reference = SkIsotonic(out_of_bounds="clip").fit(score, label).predict(probe)
    assert calibrator.method == "isotonic"
    np.testing.assert_allclose(calibrator.apply(probe), np.clip(reference, 1e-6, 1 - 1e-6), atol=1e-9)


def test_auto_calibrates_balanced_scores_into_probabilities(spark):
    label, score = _miscalibrated(8000)
    frame = _frame(spark, label, score)
    calibrator = fit_calibrator(frame, "label", "s", method="auto", seed=3)
    assert calibrator.method in ("platt", "isotonic")
    assert set(calibrator.holdout_log_loss) == {"none", "platt", "isotonic"}
    assert calibrator.holdout_log_loss[calibrator.method] < calibrator.holdout_log_loss["none"]
    # New rows from the same distribution: below the base rate's log loss, mean matches the rate.
    test_label, test_score = _miscalibrated(20000, seed=11)
    calibrated = calibrator.apply(test_score)
    base = test_label.mean()
    assert _log_loss(test_label, calibrated) < _log_loss(test_label, np.full_like(test_score, base)) < _log_loss(test_label, test_score)
    assert abs(calibrated.mean() - base) < 0.01


def test_the_spark_column_and_numpy_give_the_same_probabilities(spark):
    label, score = _miscalibrated(2000)
    frame = _frame(spark, label, score)
    for method in ("platt", "isotonic"):
        calibrator = fit_calibrator(frame, "label", "s", method=method)
        # Bounded: 2000 rows of a test frame.
        rows = frame.select("s", calibrator.column(F.col("s")).alias("q")).collect()
        spark_values = np.array([r["q"] for r in rows])
        np.testing.assert_allclose(spark_values, calibrator.apply(np.array([r["s"] for r in rows])), rtol=0, atol=1e-12)


def test_too_few_of_a_class_keeps_the_raw_scores_or_fits_platt_alone(spark, caplog):
    frame = spark.createDataFrame([(float(i < 3), i / 100) for i in range(100)], "label double, s double")
    assert fit_calibrator(frame, "label", "s", table="tiny validation").method == "none"
    assert "tiny validation" in caplog.text and "too few of a class to calibrate" in caplog.text
    # 8 positives: enough for Platt's two parameters, not to compare methods on held-out rows.
    few = spark.createDataFrame([(float(i % 12 == 0), (i % 12) / 20 + 0.2) for i in range(96)], "label double, s double")
    for method in ("auto", "isotonic"):
        assert fit_calibrator(few, "label", "s", method=method, table="small validation").method == "platt"
    assert "fitting Platt scaling on all of them" in caplog.text


def test_bad_parameters_are_refused():
    with pytest.raises(CalibrationError, match="unknown calibration method 'sigmoid'"):
        Calibrator("sigmoid")
    with pytest.raises(CalibrationError, match="as many x as y"):
        Calibrator("isotonic", knots_x=(0.1, 0.2), knots_y=(0.1,))
    with pytest.raises(CalibrationError, match="non-decreasing"):
        Calibrator("isotonic", knots_x=(0.2, 0.1), knots_y=(0.1, 0.2))
    with pytest.raises(CalibrationError, match="calibration must be one of"):
        fit_calibrator(None, "label", "s", method="beta")


def test_nan_scores_stay_nan_and_extremes_are_clipped():
    platt = Calibrator("platt", slope=1.0, intercept=-2.0)
    out = platt.apply(np.array([np.nan, 0.0, 1.0, 0.5]))
    assert np.isnan(out[0]) and 0 < out[1] < out[3] < out[2] < 1
    assert out[3] == pytest.approx(1 / (1 + math.exp(2.0)))


def test_a_calibrated_pipeline_model_saves_loads_and_scores_the_same(spark, tmp_path):
    label, score = _miscalibrated(1500)
    rows = [(float(y), float(np.log(s / (1 - s)))) for y, s in zip(label, score)]
    frame = spark.createDataFrame(rows, "label double, x double")
    from pyspark.ml.feature import VectorAssembler

    model = Pipeline(stages=[VectorAssembler(inputCols=["x"], outputCol="features"),
                             LogisticRegression(weightCol="w", maxIter=50)]).fit(
        frame.withColumn("w", F.when(F.col("label") == 1, 6.0).otherwise(0.55)))
    raw = model.transform(frame).withColumn("p", vector_to_array("probability")[1])
    calibrator = fit_calibrator(raw, "label", "p", method="isotonic")
    calibrated = calibrated_model(model, calibrator)
    assert isinstance(calibrated.stages[-1], CalibratedProbability)
    assert calibrator_of(calibrated) == calibrator and calibrator_of(model) is None
    assert len(uncalibrated(calibrated).stages) == len(model.stages)
    # Recalibrating replaces the stage rather than stacking a second one.
    assert len(calibrated_model(calibrated, calibrator).stages) == len(calibrated.stages)

    path = str(tmp_path / "model")
    calibrated.save(path)
    loaded = PipelineModel.load(path)
    assert calibrator_of(loaded) == calibrator

    def probabilities(m):
        # Bounded: 1500 rows of a test frame.
        out = m.transform(frame).select(vector_to_array("probability").alias("v"), "prediction").collect()
        return np.array([r["v"] for r in out]), np.array([r["prediction"] for r in out])

    expected, _ = probabilities(model)
    got, prediction = probabilities(loaded)
    np.testing.assert_allclose(got[:, 1], calibrator.apply(expected[:, 1]), atol=1e-12)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_array_equal(prediction, (got[:, 1] >= 0.5).astype(float))
    # The balanced weights put the raw mean far above the ~8% base rate; calibrated, it is close.
    assert expected[:, 1].mean() > 0.3 and abs(got[:, 1].mean() - label.mean()) < 0.01


def test_calibration_is_configured_per_job_and_refused_outside_binary_jobs():
    from pydantic import ValidationError

    from pipelines.config.models import TrainJobSpec

    job = TrainJobSpec.model_validate({"data": {"table": "t.x"}, "task": "binary", "label": "y",
                                       "models": {"lr": {"algorithm": "logistic_regression", "calibration": "platt"}}})
    assert job.calibration == "auto" and job.models["lr"].calibration == "platt"
    with pytest.raises(ValidationError, match="calibration isotonic applies to binary jobs only"):
        TrainJobSpec.model_validate({"data": {"table": "t.x"}, "task": "regression", "label": "y",
                                     "models": {"m": {"algorithm": "linear_regression", "calibration": "isotonic"}}})


def test_platt_never_inverts_the_models_order(spark, caplog):
    # Bug: on a tiny validation split where the scores ranked the rows backwards, Platt fitted a
    # negative slope and the "calibrated" model ranked the test rows in reverse.
    label, score = _miscalibrated(3000, seed=9)
    frame = _frame(spark, label, 1.0 - score)  # anti-correlated with the label
    calibrator = fit_calibrator(frame, "label", "s", method="platt")
    assert calibrator.slope == 0.0 and "rank the validation rows backwards" in caplog.text
    constant = calibrator.apply(np.array([0.01, 0.5, 0.99]))
    assert constant == pytest.approx(np.full(3, label.mean()), abs=1e-9)
