"""Registration with aliases and the champion/challenger gate.

A new model version is tagged with its metrics and gets the `challenger` alias. It becomes
`champion` only if its predictions passed the prediction expectations and it beats the current
champion, scored by the same code on the same evaluation data, by more than the configured margin
on the configured metric. Otherwise the decision records why not. (Aliases, not the deprecated
registry stages.)
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

from pipelines.config.models import RegistrySpec

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"


@dataclass(frozen=True)
class Decision:
    model_name: str
    version: str
    promoted: bool
    reason: str
    metric: str
    challenger_value: float
    champion_value: float | None = None
    champion_version: str | None = None


def compare(spec: RegistrySpec, challenger: float, champion: float) -> tuple[bool, str]:
    """(beats, explanation) for the configured metric, direction and margin."""
    if math.isnan(challenger):
        return False, f"challenger {spec.metric} is NaN"
    if math.isnan(champion):
        return True, f"champion {spec.metric} is NaN on this evaluation data"
    gain = challenger - champion if spec.greater_is_better else champion - challenger
    word = "higher" if spec.greater_is_better else "lower"
    if gain > spec.margin:
        return True, f"{spec.metric} {challenger:.4f} vs champion {champion:.4f}: {gain:+.4f} better (> margin {spec.margin})"
    return False, (
        f"{spec.metric} {challenger:.4f} vs champion {champion:.4f}: not {word} by more than the margin {spec.margin}"
    )


def register_and_promote(
    spec: RegistrySpec,
    model_uri: str,
    metrics: dict[str, float],
    gate: tuple[bool, str],
    score_champion: Callable[[str], float],
    run_id: str,
) -> Decision:
    """Register `model_uri` under `spec.name`, alias it `challenger`, and promote it if it wins.

    `gate`: (passed, message) of the prediction expectations; `score_champion(uri)` evaluates the
    model at `uri` on the same evaluation data and returns `spec.metric`.
    """
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient()
    if spec.metric not in metrics:
        raise KeyError(f"registry.metric {spec.metric!r} is not among the metrics: {', '.join(sorted(metrics))}")
    value = float(metrics[spec.metric])
    version = mlflow.register_model(model_uri, spec.name).version
    for key, metric in sorted(metrics.items()):
        client.set_model_version_tag(spec.name, version, f"metric.{key}", f"{metric:.6g}")
    client.set_model_version_tag(spec.name, version, "run_id", run_id)
    client.set_registered_model_alias(spec.name, CHALLENGER, version)

    try:
        champion = client.get_model_version_by_alias(spec.name, CHAMPION)
    except MlflowException:
        champion = None
    passed, gate_message = gate
    champion_value = None
    if not passed:
        promoted, reason = False, f"prediction expectations failed: {gate_message}"
    elif champion is None:
        promoted, reason = True, "no champion yet"
    else:
        champion_value = score_champion(f"models:/{spec.name}@{CHAMPION}")
        promoted, reason = compare(spec, value, champion_value)
    if promoted:
        client.set_registered_model_alias(spec.name, CHAMPION, version)
    decision = Decision(
        spec.name, str(version), promoted, reason, spec.metric, value, champion_value,
        None if champion is None else str(champion.version),
    )
    client.set_model_version_tag(spec.name, version, "promotion", ("promoted: " if promoted else "not promoted: ") + reason)
    log.info("registry: %s version %s %s (%s)", spec.name, version, "is the new champion" if promoted else "stays challenger", reason)
    return decision
