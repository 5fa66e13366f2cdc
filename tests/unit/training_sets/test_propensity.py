"""Cutoffs, time splits with embargo, labels, and the point-in-time guarantee of the examples."""

from __future__ import annotations

import datetime as dt

import pytest

from pipelines.config.models import PropensityConfig
from pipelines.features import build_features
from pipelines.training_sets.propensity import (
    META_COLUMNS,
    TrainingSetError,
    assign_splits,
    derive_cutoffs,
    examples,
    label_frame,
)
from tests.eventframes import at, silver_events

DAYS = [dt.date(2024, 1, d) for d in range(1, 15)]


def test_derived_cutoffs_leave_history_and_a_full_horizon():
    cfg = PropensityConfig(horizon_days=2, min_history_days=3)
    cutoffs = derive_cutoffs(cfg, DAYS)
    assert cutoffs[0] == dt.date(2024, 1, 4) and cutoffs[-1] == dt.date(2024, 1, 13)  # 13 + 2 = 15 = last + 1
    assert derive_cutoffs(PropensityConfig(horizon_days=2, min_history_days=3, cutoff_every_days=4), DAYS) == [
        dt.date(2024, 1, 4), dt.date(2024, 1, 8), dt.date(2024, 1, 12)
    ]
    with pytest.raises(TrainingSetError, match="too short"):
        derive_cutoffs(PropensityConfig(horizon_days=10, min_history_days=5), DAYS)


def test_configured_cutoffs_must_leave_a_full_label_window():
    # Bug: configured cutoffs were taken as given; one within the horizon of the data's end got a
    # cut-short label window, whose unseen purchases were labelled 0.
    ok = PropensityConfig(horizon_days=2, cutoffs=[dt.date(2024, 1, 13), dt.date(2024, 1, 5)])
    assert derive_cutoffs(ok, DAYS) == [dt.date(2024, 1, 5), dt.date(2024, 1, 13)]
    late = PropensityConfig(horizon_days=2, cutoffs=[dt.date(2024, 1, 5), dt.date(2024, 1, 14)])
    with pytest.raises(TrainingSetError, match=r"cutoffs 2024-01-14: .*last event date 2024-01-14.*latest possible cutoff is 2024-01-13"):
        derive_cutoffs(late, DAYS)


def test_splits_are_by_time_and_the_embargo_drops_overlapping_labels():
    cutoffs = derive_cutoffs(PropensityConfig(horizon_days=2, min_history_days=3), DAYS)  # Jan 4 .. Jan 13
    plain = assign_splits(PropensityConfig(horizon_days=2, embargo=False), cutoffs)
    assert [plain[d] for d in cutoffs] == ["train"] * 6 + ["validation"] * 2 + ["test"] * 2
    split = assign_splits(PropensityConfig(horizon_days=2), cutoffs)
    # Jan 9 + 2 days reaches the first validation cutoff (Jan 10); Jan 11 reaches the test (Jan 12)
    assert dt.date(2024, 1, 9) not in split and dt.date(2024, 1, 11) not in split
    assert max(d for d, s in split.items() if s == "train") == dt.date(2024, 1, 8)
    assert sorted(d for d, s in split.items() if s == "test") == [dt.date(2024, 1, 12), dt.date(2024, 1, 13)]
    with pytest.raises(TrainingSetError, match="embargo leaves no validation"):
        assign_splits(PropensityConfig(horizon_days=5), cutoffs)
    with pytest.raises(TrainingSetError, match="cannot make a train split"):
        assign_splits(PropensityConfig(validation_share=0.5, test_share=0.4), cutoffs[:2])


def test_labels_are_purchases_within_the_horizon(spark):
    rows = [
        ("u1", "p1", "c", "web", "purchase", at(5, 0, 0), 1.0),   # exactly at the cutoff: in the window
        ("u2", "p1", "c", "web", "purchase", at(6, 23, 59), 1.0),  # last minute of a 2-day horizon
        ("u3", "p1", "c", "web", "purchase", at(7, 0, 0), 1.0),   # cutoff + horizon: outside
        ("u4", "p1", "c", "web", "purchase", at(4, 23, 59), 1.0),  # before the cutoff
        ("u5", "p1", "c", "web", "add_to_cart", at(5), 1.0),
    ]
    labels = label_frame(silver_events(spark, rows), [dt.date(2024, 1, 5)], 2, ["user_id"])
    assert sorted(r["user_id"] for r in labels.collect()) == ["u1", "u2"]


