"""Shared fixtures: one session-scoped local SparkSession for the whole suite, tiny configs."""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

import pytest

from pipelines.config import ClickmlConfig, load_config
from pipelines.spark import build_session
from tests import jvm_cds
from tests.services.s3 import s3_bucket, s3_server  # noqa: F401  (fixtures: a local S3 server)

REPO_ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = REPO_ROOT / "conf"
TEST_SPARK_CONF_DIR = REPO_ROOT / "tests" / "spark-conf"


def suite_spark_defaults() -> dict[str, str]:
    """The settings of tests/spark-conf/spark-defaults.conf (`key value` lines, `#` comments)."""
    lines = (TEST_SPARK_CONF_DIR / "spark-defaults.conf").read_text().splitlines()
    return dict(line.split(None, 1) for line in map(str.strip, lines) if line and not line.startswith("#"))


# Every Spark driver the tests start (the session fixture, CLI and spark-submit runs, Airflow tasks:
# subprocesses inherit the environment) gets the suite's Spark defaults as `-Dspark.*` system
# properties and the class-data archive of tests/jvm_cds.py through SPARK_SUBMIT_OPTS, with an empty
# SPARK_CONF_DIR (the archive needs one; see tests/jvm_cds.py). Set for the whole process, not by
# setdefault: a developer's own SPARK_CONF_DIR (a cluster's defaults) must not change what the tests run.
os.environ["SPARK_CONF_DIR"] = str(jvm_cds.empty_conf_dir())
os.environ["SPARK_SUBMIT_OPTS"] = jvm_cds.driver_options(suite_spark_defaults(), jvm_cds.existing_archive())


def pytest_configure(config):
    """Record the class-data archive when this machine has none yet (once: about a minute)."""
    archive = jvm_cds.ensure_archive(dict(os.environ))
    os.environ["SPARK_SUBMIT_OPTS"] = jvm_cds.driver_options(suite_spark_defaults(), archive)


def make_config(tmp_path: Path, *overrides: str) -> ClickmlConfig:
    """The local profile with the lakehouse and landing zone under `tmp_path`."""
    return load_config(
        profile="local",
        conf_dir=CONF_DIR,
        overrides=[
            f"lake.root={tmp_path / 'lakehouse'}",
            f"landing.root={tmp_path / 'landing'}",
            "spark.master=local[2]",
            "spark.shuffle_partitions=2",
            *overrides,
        ],
        env={},
    )


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    """One local SparkSession for the whole test session (JVM start-up is the slow part)."""
    os.environ.setdefault("PYSPARK_PYTHON", os.sys.executable)
    base = tmp_path_factory.mktemp("spark")
    # 3g: with 1g, the whole suite (storage end-to-end runs included) filled the old generation
    # by the unit tests at its end (99.9%, ~900 s of full GCs, a test failed); with 2g, after the
    # serving, experiment and monitoring tests were added, a unit test near the end failed with
    # "Not enough memory to build and broadcast the table" (a fresh-clone run, 2026-12-06). Delta keeps a
    # DeltaLog (with its cached snapshot state) per table path for 60 minutes, up to 10000 of
    # them; the suite creates hundreds of tables in tmp folders, so at most 50 are kept.
    config = make_config(base, f"spark.local_dir={base / 'scratch'}", "spark.driver_memory=3g")
    extra = {
        "spark.sql.warehouse.dir": str(base / "warehouse"),
        "spark.databricks.delta.log.cacheSize": "50",
        # The status store keeps 1000 SQL executions (with their plans and metrics) by default:
        # the largest share of what stays live in a long test session.
        "spark.sql.ui.retainedExecutions": "100",
        "spark.ui.retainedJobs": "200",
        "spark.ui.retainedStages": "200",
    }
    # This JVM lives for the whole suite: the options every other driver gets, without the
    # short-lived drivers' JIT settings (jvm_cds.SHORT_LIVED_JIT). Read once, when the JVM starts.
    subprocess_options = os.environ["SPARK_SUBMIT_OPTS"]
    os.environ["SPARK_SUBMIT_OPTS"] = jvm_cds.driver_options(suite_spark_defaults(), jvm_cds.existing_archive(),
                                                             short_lived=False)
    try:
        session = build_session(config, extra=extra)
    finally:
        os.environ["SPARK_SUBMIT_OPTS"] = subprocess_options
    yield session
    session.stop()


@pytest.fixture(scope="module", autouse=True)
def _release_cached_frames():
    """After each module, drop what it left cached in the shared session (a test that persists a
    frame and fails before unpersisting it would otherwise hold it for the rest of the suite)."""
    yield
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        active.catalog.clearCache()


# Under pytest-xdist (`make test TEST_WORKERS=2`: --dist loadfile), a test module runs on one
# worker, so its module-scoped fixtures are built once; modules go out longest first
# (--no-loadscope-reorder keeps this order), so a long end-to-end run does not start last while
# the other worker idles. (--dist loadgroup cannot group modules here: pytest 9 derives
# `Item.nodeid` from its structured id, so pytest-xdist 3.8's `@group` suffix on `_nodeid` is
# lost and every test became its own group, splitting modules and their fixtures across workers.)
MODULE_COST = {"e2e": 300, "slow": 60}  # rough seconds per test, only to order the modules


def item_cost(item) -> int:
    return max([MODULE_COST[m] for m in MODULE_COST if item.get_closest_marker(m)] or [1])


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """On an xdist worker: modules ordered by their estimated cost (collection order within)."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    cost: dict[str, int] = defaultdict(int)
    for item in items:
        cost[item.nodeid.split("::")[0]] += item_cost(item)
    items.sort(key=lambda item: -cost[item.nodeid.split("::")[0]])  # stable


@pytest.fixture
def config(tmp_path) -> ClickmlConfig:
    """A fresh config whose lakehouse and landing zone live in this test's tmp_path."""
    return make_config(tmp_path)


# Session fixtures shared by modules are registered here, once: imported in each module, a
# session-scoped fixture is a fixture per module. Imported last: it uses make_config above.
from tests.services.baseline import tiny_pipeline_on_disk  # noqa: E402, F401
from tests.services.kafka import kafka  # noqa: E402, F401  (one broker for the test session)
from tests.services.redis import redis_server  # noqa: E402, F401  (one redis-server for the test session)
