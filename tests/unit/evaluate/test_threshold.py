"""Choosing the threshold on validation predictions and applying it to test predictions."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from pipelines.evaluate import binary_metrics, choose_threshold
from tests.unit.evaluate.conftest import binary_data


def best_by(pdf, rule) -> float:
    """Brute force over distinct scores; ties -> the highest score."""
    y, s = pdf["label"].to_numpy(), pdf["probability_1"].to_numpy()
    p, n = y.sum(), len(y) - y.sum()
    best, best_t = -np.inf, None
    for t in np.unique(s):  # ascending: `>=` keeps the highest threshold among ties
        pred = s >= t
        tp, fp = (pred & (y == 1)).sum(), (pred & (y == 0)).sum()
        value = 2 * tp / (pred.sum() + p) if rule == "f1" else tp / p - fp / n
        if value >= best:
            best, best_t = value, t
    return float(best_t)


@pytest.mark.parametrize("strategy", ["f1", "youden"])
def test_choose_threshold_is_the_exact_best_distinct_score(binary_df, binary_pdf, strategy):
    assert choose_threshold(binary_df, strategy=strategy) == best_by(binary_pdf, strategy)


def test_fixed_strategy_returns_the_given_threshold(binary_df):
    assert choose_threshold(binary_df, strategy="fixed", threshold=0.37) == 0.37
    with pytest.raises(ValueError, match="strategy"):
        choose_threshold(binary_df, strategy="best")
    with pytest.raises(ValueError, match=r"threshold must be in \[0, 1\]"):
        binary_metrics(binary_df, threshold=1.5)


def test_threshold_chosen_on_validation_is_applied_on_test(spark):
    validation, test = binary_data(seed=1), binary_data(seed=2)
    chosen = choose_threshold(spark.createDataFrame(validation))
    assert chosen == best_by(validation, "f1")
    ev = binary_metrics(spark.createDataFrame(test), threshold=chosen)
    assert ev.threshold == chosen and ev.params["threshold_rule"] == "fixed"
    assert ev.metrics["f1"] == pytest.approx(skm.f1_score(test["label"], test["probability_1"] >= chosen))


def test_weighted_f1_threshold(binary_df, binary_pdf):
    chosen = choose_threshold(binary_df, weight_col="weight")
    y, s, w = binary_pdf["label"], binary_pdf["probability_1"], binary_pdf["weight"]
    f1 = {t: skm.f1_score(y, s >= t, sample_weight=w) for t in np.unique(s)}
    best = max(f1.values())
    assert f1[chosen] == pytest.approx(best, abs=1e-12)


def test_binary_metrics_with_youden_strategy(binary_df, binary_pdf):
    ev = binary_metrics(binary_df, strategy="youden", curve_points=20)
    chosen = best_by(binary_pdf, "youden")
    assert ev.threshold == chosen and ev.params["threshold_rule"] == "youden"
    y, pred = binary_pdf["label"], binary_pdf["probability_1"] >= chosen
    assert ev.metrics["recall"] == pytest.approx(skm.recall_score(y, pred))
    assert ev.metrics["precision"] == pytest.approx(skm.precision_score(y, pred))
