"""Binary metrics against scikit-learn on the same 2,000 tied predictions."""

from __future__ import annotations

import json
import logging
import math

import numpy as np
import pandas as pd
import pytest
from pyspark.ml.linalg import Vectors
from sklearn import metrics as skm
from sklearn.calibration import calibration_curve

from pipelines.evaluate import EvaluationInputError, binary_metrics
from pipelines.evaluate import scores as scores_module
from tests.unit.evaluate.conftest import binary_data

TOL = 1e-9


@pytest.fixture(scope="module")
def evaluation(binary_df):
    return binary_metrics(binary_df)


def sk_at(pdf: pd.DataFrame, threshold: float, weight=None) -> dict[str, float]:
    y, pred = pdf["label"], (pdf["probability_1"] >= threshold).astype(int)
    tn, fp, fn, tp = skm.confusion_matrix(y, pred, sample_weight=weight).ravel()
    return {
        "accuracy": skm.accuracy_score(y, pred, sample_weight=weight),
        "precision": skm.precision_score(y, pred, sample_weight=weight, zero_division=0),
        "recall": skm.recall_score(y, pred, sample_weight=weight, zero_division=0),
        "f1": skm.f1_score(y, pred, sample_weight=weight, zero_division=0),
        "true_negatives": tn, "false_positives": fp, "false_negatives": fn, "true_positives": tp,
    }


def assert_metrics(ours: dict, expected: dict) -> None:
    for name, value in expected.items():
        assert ours[name] == pytest.approx(value, abs=TOL), name


def test_ranking_metrics_and_losses_agree_with_sklearn(evaluation, binary_pdf):
    y, s = binary_pdf["label"], binary_pdf["probability_1"]
    assert binary_pdf["probability_1"].nunique() < 150  # many ties
    assert {0.0, 1.0} <= set(s)  # clipping is exercised
    assert_metrics(evaluation.metrics, {
        "roc_auc": skm.roc_auc_score(y, s),
        "pr_auc": skm.average_precision_score(y, s),
        "log_loss": skm.log_loss(y, s),
        "brier_score": skm.brier_score_loss(y, s),
        "base_rate": y.mean(),
        "rows": len(y),
        "positives": y.sum(),
    })


def f1_by_threshold(pdf: pd.DataFrame) -> pd.Series:
    """F1 at every distinct score (predicted positive iff score >= it), brute force."""
    y, s = pdf["label"].to_numpy(), pdf["probability_1"].to_numpy()
    out = {}
    for t in np.unique(s):
        pred = s >= t
        tp = (pred & (y == 1)).sum()
        out[t] = 2 * tp / (pred.sum() + y.sum())
    return pd.Series(out)


def test_threshold_maximizes_f1_and_threshold_metrics_agree(evaluation, binary_pdf):
    f1 = f1_by_threshold(binary_pdf)
    best = f1[f1 == f1.max()].index.max()
    assert evaluation.threshold == best
    assert evaluation.params["threshold_rule"] == "f1"
    assert_metrics(evaluation.metrics, sk_at(binary_pdf, best))
    cm = skm.confusion_matrix(binary_pdf["label"], binary_pdf["probability_1"] >= best)
    np.testing.assert_array_equal(evaluation.confusion.to_numpy(), cm)


@pytest.mark.parametrize("threshold", [0.0, 0.305, 1.0])
def test_fixed_threshold_agrees_with_sklearn(binary_df, binary_pdf, threshold):
    ev = binary_metrics(binary_df, threshold=threshold)
    assert ev.threshold == threshold and ev.params["threshold_rule"] == "fixed"
    assert_metrics(ev.metrics, sk_at(binary_pdf, threshold))


def test_calibration_agrees_with_sklearn(evaluation, binary_pdf):
    y, s = binary_pdf["label"], binary_pdf["probability_1"]
    prob_true, prob_pred = calibration_curve(y, s, n_bins=10, strategy="uniform")
    cal = evaluation.calibration
    np.testing.assert_allclose(cal["observed_rate"], prob_true, rtol=0, atol=TOL)
    np.testing.assert_allclose(cal["mean_predicted"], prob_pred, rtol=0, atol=TOL)
    assert cal["rows"].sum() == len(binary_pdf)
    gap = (cal["rows"] * (cal["observed_rate"] - cal["mean_predicted"]).abs()).sum() / len(binary_pdf)
    assert evaluation.metrics["calibration_error"] == pytest.approx(gap)


def decile_reference(pdf: pd.DataFrame) -> pd.DataFrame:
    """Deciles by rank (ties share the rank of their first row), lift and gain, in pandas."""
    rank = pdf["probability_1"].rank(method="min", ascending=False)
    decile = np.minimum(np.floor(10 * (rank - 1) / len(pdf)) + 1, 10).astype(int)
    g = pdf.groupby(decile).agg(rows=("label", "size"), positives=("label", "sum"))
    base = pdf["label"].mean()
    g["lift"] = g["positives"] / g["rows"] / base
    g["cumulative_gain"] = g["positives"].cumsum() / pdf["label"].sum()
    g["cumulative_lift"] = g["positives"].cumsum() / g["rows"].cumsum() / base
    return g.reset_index(names="decile")


