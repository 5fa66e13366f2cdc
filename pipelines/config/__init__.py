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
from pipelines.config.serving import ExperimentSpec, ServingConfig, VariantSpec

__all__ = [
    "ClickmlConfig",
    "ConfigError",
    "ExperimentSpec",
    "FeaturesConfig",
    "GeneratorConfig",
    "LakeConfig",
    "MlflowConfig",
    "ServingConfig",
    "SparkConfig",
    "StorageConfig",
    "TrainingSetsConfig",
    "ValidationConfig",
    "VariantSpec",
    "load_config",
    "resolve_conf_dir",
]
