"""The model server on the tiny pipeline's registered model (tests/services/baseline.py) and a
real redis-server: online answers equal batch scores, and `clickml serve` as a process publishes
its exposures when stopped."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import pyarrow.fs as pafs
import pytest
from fastapi.testclient import TestClient
from pyspark.sql import functions as F

from pipelines.config.serving import ExperimentSpec
from pipelines.lake import Lake
from pipelines.score.stage import available_as_of_dates, propensity_frame
from pipelines.serve import materialize
from pipelines.serve.app import build_state, create_app
from pipelines.serve.exposures import ExposureLog
from pipelines.train.scoring import load_model, score
from pipelines.train.tracking import configure
from tests.conftest import REPO_ROOT
from tests.processes import free_ports

pytestmark = pytest.mark.slow  # the shared tiny pipeline (built once per session) is not in test-fast

EXPERIMENT = {"job": "propensity", "kind": "shadow",
              "variants": {"control": {"version": 1}, "treatment": {"version": 1}}}
# (on the tiny data the base-rate gate may refuse a champion: the variants name version 1)


@pytest.fixture(scope="module")
def served(tiny_pipeline_on_disk, redis_server, spark, tmp_path_factory):
    """The shared pipeline's config with an experiment, the store on our redis-server (features
    materialized) and exposures in a landing folder of ours (the shared lake is only read)."""
    base = tiny_pipeline_on_disk
    landing = tmp_path_factory.mktemp("serve-landing")
    redis_server.flush()
    config = base.model_copy(update={
        "serving": base.serving.model_copy(update={"redis_url": redis_server.url}),
        "experiments": {"shadowed": ExperimentSpec(**EXPERIMENT)},
        "landing": base.landing.model_copy(update={"root": str(landing)}),
    })
    materialize.run(config, spark, "propensity", force=True)
    return config


def test_online_answers_equal_the_batch_scores_of_the_registered_model(served, spark, tmp_path):
    config = served
    lake = Lake(config, spark)
    latest = available_as_of_dates(config, lake)[-1]
    frame = propensity_frame(config, lake, latest)
    users = sorted(r["user_id"] for r in frame.select(F.col("user_id").cast("string").alias("user_id")).limit(8).collect())
    configure(config)  # the shared pipeline's registry: the process-wide tracking URI is whatever the last test set
    batch = {str(r["user_id"]): r["score"] for r in score(load_model("models:/clickml-propensity/1"), frame)
             .where(F.col("user_id").cast("string").isin(users)).select("user_id", "score").collect()}  # 8 rows
    exposures = ExposureLog(pafs.LocalFileSystem(), str(tmp_path / "clickstream"))
    state = build_state(config, reload_seconds=3600, exposures=exposures)
    with TestClient(create_app(state)) as http:
        assert http.get("/health").json()["status"] == "ok"
        for user in users:
            answer = http.post("/score", json={"user_id": user}).json()
            assert answer["features"] == "online" and answer["features_as_of"] == latest.isoformat()
            assert answer["score"] == pytest.approx(batch[user], abs=1e-6), user
            assert answer["shadow"][0]["score"] == pytest.approx(batch[user], abs=1e-6)  # both variants serve v1
        unknown = http.post("/score", json={"user_id": "never-seen"}).json()
        assert unknown["features"] == "default" and 0 < unknown["score"] < 1
    lines = [json.loads(x) for p in (tmp_path / "clickstream").rglob("*.jsonl") for x in p.read_text().splitlines()]
    assert len(lines) == 2 * (len(users) + 1)  # control + shadow per request


def test_clickml_serve_answers_and_publishes_its_exposures_on_sigterm(served):
    config = served
    (port,) = free_ports(1)
    settings = [
        f"lake.root={config.lake.root}", f"landing.root={config.landing.root}",
        f"mlflow.tracking_uri={config.mlflow.tracking_uri}", f"mlflow.artifact_root={config.mlflow.artifact_root}",
        f"serving.redis_url={config.serving.redis_url}", "experiments.shadowed.job=propensity",
        "experiments.shadowed.kind=ab", "experiments.shadowed.variants.control.version=1",
        "experiments.shadowed.variants.treatment.version=1",
    ]
    command = [sys.executable, "-m", "pipelines.cli"] + [a for s in settings for a in ("--set", s)]
    command += ["serve", "--port", str(port)]
    env = {**os.environ, "CLICKML_PROFILE": "local"}
    proc = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.stdout.read()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "clickml serve did not answer /health in 120 s"
            time.sleep(0.5)
        request = urllib.request.Request(f"http://127.0.0.1:{port}/score", data=json.dumps({"user_id": "u1"}).encode(),
                                         headers={"content-type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            answer = json.loads(response.read())
        assert answer["experiment"] == "shadowed" and answer["variant"] in ("control", "treatment")
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output[-3000:]
    folder = os.path.join(config.landing.root, "clickstream", dt.datetime.now(dt.timezone.utc).strftime("date=%Y-%m-%d"))
    published = [os.path.join(d, f) for d, _, files in os.walk(folder) for f in files]
    exposures = [json.loads(line) for path in published if path.endswith(".jsonl") for line in open(path)]
    assert [e["request_id"] for e in exposures if e["event_type"] == "exposure"] == [answer["request_id"]]
    assert not [p for p in published if p.endswith(".inprogress")]
