"""Drift statistics judged against thresholds (pure)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipelines.config.monitoring import DriftThresholds, MonitorSpec
from pipelines.monitor.drift import DriftStat, chi_square, js_distance, psi
from pipelines.monitor.judge import ALERT, OK, WARN, feature_status, judge, judge_all

T = DriftThresholds()


def stat(feature, statistic, value, p=None, kind="numeric"):
    return DriftStat(feature, kind, statistic, value, p, 1000, 1000)


@pytest.mark.parametrize("value, status", [(0.05, OK), (0.1, WARN), (0.2, WARN), (0.25, ALERT), (1.3, ALERT)])
def test_psi_warns_at_0_1_and_alerts_at_0_25(value, status):
    assert judge(stat("x", "psi", value), T).status == status


@pytest.mark.parametrize(
    "d, p, status",
    [(0.3, 0.02, OK), (0.03, 1e-9, OK), (0.07, 1e-9, WARN), (0.1, 0.001, ALERT)],
)
def test_ks_needs_significance_and_an_effect_size(d, p, status):
    assert judge(stat("x", "ks", d, p), T).status == status


def test_chi_square_takes_the_js_distance_as_its_effect_size():
    significant = stat("c", "chi2", 50.0, 1e-6, "categorical")
    assert judge(significant, T, js=0.01).status == OK
    assert judge(significant, T, js=0.07).status == WARN
    assert judge(significant, T, js=0.2).status == ALERT
    assert judge(significant, T, js=None).status == WARN
    assert judge(stat("c", "chi2", 1.0, 0.5, "categorical"), T, js=0.5).status == OK


def test_an_undefined_statistic_is_ok_with_a_note():
    judged = judge(stat("x", "psi", math.nan), T)
    assert judged.status == OK and "undefined" in judged.reason


def test_only_configured_statistics_and_features_are_judged_the_score_always():
    stats = [stat("a", "psi", 0.5), stat("a", "ks", 0.5, 1e-9), stat("b", "psi", 0.5), stat("score", "psi", 0.5, kind="score")]
    spec = MonitorSpec(statistics=["psi"], features=["a"])
    judged = judge_all(stats, spec)
    assert [(j.stat.feature, j.stat.statistic, j.status) for j in judged] == [
        ("a", "psi", ALERT), ("b", "psi", OK), ("score", "psi", ALERT)]
    assert feature_status(judged) == {"a": ALERT, "b": OK, "score": ALERT}
    assert "not judged" in judged[1].reason


def test_thresholds_must_be_ordered():
    with pytest.raises(ValueError, match="psi_warn .* must not exceed psi_alert"):
        DriftThresholds(psi_warn=0.3, psi_alert=0.2)


def test_an_auc_drop_beyond_the_margin_alerts():
    from pipelines.monitor.performance import auc_status

    assert auc_status(0.70, 0.78, 0.05) == ALERT
    assert auc_status(0.74, 0.78, 0.05) == OK
    assert auc_status(math.nan, 0.78, 0.05) == OK and auc_status(0.5, None, 0.05) == OK


def test_psi_and_js_need_their_cells_to_differ_significantly():
    assert judge(stat("x", "psi", 0.3, 1e-6), T).status == ALERT
    assert judge(stat("x", "js", 0.07, 1e-6), T).status == WARN
    noise = judge(stat("x", "psi", 0.3, 0.2), T)
    assert noise.status == OK and "sampling noise" in noise.reason
    assert judge(stat("x", "js", 0.2, 0.05), T).status == OK
    assert judge(stat("x", "psi", 0.3), T).status == ALERT  # rows stored without the p-value: the value alone


def test_a_small_population_without_drift_does_not_alert():
    """Regression (drift benchmark, no-drift seeds): ~100 scored rows against a 10-bin reference
    gave PSI / JS above their thresholds from sampling noise alone. Judged with the p-value of
    their cells' chi-square test, the same draws stay quiet."""
    rng = np.random.default_rng(7)
    shape = np.array([0.05, 0.08, 0.1, 0.12, 0.15, 0.15, 0.12, 0.1, 0.08, 0.05])
    reference = rng.multinomial(20_000, shape)
    over_value, alerts = 0, 0
    for _ in range(300):
        current = rng.multinomial(100, shape)  # the same distribution
        _, p = chi_square(reference, current)
        judged = [judge(stat("x", "psi", psi(reference, current), p), T), judge(stat("x", "js", js_distance(reference, current), p), T)]
        over_value += psi(reference, current) >= T.psi_warn or js_distance(reference, current) >= T.js_warn
        alerts += any(j.status != OK for j in judged)
    assert over_value > 150  # without the test most of these draws would warn
    assert alerts <= 9  # p < 0.01: about 3 of 300 expected
