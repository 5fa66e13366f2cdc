"""The spark-submit entry points import and parse their arguments (no Spark started)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT

JOBS = sorted(p.name for p in (REPO_ROOT / "jobs").glob("*.py"))


@pytest.mark.parametrize("job", JOBS)
def test_job_help(job):
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "jobs" / job), "--help"], capture_output=True, text=True, timeout=120, cwd=REPO_ROOT
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "--profile" in proc.stdout and "--set" in proc.stdout


def test_jobs_exist_for_every_stage():
    assert {"generate_clickstream.py", "ingest_clickstream.py", "build_silver.py", "build_features.py",
            "build_training_sets.py", "validate.py", "train.py", "demo.py", "lake_vacuum.py"} <= set(JOBS)
