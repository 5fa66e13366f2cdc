from __future__ import annotations

import pytest
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import (
    INTERNAL_ERROR,
    INVALID_PARAMETER_VALUE,
    RESOURCE_DOES_NOT_EXIST,
)

from pipelines.train import promotion


class _Client:
    def __init__(self, error):
        self.error = error

    def get_model_version_by_alias(self, name, alias):
        raise self.error


@pytest.mark.parametrize("error", [
    MlflowException("Registered model alias champion not found.", INVALID_PARAMETER_VALUE),
    MlflowException("Registered Model with name=m not found", RESOURCE_DOES_NOT_EXIST),
])
def test_no_alias_or_no_model_is_no_champion(monkeypatch, error):
    monkeypatch.setattr("mlflow.MlflowClient", lambda: _Client(error))
    assert promotion.current_champion(promotion.RegistrySpec(name="m", metric="roc_auc")) is None


def test_a_registry_failure_is_not_taken_for_no_champion(monkeypatch):
    # Bug: every MlflowException (server down, a locked SQLite store) read as "no champion", and
    # the challenger was promoted without a comparison.
    error = MlflowException("database is locked", INTERNAL_ERROR)
    monkeypatch.setattr("mlflow.MlflowClient", lambda: _Client(error))
    with pytest.raises(MlflowException, match="database is locked"):
        promotion.current_champion(promotion.RegistrySpec(name="m", metric="roc_auc"))


def test_the_recommenders_at_k_metric_is_read_at_the_jobs_k(monkeypatch):
    # Bug: ndcg_at_k was looked up as such in an evaluation that has ndcg_at_<k>: NaN, so a
    # champion always lost (CLI path) and a challenger never won (DAG path).
    from types import SimpleNamespace

    from pipelines.train import recommend

    monkeypatch.setattr(recommend, "evaluate", lambda *args: SimpleNamespace(metrics={"ndcg_at_10": 0.25, "rmse": 1.5}))
    job = SimpleNamespace(k=10)
    assert recommend.metric_of(None, None, job, "ndcg_at_k", "m") == 0.25
    assert recommend.metric_of(None, None, job, "rmse", "m") == 1.5


class _Registry:
    """A registry whose champion is version 1; records alias moves and tags."""

    def __init__(self):
        self.aliases, self.tags = {}, {}

    def get_model_version_by_alias(self, name, alias):
        from types import SimpleNamespace

        return SimpleNamespace(version="1")

    def set_registered_model_alias(self, name, alias, version):
        self.aliases[alias] = version

    def set_model_version_tag(self, name, version, key, value):
        self.tags[(version, key)] = value


def test_a_champion_whose_inputs_are_gone_is_replaced_and_other_failures_propagate(spark, monkeypatch):
    # Bug: after a feature change removed a column the champion used, scoring it raised an
    # AnalysisException and every train/promote run failed until the alias was moved by hand.
    registry = _Registry()
    monkeypatch.setattr("mlflow.MlflowClient", lambda: registry)
    spec = promotion.RegistrySpec(name="m", metric="roc_auc")

    def gone(uri):
        return spark.range(1).select("events_30d").count()  # the champion's input column is not there

    decision = promotion.decide(spec, "2", 0.7, (True, "passed"), gone)
    assert decision.promoted and registry.aliases == {"champion": "2"}
    assert "champion v1 cannot score the current evaluation data" in decision.reason
    assert "events_30d" in decision.reason

    def down(uri):
        raise MlflowException("database is locked", INTERNAL_ERROR)

    with pytest.raises(MlflowException):
        promotion.decide(spec, "3", 0.9, (True, "passed"), down)
    assert registry.aliases == {"champion": "2"}


def test_a_binary_model_must_beat_the_base_rate_log_loss():
    assert promotion.base_rate_check({"roc_auc": 0.8}) is None
    passed, why = promotion.base_rate_check({"log_loss": 0.25, "base_rate_log_loss": 0.29})
    assert passed and "0.2500 below the base-rate predictor's 0.2900" in why
    # What balanced class weights gave before calibration: 0.71 against 0.29.
    passed, why = promotion.base_rate_check({"log_loss": 0.71, "base_rate_log_loss": 0.29})
    assert not passed and "is not below the base-rate predictor's 0.2900" in why
    assert promotion.base_rate_check({"log_loss": 0.29, "base_rate_log_loss": 0.29})[0] is False


class _Version:
    def __init__(self, version: str, auc: str):
        self.version = version
        self.tags = {promotion.RUN_GROUP_TAG: "g", promotion.GATE_TAG: "passed", "metric.roc_auc": auc}


class _GroupRegistry:
    def __init__(self, versions, champion=None):
        self.versions, self.champion, self.tags = versions, champion, {}

    def search_model_versions(self, _filter):
        return self.versions

    def get_model_version_by_alias(self, name, alias):
        if self.champion is None:
            raise MlflowException("Registered model alias champion not found.", INVALID_PARAMETER_VALUE)
        return self.champion

    def set_registered_model_alias(self, name, alias, version):
        self.champion = next(v for v in self.versions if v.version == version)

    def set_model_version_tag(self, name, version, key, value):
        self.tags[(version, key)] = value


def test_a_group_without_a_champion_is_decided_without_scoring_and_one_with_a_champion_is_scored(monkeypatch):
    # The best model was re-scored even when there was no champion to compare it with: a model
    # load and a scoring job in every first run's promote task, for a number nothing used.
    registry = _GroupRegistry([_Version("1", "0.71"), _Version("2", "0.74")])
    monkeypatch.setattr("mlflow.MlflowClient", lambda: registry)
    spec = promotion.RegistrySpec(name="m", metric="roc_auc")
    scored = []

    def score(uri):
        scored.append(uri)
        return {"models:/m/3": 0.80, "models:/m@champion": 0.70}[uri]

    decision = promotion.promote_group(spec, "g", score)
    assert (decision.version, decision.promoted, decision.reason, decision.challenger_value) == ("2", True, "no champion yet", 0.74)
    assert scored == [] and registry.champion.version == "2"
    # with a champion, the best of a new group and the champion are both scored on today's data
    registry.versions.append(_Version("3", "0.60"))
    for version in registry.versions[:2]:
        version.tags[promotion.RUN_GROUP_TAG] = "old"
    decision = promotion.promote_group(spec, "g", score)
    assert scored == ["models:/m/3", "models:/m@champion"]
    assert (decision.version, decision.promoted, decision.challenger_value, decision.champion_value) == ("3", True, 0.80, 0.70)
