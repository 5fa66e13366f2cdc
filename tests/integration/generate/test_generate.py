"""The generator end to end on tiny data: landing files, volume, schema, bad records, funnel,
determinism, Zipf skew, drift, the oracle AUCs and `run` with the real lake."""

from __future__ import annotations

import collections
import datetime as dt
import math
import re

import pytest
from pyspark.sql import functions as F
from sklearn.metrics import roc_auc_score

from pipelines.config.generator import BAD_RECORD_KINDS, DEVICES, REFERRERS
from pipelines.generate import catalog, estimate, generate_landing, latent, run
from pipelines.generate import events as ev
from pipelines.generate import sessions as sess
from pipelines.generate.stage import build_events, build_sessions, build_users
from tests.conftest import make_config
from tests.integration.generate.landing_reader import classify, parse_time, read_landing

SMALL = ("generator.users=200", "generator.days=3", "generator.products=200")
BAD = ("generator.bad_records.share=0.1", "generator.late_share=0.05")
ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


@pytest.fixture(scope="module")
def landed(spark, tmp_path_factory):
    config = make_config(tmp_path_factory.mktemp("generate"), *SMALL, *BAD)
    result = generate_landing(config, spark)
    landing = read_landing(result.path)
    truth = sess.truth_sessions(build_sessions(spark, config.generator)).toPandas()
    return config, result, landing, classify(landing), truth


def _valid(classified):
    return [line.record for kind, line in classified if kind == "valid"]


def test_counts_and_bad_record_share(landed):
    config, result, landing, classified, truth = landed
    kinds = collections.Counter(kind for kind, _ in classified)
    assert len(landing.lines) == result.lines
    assert kinds["valid"] == result.events == truth["n_events"].sum()
    assert {k: kinds[k] for k in BAD_RECORD_KINDS} == result.bad_counts
    assert all(result.bad_counts[k] > 0 for k in BAD_RECORD_KINDS)
    share = result.bad_lines / result.lines
    assert share == pytest.approx(config.generator.bad_records.share, abs=0.02)
    late = [line for kind, line in classified if kind == "valid" and line.folder_hour - parse_time(line.record["event_time"]) >= dt.timedelta(minutes=59)]
    assert len(late) == pytest.approx(result.late_events, abs=result.late_events * 0.1 + 3)
    assert result.late_events / result.events == pytest.approx(config.generator.late_share, abs=0.02)


def test_volume_is_as_configured(landed):
    config, result, _, _, truth = landed
    expected = estimate(config.generator)
    assert len(truth) == pytest.approx(expected.sessions, rel=0.15)
    assert result.events == pytest.approx(expected.events, rel=0.2)
    assert result.lines == pytest.approx(expected.lines, rel=0.2)
    assert truth["user_id"].nunique() <= config.generator.users


def test_layout_and_arrival_hours(landed):
    _, result, landing, classified, _ = landed
    assert result.files == len(landing.files) == result.hours
    assert all(name.endswith("/part-00000.jsonl") for name in landing.files)
    for kind, line in classified:
        if kind != "valid":
            continue
        event = parse_time(line.record["event_time"])
        delay = line.folder_hour - event.replace(minute=0, second=0, microsecond=0)
        assert dt.timedelta(0) <= delay <= dt.timedelta(hours=49)


def test_schema_of_valid_records(landed):
    records = _valid(landed[3])
    types = collections.Counter(r["event_type"] for r in records)
    assert set(types) == set(ev.EVENT_TYPES)
    assert types["product_view"] > types["add_to_cart"] > types["purchase"] > 0
    for record in records:
        assert set(record) <= set(ev.EVENT_FIELDS)
        assert ISO.match(record["event_time"])
        assert re.fullmatch(r"u\d{7}", record["user_id"]) and re.fullmatch(r"[0-9a-f]{16}", record["session_id"])
        assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", record["event_id"])
        assert record["device"] in DEVICES and record["referrer"] in REFERRERS and re.fullmatch(r"[A-Z]{2}", record["country"])
        has_product = record["event_type"] not in ("page_view", "search")
        product_fields = {"product_id", "category", "brand", "price", "currency"}
        if has_product:
            assert product_fields <= set(record)
            assert isinstance(record["price"], float) and record["price"] > 0 and record["currency"] == "USD"
        else:
            assert not product_fields & set(record)
    assert len({r["event_id"] for r in records}) == len(records)


