"""Typed configuration: `conf/base.yaml` plus a profile overlay, validated at load time."""

from pipelines.config.loader import ConfigError, load_config, resolve_conf_dir
from pipelines.config.models import (
    ClickmlConfig,
    FeaturesConfig,
    GeneratorConfig,
    LakeConfig,
    MlflowConfig,
    SparkConfig,
    StorageConfig,
    TrainingSetsConfig,
    ValidationConfig,
)

__all__ = [
    "ClickmlConfig",
    "ConfigError",
    "FeaturesConfig",
    "GeneratorConfig",
    "LakeConfig",
    "MlflowConfig",
    "SparkConfig",
    "StorageConfig",
    "TrainingSetsConfig",
    "ValidationConfig",
    "load_config",
    "resolve_conf_dir",
]
