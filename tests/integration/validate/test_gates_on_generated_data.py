"""The shipped bronze and silver suites on generated, ingested and sessionized data."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import shutil
from pathlib import Path

import pytest

from pipelines import generate, ingest, silver, validate
from pipelines.lake import Lake
from tests.conftest import CONF_DIR, REPO_ROOT, make_config

# The module's lakehouse (generate -> ingest -> silver, ~16 s) and its tests (~20 s) are out of
# make test-fast (under 8 min); make test runs them. The gates' own tests stay in tests/unit/validate.
pytestmark = pytest.mark.slow

TABLES = ("bronze.events", "bronze.quarantine", "bronze.ingest_audit", "silver.events", "silver.sessions")


@pytest.fixture(scope="module")
def lakehouse(spark, tmp_path_factory):
    base = tmp_path_factory.mktemp("validate-lake")
    config = make_config(base, "generator.users=30", "generator.days=2", "generator.bad_records.share=0.05")
    generate.generate_landing(config, spark)  # the landing files only: no truth tables needed here
    ingest.run(config, spark, "clickstream", dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 5))
    silver.run(config, spark)
    return config


def load_job():
    spec = importlib.util.spec_from_file_location("validate_job", REPO_ROOT / "jobs" / "validate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bronze_and_silver_suites_pass_and_leave_docs_and_summaries(spark, lakehouse):
    config = lakehouse
    lake = Lake(config, spark)
    results = [validate.run(config, spark, table, lake=lake) for table in TABLES]
    assert all(r.success for r in results), "\n".join(r.report() for r in results)
    root = Path(config.lake.root) / "_validation"
    index = root / "data_docs" / "index.html"
    assert index.exists()
    html = index.read_text()
    for result in results:
        page = Path(result.data_docs_page.removeprefix("file://"))
        assert page.exists() and page.is_relative_to(root / "data_docs")
        assert str(page.relative_to(root / "data_docs")) in html  # every run is listed in the index
        summary = json.loads(Path(result.summary_path).read_text())
        assert Path(result.summary_path).parent == root / result.table
        assert Path(result.summary_path).name.startswith(f"v{result.version}-")
        assert summary["table"] == result.table and summary["version"] == lake.version(result.table)
        assert summary["success"] is True and summary["rows"] == result.rows > 0
        assert summary["suite"] == result.table and summary["duration_seconds"] > 0
        assert summary["expectations"][0]["expectation"] == "RowCountVsPreviousVersion"
        assert all({"expectation", "kwargs", "success", "observed"} <= set(e) for e in summary["expectations"])
    events = next(r for r in results if r.table == "silver.events")
    assert events.rows == lake.read("silver.events").count()
    assert "price" in events.columns_read and "brand" not in events.columns_read


def test_the_job_exits_non_zero_when_a_gate_fails(spark, lakehouse, tmp_path, capsys):
    config = lakehouse
    job = load_job()
    # the job reuses the suite's live session: keep its settings (shuffle partitions) as they are
    common = [f"--set=lake.root={config.lake.root}", f"--set=landing.root={config.landing.root}",
              "--set=spark.master=local[2]", "--set=spark.shuffle_partitions=2"]
    assert job.main(["--table", "ingest_audit,bronze.quarantine", *common]) == 0  # a tables key works too
    out = capsys.readouterr().out
    assert "validate bronze.ingest_audit v0 [suite bronze.ingest_audit]: passed" in out
    assert "validate bronze.quarantine v0 [suite bronze.quarantine]: passed" in out

    strict = tmp_path / "suites"
    shutil.copytree(CONF_DIR / "expectations", strict)
    text = (strict / "silver.sessions.yaml").read_text()
    (strict / "silver.sessions.yaml").write_text(
        text.replace("{expectation: ExpectColumnValuesToBeBetween, column: events, min_value: 1}",
                     "{expectation: ExpectColumnValuesToBeBetween, column: events, min_value: 1, max_value: 1}")
    )
    assert job.main(["--table", "silver.sessions", "--version", "0", f"--set=validation.suites_dir={strict}", *common]) == 1
    captured = capsys.readouterr()
    assert "FAILED 1/23 checks (ExpectColumnValuesToBeBetween 'events')" in captured.out
    assert "ExpectColumnValuesToBeBetween(column='events', min_value=1, max_value=1): unexpected_count=" in captured.err
    assert job.main(["--table", "gold.nothing", *common]) == 2