def test_funnel_and_sessions_in_the_files(landed):
    _, _, _, classified, truth = landed
    by_session = collections.defaultdict(list)
    for record in _valid(classified):
        by_session[(record["user_id"], record["session_id"])].append(record)
    purchased = {(r.user_id, r.session_id) for r in truth.itertuples() if r.purchased}
    spans = collections.defaultdict(list)
    for key, records in by_session.items():
        records.sort(key=lambda r: r["event_time"])
        times = [parse_time(r["event_time"]) for r in records]
        assert len(set(times)) == len(times)
        assert times[-1] - times[0] < dt.timedelta(minutes=50)
        assert records[0]["event_type"] in ("page_view", "search")
        assert len({(r["device"], r["referrer"], r["country"]) for r in records}) == 1
        carted = collections.Counter()
        for record in records:
            if record["event_type"] == "add_to_cart":
                carted[record["product_id"]] += 1
            elif record["event_type"] == "remove_from_cart":
                carted[record["product_id"]] -= 1
            elif record["event_type"] == "purchase":
                assert carted[record["product_id"]] > 0
        assert any(r["event_type"] == "purchase" for r in records) == (key in purchased)
        spans[key[0]].append((times[0], times[-1]))
    assert len(by_session) == len(truth)
    for user_spans in spans.values():
        user_spans.sort()
        for (_, end), (start, _) in zip(user_spans, user_spans[1:]):
            assert start - end > dt.timedelta(minutes=30)


