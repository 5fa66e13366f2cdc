"""Each feature against values computed by hand on a tiny clickstream."""

from __future__ import annotations

import datetime as dt

import pytest

from pipelines.features import build_features, features_of
from tests.eventframes import at, silver_events

D3, D4 = dt.date(2024, 1, 3), dt.date(2024, 1, 4)

ROWS = [
    ("u1", "p1", "c1", "web", "product_view", at(1, 10), 10.0),
    ("u1", "p1", "c1", "web", "add_to_cart", at(1, 10, 5), 10.0),
    ("u1", "p1", "c1", "web", "purchase", at(2, 11), 10.0),
    ("u1", "p2", "c2", "app", "product_view", at(3, 9), 30.0),
    ("u1", None, None, "app", "page_view", at(3, 9, 1), None),
    ("u2", "p2", "c2", "app", "product_view", at(3, 12), 20.0),
    ("u2", "p3", "c2", "app", "product_view", at(4, 8), 50.0),  # on the as-of day D4: never visible as of D4
]


@pytest.fixture(scope="module")
def features(spark):
    frames = build_features(silver_events(spark, ROWS), [D3, D4], [1, 7])
    # small test tables: collect them whole
    return {entity: {_key(entity, r): r.asDict() for r in f.collect()} for entity, f in frames.items()}


def _key(entity, row):
    return {
        "user": lambda r: (r["user_id"], r["as_of_date"]),
        "product": lambda r: (r["product_id"], r["as_of_date"]),
        "category": lambda r: (r["category"], r["as_of_date"]),
        "user_category": lambda r: (r["user_id"], r["category"], r["as_of_date"]),
    }[entity](row)


def test_columns_follow_the_registry(spark):
    frames = build_features(silver_events(spark, ROWS), [D3], [1, 7])
    for entity, frame in frames.items():
        keys = [c for c in frame.columns if c not in {f.name for f in features_of(entity, [1, 7])}]
        assert keys[-1] == "as_of_date"
        assert frame.columns[len(keys):] == [f.name for f in features_of(entity, [1, 7])]


def test_user_counts_and_money(features):
    u1 = features["user"][("u1", D3)]  # events on Jan 1 (view, cart) and Jan 2 (purchase)
    assert (u1["events_1d"], u1["events_7d"]) == (1, 3)
    assert (u1["views_1d"], u1["views_7d"], u1["carts_7d"], u1["purchases_1d"]) == (0, 1, 1, 1)
    assert (u1["spend_1d"], u1["spend_7d"]) == (10.0, 10.0)
    assert (u1["active_days_1d"], u1["active_days_7d"]) == (1, 2)
    assert u1["conversion_rate_1d"] is None  # no views yesterday: undefined, not 0
    assert u1["conversion_rate_7d"] == 1.0
    later = features["user"][("u1", D4)]
    assert (later["events_1d"], later["events_7d"], later["active_days_7d"]) == (2, 5, 3)
    assert later["conversion_rate_7d"] == 0.5
    assert later["spend_1d"] == 0.0


def test_user_recency_and_preferences(features):
    u1 = features["user"][("u1", D3)]
    assert u1["days_since_last_event"] == pytest.approx(13 / 24)  # Jan 2 11:00 -> Jan 3 00:00
    assert u1["days_since_last_purchase"] == pytest.approx(13 / 24)
    later = features["user"][("u1", D4)]
    assert later["days_since_last_event"] == pytest.approx((24 - 9 - 1 / 60) / 24)
    assert later["days_since_last_purchase"] == pytest.approx(1 + 13 / 24)
    assert (later["top_category_1d"], later["top_category_7d"]) == ("c2", "c1")  # c1: 3 events in 7 days
    assert (later["top_device_1d"], later["top_device_7d"]) == ("app", "web")  # web 3, app 2
    u2 = features["user"][("u2", D4)]
    assert u2["days_since_last_purchase"] is None


def test_events_on_or_after_the_as_of_date_are_invisible(features):
    assert ("u2", D3) not in features["user"]  # u2's first event is on Jan 3
    u2 = features["user"][("u2", D4)]
    assert u2["events_7d"] == 1  # the Jan 4 view is not counted as of Jan 4
    assert ("p3", D4) not in features["product"]


def test_product_features(features):
    p1 = features["product"][("p1", D3)]
    assert (p1["views_7d"], p1["carts_7d"], p1["purchases_7d"]) == (1, 1, 1)
    assert (p1["cart_rate_7d"], p1["purchase_rate_7d"], p1["cart_rate_1d"]) == (1.0, 1.0, None)
    assert p1["avg_price_7d"] == 10.0 and p1["category"] == "c1"
    p2 = features["product"][("p2", D4)]
    assert p2["avg_price_1d"] == 25.0  # (30 + 20) / 2
    assert p2["price_vs_category_1d"] == 1.0  # the only product of c2 yesterday


def test_category_features(features):
    c2 = features["category"][("c2", D4)]
    assert (c2["views_1d"], c2["purchases_7d"], c2["purchase_rate_1d"], c2["products_7d"]) == (2, 0, 0.0, 1)
    c1 = features["category"][("c1", D4)]
    assert (c1["views_1d"], c1["products_1d"], c1["products_7d"], c1["avg_price_1d"]) == (0, 0, 1, None)
    assert c1["purchase_rate_7d"] == 1.0


def test_user_category_affinity(features):
    assert features["user_category"][("u1", "c1", D4)]["share_7d"] == pytest.approx(0.75)  # 3 of 4 product events
    assert features["user_category"][("u1", "c2", D4)]["share_7d"] == pytest.approx(0.25)
    assert features["user_category"][("u1", "c1", D4)]["share_1d"] == 0.0
    row = features["user_category"][("u1", "c1", D3)]
    assert (row["events_7d"], row["views_7d"], row["purchases_1d"]) == (3, 1, 1)


def test_price_relative_to_category(spark):
    rows = [
        ("u1", "cheap", "c", "web", "product_view", at(1), 10.0),
        ("u1", "dear", "c", "web", "product_view", at(1), 30.0),
    ]
    products = build_features(silver_events(spark, rows), [dt.date(2024, 1, 2)], [1])["product"].collect()
    ratios = {r["product_id"]: r["price_vs_category_1d"] for r in products}
    assert ratios == {"cheap": pytest.approx(0.5), "dear": pytest.approx(1.5)}
