"""The model server's HTTP behaviour over a real Redis: routing, defaults, exposures, metrics,
reload. The models are small in-process stand-ins (anything with `predict_proba`); the real
exported models are exercised in tests/integration/serve."""

from __future__ import annotations

import datetime as dt
import json
import threading
from types import SimpleNamespace

import numpy as np
import pyarrow.fs as pafs
import pytest
from fastapi.testclient import TestClient

from pipelines.serve.app import ModelSet, ServingError, build_state, create_app
from pipelines.serve.exposures import ExposureLog
from pipelines.serve.online import OnlineStore, write_features, write_meta
from pipelines.serve.routing import publish_bandit_weights
from tests.conftest import make_config

AS_OF = dt.date(2024, 1, 10)


class Constant:
    """P(1) = `p` for every row, and the rows it saw."""

    def __init__(self, p: float):
        self.p, self.rows = p, []

    def predict_proba(self, rows):
        self.rows += list(rows)
        return np.full(len(rows), self.p)


class Registry:
    """Alias -> version, as the MLflow registry answers; `load` counts the models it made."""

    def __init__(self, versions):
        self.versions, self.loaded = dict(versions), []

    def resolve(self, name, alias, version):
        v = version if version is not None else self.versions[alias]
        return SimpleNamespace(version=str(v), run_id=f"run-{v}", tags={})

    def load(self, uri):
        self.loaded.append(uri)
        return Constant(int(uri.rsplit("/", 1)[1]) / 10)  # version 3 scores 0.3


def experiment_overrides(name: str, kind: str = "ab", **extra: str) -> list[str]:
    base = [f"experiments.{name}.job=propensity", f"experiments.{name}.kind={kind}",
            f"experiments.{name}.variants.control.alias=champion",
            f"experiments.{name}.variants.treatment.alias=challenger"]
    return base + [f"experiments.{name}.{k}={v}" for k, v in extra.items()]


@pytest.fixture
def server(redis_server, tmp_path):
    redis_server.flush()
    config = make_config(tmp_path, *redis_server.config_overrides(), *experiment_overrides("ab"),
                         *experiment_overrides("shadowed", kind="shadow"), *experiment_overrides("bandit", kind="bandit"))
    client = redis_server.client()
    write_meta(client, "clickml", "propensity", {"as_of_date": AS_OF.isoformat(), "users": 1,
                                                  "schema": {"views_7d": "float", "device": "str"},
                                                  "defaults": {"views_7d": "0.0", "device": "desktop"}}, 3600)
    write_features([{"user_id": "u1", "views_7d": 4.0, "device": "mobile"}], url=redis_server.url, prefix="clickml",
                   job="propensity", as_of=AS_OF.isoformat(), columns=["views_7d", "device"], ttl_seconds=3600,
                   batch_size=10, client=client)
    registry = Registry({"champion": 3, "challenger": 4})
    models = ModelSet(config, resolver=registry.resolve, loader=registry.load, threshold=lambda ref: 0.35)
    models.load_all()
    exposures = ExposureLog(pafs.LocalFileSystem(), str(tmp_path / "landing" / "clickstream"), rotate_seconds=3600)
    state = build_state(config, reload_seconds=3600, store=OnlineStore(config.serving), models=models, exposures=exposures)
    with TestClient(create_app(state)) as http:
        yield SimpleNamespace(http=http, state=state, registry=registry, client=client, landing=tmp_path / "landing")


def exposure_lines(landing) -> list[dict]:
    return [json.loads(line) for path in sorted(landing.rglob("*.jsonl")) for line in path.read_text().splitlines()]


def test_score_routes_sticky_reads_online_features_and_logs_one_exposure(server):
    answers = [server.http.post("/score", json={"user_id": "u1", "experiment": "ab"}).json() for _ in range(3)]
    assert len({a["variant"] for a in answers}) == 1  # sticky
    first = answers[0]
    assert first["features"] == "online" and first["features_as_of"] == AS_OF.isoformat()
    assert first["model"]["version"] == {"control": "3", "treatment": "4"}[first["variant"]]
    assert first["score"] == pytest.approx(int(first["model"]["version"]) / 10)
    assert first["decision"] is (first["score"] >= 0.35)
    model = server.state.models.get("ab", first["variant"]).model
    assert model.rows[0] == {"views_7d": 4.0, "device": "mobile"}
    # users split both ways
    seen = {server.http.post("/score", json={"user_id": f"x{i}", "experiment": "ab"}).json()["variant"] for i in range(40)}
    assert seen == {"control", "treatment"}
    server.state.exposures.close()
    lines = exposure_lines(server.landing)
    assert len(lines) == 43
    mine = [line for line in lines if line["user_id"] == "u1"]
    assert [line["request_id"] for line in mine] == [a["request_id"] for a in answers]
    assert {(line["event_type"], line["experiment_id"], line["variant"], line["model_version"]) for line in mine} == \
        {("exposure", "ab", first["variant"], first["model"]["version"])}
    assert all(line["event_id"] == "exp-" + line["request_id"] and line["event_time"].endswith("Z") for line in lines)
    assert not list(server.landing.rglob(".*inprogress"))  # closed files only