def test_zipf_skew(landed):
    config, _, _, classified, _ = landed
    views = collections.Counter(r["product_id"] for r in _valid(classified) if r["event_type"] == "product_view")
    total = sum(views.values())
    top = [f"p{i:06d}" for i in range(config.generator.products // 10)]
    expected = sum(catalog.zipf_probabilities(config.generator.products, config.generator.zipf_exponent)[: len(top)])
    assert sum(views[p] for p in top) / total == pytest.approx(expected, abs=0.06)
    assert views.most_common(1)[0][0] == "p000000"
    assert expected > 0.5  # the top 10% of products get most of the views


def test_determinism(landed, spark, tmp_path):
    config, _, landing, _, _ = landed
    # the same seed and settings, written again (gzip on): the very same lines in the same files
    again = make_config(tmp_path / "again", *SMALL, *BAD, "generator.gzip=true")
    files = read_landing(generate_landing(again, spark).path).files
    assert all(name.endswith(".jsonl.gz") for name in files)
    assert {name[: -len(".gz")]: content for name, content in files.items()} == landing.files
    # another seed: other sessions, other events
    other = make_config(tmp_path / "other", *SMALL, *BAD, "generator.seed=43").generator
    ids = {r.session_id for r in build_sessions(spark, other).select("session_id").collect()}
    assert ids and not ids & {r["session_id"] for r in _valid(landed[3])}
    sessions = sess.sessions(build_users(spark, config.generator), config.generator).select("session_id", "p_purchase")
    assert sorted(sessions.collect()) == sorted(sessions.collect())


def test_oracle_auc_matches_sklearn_and_the_model(spark, tmp_path):
    config = make_config(tmp_path, "generator.users=5000", "generator.days=7").generator
    truth = sess.sessions(build_users(spark, config), config).select("p_purchase", "purchased")
    realised = latent.session_auc(truth)
    frame = truth.toPandas()
    assert realised == pytest.approx(roc_auc_score(frame["purchased"], frame["p_purchase"]), abs=1e-9)
    positives = frame["purchased"].sum()
    assert 500 < positives < len(frame) / 5
    expected = latent.expected_session_auc(config)
    assert 0.7 < expected < 0.85
    assert realised == pytest.approx(expected, abs=0.03)


def test_window_auc_matches_a_direct_computation(landed, spark):
    config, _, _, _, truth = landed
    frame = spark.createDataFrame(truth[["user_id", "session_start", "p_purchase", "purchased"]])
    cutoff, horizon = dt.date(2024, 1, 2), 1
    got = latent.oracle_window_auc(frame, cutoff, horizon)
    start = dt.datetime(2024, 1, 2)
    end = start + dt.timedelta(days=1)
    history = set(truth.loc[truth["session_start"] <= start, "user_id"])
    window = truth[(truth["session_start"] > start) & (truth["session_start"] <= end)]
    scores = {u: (0.0, 0) for u in history}
    for user, group in window.groupby("user_id"):
        if user in history:
            scores[user] = (1 - math.prod(1 - p for p in group["p_purchase"]), int(group["purchased"].any()))
    labels = [label for _, label in scores.values()]
    assert got == pytest.approx(roc_auc_score(labels, [p for p, _ in scores.values()]), abs=1e-9)
    assert got > 0.5


def test_drift_changes_the_distribution_after_the_date(spark, tmp_path):
    config = make_config(
        tmp_path,
        "generator.users=400",
        "generator.days=4",
        "generator.products=100",
        "generator.drift.start_date=2024-01-03",
        "generator.drift.price_factor=2.0",
        "generator.drift.mobile_share_shift=0.5",
        "generator.drift.purchase_logit_shift=1.0",
    ).generator
    events = build_events(spark, config).where(F.col("product_id").isNotNull())
    drift_ms = 1704240000000  # 2024-01-03T00:00:00Z
    sessions = build_sessions(spark, config)
    # drift applies to the sessions that start on or after the date (all of their events)
    assert sessions.where((F.col("session_start_ms") >= drift_ms) != F.col("after_drift")).count() == 0
    assert events.where((F.col("event_ms") < drift_ms) & F.col("after_drift")).count() == 0
    stats = {
        r.after_drift: r
        for r in events.groupBy("after_drift").agg(
            F.avg((F.col("device") == "mobile").cast("double")).alias("mobile"),
        ).collect()
    }
    assert stats[True].mobile > stats[False].mobile + 0.2
    prices = events.groupBy("product_id").pivot("after_drift", [False, True]).agg(F.first("price")).dropna().collect()
    assert prices and all(r["true"] == pytest.approx(2 * r["false"], abs=0.011) for r in prices)
    truth = sessions.groupBy("after_drift").agg(
        F.avg("p_purchase").alias("p"), F.avg(F.col("purchased").cast("double")).alias("bought")
    ).collect()
    rates = {r.after_drift: r for r in truth}
    assert rates[True].p > 1.8 * rates[False].p and rates[True].bought > rates[False].bought


@pytest.mark.slow  # 8-21 s: out of make test-fast (under 8 min); make test runs it
def test_run_writes_truth_tables_and_reports(spark, tmp_path):
    pytest.importorskip("pipelines.lake")
    from pipelines.lake import Lake

    config = make_config(tmp_path, "generator.users=60", "generator.days=2", "generator.bad_records.share=0.05")
    lake = Lake(config, spark)
    result = run(config, spark, lake=lake)
    users = lake.read(config.tables.truth_users)
    sessions = lake.read(config.tables.truth_sessions)
    assert set(users.columns) == {"user_id", "propensity", "activity_rate", "home_device", "country", "is_heavy"}
    assert users.where("is_heavy").count() == sessions.where("is_heavy").count() == 0
    assert result.heavy_users == result.heavy_events == 0 and "heavy users" not in result.report()
    assert {"user_id", "session_id", "session_start", "device", "referrer", "p_purchase", "purchased"} <= set(sessions.columns)
    assert result.users == users.count() == 60
    assert result.sessions == sessions.count() > 0
    assert result.events == sessions.agg(F.sum("n_events")).first()[0]
    assert result.bad_lines == pytest.approx(0.05 * result.lines, abs=0.03 * result.lines)
    assert result.landing_path.endswith("/clickstream") and result.files > 0
    assert 0.5 < result.expected_session_auc < 1
    assert not math.isnan(result.oracle_session_auc)
    assert "oracle AUC" in result.report() and result.as_dict()["bad_lines"] == result.bad_lines


@pytest.mark.slow  # 8-21 s: out of make test-fast (under 8 min); make test runs it
def test_model_selection_still_works_in_the_session_after_generating(spark, tmp_path):
    """Regression: generate used DataFrame.observe, after which Spark 4.1 fails every later
    TrainValidationSplit/CrossValidator in the session ("Task not serializable: ObservationManager")."""
    from tests.conftest import make_config
    from tests.sparkml import model_selection_works

    run(make_config(tmp_path, "generator.users=20", "generator.days=1"), spark)
    assert model_selection_works(spark)
