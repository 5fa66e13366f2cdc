"""Registration with aliases and the champion/challenger gate.

A new model version is tagged with its metrics and gets the `challenger` alias. It becomes
`champion` only if its predictions passed the prediction expectations and it beats the current
champion, scored by the same code on the same evaluation data, by more than the configured margin
on the configured metric. Otherwise the decision records why not. (Aliases, not the deprecated
registry stages.)
"""

from __future__ import annotations

import contextlib
import io
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


def base_rate_check(metrics: dict[str, float]) -> tuple[bool, str] | None:
    """Binary models: (passed, why) of "the test log loss is below the base-rate predictor's" (a
    model whose probabilities lose to predicting the base rate for everyone must not be promoted);
    None when the metrics have no log loss to compare."""
    loss, base = metrics.get("log_loss"), metrics.get("base_rate_log_loss")
    if loss is None or base is None or math.isnan(float(base)):
        return None
    if float(loss) < float(base):
        return True, f"test log loss {loss:.4f} below the base-rate predictor's {base:.4f}"
    return False, (f"test log loss {loss:.4f} is not below the base-rate predictor's {base:.4f}: its scores are worse "
                   "probabilities than the base rate for everyone (calibration off, or a model that learnt nothing)")


RUN_GROUP_TAG = "run_group"
GATE_TAG = "prediction_gate"


def register(spec: RegistrySpec, model_uri: str, metrics: dict[str, float], gate: tuple[bool, str], run_id: str,
             run_group: str | None = None) -> str:
    """Register `model_uri` under `spec.name`, tag it with its metrics, run, prediction-gate result
    (and `run_group`, for a later `promote_group`), alias it `challenger`; returns the version."""
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient()
    if spec.metric not in metrics:
        raise KeyError(f"registry.metric {spec.metric!r} is not among the metrics: {', '.join(sorted(metrics))}")
    # MLflow prints "Successfully registered model ..." to stderr: into the log file instead (as
    # MLflow INFO lines, after the call: MLflow's own log handler may write to sys.stderr too).
    printed = io.StringIO()
    try:
        with contextlib.redirect_stderr(printed):
            version = str(mlflow.register_model(model_uri, spec.name).version)
    finally:
        for line in printed.getvalue().splitlines():
            if line.strip():
                logging.getLogger("mlflow.registry").info("%s", line.strip())
    log.info("registry: registered %s version %s from %s", spec.name, version, model_uri)
    for key, metric in sorted(metrics.items()):
        client.set_model_version_tag(spec.name, version, f"metric.{key}", f"{metric:.6g}")
    client.set_model_version_tag(spec.name, version, "run_id", run_id)
    passed, message = gate
    client.set_model_version_tag(spec.name, version, GATE_TAG, ("passed: " if passed else "failed: ") + message[:4000])
    if run_group:
        client.set_model_version_tag(spec.name, version, RUN_GROUP_TAG, run_group)
    client.set_registered_model_alias(spec.name, CHALLENGER, version)
    return version


def current_champion(spec: RegistrySpec):
    """The champion's model version, None when there is none."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        return MlflowClient().get_model_version_by_alias(spec.name, CHAMPION)
    except MlflowException as exc:
        # No alias (or no model) is "no champion"; any other failure (server down, a locked
        # database) must not promote a challenger that was never compared.
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST" or (
            exc.error_code == "INVALID_PARAMETER_VALUE" and "not found" in str(exc)
        ):
            return None
        raise


def decide(spec: RegistrySpec, version: str, value: float, gate: tuple[bool, str],
           score_champion: Callable[[str], float]) -> Decision:
    """Promote `version` (metric `value`) to champion if it passed the gate and beats the current
    champion scored now by `score_champion(uri)`; tag the version with the decision."""
    from mlflow import MlflowClient

    client = MlflowClient()
    champion = current_champion(spec)
    passed, gate_message = gate
    champion_value = None
    if not passed:
        promoted, reason = False, f"prediction gate failed: {gate_message}"
    elif champion is None:
        promoted, reason = True, "no champion yet"
    elif str(champion.version) == str(version):
        promoted, reason = False, "already the champion"
    else:
        unusable = champion_unusable(spec, champion, score_champion)
        if isinstance(unusable, str):
            promoted, reason = True, unusable
        else:
            champion_value = unusable
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


def champion_unusable(spec: RegistrySpec, champion, score_champion: Callable[[str], float]) -> float | str:
    """The champion's metric on this evaluation data, or why it cannot be scored on it: its input
    columns are gone (new feature definitions, another table), so it could not serve either and
    the challenger replaces it. Any other failure (registry, storage) propagates."""
    from pyspark.errors import AnalysisException

    try:
        return score_champion(f"models:/{spec.name}@{CHAMPION}")
    except AnalysisException as exc:
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        log.warning("registry: %s champion version %s cannot score the current evaluation data: %s",
                    spec.name, champion.version, first)
        return f"champion v{champion.version} cannot score the current evaluation data (its inputs changed: {first})"


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
    version = register(spec, model_uri, metrics, gate, run_id)
    return decide(spec, version, float(metrics[spec.metric]), gate, score_champion)


def group_candidates(spec: RegistrySpec, run_group: str) -> list:
    """The versions registered with `run_group` whose predictions passed the gate (bounded: the
    versions of one registered model)."""
    from mlflow import MlflowClient

    versions = MlflowClient().search_model_versions(f"name = '{spec.name}'")
    return [v for v in versions if v.tags.get(RUN_GROUP_TAG) == run_group and v.tags.get(GATE_TAG, "").startswith("passed")]


def promote_group(spec: RegistrySpec, run_group: str, score: Callable[[str], float]) -> Decision | None:
    """One decision for the models registered in parallel under `run_group` (e.g. an Airflow run):
    the best of them by the registry metric, both it and the champion scored now by `score(uri)` on
    the same evaluation data, is promoted if it beats the champion (without a champion, on the
    metric its training run logged, unscored). None when the group is empty.

    Training tasks that ran in parallel only registered their models (`register`); deciding here,
    in one task, means two of them cannot overwrite each other's champion alias."""
    candidates = group_candidates(spec, run_group)
    if not candidates:
        log.warning("registry: %s has no version of run group %s that passed its prediction gate", spec.name, run_group)
        return None
    sign = 1.0 if spec.greater_is_better else -1.0

    def tagged(v) -> float:
        value = float(v.tags.get(f"metric.{spec.metric}", "nan"))
        return -math.inf if math.isnan(value) else sign * value

    best = max(candidates, key=tagged)
    if current_champion(spec) is None and math.isfinite(tagged(best)):
        # Nothing to compare with: the metric its training run measured stands, without loading
        # and scoring the model (a first run's promote task).
        value = float(best.tags[f"metric.{spec.metric}"])
    else:
        value = score(f"models:/{spec.name}/{best.version}")
    log.info("registry: %s run group %s: %d candidate(s), best version %s (%s %.4f)", spec.name, run_group,
             len(candidates), best.version, spec.metric, value)
    return decide(spec, str(best.version), value, (True, "passed"), score)
