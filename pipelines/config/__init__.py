"""Typed configuration: `conf/base.yaml` plus a profile overlay, validated at load time."""

from pipelines.config.loader import ConfigError, load_config, resolve_conf_dir
from pipelines.config.models import (
    ClickmlConfig,
    GeneratorConfig,
    LakeConfig,
    MlflowConfig,
    SparkConfig,
    StorageConfig,
)

__all__ = [
    "ClickmlConfig",
    "ConfigError",
    "GeneratorConfig",
    "LakeConfig",
    "MlflowConfig",
    "SparkConfig",
    "StorageConfig",
    "load_config",
    "resolve_conf_dir",
]
