"""The monitoring report's HTML (no Spark)."""

from __future__ import annotations

import datetime as dt

from pipelines.monitor.drift import DriftStat
from pipelines.monitor.judge import ALERT, OK, Judged
from pipelines.monitor.report import render
from pipelines.monitor.stage import MonitorResult


def test_the_report_shows_the_table_the_flagged_distributions_and_performance():
    result = MonitorResult("propensity", dt.date(2024, 1, 10), "clickml-propensity", "3")
    result.judged = [
        Judged(DriftStat("pages_7d", "numeric", "psi", 0.4, None, 100, 90), ALERT, "PSI 0.4 (warn 0.1, alert 0.25)"),
        Judged(DriftStat("device", "categorical", "chi2", 1.0, 0.6, 100, 90), OK, "chi-square p 0.6"),
        Judged(DriftStat("score", "score", "psi", 0.01, None, 100, 90), OK, "PSI 0.01"),
        Judged(DriftStat("<b>odd</b>", "numeric", "psi", float("nan"), None, 100, 0), OK, "undefined"),
    ]
    cells = {
        "pages_7d": (["[-inf, 1)", "[1, inf)", "missing"], [50, 50, 0], [10, 80, 0]),
        "score": (["[-inf, 0.5)", "[0.5, inf)", "missing"], [70, 30, 0], [68, 22, 0]),
        "device": (["mobile", "__other__", "__null__"], [60, 40, 0], [50, 40, 0]),
    }
    history = [{"as_of_date": dt.date(2024, 1, 3), "metric": "roc_auc", "value": 0.71, "test_value": 0.74}]
    page = render(result, cells, history)
    assert "Monitoring propensity as of 2024-01-10 (clickml-propensity v3)" in page
    assert page.count("data:image/png;base64,") == 3  # score, pages_7d (alert), performance; device is ok
    assert "alt='pages_7d'" in page and "alt='score'" in page and "alt='device'" not in page
    assert page.index(">pages_7d<") < page.index(">device<")  # alerts first
    assert "&lt;b&gt;odd&lt;/b&gt;" in page and "<b>odd</b>" not in page  # names are escaped
    assert "No scored date has matured labels yet" in render(result, cells, [])
