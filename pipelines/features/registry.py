"""The feature registry: every gold feature's name, entity, window, description and formula.

This is the single definition that the feature code (`pipelines.features.compute`), the
documentation (`docs/features.md`, `clickml features list`) and the tests read. A feature as of
date D uses only events strictly before D 00:00 UTC; a window of w days covers the event dates
D-w .. D-1.

Formulas:
- `Sum(measure)`: sum of a daily measure over the window.
- `Ratio(num, den)`: Sum(num) / Sum(den) over the window; null when the denominator is 0.
- `DaysSince(measure)`: days from the latest timestamp of a daily measure to D 00:00, over the
  longest window; null when there is none.
- `Top(dimension)`: the most frequent value of a dimension in the window (ties: the smallest).
- `Relative(feature, entity)`: this entity's feature divided by the same feature of the entity
  it belongs to (a product's average price over its category's).
- `Latest(column)`: the value of the column on the entity's latest event in the longest window.
- `Distinct(key)`: distinct values of a key with events in the window.
- `Share(measure, of)`: Sum(measure) / the same Sum over all rows of the `of` entity.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Literal

Entity = Literal["user", "product", "category", "user_category"]

KEYS: dict[str, tuple[str, ...]] = {
    "user": ("user_id",),
    "product": ("product_id",),
    "category": ("category",),
    "user_category": ("user_id", "category"),
}


@dataclass(frozen=True)
class Sum:
    measure: str


@dataclass(frozen=True)
class Ratio:
    numerator: str
    denominator: str


@dataclass(frozen=True)
class DaysSince:
    measure: str


@dataclass(frozen=True)
class Top:
    dimension: str


@dataclass(frozen=True)
class Relative:
    feature: str
    entity: Entity


@dataclass(frozen=True)
class Latest:
    column: str


@dataclass(frozen=True)
class Distinct:
    key: str


@dataclass(frozen=True)
class Share:
    measure: str
    of: Entity


Formula = Sum | Ratio | DaysSince | Top | Relative | Latest | Distinct | Share


@dataclass(frozen=True)
class Feature:
    name: str
    entity: Entity
    window_days: int | None
    """Trailing window in days; None for features over the longest window or without one."""
    description: str
    dtype: Literal["long", "double", "string"]
    formula: Formula


# (base name, dtype, formula, description with {w} for the window) per entity; expanded per window.
_WINDOWED: dict[str, tuple[tuple[str, str, Formula, str], ...]] = {
    "user": (
        ("events", "long", Sum("events"), "events of any type in the last {w} day(s)"),
        ("views", "long", Sum("views"), "product views in the last {w} day(s)"),
        ("carts", "long", Sum("carts"), "add-to-cart events in the last {w} day(s)"),
        ("purchases", "long", Sum("purchases"), "purchase events in the last {w} day(s)"),
        ("spend", "double", Sum("spend"), "revenue of the user's purchases in the last {w} day(s)"),
        ("active_days", "long", Sum("active"), "days with at least one event in the last {w} day(s)"),
        ("conversion_rate", "double", Ratio("purchases", "views"), "purchases per product view in the last {w} day(s)"),
        ("top_category", "string", Top("category"), "the category with most events in the last {w} day(s)"),
        ("top_device", "string", Top("device"), "the device with most events in the last {w} day(s)"),
    ),
    "product": (
        ("views", "long", Sum("views"), "views of the product in the last {w} day(s) (popularity)"),
        ("carts", "long", Sum("carts"), "add-to-carts of the product in the last {w} day(s)"),
        ("purchases", "long", Sum("purchases"), "purchases of the product in the last {w} day(s)"),
        ("cart_rate", "double", Ratio("carts", "views"), "add-to-carts per view in the last {w} day(s)"),
        ("purchase_rate", "double", Ratio("purchases", "views"), "purchases per view in the last {w} day(s)"),
        ("avg_price", "double", Ratio("price_sum", "price_n"), "mean price on the product's events in the last {w} day(s)"),
        ("price_vs_category", "double", Relative("avg_price", "category"),
         "avg_price over the category's avg_price, last {w} day(s) (1 = category average)"),
    ),
    "category": (
        ("views", "long", Sum("views"), "product views in the category in the last {w} day(s)"),
        ("carts", "long", Sum("carts"), "add-to-carts in the category in the last {w} day(s)"),
        ("purchases", "long", Sum("purchases"), "purchases in the category in the last {w} day(s)"),
        ("purchase_rate", "double", Ratio("purchases", "views"), "purchases per view in the category, last {w} day(s)"),
        ("avg_price", "double", Ratio("price_sum", "price_n"), "mean price on the category's events, last {w} day(s)"),
        ("products", "long", Distinct("product_id"), "distinct products with events in the last {w} day(s)"),
    ),
    "user_category": (
        ("events", "long", Sum("events"), "the user's events in the category in the last {w} day(s)"),
        ("views", "long", Sum("views"), "the user's product views in the category in the last {w} day(s)"),
        ("purchases", "long", Sum("purchases"), "the user's purchases in the category in the last {w} day(s)"),
        ("share", "double", Share("events", "user"),
         "the category's share of the user's product events in the last {w} day(s) (affinity)"),
    ),
}

# Features over the longest window (no window of their own), per entity.
_UNWINDOWED: dict[str, tuple[tuple[str, str, Formula, str], ...]] = {
    "user": (
        ("days_since_last_event", "double", DaysSince("last_event_time"), "days from the user's last event to the as-of date"),
        ("days_since_last_purchase", "double", DaysSince("last_purchase_time"),
         "days from the user's last purchase to the as-of date (null: none in the longest window)"),
    ),
    "product": (
        ("category", "string", Latest("category"), "the product's category on its latest event"),
    ),
    "category": (),
    "user_category": (),
}


def registry(windows_days: list[int] | tuple[int, ...] = (1, 7, 30)) -> tuple[Feature, ...]:
    """Every feature for these windows, in the column order of the gold tables."""
    windows = sorted(set(windows_days))
    features: list[Feature] = []
    for entity in KEYS:
        for base, dtype, formula, text in _WINDOWED[entity]:
            for w in windows:
                features.append(Feature(f"{base}_{w}d", entity, w, text.format(w=w), dtype, formula))  # type: ignore[arg-type]
        for name, dtype, formula, text in _UNWINDOWED[entity]:
            features.append(Feature(name, entity, None, text, dtype, formula))  # type: ignore[arg-type]
    return tuple(features)


def features_of(entity: str, windows_days: list[int] | tuple[int, ...]) -> tuple[Feature, ...]:
    return tuple(f for f in registry(windows_days) if f.entity == entity)


def definitions_hash(windows_days: list[int] | tuple[int, ...]) -> str:
    """Changes whenever a feature definition or the windows change: stored with each built
    as-of date so that such a change rebuilds the gold tables."""
    payload = [
        {**asdict(f), "formula": {"type": type(f.formula).__name__, **asdict(f.formula)}} for f in registry(windows_days)
    ]
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def markdown(windows_days: list[int] | tuple[int, ...] = (1, 7, 30)) -> str:
    """The registry as the Markdown of docs/features.md."""
    lines = [
        "# Feature reference",
        "",
        "Generated from `pipelines/features/registry.py` by `clickml features list --markdown`; a test",
        "checks that this file is current. A feature as of date D uses only events before D 00:00 UTC;",
        f"a window of w days covers the event dates D-w .. D-1. Windows: {', '.join(map(str, sorted(set(windows_days))))} day(s).",
        "",
    ]
    for entity, keys in KEYS.items():
        lines += [f"## {entity} (keys: {', '.join(keys)}, as_of_date)", "", "| feature | window | type | description |", "|---|---|---|---|"]
        for f in features_of(entity, windows_days):
            window = f"{f.window_days}d" if f.window_days else "-"
            lines.append(f"| `{f.name}` | {window} | {f.dtype} | {f.description} |")
        lines.append("")
    return "\n".join(lines)
