"""The generator's experiment block: config validation, the Spark assignment equal to the model
server's, the variant's effect, the exposure events, the truth per user."""

from __future__ import annotations

import datetime as dt
import math

import pytest
from pydantic import ValidationError
from pyspark.sql import functions as F

from pipelines.config.generator import GeneratorConfig
from pipelines.config.serving import ExperimentSpec
from pipelines.generate import experiment as exp
from pipelines.generate import sessions as sess
from pipelines.generate.stage import build_events, build_lines, build_sessions
from pipelines.serve.routing import assignment_point, pick
from tests.conftest import make_config

VARIANTS = {"control": {"share": 0.5, "logit_effect": 0.0}, "treatment": {"share": 0.5, "logit_effect": 1.0}}
BASE = {"users": 150, "days": 4, "products": 50, "seed": 7}
CONFIG = GeneratorConfig.model_validate({**BASE, "experiment": {"id": "gen_ab", "start_offset_days": 2, "variants": VARIANTS}})


def test_config_defaults_and_validation(tmp_path):
    assert make_config(tmp_path).generator.experiment is None
    config = make_config(
        tmp_path, "generator.experiment={id: ab1, start_date: 2024-01-03, variants: {a: {share: 0.3}, b: {share: 0.7, logit_effect: 0.2}}}"
    ).generator
    e = config.experiment
    assert (e.salt_value, e.traffic(), config.experiment_start, e.model_version) == ("ab1", {"a": 0.3, "b": 0.7}, dt.date(2024, 1, 3), "sim")
    assert e.variants["a"].logit_effect == 0.0
    assert CONFIG.experiment_start == dt.date(2024, 1, 3)
    # the salt defaults to the id, as the server's
    spec = ExperimentSpec.model_validate({"job": "j", "control": "a", "variants": {"a": {"version": 1}, "b": {"version": 2}}})
    assert spec.salt_for("ab1") == e.salt_value
    assert GeneratorConfig.model_validate({**BASE, "experiment": {"id": "x", "salt": "s", "variants": VARIANTS}}).experiment.salt_value == "s"

    bad = [
        ({"id": "x", "variants": VARIANTS, "color": 1}, "color"),  # unknown key
        ({"id": "x", "variants": {"a": {"share": 1.0}}}, "at least two variants"),
        ({"id": "x", "variants": {"a": {"share": 0.5}, "b": {"share": 0.6}}}, "must sum to 1"),
        ({"id": "x", "variants": {"a": {"share": 0.5}, "b": {"share": 0.5, "effect": 1}}}, "effect"),
        ({"id": "x y", "variants": VARIANTS}, "letters, digits"),
        ({"id": "x", "variants": VARIANTS, "start_date": "2024-01-02", "start_offset_days": 1}, "not both"),
        ({"id": "x", "variants": VARIANTS, "start_offset_days": 4}, "outside the generated period"),
        ({"id": "x", "variants": VARIANTS, "start_date": "2023-12-31"}, "outside the generated period"),
        ({"variants": VARIANTS}, "id"),
    ]
    for block, message in bad:
        with pytest.raises(ValidationError, match=message):
            GeneratorConfig.model_validate({**BASE, "experiment": block})


@pytest.mark.parametrize("weights", [
    {"control": 0.5, "treatment": 0.5},
    {"a": 0.1, "b": 0.2, "c": 0.7},
    {"a": 0.0, "b": 1 / 3, "c": 2 / 3},
])
def test_spark_assignment_equals_the_server(spark, weights):
    ids = [f"u{i:07d}" for i in range(3000)] + ["", "ü-ñ", "user:with:colons", "x" * 200]
    salt = "propensity_ab"
    df = spark.createDataFrame([(u,) for u in ids], "user_id string")
    point = exp.assignment_point(salt, F.col("user_id"))
    got = {r.user_id: (r.point, r.variant) for r in df.select("user_id", point.alias("point"),
                                                             exp.pick(point, weights).alias("variant")).collect()}
    for user in ids:
        expected = assignment_point(salt, user)
        assert got[user] == (expected, pick(expected, weights)), user  # bit for bit


def test_pick_at_the_slice_bounds(spark):
    weights = {"a": 0.25, "b": 0.5, "c": 0.25}
    points = [0.0, 0.25 - 1e-17, 0.25, 0.75, 1 - 2**-53]
    df = spark.createDataFrame([(p,) for p in points], "p double")
    got = [r.v for r in df.select(exp.pick(F.col("p"), weights).alias("v")).collect()]
    assert got == [pick(p, weights) for p in points]


