"""The tiny pipeline once on local disk: the baseline the storage end-to-end tests compare with.

The S3 and HDFS tests each run the whole pipeline on their storage and compare every table's row
count with the same run on local disk; the local run is the same for all of them (same overrides,
same seed), so it runs once per test session.

    def test_x(spark, tiny_pipeline_on_disk): ...   # registered in tests/conftest.py
"""

from __future__ import annotations

import datetime as dt
import time

import pytest

from tests.conftest import make_config
from tests.services import TINY_PIPELINE

START = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
END = dt.datetime(2024, 1, 8, tzinfo=dt.timezone.utc)  # the generated days plus late arrivals


def mlflow_beside(folder) -> list[str]:
    """MLflow's tracking store and artifacts in `folder` (not under a remote lake.root)."""
    return [f"mlflow.tracking_uri=sqlite:///{folder / 'mlflow.db'}", f"mlflow.artifact_root={folder / 'mlruns'}"]


def run_tiny_pipeline(config, spark, train: bool = True) -> None:
    """generate -> ingest -> silver -> features -> training sets [-> train propensity/lr] in
    `spark`: what the S3 and HDFS tests run on their storage, and the local baseline, in order."""
    from pipelines import generate, ingest, silver
    from pipelines.features import stage as features_stage
    from pipelines.train import stage as train_stage
    from pipelines.training_sets import stage as training_sets_stage

    generate.run(config, spark)
    ingest.run(config, spark, None, START, END)
    silver.run(config, spark)
    features_stage.run(config, spark)
    training_sets_stage.run(config, spark)
    if train:
        train_stage.run(config, spark, jobs=["propensity"], models=["lr"])


@pytest.fixture(scope="session")
def tiny_pipeline_on_disk(spark, tmp_path_factory):
    """The config of one run of the tiny pipeline on local disk (read it, never write to it)."""
    base = tmp_path_factory.mktemp("tiny-on-disk")
    config = make_config(base, *TINY_PIPELINE, *mlflow_beside(base))
    started = time.monotonic()
    run_tiny_pipeline(config, spark)
    print(f"tiny pipeline on local disk (baseline, once per session): {time.monotonic() - started:.0f}s")
    return config
