"""The whole loop of an online experiment, each link the production code: the model server answers
`GET /recommendations/{user}?experiment=` (a recommender A/B between two materialized model
versions, real redis-server) and logs its exposures into the landing zone -> the users' later
clicks and purchases land beside them -> ingest -> silver -> `clickml experiment analyze`.

The analysis must see exactly what the server did: the users of each variant, the model version
each was served, and the conversions and revenue the users' events carry."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter

import pyarrow.fs as pafs
import pytest
from fastapi.testclient import TestClient
from pyspark.sql import functions as F

from pipelines import ingest, silver
from pipelines.experiments import stage
from pipelines.lake import Lake
from pipelines.serve.app import ModelSet, build_state, create_app
from pipelines.serve.exposures import ExposureLog
from pipelines.serve.online import OnlineStore
from tests.conftest import make_config
from tests.services.serving import Registry, materialize_recs

pytestmark = pytest.mark.slow

USERS = [f"chain{i:03d}" for i in range(240)]
PRICE = 25.0
SETTINGS = (
    "experiments.recs_ab.job=recommender",
    "experiments.recs_ab.variants.control.alias=champion",
    "experiments.recs_ab.variants.treatment.alias=challenger",
    "experiments.recs_ab.pre_period_days=0",
    "experiments.recs_ab.attribution_window_hours=24",
)


def buys(index: int, variant: str) -> bool:
    """Who purchases after being served: every 2nd treatment user, every 5th control user."""
    return index % (2 if variant == "treatment" else 5) == 0


def _land(landing, events: list[dict]) -> None:
    """The users' own events as the clickstream source lands them: JSON lines in the hourly folder of
    their event time (the ingest checks event times against the folder's hour)."""
    by_hour: dict[str, list[str]] = {}
    for event in events:
        at = dt.datetime.fromisoformat(event["event_time"].replace("Z", "+00:00"))
        by_hour.setdefault(at.strftime("date=%Y-%m-%d/hour=%H"), []).append(json.dumps(event))
    for hour, lines in by_hour.items():
        folder = landing / "clickstream" / hour
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "users-00000.jsonl").write_text("\n".join(lines) + "\n")


def test_served_exposures_flow_through_ingest_and_silver_into_the_analysis(spark, redis_server, tmp_path):
    config = make_config(tmp_path, *redis_server.config_overrides(), *SETTINGS)
    lake = Lake(config, spark)
    redis_server.flush()
    client = redis_server.client()
    materialize_recs(client, redis_server.url, "3", {u: [("p-old", 0.9)] for u in USERS}, default=True)
    materialize_recs(client, redis_server.url, "4", {u: [("p-new", 0.8)] for u in USERS})
    models = ModelSet(config, resolver=Registry({"champion": 3, "challenger": 4}).resolve)
    models.load_all()
    landing = tmp_path / "landing"
    exposures = ExposureLog(pafs.LocalFileSystem(), str(landing / "clickstream"), rotate_seconds=3600)
    state = build_state(config, reload_seconds=3600, store=OnlineStore(config.serving), models=models, exposures=exposures)

    served, events = {}, []
    with TestClient(create_app(state)) as http:  # leaving it stops the server: the exposures are published
        for i, user in enumerate(USERS):
            answer = http.get(f"/recommendations/{user}?experiment=recs_ab&k=1&session_id=s-{user}").json()
            served[user] = answer
            if buys(i, answer["variant"]):
                at = dt.datetime.now(dt.timezone.utc)
                product = answer["items"][0]["product_id"]
                for seconds, kind in ((20, "product_view"), (40, "add_to_cart"), (60, "purchase")):
                    stamp = (at + dt.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
                    events.append({"event_id": f"{user}-{kind}", "event_time": stamp, "event_type": kind, "user_id": user,
                                   "session_id": f"s-{user}", "product_id": product, "price": PRICE, "currency": "USD"})
    _land(landing, events)
    assert not list(landing.rglob("*.inprogress"))

    times = [dt.datetime.fromisoformat(e["event_time"].replace("Z", "+00:00")) for e in events]
    begin = min(times).replace(minute=0, second=0, microsecond=0, tzinfo=None) - dt.timedelta(hours=1)
    ingested = ingest.run(config, spark, "clickstream", begin, max(times).replace(tzinfo=None) + dt.timedelta(hours=2), lake=lake)
    # every landed line is in bronze: the answers' exposures and the users' events, none quarantined
    assert sum(r.quarantined for r in ingested) == 0, [r.report() for r in ingested]
    assert sum(r.bronze_written for r in ingested) == len(served) + len(events)
    silver.run(config, spark, lake=lake)
    result = stage.run(config, spark, "recs_ab", promote=False)

    # silver.exposures holds each answer once, with the variant and model version the server gave it
    rows = (lake.read(config.tables.silver_exposures).where(F.col("experiment_id") == "recs_ab")
            .select("user_id", "variant", "model_version", "request_id").collect())  # bounded: 240 users
    assert {r.user_id: (r.variant, r.model_version, r.request_id) for r in rows} == {
        u: (a["variant"], a["model_version"], a["request_id"]) for u, a in served.items()}
    assert {(a["variant"], a["model_version"]) for a in served.values()} == {("control", "3"), ("treatment", "4")}

    variants = result.summary["variants"]
    users = Counter(a["variant"] for a in served.values())
    converted = Counter(a["variant"] for i, (u, a) in enumerate(served.items()) if buys(i, a["variant"]))
    for name in ("control", "treatment"):
        assert variants[name]["users"] == users[name]
        assert variants[name]["conversions"] == converted[name]
        assert variants[name]["revenue_per_user"] == pytest.approx(PRICE * converted[name] / users[name])
        assert variants[name]["multi_variant_users"] == 0
    assert result.summary["srm"]["mismatch"] is False
    lift = result.summary["comparisons"]["treatment"]["conversion"]
    assert lift["abs_lift"] == pytest.approx(converted["treatment"] / users["treatment"] - converted["control"] / users["control"])
    assert lift["abs_ci"][0] > 0  # 50% against 20% on 240 users: the treatment's lift is clear