def test_an_unknown_user_gets_the_defaults_counted_not_a_500(server):
    answer = server.http.post("/score", json={"user_id": "nobody", "experiment": "ab"})
    assert answer.status_code == 200
    assert answer.json()["features"] == "default" and answer.json()["features_as_of"] is None
    assert server.state.store.fallbacks("propensity")["missing_user"] == 1
    assert 'clickml_feature_fallbacks_total{job="propensity",kind="missing_user"} 1' in server.http.get("/metrics").text


def test_bad_requests_are_4xx_with_a_reason(server):
    missing = server.http.post("/score", json={"experiment": "ab"})
    assert missing.status_code == 422 and "user_id" in missing.text
    assert server.http.post("/score", json={"user_id": "u1", "experiment": "ab", "extra": 1}).status_code == 422
    unknown = server.http.post("/score", json={"user_id": "u1", "experiment": "nope"})
    assert unknown.status_code == 404 and "configured: ab, shadowed, bandit" in unknown.json()["detail"]
    ambiguous = server.http.post("/score", json={"user_id": "u1"})
    assert ambiguous.status_code == 400 and "name the experiment" in ambiguous.json()["detail"]
    assert server.http.get("/recommendations/u1").status_code == 200
    assert server.http.get("/recommendations/u1?k=0").status_code == 422
    assert server.http.get("/recommendations/u1?job=propensity").status_code == 400


def test_shadow_scores_with_every_variant_and_answers_with_the_control(server):
    answer = server.http.post("/score", json={"user_id": "u1", "experiment": "shadowed"}).json()
    assert answer["variant"] == "control" and answer["score"] == pytest.approx(0.3)
    assert answer["shadow"] == [{"variant": "treatment", "model_version": "4", "score": pytest.approx(0.4)}]
    server.state.exposures.close()
    variants = sorted(line["variant"] for line in exposure_lines(server.landing))
    assert variants == ["control", "treatment"]


def test_bandit_picks_up_published_weights(server):
    publish_bandit_weights(server.client, "clickml", "bandit", {"control": 0.0, "treatment": 1.0}, {})
    server.state.refresh_bandits(force=True)
    variants = {server.http.post("/score", json={"user_id": f"b{i}", "experiment": "bandit"}).json()["variant"]
                for i in range(30)}
    assert variants == {"treatment"}


def test_metrics_health_and_a_moved_alias_reloads_gracefully(server):
    for i in range(5):
        server.http.post("/score", json={"user_id": f"m{i}", "experiment": "ab"})
    text = server.http.get("/metrics").text
    assert "# TYPE clickml_request_latency_seconds histogram" in text
    assert 'clickml_request_latency_seconds_count{endpoint="score",variant="control"}' in text
    total = sum(int(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                if line.startswith('clickml_requests_total{endpoint="score",experiment="ab"'))
    assert total == 5
    assert 'clickml_model_info{experiment="ab",variant="control",model="clickml-propensity",version="3"} 1' in text
    health = server.http.get("/health")
    assert health.status_code == 200 and health.json()["redis"] is True and len(health.json()["models"]) == 6
    # the champion alias moves to v5 while requests keep coming: every answer is from v3 or v5
    server.registry.versions["champion"] = 5
    seen, stop = set(), threading.Event()

    def hammer():
        while not stop.is_set():
            seen.add(server.http.post("/score", json={"user_id": "u1", "experiment": "shadowed"}).json()["model"]["version"])

    worker = threading.Thread(target=hammer)
    worker.start()
    changed = server.http.post("/admin/reload").json()["changed"]
    stop.set()
    worker.join()
    assert sorted(changed) == ["ab/control: v3 -> v5", "bandit/control: v3 -> v5", "shadowed/control: v3 -> v5"]
    assert seen <= {"3", "5"}
    assert server.http.post("/score", json={"user_id": "u1", "experiment": "shadowed"}).json()["model"]["version"] == "5"
    assert server.http.post("/admin/reload").json()["changed"] == []


def test_a_model_that_cannot_load_stops_the_start_naming_it(redis_server, tmp_path):
    config = make_config(tmp_path, *redis_server.config_overrides(), *experiment_overrides("ab"))

    def broken(uri):
        raise OSError("artifact missing")

    models = ModelSet(config, resolver=Registry({"champion": 1, "challenger": 2}).resolve, loader=broken)
    with pytest.raises(ServingError, match=r"experiment ab, variant control: cannot load clickml-propensity v1"):
        models.load_all()
    with pytest.raises(ServingError, match="no experiments configured"):
        build_state(make_config(tmp_path))


