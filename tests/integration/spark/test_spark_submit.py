"""Under spark-submit, the submitted settings win and the config fills in only the rest."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

PROBE = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, {repo!r})
    from pipelines.config import load_config
    from pipelines.spark import build_session

    config = load_config(profile="local", overrides=["spark.shuffle_partitions=3", "spark.master=local[2]",
                         "lake.root={tmp}/lake", "landing.root={tmp}/landing"])
    spark = build_session(config)
    print("PROBE " + json.dumps({{
        "master": spark.sparkContext.master,
        "shuffle": spark.conf.get("spark.sql.shuffle.partitions"),
        "adaptive": spark.conf.get("spark.sql.adaptive.enabled"),
        "tz": spark.conf.get("spark.sql.session.timeZone"),
        "app": spark.sparkContext.appName,
    }}))
    spark.stop()
    """
)


@pytest.mark.slow
def test_spark_submit_settings_win(tmp_path):
    submit = shutil.which("spark-submit", path=str(Path(sys.executable).parent))
    if submit is None:
        pytest.skip("spark-submit not found next to the Python interpreter (pyspark installs it in the venv's bin/)")
    script = tmp_path / "probe.py"
    script.write_text(PROBE.format(repo=str(REPO_ROOT), tmp=str(tmp_path)))
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable, "SPARK_LOCAL_IP": "127.0.0.1"}
    env.pop("PYSPARK_GATEWAY_PORT", None)
    proc = subprocess.run(
        [submit, "--master", "local[1]", "--name", "submitted-name", "--conf", "spark.sql.shuffle.partitions=7",
         "--conf", "spark.ui.enabled=false", str(script)],
        capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("PROBE ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    seen = json.loads(lines[0][len("PROBE "):])
    assert seen["master"] == "local[1]"  # the submitted master, not the config's local[2]
    assert seen["shuffle"] == "7"  # submitted --conf wins over the config's 3
    assert seen["app"] == "submitted-name"
    assert seen["adaptive"] == "true" and seen["tz"] == "UTC"  # filled in from the config
