"""Point-in-time features: the registry, the computation and the gold feature stage."""

from pipelines.features.compute import build_features
from pipelines.features.registry import KEYS, Feature, features_of

__all__ = ["KEYS", "Feature", "build_features", "features_of"]
