"""Drift monitoring settings (`monitoring:`): which statistics, warn and alert thresholds, per job."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from pipelines.config.base import Section

Statistic = Literal["psi", "ks", "chi2", "js"]


class DriftThresholds(Section):
    """When a drift statistic warns or alerts. A p-value alone is not enough: on large populations
    every difference is significant, so the tests also need an effect size."""

    psi_warn: float = Field(default=0.1, gt=0)
    """PSI at or above this warns (0.1: a moderate shift)."""
    psi_alert: float = Field(default=0.25, gt=0)
    """PSI at or above this alerts (0.25: a major shift)."""
    ks_p_value: float = Field(default=0.01, gt=0, lt=1)
    """KS p-value below this is significant ..."""
    ks_warn_statistic: float = Field(default=0.05, ge=0, le=1)
    """... and warns when the KS statistic D is at least this ..."""
    ks_alert_statistic: float = Field(default=0.1, ge=0, le=1)
    """... and alerts when D is at least this (the minimum effect size)."""
    chi2_p_value: float = Field(default=0.01, gt=0, lt=1)
    """Chi-square p-value below this is significant; its effect size is the JS distance below. The
    same test of the PSI / JS cells must be significant for PSI or JS to warn or alert."""
    js_warn: float = Field(default=0.05, ge=0, le=1)
    """Jensen-Shannon distance (base 2) at or above this warns (and makes a significant chi-square warn)."""
    js_alert: float = Field(default=0.1, ge=0, le=1)
    """JS distance at or above this alerts (and makes a significant chi-square alert)."""
    auc_drop: float = Field(default=0.05, ge=0, le=1)
    """Once labels matured: an AUC more than this below the model's test AUC alerts."""

    @model_validator(mode="after")
    def _ordered(self) -> DriftThresholds:
        for warn, alert in (("psi_warn", "psi_alert"), ("ks_warn_statistic", "ks_alert_statistic"), ("js_warn", "js_alert")):
            if getattr(self, warn) > getattr(self, alert):
                raise ValueError(f"{warn} ({getattr(self, warn)}) must not exceed {alert} ({getattr(self, alert)})")
        return self


class MonitorSpec(Section):
    """How one training job's scored population is monitored."""

    statistics: list[Statistic] = Field(default_factory=lambda: ["psi", "ks", "chi2", "js"])
    """Statistics computed and judged (others are not computed)."""
    thresholds: DriftThresholds = Field(default_factory=DriftThresholds)
    features: list[str] | None = None
    """Features judged (default: every feature of the reference profile); the score always is."""
    ignore: list[str] = Field(default_factory=list)
    """Features left out of the judgement (still computed and stored)."""


class MonitoringConfig(Section):
    """Drift monitoring (`clickml monitor JOB`): defaults, and per-job settings that replace them."""

    default: MonitorSpec = Field(default_factory=MonitorSpec)
    jobs: dict[str, MonitorSpec] = Field(default_factory=dict)
    """Per training job (training.jobs), a whole MonitorSpec used instead of `default`."""

    def for_job(self, job: str) -> MonitorSpec:
        return self.jobs.get(job, self.default)
