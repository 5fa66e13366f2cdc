"""Implicit-feedback strengths and the train/test period split."""

from __future__ import annotations

import datetime as dt

from pipelines.config.models import ImplicitConfig
from pipelines.training_sets.implicit import first_test_date, implicit_feedback
from tests.eventframes import at, silver_events


def test_strengths_are_weighted_sums_per_period(spark):
    rows = [
        ("u1", "p1", "c", "web", "product_view", at(1), 1.0),
        ("u1", "p1", "c", "web", "add_to_cart", at(1), 1.0),
        ("u1", "p1", "c", "web", "purchase", at(2), 1.0),
        ("u1", "p2", "c", "web", "product_view", at(2), 1.0),
        ("u1", "p2", "c", "web", "remove_from_cart", at(2), 1.0),  # 1 - 1 = 0: dropped
        ("u2", None, None, "web", "page_view", at(2), None),
        ("u2", "p1", "c", "web", "product_view", at(3), 1.0),  # test period
    ]
    cfg = ImplicitConfig(test_days=1)
    assert first_test_date(cfg, dt.date(2024, 1, 3)) == dt.date(2024, 1, 3)
    got = {(r["user_id"], r["product_id"], r["split"]): (r["strength"], r["events"])
           for r in implicit_feedback(silver_events(spark, rows), cfg, dt.date(2024, 1, 3)).collect()}  # tiny
    assert got == {("u1", "p1", "train"): (9.0, 3), ("u2", "p1", "test"): (1.0, 1)}
    capped = implicit_feedback(silver_events(spark, rows), ImplicitConfig(max_strength=4.0), dt.date(2024, 1, 3))
    assert capped.where("user_id = 'u1' and product_id = 'p1'").first()["strength"] == 4.0