@pytest.fixture(scope="module")
def truth(spark):
    # bounded: a few hundred sessions of a tiny config
    return sess.truth_sessions(build_sessions(spark, CONFIG)).toPandas()


def test_assignment_effect_and_counterfactuals(truth):
    start = dt.datetime(2024, 1, 3)
    before, after = truth[truth.session_start < start], truth[truth.session_start >= start]
    assert before.variant.isna().all() and before.p_purchase_by_variant.isna().all() and not before.exposure.any()
    assert after.variant.notna().all() and set(after.variant) == {"control", "treatment"}
    for row in after.itertuples():
        assert row.variant == pick(assignment_point("gen_ab", row.user_id), {"control": 0.5, "treatment": 0.5})
        by = row.p_purchase_by_variant
        assert row.p_purchase == pytest.approx(by[row.variant], rel=1e-12)
        base = math.log(by["control"] / (1 - by["control"]))
        assert math.log(by["treatment"] / (1 - by["treatment"])) == pytest.approx(base + 1.0, abs=1e-9)
    # one exposure per user in the experiment: their first session from the start on
    exposed = after[after.exposure]
    assert exposed.user_id.is_unique and set(exposed.user_id) == set(after.user_id)
    first = after.groupby("user_id").session_start.min()
    assert (exposed.set_index("user_id").session_start == first[exposed.user_id]).all()


def test_exposure_events_have_the_servers_shape(spark, truth):
    import json

    lines = build_lines(spark, CONFIG).where(F.col("line").contains('"exposure"')).collect()  # bounded: one per user
    exposed = truth[truth.exposure].set_index("session_id")
    assert len(lines) == len(exposed) > 20
    for row in lines:
        record = json.loads(row.line)
        assert set(record) == {"event_id", "event_time", "event_type", "user_id", "session_id", "experiment_id", "variant",
                               "model_version", "request_id"}
        session = exposed.loc[record["session_id"]]
        assert record["event_id"] == "exp-" + record["request_id"]
        assert (record["experiment_id"], record["variant"], record["model_version"], record["user_id"]) == \
            ("gen_ab", session.variant, "sim", session.user_id)
        assert record["event_time"] == session.session_start.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    # user events carry no exposure field
    events = build_events(spark, CONFIG)
    assert events.where((F.col("event_type") != "exposure") & F.col("experiment_id").isNotNull()).count() == 0


def test_without_an_experiment_the_output_is_unchanged(spark):
    plain = GeneratorConfig.model_validate(BASE)
    lines = build_lines(spark, plain)
    assert "experiment_id" not in build_events(spark, plain).columns
    assert "variant" not in sess.truth_sessions(build_sessions(spark, plain)).columns
    # the same seed with an experiment changes nothing before its start
    with_exp = build_lines(spark, CONFIG).where(~F.col("line").contains('"exposure"'))
    cutoff = "2024-01-03T00:00"
    early = lambda df: df.where(F.get_json_object("line", "$.event_time") < cutoff).select("line")  # noqa: E731
    assert sorted(r.line for r in early(lines).collect()) == sorted(r.line for r in early(with_exp).collect())


def test_user_truth(spark, truth):
    users = exp.user_truth(sess.truth_sessions(build_sessions(spark, CONFIG)), CONFIG, 24.0, 2).toPandas()
    exposed = truth[truth.exposure]
    assert sorted(users.user_id) == sorted(exposed.user_id)
    for row in users.itertuples():
        s = truth[truth.user_id == row.user_id]
        t0 = row.first_exposure
        window = s[(s.session_start >= t0) & (s.session_start < t0 + dt.timedelta(hours=24))]
        for v in ("control", "treatment"):
            miss = math.prod(1 - d[v] for d in window.p_purchase_by_variant)
            assert row.p_convert[v] == pytest.approx(1 - miss, abs=1e-12)
        assert row.p_convert["treatment"] > row.p_convert["control"]
        assert row.converted == int(window.purchased.any())
        pre = s[(s.session_start >= dt.datetime(2024, 1, 1)) & (s.session_start < dt.datetime(2024, 1, 3))]
        assert (row.pre_sessions, row.pre_product_views, row.pre_purchases) == \
            (len(pre), pre.n_product_views.sum(), pre.n_purchases.sum())
