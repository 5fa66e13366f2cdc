"""The experiment report on summaries made by `analyze.summarize` from hand-made sums (no Spark):
its plots are real PNGs, its intervals are the summary's, and undefined statistics, a shadow
experiment or a broken split render instead of failing."""

from __future__ import annotations

import base64
import datetime as dt
import re
from types import SimpleNamespace

import pytest

from pipelines.config.serving import ExperimentSpec
from pipelines.experiments import analyze, report

PNG = b"\x89PNG\r\n\x1a\n"


def _spec(kind="ab", **extra) -> ExperimentSpec:
    weights = {} if kind == "shadow" else {"weight": 0.5}
    return ExperimentSpec(job="propensity", kind=kind, variants={"control": {"alias": "champion", **weights},
                                                                 "treatment": {"alias": "challenger", **weights}}, **extra)


def _row(variant: str, users: int, conv: int) -> dict:
    """Sums of a variant whose pre-period covariate is half correlated with each metric."""
    row = {"experiment_id": "exp", "variant": variant, "users": users, "multi_variant_users": 1}
    for metric, scale in (("converted", 1.0), ("clicks", 3.0), ("revenue", 40.0)):
        total = conv * scale
        row.update({f"{metric}_sum": total, f"{metric}_sum_sq": total * scale * 2, f"{metric}_sum_x": total * 0.8,
                    f"{metric}_sum_xx": total * scale * 2, f"{metric}_sum_xy": total * scale})
    return row


def _daily(rows: list[dict], days=(1, 2, 3)) -> list[dict]:
    return [{"experiment_id": "exp", "variant": r["variant"], "day": dt.date(2026, 3, d), "users": r["users"] // len(days),
             "conversions": int(r["converted_sum"]) // len(days), "clicks": 0.0, "revenue": 0.0} for r in rows for d in days]


def _result(summary: dict, daily: list[dict], winner=None, reason="", promotion=None):
    return SimpleNamespace(experiment_id="exp", as_of=dt.date(2026, 3, 3), summary=summary, daily=daily, winner=winner,
                           decision_reason=reason, promotion=promotion)


def _images(page: str) -> dict[str, bytes]:
    return {alt: base64.b64decode(data) for alt, data in re.findall(r"<img alt='([^']+)' src='data:image/png;base64,([^']+)'>", page)}


def test_the_report_shows_the_four_plots_and_the_decision():
    rows = [_row("control", 3000, 300), _row("treatment", 3000, 390)]
    daily = _daily(rows)
    summary = analyze.summarize("exp", _spec(), rows, daily)
    promotion = SimpleNamespace(reason="promoted clickml-propensity v2 to champion (v1 is now previous_champion)")
    page = report.render(_result(summary, daily, "treatment", "P(beat) 1 and expected loss 0 meet the rule", promotion))
    images = _images(page)
    assert set(images) == {"conversion over time", "posterior densities", "lift with intervals", "sequential p-value"}
    assert all(png.startswith(PNG) and len(png) > 5000 for png in images.values())
    assert "<b>Ship treatment</b>" in page and "v1 is now previous_champion" in page
    comp = summary["comparisons"]["treatment"]
    # the comparison table shows the summary's numbers
    assert f"[{comp['conversion']['abs_ci'][0]:.4g}, {comp['conversion']['abs_ci'][1]:.4g}]" in page
    assert f"<td>{comp['bayes']['prob_treatment_beats_control']:.4g}</td>" in page
    assert "<td>3,000</td>" in page and "ok</b>" in page  # users; the SRM passed


def test_lift_intervals_are_the_summary_intervals_and_skip_undefined_ones():
    rows = [_row("control", 2000, 200), _row("treatment", 2000, 240)]
    comp = analyze.summarize("exp", _spec(), rows)["comparisons"]
    absolute, relative = report.lift_intervals(comp)
    c = comp["treatment"]
    assert absolute[0] == ("treatment: z-test (Wald)", c["conversion"]["abs_lift"], *c["conversion"]["abs_ci"])
    assert absolute[1][0] == "treatment: Bayesian" and tuple(absolute[1][2:]) == tuple(c["bayes"]["abs_lift_ci"])
    assert absolute[2][2:] == tuple(c["cuped"]["converted"]["adjusted"]["abs_ci"])
    assert relative[0][2:] == tuple(c["conversion"]["rel_ci"]) and [r[0] for r in relative][1] == "treatment: Bayesian"
    for label, est, lo, hi in absolute + relative:
        assert lo < est < hi, label

    none = analyze.summarize("exp", _spec(), [_row("control", 500, 0), _row("treatment", 500, 5)])["comparisons"]
    absolute, relative = report.lift_intervals(none)
    assert "treatment: z-test (log ratio)" not in [r[0] for r in relative]  # the control never converted: no ratio CI
    assert "treatment: z-test (Wald)" in [a[0] for a in absolute]


@pytest.mark.parametrize("case", ["srm", "zero", "shadow", "no_daily"])
def test_broken_or_undefined_experiments_still_render(case):
    if case == "srm":
        rows = [_row("control", 3000, 300), _row("treatment", 2000, 300)]
        summary = analyze.summarize("exp", _spec(), rows, _daily(rows))
        page = report.render(_result(summary, _daily(rows), reason="sample-ratio mismatch"))
        assert "MISMATCH: the split is broken" in page and "<b>No winner</b>" in page
    elif case == "zero":  # nobody converted: z-test, CUPED and mSPRT undefined, reported as such
        rows = [_row("control", 100, 0), _row("treatment", 100, 0)]
        summary = analyze.summarize("exp", _spec(), rows, _daily(rows))
        page = report.render(_result(summary, _daily(rows)))
        assert "no variance" in page and "posterior densities" in _images(page)
        assert "lift with intervals" in _images(page)  # the Bayesian interval is defined even then
    elif case == "shadow":
        rows = [_row("control", 1000, 100)]
        summary = analyze.summarize("exp", _spec("shadow"), rows, _daily(rows))
        page = report.render(_result(summary, _daily(rows)))
        assert set(_images(page)) == {"conversion over time"} and "shadow: only the control" in page
    else:
        rows = [_row("control", 1000, 100), _row("treatment", 1000, 120)]
        page = report.render(_result(analyze.summarize("exp", _spec(), rows), []))
        assert "conversion over time" not in _images(page) and "lift with intervals" in _images(page)


def test_write_report_puts_the_page_beside_the_data_docs(tmp_path, monkeypatch):
    from tests.conftest import make_config

    config = make_config(tmp_path)
    monkeypatch.setattr(report, "_log_to_mlflow", lambda *args: None)  # the MLflow run is the integration test's
    rows = [_row("control", 1000, 100), _row("treatment", 1000, 120)]
    where = report.write_report(config, _result(analyze.summarize("exp", _spec(), rows), []))
    assert where.endswith("/experiments/exp/2026-03-03.html") and where.startswith(str(tmp_path))
    assert "<title>Experiment exp as of 2026-03-03</title>" in open(where).read()
