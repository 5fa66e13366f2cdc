"""Sticky assignment, traffic shares per kind, bandit weights."""

from __future__ import annotations

import math

import pytest

from pipelines.config.serving import ExperimentSpec
from pipelines.serve.routing import (
    Router,
    assignment_point,
    bandit_weights,
    check_weights,
    pick,
    publish_bandit_weights,
    read_bandit_weights,
)


def spec(**values) -> ExperimentSpec:
    values.setdefault("job", "propensity")
    values.setdefault("variants", {"control": {"alias": "champion"}, "treatment": {"alias": "challenger"}})
    return ExperimentSpec(**values)


def test_assignment_is_sticky_uniform_and_salted():
    points = [assignment_point("exp", f"u{i}") for i in range(20_000)]
    assert points[:50] == [assignment_point("exp", f"u{i}") for i in range(50)]
    assert all(0 <= p < 1 for p in points)
    # uniform: each tenth holds 10% of users (binomial sd ~0.2%: 5 sd)
    for decile in range(10):
        share = sum(decile / 10 <= p < (decile + 1) / 10 for p in points) / len(points)
        assert abs(share - 0.1) < 0.011, (decile, share)
    # another salt reshuffles: about half the users change side of 0.5
    moved = sum((assignment_point("exp", f"u{i}") < 0.5) != (assignment_point("other", f"u{i}") < 0.5) for i in range(5000))
    assert 0.45 < moved / 5000 < 0.55


def test_pick_lays_slices_in_order_and_skips_empty_variants():
    weights = {"a": 0.25, "b": 0.0, "c": 0.75}
    assert pick(0.0, weights) == "a" and pick(0.2499, weights) == "a"
    assert pick(0.25, weights) == "c" and pick(0.999999, weights) == "c"
    with pytest.raises(ValueError, match="outside"):
        pick(1.0, weights)
    with pytest.raises(ValueError, match="positive weight"):
        pick(0.5, {"a": 0.0})


def test_ab_split_follows_the_weights_and_canary_and_shadow_their_kind():
    users = [f"user-{i}" for i in range(10_000)]
    ab = Router("exp1", spec(variants={"control": {"alias": "champion", "weight": 0.8},
                                       "treatment": {"alias": "challenger", "weight": 0.2}}))
    share = sum(ab.decide(u).variant == "treatment" for u in users) / len(users)
    assert abs(share - 0.2) < 0.015
    assert all(ab.decide(u).shadows == () for u in users[:100])
    canary = Router("exp2", spec(kind="canary", canary_percent=5))
    share = sum(canary.decide(u).variant == "treatment" for u in users) / len(users)
    assert abs(share - 0.05) < 0.008
    shadow = Router("exp3", spec(kind="shadow"))
    decisions = [shadow.decide(u) for u in users[:200]]
    assert {d.variant for d in decisions} == {"control"} and {d.shadows for d in decisions} == {("treatment",)}


def test_only_a_bandit_moves_and_weights_must_name_every_variant():
    ab = Router("exp", spec())
    with pytest.raises(ValueError, match="only a bandit"):
        ab.set_weights({"control": 0.1, "treatment": 0.9})
    bandit = Router("exp", spec(kind="bandit"))
    assert bandit.weights == {"control": 0.5, "treatment": 0.5}
    bandit.set_weights({"treatment": 0.9, "control": 0.1})
    assert list(bandit.weights) == ["control", "treatment"]  # config order: stable slices
    with pytest.raises(ValueError, match="missing: treatment"):
        check_weights("exp", bandit.spec, {"control": 1.0})
    with pytest.raises(ValueError, match="sum to 1"):
        check_weights("exp", bandit.spec, {"control": 0.5, "treatment": 0.6})


def test_bandit_weights_favour_the_better_arm_keep_a_floor_and_round_trip_through_redis(redis_server):
    s = spec(kind="bandit")
    even = bandit_weights(s, {})
    assert math.isclose(even["control"], 0.5, abs_tol=0.02)
    weights = bandit_weights(s, {"control": (1000, 50), "treatment": (1000, 90)})
    assert weights["treatment"] > 0.9 and weights["control"] >= 0.05 - 1e-12
    assert math.isclose(sum(weights.values()), 1.0)
    with pytest.raises(ValueError, match="variant control"):
        bandit_weights(s, {"control": (10, 11)})
    client = redis_server.client()
    assert read_bandit_weights(client, "t", "exp") is None
    publish_bandit_weights(client, "t", "exp", weights, {"control": (1000, 50), "treatment": (1000, 90)})
    assert read_bandit_weights(client, "t", "exp") == weights
    client.set("t:experiment:bad:weights", "not json")
    with pytest.raises(ValueError, match="t:experiment:bad:weights"):
        read_bandit_weights(client, "t", "bad")


