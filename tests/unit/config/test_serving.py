"""The serving and experiments config: defaults, and errors that name the key at fault."""

from __future__ import annotations

import pytest

from pipelines.config import ConfigError
from pipelines.config.serving import ExperimentSpec
from tests.conftest import make_config

AB = [
    "experiments.exp1.job=propensity",
    "experiments.exp1.variants.control={alias: champion, weight: 0.5}",
    "experiments.exp1.variants.treatment={alias: challenger, weight: 0.5}",
]


def load(tmp_path, *overrides: str):
    return make_config(tmp_path, *overrides)


def error(tmp_path, *overrides: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, *overrides)
    return str(caught.value)


def test_shipped_defaults_follow_the_contract(tmp_path):
    config = load(tmp_path)
    assert config.serving.redis_url == "redis://127.0.0.1:6379/0"
    assert config.serving.key_prefix == "clickml"
    assert config.serving.feature_ttl_hours == 72
    assert (config.serving.host, config.serving.port) == ("127.0.0.1", 8000)
    assert config.serving.exposures.source == "clickstream"
    assert config.experiments == {}


def test_redis_url_reads_the_environment():
    from pipelines.config import load_config
    from tests.conftest import CONF_DIR

    config = load_config(profile="local", conf_dir=CONF_DIR, env={"CLICKML_REDIS_URL": "redis://127.0.0.1:6390/2"})
    assert config.serving.redis_url == "redis://127.0.0.1:6390/2"


def test_an_ab_experiment_loads_with_its_defaults(tmp_path):
    spec = load(tmp_path, *AB).experiments["exp1"]
    assert spec.kind == "ab" and spec.control == "control"
    assert spec.traffic() == {"control": 0.5, "treatment": 0.5}
    assert spec.salt_for("exp1") == "exp1"
    assert spec.variants["treatment"].model_reference("m") == "models:/m@challenger"
    assert spec.conversion_event == "purchase" and spec.attribution_window_hours == 24
    assert spec.decision.min_prob_beat == 0.95 and spec.decision.promote is False
    assert spec.bandit.prior_alpha == 1.0


def test_weights_default_to_an_equal_split_and_versions_resolve():
    spec = ExperimentSpec(job="j", variants={"control": {"version": 3}, "b": {"alias": "x"}, "c": {"alias": "y"}})
    assert spec.traffic() == pytest.approx({"control": 1 / 3, "b": 1 / 3, "c": 1 / 3})
    assert spec.variants["control"].model_reference("m") == "models:/m/3"


def test_unknown_key_is_rejected_with_the_allowed_keys(tmp_path):
    message = error(tmp_path, *AB, "experiments.exp1.variant_weights=1")
    assert "experiments.exp1.variant_weights: unknown key" in message
    assert "serving.redis_port: unknown key" in error(tmp_path, "serving.redis_port=1")


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["experiments.exp1.variants.treatment.weight=0.6"], "weight must sum to 1, got 1.1"),
        (["experiments.exp1.control=baseline"], "control: 'baseline' is not one of the variants (control, treatment)"),
        (["experiments.exp1.canary_percent=10"], "canary_percent applies to kind canary only, not ab"),
        (["experiments.exp1.variants.treatment.version=2"], "give exactly one of alias"),
        (["experiments.exp1.variants.treatment={version: 2, weight: null}"], "give a weight to every variant or none (missing: treatment)"),
        (["experiments.exp1.job=nope"], "experiments.exp1.job: 'nope' is not a training job"),
        (["experiments.exp1.kind=lottery"], "experiments.exp1.kind"),
        (["experiments.exp1.conversion_event=click"], "experiments.exp1.conversion_event"),
        (["experiments.exp1.start=2024-02-01", "experiments.exp1.end=2024-01-01"], "end (2024-01-01) is before start"),
        (["experiments.exp1.decision.alpha=1.5"], "experiments.exp1.decision.alpha"),
    ],
)
def test_invalid_experiments_name_the_key(tmp_path, overrides, expected):
    message = error(tmp_path, *AB, *overrides)
    assert expected in message
    assert "experiments.exp1" in message


def test_canary_needs_its_percent_two_variants_and_no_weights(tmp_path):
    canary = ["experiments.exp1.job=propensity", "experiments.exp1.kind=canary",
              "experiments.exp1.variants={control: {alias: champion}, canary: {alias: challenger}}"]
    assert "kind canary needs canary_percent" in error(tmp_path, *canary)
    assert "less than or equal to 100" in error(tmp_path, *canary, "experiments.exp1.canary_percent=150")
    assert "weight applies to kinds ab and bandit" in error(
        tmp_path, *canary, "experiments.exp1.canary_percent=5", "experiments.exp1.variants.canary.weight=0.05")
    spec = load(tmp_path, *canary, "experiments.exp1.canary_percent=5").experiments["exp1"]
    assert spec.traffic() == pytest.approx({"control": 0.95, "canary": 0.05})


def test_shadow_serves_the_control_only(tmp_path):
    spec = load(tmp_path, "experiments.s.job=propensity", "experiments.s.kind=shadow", "experiments.s.control=champ",
                "experiments.s.variants={champ: {alias: champion}, shadow: {alias: challenger}}").experiments["s"]
    assert spec.traffic() == {"champ": 1.0, "shadow": 0.0}


def test_one_variant_and_bad_names_are_rejected(tmp_path):
    one = error(tmp_path, "experiments.exp1.job=propensity", "experiments.exp1.variants={control: {alias: champion}}")
    assert "experiments.exp1.variants: " in one and "at least two variants, got 1" in one
    bad = error(tmp_path, *AB, "experiments.exp1.variants={control: {alias: a}, 'bad name': {alias: b}}")
    assert "variant names must be" in bad and "bad name" in bad
    assert "experiments: ids must be" in error(tmp_path, *[o.replace("exp1", "a:b") for o in AB])


def test_serving_values_are_checked(tmp_path):
    assert "serving.redis_url" in error(tmp_path, "serving.redis_url=http://x")
    assert "serving.key_prefix" in error(tmp_path, "serving.key_prefix=a:b")
    assert "serving.port" in error(tmp_path, "serving.port=70000")
    assert "serving.feature_ttl_hours" in error(tmp_path, "serving.feature_ttl_hours=0")
    message = error(tmp_path, "serving.exposures.source=nosuch")
    assert "serving.exposures.source: no source 'nosuch'" in message and "clickstream" in message