def test_deciles_agree_with_pandas(evaluation, binary_pdf):
    ours, ref = evaluation.deciles, decile_reference(binary_pdf)
    np.testing.assert_array_equal(ours["decile"], ref["decile"])
    np.testing.assert_array_equal(ours["rows"], ref["rows"])
    for c in ("positives", "lift", "cumulative_gain", "cumulative_lift"):
        np.testing.assert_allclose(ours[c], ref[c], rtol=0, atol=TOL, err_msg=c)
    assert evaluation.metrics["top_decile_lift"] == pytest.approx(ref["lift"].iloc[0])
    assert ours["cumulative_gain"].iloc[-1] == pytest.approx(1.0)


def test_curves_are_sklearns_points_and_bounded(binary_df, binary_pdf, evaluation):
    y, s = binary_pdf["label"], binary_pdf["probability_1"]
    fpr, tpr, thr = skm.roc_curve(y, s, drop_intermediate=False)
    roc = evaluation.roc_curve  # fewer distinct scores than curve_points: every threshold is there
    np.testing.assert_allclose(roc["fpr"], fpr, atol=TOL)
    np.testing.assert_allclose(roc["tpr"], tpr, atol=TOL)
    np.testing.assert_allclose(roc["threshold"].iloc[1:], thr[1:])
    precision, recall, _ = skm.precision_recall_curve(y, s)
    pr = evaluation.pr_curve
    np.testing.assert_allclose(pr["precision"], precision[::-1], atol=TOL)
    np.testing.assert_allclose(pr["recall"], recall[::-1], atol=TOL)

    thin = binary_metrics(binary_df, threshold=0.5, curve_points=10)
    assert 3 <= len(thin.roc_curve) <= 11 and len(thin.pr_curve) == len(thin.roc_curve)
    sk_points = set(zip(np.round(fpr, 12), np.round(tpr, 12)))
    assert set(zip(np.round(thin.roc_curve["fpr"], 12), np.round(thin.roc_curve["tpr"], 12))) <= sk_points
    assert thin.roc_curve[["fpr", "tpr"]].iloc[-1].tolist() == [1.0, 1.0]


def test_weighted_metrics_agree_with_sklearn_sample_weight(binary_df, binary_pdf):
    ev = binary_metrics(binary_df, threshold=0.3, weight_col="weight")
    y, s, w = binary_pdf["label"], binary_pdf["probability_1"], binary_pdf["weight"]
    assert_metrics(ev.metrics, {
        "roc_auc": skm.roc_auc_score(y, s, sample_weight=w),
        "pr_auc": skm.average_precision_score(y, s, sample_weight=w),
        "log_loss": skm.log_loss(y, s, sample_weight=w),
        "brier_score": skm.brier_score_loss(y, s, sample_weight=w),
        "base_rate": np.average(y, weights=w),
        "total_weight": w.sum(),
        **sk_at(binary_pdf, 0.3, weight=w),
    })


def test_many_score_ranges_give_the_same_exact_results(spark, monkeypatch):
    """Cumulative sums split over ~25 score ranges (offsets + per-range windows) stay exact."""
    pdf = binary_data(n=2000, seed=11, decimals=3)
    monkeypatch.setattr(scores_module, "ROWS_PER_RANGE", 25)
    ev = binary_metrics(spark.createDataFrame(pdf), curve_points=5000)
    y, s = pdf["label"], pdf["probability_1"]
    assert_metrics(ev.metrics, {"roc_auc": skm.roc_auc_score(y, s), "pr_auc": skm.average_precision_score(y, s),
                                "log_loss": skm.log_loss(y, s)})
    fpr, tpr, _ = skm.roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_allclose(ev.roc_curve["fpr"], fpr, atol=TOL)
    np.testing.assert_allclose(ev.roc_curve["tpr"], tpr, atol=TOL)
    np.testing.assert_allclose(ev.deciles["cumulative_gain"], decile_reference(pdf)["cumulative_gain"], atol=TOL)
    f1 = f1_by_threshold(pdf)
    assert ev.threshold == f1[f1 == f1.max()].index.max()


def test_probability_vector_and_boolean_label(spark, binary_pdf):
    small = binary_pdf.head(300)
    rows = [(bool(r.label), Vectors.dense([1 - r.probability_1, r.probability_1])) for r in small.itertuples()]
    df = spark.createDataFrame(rows, ["clicked", "probability"])
    ev = binary_metrics(df, label_col="clicked", score_col="probability", threshold=0.5)
    assert ev.metrics["roc_auc"] == pytest.approx(skm.roc_auc_score(small["label"], small["probability_1"]), abs=TOL)


