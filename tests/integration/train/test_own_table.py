"""The README's "Train on your own table": examples/own_table.yaml trains examples/sessions.csv
through a user config file, with a stratified split, a yes/no label, a default search space and
calibrated probabilities."""

from __future__ import annotations

import mlflow
import pytest

from pipelines.config import load_config
from pipelines.train import stage
from pipelines.train.calibration import calibrator_of
from pipelines.train.scoring import load_model
from tests.conftest import CONF_DIR, REPO_ROOT

pytestmark = pytest.mark.slow


def test_the_own_table_example_trains_by_config_alone(spark, tmp_path):
    config = load_config(profile="local", conf_dir=CONF_DIR, user_config=REPO_ROOT / "examples" / "own_table.yaml",
                         overrides=[f"lake.root={tmp_path / 'lakehouse'}", f"logging.dir={tmp_path / 'logs'}",
                                    "spark.master=local[2]", "spark.shuffle_partitions=2",
                                    # the example's 4 GBT trials, halved for the suite's time: the
                                    # default search space and its logging are the same with 2
                                    "training.jobs.sessions.models.gbt.search.trials=2"], env={})
    job = config.training.jobs["sessions"]
    assert job.data.path == str(REPO_ROOT / "examples" / "sessions.csv")  # relative to the user file
    assert "propensity" in config.training.jobs  # merged over base, not replacing it

    result = stage.run(config, spark, jobs=["sessions"])
    lr, gbt = result.models
    for model in (lr, gbt):
        metrics = model.metrics
        assert metrics["roc_auc"] > 0.7, metrics
        # Stratified 20% test of 3,000 rows, 18.2% of them positive.
        assert 590 <= metrics["rows"] <= 610 and abs(metrics["base_rate"] - 0.182) < 0.01
        assert metrics["log_loss"] < metrics["base_rate_log_loss"] and metrics["calibration_error"] < 0.06
    search = mlflow.get_run(gbt.run_id).data
    assert {"param.maxDepth", "param.maxIter", "param.stepSize", "param.minInstancesPerNode"} <= set(search.params)
    champion = load_model("models:/sessions-purchase@champion")
    assert calibrator_of(champion) is not None
