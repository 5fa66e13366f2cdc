"""Online serving (`serving:`) and online experiments (`experiments:`).

`serving` says where the online store (Redis) and the model server live; `experiments` maps an
experiment id to how traffic is split between model variants and how the result is judged.
Cross-section checks (an experiment's job is a training job, the exposure source exists) run
in `check_serving` once the whole configuration is known.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from pipelines.config.base import Section

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def check_variant_names(variants: dict) -> None:
    """At least two variants, each named with letters, digits, _ . - (also the generator's experiment)."""
    if len(variants) < 2:
        raise ValueError(f"an experiment needs at least two variants, got {len(variants)}: {', '.join(variants) or 'none'}")
    bad = sorted(name for name in variants if not _NAME.match(name))
    if bad:
        raise ValueError(f"variant names must be letters, digits, _ . - (no spaces or ':'): {', '.join(bad)}")


WEIGHT_TOLERANCE = 1e-6
"""How far from 1 the variant weights may sum (float rounding in YAML values like 0.1 + 0.2 + 0.7)."""


class ExposuresConfig(Section):
    """Where the model server logs its exposure events (one per decision)."""

    source: str = "clickstream"
    """A source in `conf/sources/` that the ingest already reads: exposures land in its landing
    folder (or its Kafka topic) and flow through bronze and silver like any event."""


class ServingConfig(Section):
    """The online store (Redis) and the model server (`clickml materialize`, `clickml serve`)."""

    redis_url: str = "redis://127.0.0.1:6379/0"
    """Redis connection URL (`redis://[user:password@]host:port/db`, `rediss://` for TLS); the
    shipped config reads `${CLICKML_REDIS_URL}`."""
    key_prefix: str = "clickml"
    """Prefix of every key: `<prefix>:<job>:features:<user_id>` (a hash: the feature columns and
    `as_of_date`), `<prefix>:<job>:recs:<model_version>:<user_id>` and `<prefix>:<job>:meta`."""
    feature_ttl_hours: float = Field(default=72.0, gt=0)
    """Time to live of the per-user keys; a user not rewritten by a later materialization expires."""
    write_batch_size: int = Field(default=500, ge=1, le=100_000)
    """`clickml materialize`: commands per Redis pipeline round trip from each Spark task."""
    host: str = "127.0.0.1"
    """Interface the model server listens on (loopback by default)."""
    port: int = Field(default=8000, ge=1, le=65535)
    """Port the model server listens on."""
    exposures: ExposuresConfig = Field(default_factory=ExposuresConfig)
    """Where exposure events are logged."""

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"redis_url {value!r} must start with redis://, rediss:// or unix://")
        return value

    @field_validator("key_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not value or ":" in value or any(c.isspace() for c in value):
            raise ValueError(f"key_prefix {value!r} must be non-empty, without ':' or spaces (':' separates key parts)")
        return value


class VariantSpec(Section):
    """One arm of an experiment: the registered model version it serves and its traffic share."""

    alias: str | None = None
    """Registry alias of the job's model (e.g. `champion`, `challenger`); or give `version`."""
    version: int | None = Field(default=None, ge=1)
    """A fixed registered model version; or give `alias`."""
    weight: float | None = Field(default=None, ge=0.0, le=1.0)
    """Share of users (kinds ab and bandit; the bandit's starting split). The weights of an
    experiment sum to 1; none given means an equal split."""

    @model_validator(mode="after")
    def _one_model(self) -> VariantSpec:
        if (self.alias is None) == (self.version is None):
            raise ValueError("give exactly one of alias (e.g. champion) or version (a registered model version)")
        return self

    def model_reference(self, model_name: str) -> str:
        """The MLflow model URI of this variant, e.g. `models:/clickml-propensity@champion`."""
        return f"models:/{model_name}@{self.alias}" if self.alias else f"models:/{model_name}/{self.version}"


class BanditSpec(Section):
    """Thompson sampling over Beta posteriors of each variant's conversion rate (kind bandit)."""

    refresh_minutes: int = Field(default=60, ge=1)
    """How often the arm weights are recomputed from observed conversions."""
    prior_alpha: float = Field(default=1.0, gt=0)
    """Beta prior alpha (prior conversions + 1 for the uniform prior)."""
    prior_beta: float = Field(default=1.0, gt=0)
    """Beta prior beta (prior non-conversions + 1 for the uniform prior)."""


class DecisionSpec(Section):
    """When the analysis calls a winner, and whether it acts on it."""

    alpha: float = Field(default=0.05, gt=0, lt=1)
    """Significance level of the frequentist tests (and 1 - level of their intervals)."""
    min_prob_beat: float = Field(default=0.95, ge=0.5, lt=1)
    """Ship a variant when P(variant beats control) exceeds this ..."""
    max_expected_loss: float = Field(default=0.001, ge=0)
    """... and its expected loss (absolute conversion rate) is below this (0.001: 0.1%)."""
    promote: bool = False
    """Move the registry aliases when a variant wins (false: report the decision only)."""


class ExperimentSpec(Section):
    """An online experiment on one training job's model: how users are split and how it is judged."""

    job: str
    """A training job (`training.jobs`); its `registry.name` is the MLflow model served."""
    kind: Literal["ab", "canary", "shadow", "bandit"] = "ab"
    """`ab`: a fixed split by weight; `canary`: `canary_percent` of users on the one non-control
    variant; `shadow`: every variant scores every request, only the control's answer is returned;
    `bandit`: Thompson sampling moves traffic to the better-converting variant."""
    salt: str | None = None
    """Salt of the sticky assignment `hash(salt + ":" + user_id) -> [0, 1)`; default: the experiment id."""
    control: str = "control"
    """The variant the others are compared with (and the one served in a shadow experiment)."""
    variants: dict[str, VariantSpec]
    """Variant name -> its model (alias or version) and weight; at least two."""
    canary_percent: float | None = Field(default=None, ge=0.0, le=100.0)
    """Kind canary only: share (0-100) of users on the non-control variant."""
    bandit: BanditSpec = Field(default_factory=BanditSpec)
    """Kind bandit: refresh period and Beta prior."""
    conversion_event: Literal["page_view", "search", "product_view", "add_to_cart", "remove_from_cart", "purchase"] = "purchase"
    """The event type that counts as a conversion."""
    attribution_window_hours: float = Field(default=24.0, gt=0)
    """A user's events within this window after their first exposure count."""
    pre_period_days: int = Field(default=7, ge=0, le=366)
    """CUPED covariate window: the days before the experiment start (0: no CUPED)."""
    start: dt.date | None = None
    """First day of the analysis (UTC); default: the day of the first exposure."""
    end: dt.date | None = None
    """Last day of the analysis (UTC, inclusive); default: the last day with exposures."""
    decision: DecisionSpec = Field(default_factory=DecisionSpec)
    """The decision rule."""

    @field_validator("variants")
    @classmethod
    def _variant_names(cls, value: dict[str, VariantSpec]) -> dict[str, VariantSpec]:
        check_variant_names(value)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ExperimentSpec:
        names = ", ".join(self.variants)
        if self.control not in self.variants:
            raise ValueError(f"control: {self.control!r} is not one of the variants ({names})")
        if self.canary_percent is not None and self.kind != "canary":
            raise ValueError(f"canary_percent applies to kind canary only, not {self.kind}")
        if self.kind == "canary":
            if self.canary_percent is None:
                raise ValueError("kind canary needs canary_percent (0-100: the share of users on the non-control variant)")
            if len(self.variants) != 2:
                raise ValueError(f"kind canary needs exactly two variants (control and the canary), got {len(self.variants)}: {names}")
        weights = {name: v.weight for name, v in self.variants.items() if v.weight is not None}
        if weights and self.kind in ("canary", "shadow"):
            raise ValueError(
                f"variants.<name>.weight applies to kinds ab and bandit; kind {self.kind} splits by "
                f"{'canary_percent' if self.kind == 'canary' else 'serving the control to everyone'}"
            )
        if weights:
            missing = sorted(set(self.variants) - set(weights))
            if missing:
                raise ValueError(f"variants.<name>.weight: give a weight to every variant or none (missing: {', '.join(missing)})")
            total = math.fsum(weights.values())
            if abs(total - 1.0) > WEIGHT_TOLERANCE:
                shown = ", ".join(f"{k}={v:g}" for k, v in weights.items())
                raise ValueError(f"variants.<name>.weight must sum to 1, got {total:g} ({shown})")
        if self.start and self.end and self.end < self.start:
            raise ValueError(f"end ({self.end}) is before start ({self.start})")
        return self

    def traffic(self) -> dict[str, float]:
        """The share of users each variant's answer is returned to (sums to 1).

        ab and bandit: the weights (equal when none are given; a bandit's starting split);
        canary: canary_percent on the non-control variant; shadow: the control only (the others
        still score every request).
        """
        if self.kind == "shadow":
            return {name: 1.0 if name == self.control else 0.0 for name in self.variants}
        if self.kind == "canary":
            share = (self.canary_percent or 0.0) / 100.0
            return {name: 1.0 - share if name == self.control else share for name in self.variants}
        if all(v.weight is None for v in self.variants.values()):
            return {name: 1.0 / len(self.variants) for name in self.variants}
        return {name: float(v.weight) for name, v in self.variants.items()}

    def salt_for(self, experiment_id: str) -> str:
        """The assignment salt: `salt`, or the experiment id."""
        return self.salt if self.salt is not None else experiment_id


def check_experiment_ids(experiments: dict[str, ExperimentSpec]) -> None:
    """Experiment ids go into exposure rows, metric labels and key names: keep them plain."""
    bad = sorted(name for name in experiments if not _NAME.match(name))
    if bad:
        raise ValueError(f"experiments: ids must be letters, digits, _ . - (no spaces or ':'): {', '.join(bad)}")


def check_serving(serving: ServingConfig, experiments: dict[str, ExperimentSpec], training_jobs: dict, conf_dir: str) -> None:
    """Checks across sections, run by the root config: raises ValueError naming the key."""
    check_experiment_ids(experiments)
    for experiment_id, spec in experiments.items():
        if spec.job not in training_jobs:
            known = ", ".join(sorted(training_jobs)) or "none"
            raise ValueError(f"experiments.{experiment_id}.job: {spec.job!r} is not a training job (training.jobs: {known})")
        if training_jobs[spec.job].registry is None:
            raise ValueError(
                f"experiments.{experiment_id}.job: training job {spec.job!r} has no registry section, so no model to serve"
            )
    sources = Path(conf_dir) / "sources"
    if sources.is_dir() and not (sources / f"{serving.exposures.source}.yaml").is_file():
        known = ", ".join(sorted(p.stem for p in sources.glob("*.yaml"))) or "none"
        raise ValueError(f"serving.exposures.source: no source {serving.exposures.source!r} in {sources} (sources: {known})")
