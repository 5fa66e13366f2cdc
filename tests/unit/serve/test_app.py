"""The model server's HTTP behaviour over a real Redis: routing, defaults, exposures, metrics,
reload. The models are small in-process stand-ins (anything with `predict_proba`); the real
exported models are exercised in tests/integration/serve."""

from __future__ import annotations

import json
import threading
from types import SimpleNamespace

import pyarrow.fs as pafs
import pytest
from fastapi.testclient import TestClient

from pipelines.serve.app import ModelSet, ServingError, build_state, create_app
from pipelines.serve.exposures import ExposureLog
from pipelines.serve.online import OnlineStore, write_features, write_meta
from pipelines.serve.routing import publish_bandit_weights
from tests.conftest import make_config
from tests.services.serving import AS_OF, Registry, materialize_recs


def experiment_overrides(name: str, kind: str = "ab", **extra: str) -> list[str]:
    base = [f"experiments.{name}.job=propensity", f"experiments.{name}.kind={kind}",
            f"experiments.{name}.variants.control.alias=champion",
            f"experiments.{name}.variants.treatment.alias=challenger"]
    return base + [f"experiments.{name}.{k}={v}" for k, v in extra.items()]


def serve(config, client, tmp_path, **extra):
    """The app over `config` with stand-in models (champion v3, challenger v4), exposures under tmp_path."""
    registry = Registry({"champion": 3, "challenger": 4})
    models = ModelSet(config, resolver=registry.resolve, loader=registry.load, threshold=lambda ref: 0.35)
    models.load_all()
    exposures = ExposureLog(pafs.LocalFileSystem(), str(tmp_path / "landing" / "clickstream"), rotate_seconds=3600)
    state = build_state(config, reload_seconds=3600, store=OnlineStore(config.serving), models=models, exposures=exposures)
    with TestClient(create_app(state)) as http:
        yield SimpleNamespace(http=http, state=state, registry=registry, client=client, landing=tmp_path / "landing", **extra)


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
    yield from serve(config, client, tmp_path)


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




# -- a recommender experiment: each variant serves its version's materialized top-k ------------

@pytest.fixture
def recs_server(redis_server, tmp_path):
    redis_server.flush()
    recs = ["experiments.recs.job=recommender", "experiments.recs.variants.control.alias=champion",
            "experiments.recs.variants.treatment.alias=challenger"]
    shadowed = ["experiments.recs_shadow.job=recommender", "experiments.recs_shadow.kind=shadow",
                "experiments.recs_shadow.variants.control.alias=champion",
                "experiments.recs_shadow.variants.treatment.alias=challenger"]
    config = make_config(tmp_path, *redis_server.config_overrides(), *experiment_overrides("ab"), *recs, *shadowed)
    client = redis_server.client()
    users = [f"r{i}" for i in range(40)]
    materialize_recs(client, redis_server.url, "3", {u: [("p-old", 0.9), ("p2", 0.5)] for u in users}, default=True)
    materialize_recs(client, redis_server.url, "4", {u: [("p-new", 0.8), ("p2", 0.4)] for u in users})
    yield from serve(config, client, tmp_path, users=users, url=redis_server.url)


def test_a_recommender_experiment_serves_each_variant_its_own_versions_top_k(recs_server):
    server = recs_server
    # no model of the recommender is loaded in-process: only the propensity experiment's two
    assert sorted(server.registry.loaded) == ["models:/clickml-propensity/3", "models:/clickml-propensity/4"]
    router = server.state.routers["recs"]
    answers = {}
    for user in server.users:
        body = server.http.get(f"/recommendations/{user}?experiment=recs&k=1&session_id=s-{user}").json()
        expected = router.decide(user).variant
        assert body["variant"] == expected and body["experiment"] == "recs" and body["source"] == "materialized"
        assert body["model_version"] == {"control": "3", "treatment": "4"}[expected]
        assert [i["product_id"] for i in body["items"]] == [{"control": "p-old", "treatment": "p-new"}[expected]]
        answers[user] = body
    assert {a["variant"] for a in answers.values()} == {"control", "treatment"}  # 40 users: both arms served
    again = server.http.get(f"/recommendations/{server.users[0]}?experiment=recs").json()
    assert again["variant"] == answers[server.users[0]]["variant"]  # sticky
    server.state.exposures.close()
    logged = [e for e in exposure_lines(server.landing) if e["experiment_id"] == "recs"]
    assert len(logged) == len(server.users) + 1
    for line in logged[:-1]:
        answer = answers[line["user_id"]]
        assert (line["variant"], line["model_version"], line["session_id"]) == (
            answer["variant"], answer["model_version"], f"s-{line['user_id']}")
        assert line["event_id"] == f"exp-{answer['request_id']}"
    # without an experiment: the default version, no exposure
    plain = server.http.get(f"/recommendations/{server.users[0]}").json()
    assert plain["model_version"] == "3" and plain["items"][0]["product_id"] == "p-old" and "experiment" not in plain


def test_a_recommender_shadow_experiment_answers_with_the_control_and_logs_the_shadow(recs_server):
    body = recs_server.http.get("/recommendations/r1?experiment=recs_shadow&k=2").json()
    assert body["variant"] == "control" and [i["product_id"] for i in body["items"]] == ["p-old", "p2"]
    assert body["shadow"] == [{"variant": "treatment", "model_version": "4", "items": ["p-new", "p2"]}]
    recs_server.state.exposures.close()
    logged = [(e["variant"], e["model_version"]) for e in exposure_lines(recs_server.landing)]
    assert logged == [("control", "3"), ("treatment", "4")]


def test_recommender_experiment_requests_that_do_not_fit_are_4xx(recs_server):
    http = recs_server.http
    wrong = http.post("/score", json={"user_id": "r1", "experiment": "recs"})
    assert wrong.status_code == 400 and "/recommendations/{user_id}?experiment=recs" in wrong.json()["detail"]
    # one propensity experiment: /score picks it although three experiments are configured (and
    # then answers that this store has no propensity features)
    picked = http.post("/score", json={"user_id": "r1"})
    assert picked.status_code == 503 and "no online features for job propensity" in picked.json()["detail"]
    assert http.get("/recommendations/r1?experiment=ab").status_code == 400
    assert http.get("/recommendations/r1?experiment=recs&job=propensity").status_code == 400
    assert http.get("/recommendations/r1?experiment=nope").status_code == 404
    assert http.get("/recommendations/r1?experiment=recs&request_id=" + "x" * 200).status_code == 422
    unknown = http.get("/recommendations/nobody?experiment=recs").json()  # unknown user: empty, counted, not a 500
    assert unknown["items"] == [] and unknown["source"] == "default"
    assert recs_server.state.store.fallbacks("recommender")["missing_recs"] == 1


def test_health_names_a_variant_version_that_is_not_materialized(recs_server):
    assert recs_server.http.get("/health").status_code == 200
    recs_server.registry.versions["challenger"] = 7  # the alias moves to a version nobody materialized
    assert "recs/treatment: v4 -> v7" in recs_server.http.post("/admin/reload").json()["changed"]
    health = recs_server.http.get("/health")
    assert health.status_code == 503 and health.json()["not_materialized"] == ["recommender v7"]
    materialize_recs(recs_server.client, recs_server.url, "7", {"r1": [("p7", 0.7)]})
    recs_server.state.store.meta("recommender", fresh=True, model_version="7")
    assert recs_server.http.get("/health").status_code == 200
