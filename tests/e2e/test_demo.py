"""The demo path (`make demo`) on a tiny clickstream, in the test session's Spark, with Spark's
code generation on (the suite's tests/spark-conf turns it off elsewhere), so one whole pipeline
run goes through generated code as a user's run does."""

from __future__ import annotations

import re

import pytest

from pipelines import demo
from tests.conftest import make_config, suite_spark_defaults

pytestmark = pytest.mark.e2e

CODEGEN = {"spark.sql.codegen.wholeStage": "true", "spark.sql.codegen.factoryMode": "FALLBACK"}
"""Spark's own defaults for the settings tests/spark-conf/spark-defaults.conf changes."""


@pytest.fixture
def spark_with_codegen(spark):
    """The session with Spark's code generation defaults for one test (runtime SQL settings),
    the suite's settings restored after it."""
    # every setting the suite's file changes, so this run has all of Spark's defaults back
    assert set(CODEGEN) == set(suite_spark_defaults()), suite_spark_defaults()
    before = {key: spark.conf.get(key) for key in CODEGEN}
    for key, value in CODEGEN.items():
        spark.conf.set(key, value)
    try:
        yield spark
    finally:
        for key, value in before.items():
            spark.conf.set(key, value)


def test_demo_runs_the_whole_pipeline(spark_with_codegen, tmp_path):
    spark = spark_with_codegen
    plan = spark.range(3).selectExpr("id + 1 AS x")._jdf.queryExecution().executedPlan().toString()
    assert "*(1) " in plan, plan  # whole-stage generated code, as a user's run has it
    config = make_config(
        tmp_path, "generator.users=150", "generator.days=6", "generator.bad_records.share=0.05",
        "training_sets.propensity.horizon_days=1", "training_sets.implicit.test_days=1",
        "training.jobs.propensity.models.lr.search.method=none",
        # The deep model trains in the cluster-profile demo (TorchDistributor on the standalone
        # cluster's executors, tests/e2e/test_cluster_profile.py), which in turn leaves the MLlib
        # models to this run; tests/integration/train/test_train_deep.py trains it in this local
        # session and promotes it over a champion. Here it took ~36 s of the ~190 s (2026-12-07).
        "training.jobs.propensity.models.deep.enabled=false",
    )
    summary = demo.run(config, spark)
    assert summary.lines_landed > summary.events_generated > 0
    # every landed line is either loaded or counted as unparseable
    assert summary.rows_loaded + summary.rows_unparsed == summary.lines_landed
    assert summary.rows_read_spark == summary.rows_read_delta_rs == summary.rows_loaded
    assert summary.version == 0
    # ingest: every generated valid event reached bronze once; silver built sessions
    assert summary.bronze_rows == summary.events_generated
    assert sum(summary.quarantine_by_reason.values()) > 0
    assert "silver: rebuilt" in summary.silver_report
    assert "features: built 6 as-of date(s)" in summary.features_report
    assert "train" in summary.training_sets_report and "positive" in summary.training_sets_report
    assert len(summary.gate_reports) == len(demo.gated_tables(config))
    assert all("passed" in line for line in summary.gate_reports), summary.gate_reports
    assert summary.data_docs and summary.data_docs.endswith("index.html")
    for model in ("propensity/lr", "propensity/rf", "propensity/gbt", "recommender/als"):
        assert model in summary.training_table
    # A champion is promoted; on this tiny data (about 7 positives per split) a model whose test
    # log loss does not beat predicting the base rate is refused by the gate, which says so.
    assert re.search(r"clickml-propensity v\d champion", summary.training_table), summary.training_table
    for line in summary.training_table.splitlines():
        if "prediction gate failed" in line:
            assert "is not below the base-rate predictor's" in line, line
    text = demo.format_summary(summary)
    assert "read with delta-rs" in text and f"{summary.rows_loaded:,}" in text
    assert "validation gates" in text and "MLflow UI: mlflow ui --backend-store-uri sqlite:///" in text
    # the re-run paths (ingest nothing twice, features up to date, new model versions compared
    # with the champion) are covered per stage in tests/integration; one demo run is enough here
