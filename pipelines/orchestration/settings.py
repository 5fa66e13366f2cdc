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
    jobs_dir = orchestration.spark_submit.jobs_dir or default_jobs_dir(config)
    return DagSettings(
        config=config,
        job_profile=orchestration.job_profile or config.profile,
        job_conf_dir=orchestration.job_conf_dir or config.conf_dir,
        jobs_dir=jobs_dir,
    )


CODE_ROOT = Path(__file__).resolve().parents[2]
"""The checkout this `pipelines` package runs from (its `jobs/` matches this code)."""


def default_jobs_dir(config: ClickmlConfig) -> str:
    """`<project_root>/jobs` (the conf dir's parent) when it exists, else the `jobs/` next to this code.

    A conf dir kept outside the checkout (e.g. `/etc/clickml/conf`) has no `jobs/` beside it: the
    DAGs then submitted `/etc/clickml/jobs/*.py`, which spark-submit could not find.
    """
    for candidate in (Path(config.project_root) / "jobs", CODE_ROOT / "jobs"):
        if (candidate / "ingest_clickstream.py").is_file():
            return str(candidate)
    raise ValueError(
        f"orchestration.spark_submit.jobs_dir: not set, and neither {Path(config.project_root) / 'jobs'} (beside the "
        f"conf dir {config.conf_dir}) nor {CODE_ROOT / 'jobs'} holds the jobs; set it to the folder of jobs/*.py"
    )
