"""Which variant answers a request: sticky assignment by a hash of the user, canary, shadow, bandit.

A user's assignment point is `sha256(salt + ":" + user_id)` read as a number in [0, 1): the
same user gets the same point in every request, on every server, in every restart, and a
different point in each experiment (the salt defaults to the experiment id). The point falls into
one variant's slice of [0, 1), the slices laid out in the config's variant order with the
experiment's traffic shares (`ExperimentSpec.traffic`):

- `ab`: the configured weights (equal when none are given);
- `canary`: `canary_percent` of users on the non-control variant;
- `shadow`: the control answers everyone; every other variant scores the request too, and only
  the control's answer is returned;
- `bandit`: the current Thompson-sampling weights (`BanditWeights`), recomputed from observed
  conversions on a schedule; the configured weights until the first update. A user keeps their
  variant while the weights move only as far as their point stays in the same slice.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass

from pipelines.config.serving import WEIGHT_TOLERANCE, ExperimentSpec
from pipelines.experiments.stats import thompson_weights

log = logging.getLogger(__name__)

BANDIT_FLOOR = 0.05
"""Least share of traffic a bandit leaves on every arm, so no arm stops being measured."""


def assignment_point(salt: str, user_id: str) -> float:
    """The user's sticky point in [0, 1) for an experiment salted with `salt`."""
    digest = hashlib.sha256(f"{salt}:{user_id}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def pick(point: float, weights: Mapping[str, float]) -> str:
    """The variant whose slice of [0, 1) holds `point` (slices in `weights`' order)."""
    if not 0.0 <= point < 1.0:
        raise ValueError(f"assignment point {point} is outside [0, 1)")
    upper = 0.0
    last = None
    for name, weight in weights.items():
        if weight <= 0:
            continue
        upper += weight
        last = name
        if point < upper:
            return name
    if last is None:
        raise ValueError("no variant has a positive weight")
    return last  # float rounding at the top end: the last variant with traffic


def check_weights(experiment_id: str, spec: ExperimentSpec, weights: Mapping[str, float]) -> dict[str, float]:
    """`weights` as a plain dict after checking it names exactly the variants and sums to 1."""
    unknown = sorted(set(weights) - set(spec.variants))
    missing = sorted(set(spec.variants) - set(weights))
    if unknown or missing:
        raise ValueError(
            f"experiment {experiment_id}: weights must name exactly the variants {', '.join(spec.variants)} "
            f"(unknown: {', '.join(unknown) or 'none'}; missing: {', '.join(missing) or 'none'})"
        )
    bad = {k: v for k, v in weights.items() if not (math.isfinite(v) and v >= 0)}
    if bad:
        raise ValueError(f"experiment {experiment_id}: weights must be finite and >= 0, got {bad}")
    total = math.fsum(weights.values())
    if abs(total - 1.0) > WEIGHT_TOLERANCE:
        raise ValueError(f"experiment {experiment_id}: weights must sum to 1, got {total:g}")
    return {name: float(weights[name]) for name in spec.variants}  # config order: stable slices


@dataclass(frozen=True)
class Decision:
    """Who answers one request of one experiment."""

    experiment_id: str
    variant: str
    """The variant whose answer is returned (and logged as the exposure)."""
    shadows: tuple[str, ...]
    """Variants that also score the request without answering (kind shadow)."""
    point: float


class Router:
    """Assignment for one experiment; `weights` can be replaced (a bandit's update) at any time."""

    def __init__(self, experiment_id: str, spec: ExperimentSpec, weights: Mapping[str, float] | None = None):
        self.experiment_id = experiment_id
        self.spec = spec
        self.salt = spec.salt_for(experiment_id)
        self._weights = check_weights(experiment_id, spec, weights if weights is not None else spec.traffic())

    @property
    def weights(self) -> dict[str, float]:
        return dict(self._weights)

    def set_weights(self, weights: Mapping[str, float]) -> None:
        """Replace the traffic shares (bandit only: the other kinds are fixed by the config)."""
        if self.spec.kind != "bandit":
            raise ValueError(f"experiment {self.experiment_id} is kind {self.spec.kind}: only a bandit's weights move")
        self._weights = check_weights(self.experiment_id, self.spec, weights)

    def decide(self, user_id: str) -> Decision:
        point = assignment_point(self.salt, user_id)
        variant = pick(point, self._weights)
        shadows = tuple(v for v in self.spec.variants if v != variant) if self.spec.kind == "shadow" else ()
        return Decision(self.experiment_id, variant, shadows, point)


# --------------------------------------------------------------------------- bandit weights


def bandit_key(prefix: str, experiment_id: str) -> str:
    """Redis key of a bandit's current weights (a JSON string)."""
    return f"{prefix}:experiment:{experiment_id}:weights"


def bandit_weights(spec: ExperimentSpec, counts: Mapping[str, tuple[int, int]], seed: int | None = 0) -> dict[str, float]:
    """Thompson-sampling weights from observed (exposed users, converted users) per variant, with
    the experiment's Beta prior; every arm keeps at least `BANDIT_FLOOR` of the traffic."""
    posteriors = {}
    for name in spec.variants:
        users, conversions = counts.get(name, (0, 0))
        if conversions < 0 or users < conversions:
            raise ValueError(f"variant {name}: conversions ({conversions}) must be between 0 and users ({users})")
        posteriors[name] = (spec.bandit.prior_alpha + conversions, spec.bandit.prior_beta + users - conversions)
    floor = min(BANDIT_FLOOR, 1.0 / len(posteriors))
    return thompson_weights(posteriors, seed=seed, floor=floor)


def publish_bandit_weights(client, prefix: str, experiment_id: str, weights: Mapping[str, float],
                           counts: Mapping[str, tuple[int, int]]) -> dict:
    """Store a bandit's weights (and the counts they came from) for the model servers to pick up."""
    record = {
        "weights": dict(weights),
        "counts": {k: list(v) for k, v in counts.items()},
        "updated_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    client.set(bandit_key(prefix, experiment_id), json.dumps(record))
    log.info("bandit %s: weights %s from %s", experiment_id, record["weights"], record["counts"])
    return record


def read_bandit_weights(client, prefix: str, experiment_id: str) -> dict[str, float] | None:
    """The last published weights of a bandit, or None when none were published yet."""
    raw = client.get(bandit_key(prefix, experiment_id))
    if raw is None:
        return None
    try:
        return {str(k): float(v) for k, v in json.loads(raw)["weights"].items()}
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise ValueError(f"bandit weights at {bandit_key(prefix, experiment_id)} are not readable: {err}") from err