HISTORY = [
    ("u1", "p1", "c1", "web", "product_view", at(1), 10.0),
    ("u1", "p1", "c1", "web", "purchase", at(2), 10.0),
    ("u2", "p2", "c2", "app", "product_view", at(3), 20.0),
    ("u1", "p2", "c2", "web", "purchase", at(5), 20.0),   # after the Jan 4 cutoff: label only
]
CUTOFF = dt.date(2024, 1, 4)


def _examples(spark, rows, unit):
    cfg = PropensityConfig(unit=unit, horizon_days=3, lookback_days=7)
    events = silver_events(spark, rows)
    features = build_features(events, [CUTOFF], [1, 7])
    return examples(cfg, events, features, {CUTOFF: "train"}, 7)


def test_user_examples_carry_features_as_of_the_cutoff_and_labels_after_it(spark):
    rows = {r["user_id"]: r for r in _examples(spark, HISTORY, "user").collect()}  # tiny
    assert set(rows) == {"u1", "u2"}
    assert (rows["u1"]["label"], rows["u2"]["label"]) == (1, 0)
    assert rows["u1"]["u_purchases_7d"] == 1 and rows["u1"]["u_spend_7d"] == 10.0
    assert rows["u1"]["split"] == "train" and rows["u1"]["cutoff"] == CUTOFF


def test_user_product_examples_join_every_entity(spark):
    frame = _examples(spark, HISTORY, "user_product")
    rows = {(r["user_id"], r["product_id"]): r for r in frame.collect()}  # tiny
    assert set(rows) == {("u1", "p1"), ("u2", "p2")}  # u1 never saw p2 before the cutoff
    assert rows[("u1", "p1")]["label"] == 0  # u1 bought p2, not p1, after the cutoff
    assert rows[("u2", "p2")]["p_category"] == "c2" and rows[("u2", "p2")]["c_views_7d"] == 1
    assert rows[("u1", "p1")]["uc_share_7d"] == 1.0
    assert {c[:2] for c in frame.columns if c not in ("user_id", "product_id", *META_COLUMNS)} <= {"u_", "p_", "c_", "uc"}
    assert rows[("u1", "p1")]["example_id"] == "u1|p1|2024-01-04"


@pytest.mark.parametrize("unit", ["user", "user_product"])
@pytest.mark.slow
def test_events_at_or_after_the_cutoff_never_change_a_feature(spark, unit):
    """The leakage test: add and change events at and after the cutoff; every feature value of
    every example stays the same (only labels may change)."""
    keys = ["user_id"] if unit == "user" else ["user_id", "product_id"]
    before = _examples(spark, HISTORY, unit)
    future = HISTORY[:-1] + [
        ("u1", "p2", "c2", "web", "refund", at(5), 99.0),  # the Jan 5 purchase changed
        ("u2", "p2", "c2", "app", "purchase", at(4, 0, 0), 500.0),  # exactly at the cutoff
        ("u2", "p1", "c1", "app", "product_view", at(4, 0, 1), 1.0),
        ("u1", "p1", "c1", "web", "add_to_cart", at(9), 10.0),
        ("u9", "p9", "c9", "tv", "purchase", at(6), 1.0),
    ]
    after = _examples(spark, future, unit)
    features = [c for c in before.columns if c not in ("label",)]
    assert sorted(map(tuple, before.select(*features).collect())) == sorted(map(tuple, after.select(*features).collect()))
    assert dict(before.select(*keys, "label").rdd.map(lambda r: (tuple(r[:-1]), r[-1])).collect()) != dict(
        after.select(*keys, "label").rdd.map(lambda r: (tuple(r[:-1]), r[-1])).collect()
    )


def test_lookback_longer_than_the_feature_windows_is_refused(spark):
    cfg = PropensityConfig(lookback_days=30)
    events = silver_events(spark, HISTORY)
    with pytest.raises(TrainingSetError, match="lookback_days"):
        examples(cfg, events, build_features(events, [CUTOFF], [1, 7]), {CUTOFF: "train"}, 7)
