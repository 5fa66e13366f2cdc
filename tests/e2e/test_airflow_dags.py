"""End to end: the four DAGs under `dag.test()`, every Spark step a real spark-submit (local[2]).

Six days of a small clickstream land in one arrival hour (late events are valid for
`ingest.max_event_age_hours`), so one run of `clickstream_ingest` waits for and ingests all of it;
`clickstream_etl_features` builds silver, features and training sets; `model_training` trains the
logistic regression and registers and promotes it in MLflow; `model_monitoring` scores with the
champion, materializes its features into Redis, monitors drift and decides on retraining. To fit the suite's time budget (each
task is a Spark application, 30-60 s on a loaded 2-core machine) the Great Expectations gates are
marked successful and the DAG trains one model: the gate mechanism (a failed gate stops everything
downstream) is tested in tests/integration/orchestration, the suites in tests/integration/validate,
the parallel model tasks in tests/unit/orchestration.
"""

from __future__ import annotations

import datetime as dt
import json
import random

import pytest

from tests.integration.orchestration.airflow_env import airflow_env, run_dags

UTC = dt.timezone.utc
FIRST_DAY = dt.datetime(2024, 1, 1, tzinfo=UTC)
DAYS = 6
ARRIVAL = FIRST_DAY + dt.timedelta(days=DAYS)  # every file arrives in the hour after the last day
JOB_OVERRIDES = ["spark.shuffle_partitions=2", "training_sets.propensity.horizon_days=1",
                 "training_sets.implicit.test_days=1", "training.jobs.propensity.models.lr.search.method=none",
                 "training.plots=false", "training.jobs.propensity.registry.prediction_suite=null"]


def clickstream_lines(users: int = 150, seed: int = 7) -> list[str]:
    """Events in the clickstream source's format; a user's purchase rate follows a latent propensity
    that also drives how much they browse, so the propensity model has something to learn."""
    rng = random.Random(seed)
    lines = []
    for u in range(users):
        propensity = rng.random()
        for day in range(DAYS):
            if rng.random() > 0.3 + 0.6 * propensity:
                continue
            t = FIRST_DAY + dt.timedelta(days=day, minutes=rng.randrange(0, 23 * 60))
            session = f"s{u}-{day}"
            product = f"p{rng.randrange(40):03d}"
            kinds = ["page_view", "product_view"] + ["product_view"] * int(4 * propensity)
            if rng.random() < propensity:
                kinds += ["add_to_cart"] + (["purchase"] if rng.random() < 0.6 else [])
            for i, kind in enumerate(kinds):
                lines.append(json.dumps({
                    "event_id": f"e{u}-{day}-{i}", "event_time": (t + dt.timedelta(seconds=40 * i)).isoformat(),
                    "event_type": kind, "user_id": f"u{u:04d}", "session_id": session, "product_id": product,
                    "category": f"cat{int(product[1:]) % 5}", "brand": "acme", "price": 10.0 + int(product[1:]),
                    "currency": "USD", "device": "desktop", "referrer": "direct", "country": "DE"}))
    return lines


