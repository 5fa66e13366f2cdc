"""The generator's config section: defaults, validation, nested sections."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from pipelines.config import ConfigError
from pipelines.config.generator import BAD_RECORD_KINDS, GeneratorConfig
from tests.conftest import make_config


def test_defaults_load_and_every_field_is_documented(tmp_path):
    config = make_config(tmp_path).generator
    assert GeneratorConfig().bad_records.share == 0.0  # the model's default: clean data
    assert config.bad_records.share == 0.02  # conf/base.yaml: the demo injects a few bad records
    assert config.drift.start_date is None
    assert config.heavy_users.count == 0  # heavy users are off unless asked for
    assert set(config.bad_records.kinds) == set(BAD_RECORD_KINDS)

    def documented(model):
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no docstring"

    for section in (GeneratorConfig, type(config.behaviour), type(config.purchase), type(config.bad_records), type(config.drift),
                    type(config.heavy_users)):
        documented(section)


def test_nested_overrides(tmp_path):
    config = make_config(
        tmp_path,
        "generator.bad_records.share=0.2",
        "generator.bad_records.kinds={duplicate: 1, future: 2}",
        "generator.drift.start_date=2024-01-05",
        "generator.behaviour.sessions_per_day=1.5",
    ).generator
    assert config.bad_records.kinds == {"duplicate": 1, "future": 2}
    assert str(config.drift.start_date) == "2024-01-05"
    assert config.behaviour.sessions_per_day == 1.5


@pytest.mark.parametrize(
    "override, message",
    [
        ("generator.bad_records.sharee=0.1", "unknown key"),
        ("generator.bad_records.kinds={typo: 1}", "bad_records.kinds"),
        ("generator.bad_records.share=0.9", "share"),
        ("generator.behaviour.country_weights={usa: 1}", "country"),
        ("generator.behaviour.device_weights={desktop: 0}", "weights"),
        ("generator.drift.start_date=2023-01-01", "drift.start_date"),
        ("generator.source=a/b", "source"),
        ("generator.heavy_users.count=-1", "heavy_users.count"),
        ("generator.heavy_users.events_per_day=2000000", "do not fit in a day"),
    ],
)
def test_invalid_settings_fail_at_load_time(tmp_path, override, message):
    with pytest.raises(ConfigError, match=message):
        make_config(tmp_path, override)


def test_assignment_is_validated():
    config = GeneratorConfig()
    with pytest.raises(ValidationError):
        config.late_share = 2.0
