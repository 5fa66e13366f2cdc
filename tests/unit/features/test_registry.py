"""The registry: names, windows, the definitions hash, and docs/features.md kept current."""

from __future__ import annotations

from pipelines.features.registry import (
    KEYS,
    definitions_hash,
    features_of,
    markdown,
    registry,
)
from tests.conftest import REPO_ROOT


def test_every_windowed_feature_exists_per_window():
    for entity in KEYS:
        names = [f.name for f in features_of(entity, [1, 7, 30])]
        assert len(names) == len(set(names)), entity
    user = {f.name: f for f in features_of("user", [1, 7, 30])}
    for base in ("views", "carts", "purchases", "conversion_rate", "spend", "active_days", "top_category", "top_device"):
        assert [user[f"{base}_{w}d"].window_days for w in (1, 7, 30)] == [1, 7, 30]
    assert user["days_since_last_event"].window_days is None
    assert all(f.description and f.entity in KEYS for f in registry())


def test_definitions_hash_changes_with_the_windows():
    assert definitions_hash([1, 7, 30]) == definitions_hash([30, 7, 1])
    assert definitions_hash([1, 7, 30]) != definitions_hash([1, 7, 28])


def test_docs_features_md_is_generated_from_the_registry():
    current = (REPO_ROOT / "docs" / "features.md").read_text(encoding="utf-8")
    assert current == markdown([1, 7, 30]) + "\n", "docs/features.md is stale: run `clickml features list --markdown > docs/features.md`"