def test_single_class_gives_nan_auc_and_a_log_line(spark, caplog):
    df = spark.createDataFrame(pd.DataFrame({"label": [0, 0, 0], "probability_1": [0.1, 0.4, 0.4]}))
    with caplog.at_level(logging.WARNING, logger="pipelines.evaluate"):
        ev = binary_metrics(df, threshold=0.5)
    assert math.isnan(ev.metrics["roc_auc"]) and math.isnan(ev.metrics["pr_auc"])
    assert "only one class" in caplog.text and "roc_auc is undefined" in caplog.text
    assert ev.metrics["accuracy"] == 1.0 and ev.metrics["f1"] == 0.0
    assert ev.metrics["log_loss"] == pytest.approx(skm.log_loss([0, 0, 0], [0.1, 0.4, 0.4], labels=[0, 1]))
    doc = json.loads(ev.to_json())  # strict JSON: NaN becomes null
    assert doc["metrics"]["roc_auc"] is None and doc["metrics"]["log_loss"] > 0
    with caplog.at_level(logging.WARNING, logger="pipelines.evaluate"):
        assert binary_metrics(df).threshold == 0.5  # F1 undefined: falls back to 0.5


def test_empty_input_names_table_and_columns(spark):
    df = spark.createDataFrame([], "label int, probability_1 double")
    with pytest.raises(EvaluationInputError, match=r"validation_predictions: no rows .*'label'.*'probability_1'"):
        binary_metrics(df, table="validation_predictions")


def test_rows_with_nulls_are_skipped(spark, caplog):
    df = spark.createDataFrame([(1, 0.9), (0, 0.2), (None, 0.5), (1, None)], "label int, probability_1 double")
    with caplog.at_level(logging.WARNING, logger="pipelines.evaluate"):
        ev = binary_metrics(df, threshold=0.5)
    assert ev.metrics["rows"] == 2 and ev.params["skipped_rows"] == 2 and ev.metrics["roc_auc"] == 1.0
    assert "skipped 2 row(s)" in caplog.text


@pytest.mark.parametrize(
    ("rows", "kwargs", "message"),
    [
        ([(2, 0.5)], {}, r"label column 'label' must hold 0/1"),
        ([(1, 1.5)], {}, r"score column 'probability_1' must hold probabilities in \[0, 1\]"),
        ([(1, 0.5)], {"score_col": "score"}, r"no score column 'score' \(columns: label, probability_1\)"),
        ([(1, 0.5)], {"weight_col": "w"}, r"no weight column 'w'"),
    ],
)
def test_invalid_input_raises_a_clear_error(spark, rows, kwargs, message):
    df = spark.createDataFrame(rows, "label int, probability_1 double")
    with pytest.raises(EvaluationInputError, match=message):
        binary_metrics(df, **kwargs)


def test_string_labels_must_be_numbers(spark):
    ok = spark.createDataFrame([("1", 0.9), ("0", 0.2)], "label string, probability_1 double")
    assert binary_metrics(ok, threshold=0.5).metrics["accuracy"] == 1.0
    bad = spark.createDataFrame([("yes", 0.9), ("0", 0.2)], "label string, probability_1 double")
    with pytest.raises(EvaluationInputError, match="must hold 0/1; 1 row"):
        binary_metrics(bad, threshold=0.5)


def test_negative_weights_are_rejected(spark):
    df = spark.createDataFrame([(1, 0.9, -1.0), (0, 0.2, 1.0)], "label int, probability_1 double, w double")
    message = "weight column 'w' must be non-null and >= 0"
    with pytest.raises(EvaluationInputError, match=message):
        binary_metrics(df, weight_col="w")


def test_tables_and_json(evaluation):
    assert set(evaluation.tables) == {"confusion", "deciles", "calibration", "roc_curve", "pr_curve"}
    assert all(isinstance(v, float) for v in evaluation.metrics.values())
    doc = json.loads(evaluation.to_json())
    assert doc["kind"] == "binary" and doc["metrics"]["roc_auc"] == evaluation.metrics["roc_auc"]
    m = evaluation.metrics
    assert doc["tables"]["confusion"][1] == {
        "actual": 1, "predicted_0": m["false_negatives"], "predicted_1": m["true_positives"]
    }
    assert len(doc["tables"]["deciles"]) == len(evaluation.deciles)
    assert evaluation.prefixed("test_")["test_f1"] == evaluation.metrics["f1"]


def test_intermediate_frames_are_released(spark, binary_df):
    def persisted() -> int:
        return spark.sparkContext._jsc.getPersistentRDDs().size()

    before = persisted()
    binary_metrics(binary_df, curve_points=50)
    with pytest.raises(EvaluationInputError):
        binary_metrics(binary_df, label_col="probability_1", score_col="probability_1")  # labels not 0/1
    assert persisted() == before
