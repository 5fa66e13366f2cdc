"""The config the DAGs are built from: `$CLICKML_PROFILE` and `$CLICKML_CONF_DIR`, like the jobs."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pipelines.config import ClickmlConfig, load_config

ENV_OVERRIDES = "CLICKML_DAG_OVERRIDES"
"""Semicolon-separated `KEY=VALUE` overrides applied when the DAGs are built (tests, one-off setups)."""


@dataclass(frozen=True)
class DagSettings:
    """What the DAG factory needs: the config, and the profile/conf dir the jobs are told to load."""

    config: ClickmlConfig
    job_profile: str
    job_conf_dir: str
    jobs_dir: str


def overrides_from_env(env: dict[str, str] | None = None) -> list[str]:
    raw = (env if env is not None else os.environ).get(ENV_OVERRIDES, "")
    return [item.strip() for item in raw.split(";") if item.strip()]


def load_dag_settings(profile: str | None = None, conf_dir: str | None = None,
                      overrides: list[str] | None = None) -> DagSettings:
    """Load the config (YAML and validation only: no Spark, no database)."""
    config = load_config(profile=profile, conf_dir=conf_dir,
                         overrides=[*overrides_from_env(), *(overrides or [])])
    orchestration = config.orchestration
    jobs_dir = orchestration.spark_submit.jobs_dir or str(Path(config.project_root) / "jobs")
    return DagSettings(
        config=config,
        job_profile=orchestration.job_profile or config.profile,
        job_conf_dir=orchestration.job_conf_dir or config.conf_dir,
        jobs_dir=jobs_dir,
    )