def produce_at(bootstrap: str, topic: str, lines: list[str], when: dt.datetime) -> None:
    """Messages keyed by user id with the Kafka timestamp `when` (their arrival time: the ingest's
    time window is measured against it, as against a file's arrival hour)."""
    import confluent_kafka

    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    failed = []
    for line in lines:
        producer.produce(topic, value=line.encode(), key=json.loads(line)["user_id"], timestamp=int(when.timestamp() * 1000),
                         on_delivery=lambda err, msg: err and failed.append(err))
    assert producer.flush(60) == 0 and not failed, failed


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.timeout(1500)  # ~5 min on an idle 2-core machine; the DAG runs take up to 900 s under load
def test_ingest_etl_and_training_dags_end_to_end(tmp_path, kafka, redis_server):
    pytest.importorskip("confluent_kafka", reason="confluent-kafka is installed by the kafka extra")
    folder = tmp_path / "landing" / "clickstream" / f"date={ARRIVAL:%Y-%m-%d}" / f"hour={ARRIVAL:%H}"
    folder.mkdir(parents=True)
    lines = clickstream_lines()
    # Two sources: most users' events land as files, the others' arrive on Kafka (its own source,
    # conf/sources/clickstream_kafka.yaml: topic `clickstream`, servers from CLICKML_KAFKA_BOOTSTRAP).
    on_kafka = [line for line in lines if json.loads(line)["user_id"] >= "u0120"]
    in_files = [line for line in lines if json.loads(line)["user_id"] < "u0120"]
    (folder / "part-00000.jsonl").write_text("\n".join(in_files) + "\n")
    # 2024 timestamps: without retention.ms=-1 the broker's retention (7 days, on message timestamps)
    # deletes them within minutes, and the ingest fails loudly on the lost offsets.
    kafka.create_topic("clickstream", partitions=2, config={"retention.ms": "-1"})
    produce_at(kafka.bootstrap, "clickstream", on_kafka, ARRIVAL + dt.timedelta(minutes=30))

    env = airflow_env(tmp_path, [
        "orchestration.ingest.sources=[clickstream, clickstream_kafka]",
        "orchestration.training.jobs={propensity: [lr]}",
        "orchestration.spark_submit.job_overrides=[" + ", ".join(JOB_OVERRIDES) + "]",
        "orchestration.ingest.sensor.poke_interval_seconds=1",
    ])
    redis_server.flush()
    env.update({"CLICKML_LAKEHOUSE": str(tmp_path / "lakehouse"), "CLICKML_LANDING": str(tmp_path / "landing"),
                "CLICKML_KAFKA_BOOTSTRAP": kafka.bootstrap, "CLICKML_REDIS_URL": redis_server.url})
    interval_end = ARRIVAL + dt.timedelta(hours=1)
    results, output = run_dags(env, [
        {"dag_id": "clickstream_ingest", "logical_date": interval_end.isoformat(), "mark_success": "validate_bronze"},
        {"dag_id": "clickstream_etl_features", "logical_date": (ARRIVAL + dt.timedelta(days=1)).isoformat(),
         "mark_success": "validate_silver|validate_features"},
        {"dag_id": "model_training", "mark_success": "validate_training_sets"},
        {"dag_id": "model_monitoring", "logical_date": (ARRIVAL + dt.timedelta(days=1)).isoformat()},
    ], timeout=1200, log_to=tmp_path / "dagtest.log")

    for result in results:
        assert result["state"] == "success", (result, output[-5000:])
    # model_monitoring: the champion scores the latest as-of date, its features go to Redis, the
    # monitor writes its drift rows, and check_drift decides (on this tiny data either way: an alert
    # triggers model_training, none skips `retrain`).
    monitoring = results.pop(3)["tasks"]
    retrain = monitoring.pop("monitor_propensity.retrain")
    assert monitoring == {f"monitor_propensity.{t}": "success" for t in ("score", "materialize", "monitor", "check_drift")}
    assert retrain in ("success", "skipped"), retrain
    assert ("no drift alert for propensity: no retraining" in output) == (retrain == "skipped"), output[-5000:]
    training_tasks = results[2]["tasks"]
    assert training_tasks.pop("check_models") == "skipped"  # runs (and fails the run) only when a model failed
    for tasks in (results[0]["tasks"], results[1]["tasks"], training_tasks):
        assert set(tasks.values()) == {"success"}, results
    assert set(training_tasks) == {"validate_training_sets", "train_propensity.lr", "train_propensity.promote"}
    assert f"--start {ARRIVAL:%Y-%m-%dT%H:%M} --end {interval_end:%Y-%m-%dT%H:%M}" in output
    assert "clickstream_kafka.wait_for_landing_files" not in results[0]["tasks"]  # a Kafka source has no sensor
    assert results[0]["tasks"]["clickstream_kafka.ingest"] == "success"

    from deltalake import DeltaTable

    lake = tmp_path / "lakehouse"
    bronze = DeltaTable(str(lake / "bronze" / "events")).to_pyarrow_table()
    assert bronze.num_rows == len(lines)
    sources = bronze.group_by("source").aggregate([("event_id", "count")]).to_pydict()
    assert dict(zip(sources["source"], sources["event_id_count"])) == {
        "clickstream": len(in_files), "clickstream_kafka": len(on_kafka)}
    for table in ("silver/sessions", "gold/user_features", "gold/propensity_training", "gold/implicit_training",
                  "gold/predictions", "monitor/drift"):
        assert DeltaTable(str(lake / table)).to_pyarrow_table().num_rows > 0, table

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{lake / '_mlflow' / 'mlflow.db'}")
    champion = client.get_model_version_by_alias("clickml-propensity", "champion")
    assert str(champion.version) == "1" and champion.tags["run_id"]
    assert champion.tags["promotion"] == "promoted: no champion yet"  # decided by the promote task
    import redis

    online = redis.Redis.from_url(redis_server.url)
    assert online.hget("clickml:propensity:meta", "as_of_date") is not None  # materialized by the monitoring DAG
    assert any(True for _ in online.scan_iter("clickml:propensity:features:*", count=100))
