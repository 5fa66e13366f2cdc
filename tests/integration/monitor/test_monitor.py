"""`clickml monitor` on the tiny pipeline (tests/services/baseline.py): its registered propensity
model scores the latest as-of date, then the scored population is compared with the reference
profile its training run logged. Tables are written outside the shared lake."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.lake import Lake
from pipelines.monitor import stage
from pipelines.monitor.judge import ALERT, OK, WARN
from pipelines.monitor.stage import MonitorError
from pipelines.score import stage as score_stage

# The shared tiny pipeline (trained once per session, ~80 s) is not part of `make test-fast`.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def monitored(spark, tiny_pipeline_on_disk, tmp_path_factory):
    """The shared pipeline's config writing predictions, drift and GX results under a folder of
    ours (table names given as paths), with the latest as-of date scored by its registered lr."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from pipelines.train.tracking import configure

    base = tiny_pipeline_on_disk
    out = tmp_path_factory.mktemp("monitoring")
    tables = base.tables.model_copy(update={"predictions": str(out / "predictions"), "monitor_drift": str(out / "drift"),
                                            "monitor_performance": str(out / "performance")})
    validation = base.validation.model_copy(update={"results_root": str(out / "validation")})
    config = base.model_copy(update={"tables": tables, "validation": validation})
    configure(config)
    name = config.training.jobs["propensity"].registry.name
    try:  # on so little data the model may have lost to the base rate and stayed challenger
        MlflowClient().get_model_version_by_alias(name, "champion")
        alias = "champion"
    except MlflowException:
        alias = "challenger"
    scored = score_stage.run(config, spark, "propensity", alias=alias)
    return config, scored


def test_every_feature_and_the_score_get_judged_drift_statistics(spark, monitored):
    config, scored = monitored
    result = stage.run(config, spark, "propensity")
    assert (result.as_of, result.model_version) == (scored.as_of, scored.model.version)
    rows = Lake(config, spark).read(config.tables.monitor_drift).collect()  # bounded: features x statistics
    assert len(rows) == len(result.judged) > 0
    by_kind: dict[str, set] = {}
    for r in rows:
        by_kind.setdefault(r["kind"], set()).add(r["statistic"])
        assert r["status"] in (OK, WARN, ALERT) and r["reason"]
        assert (r["job"], r["as_of_date"], r["model_version"]) == ("propensity", scored.as_of, scored.model.version)
        assert r["n_current"] == scored.rows or r["kind"] == "numeric"  # numeric KS leaves missing values out
    assert by_kind["numeric"] == {"psi", "ks", "js"} and by_kind["score"] == {"psi", "ks", "js"}
    assert by_kind["categorical"] == {"psi", "chi2", "js"}
    assert f"monitor propensity as of {scored.as_of}" in result.report()
    # The HTML report beside the Data Docs and in the model's run.
    page = Path(result.report_path).read_text()
    assert f"Monitoring propensity as of {scored.as_of}" in page and "data:image/png;base64," in page
    assert all(f">{j.stat.feature}<" in page for j in result.judged)
    from mlflow import MlflowClient

    logged = {a.path for a in MlflowClient().list_artifacts(scored.model.run_id, "monitor")}
    assert f"monitor/{Path(result.report_path).name}" in logged

    # A rerun replaces its slice (thresholds may have changed), it does not add to it.
    strict = config.model_copy(deep=True)
    strict.monitoring.default.thresholds.psi_warn = 1e-12
    strict.monitoring.default.thresholds.psi_alert = 1e-9
    strict.monitoring.default.thresholds.chi2_p_value = 1 - 1e-9  # any difference counts as significant
    alerting = stage.run(strict, spark, "propensity")
    assert alerting.alert and "ALERT" in alerting.report()
    rows = Lake(config, spark).read(config.tables.monitor_drift).collect()
    assert len(rows) == len(alerting.judged) and any(r["status"] == ALERT for r in rows)


def test_a_scored_date_whose_labels_matured_is_evaluated_next_to_the_test_figures(spark, monitored):
    config, scored = monitored
    lake = Lake(config, spark)
    # Bounded: the training set's cutoffs.
    cutoffs = {r[0] for r in lake.read(config.tables.propensity_training).select("cutoff").distinct().collect()}
    date = max(set(score_stage.available_as_of_dates(config, lake)) & cutoffs)
    assert date < scored.as_of  # the latest scored date has no labels yet
    score_stage.run(config, spark, "propensity", as_of=date, alias=scored.model.alias)
    result = stage.run(config, spark, "propensity", as_of=date)
    (evaluated,) = [p for p in result.performance if p.as_of == date]
    assert evaluated.metrics["rows"] > 0 and 0 <= evaluated.metrics["base_rate"] <= 1
    assert "roc_auc" in evaluated.test and evaluated.status in (OK, ALERT)
    assert f"AUC as of {date}" in result.report()
    assert "Performance over time" in Path(result.report_path).read_text()
    rows = lake.read(config.tables.monitor_performance).collect()  # bounded: dates x metrics
    assert {r["metric"] for r in rows if r["as_of_date"] == date} >= {"roc_auc", "pr_auc", "log_loss", "calibration_error",
                                                                       "top_decile_lift"}
    assert all(r["test_value"] is not None for r in rows if r["metric"] == "roc_auc")
    assert not [p for p in result.performance if p.as_of == scored.as_of]  # not matured: not evaluated


def test_an_unscored_date_or_version_is_a_clear_error(spark, monitored):
    config, scored = monitored
    with pytest.raises(MonitorError, match="no scores of job propensity as of 1999-01-01"):
        import datetime as dt

        stage.run(config, spark, "propensity", as_of=dt.date(1999, 1, 1))
    with pytest.raises(MonitorError, match="was not scored by version 999"):
        stage.run(config, spark, "propensity", version="999")
    with pytest.raises(MonitorError, match="covers registered binary jobs"):
        stage.run(config, spark, "recommender")
