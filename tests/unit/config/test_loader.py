"""Config loading: overlays, interpolation, and errors that name file, key path and allowed keys."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from pipelines.config import ConfigError, load_config
from pipelines.config.loader import available_profiles
from tests.conftest import CONF_DIR, REPO_ROOT

BASE = """
lake:
  root: lakehouse
landing:
  root: landing
spark:
  master: local[*]
  shuffle_partitions: 8
  conf:
    spark.sql.ansi.enabled: "true"
"""


def write_conf(tmp_path: Path, base: str = BASE, **profiles: str) -> Path:
    conf = tmp_path / "conf"
    (conf / "profiles").mkdir(parents=True)
    (conf / "base.yaml").write_text(textwrap.dedent(base))
    for name, text in {"local": "", **profiles}.items():
        (conf / "profiles" / f"{name}.yaml").write_text(textwrap.dedent(text))
    return conf


@pytest.mark.parametrize("profile", available_profiles(CONF_DIR))
def test_every_shipped_profile_loads(profile):
    config = load_config(profile=profile, conf_dir=CONF_DIR, env={})
    assert config.profile == profile
    assert config.lake.root


def test_shipped_local_profile_resolves_paths_under_the_project_root():
    config = load_config(profile="local", conf_dir=CONF_DIR, env={})
    assert config.lake.root == str(REPO_ROOT / "lakehouse")
    assert config.landing.root == str(REPO_ROOT / "landing")
    assert config.spark.master == "local[*]"
    assert config.tables.demo_events == "demo.clickstream"


def test_profile_overlay_merges_nested_keys(tmp_path):
    conf = write_conf(tmp_path, dev="spark:\n  shuffle_partitions: 3\n  conf:\n    spark.x.y: '1'\n")
    config = load_config(profile="dev", conf_dir=conf, env={})
    assert config.spark.shuffle_partitions == 3
    assert config.spark.master == "local[*]"  # kept from base
    assert config.spark.conf == {"spark.sql.ansi.enabled": "true", "spark.x.y": "1"}


def test_profile_from_environment_variable(tmp_path):
    conf = write_conf(tmp_path, ci="spark:\n  shuffle_partitions: 1\n")
    config = load_config(conf_dir=conf, env={"CLICKML_PROFILE": "ci"})
    assert config.profile == "ci"
    assert config.spark.shuffle_partitions == 1


def test_overrides_win_over_files(tmp_path):
    conf = write_conf(tmp_path)
    config = load_config(conf_dir=conf, overrides=["spark.shuffle_partitions=2", "lake.root=/data/lake"], env={})
    assert config.spark.shuffle_partitions == 2
    assert config.lake.root == "/data/lake"


def test_unknown_key_names_the_overlay_file_key_path_and_allowed_keys(tmp_path):
    conf = write_conf(tmp_path, typo="spark:\n  shufle_partitions: 3\n")
    with pytest.raises(ConfigError) as err:
        load_config(profile="typo", conf_dir=conf, env={})
    message = str(err.value)
    assert str(conf / "profiles" / "typo.yaml") in message
    assert "spark.shufle_partitions: unknown key" in message
    assert "allowed keys here:" in message and "shuffle_partitions" in message and "master" in message


def test_unknown_key_inside_a_named_entry_lists_that_entrys_keys():
    # Bug guard: under a dict of sections (training.jobs.<job>, experiments.<id>) the message
    # listed no allowed keys ("allowed keys here: " and nothing).
    with pytest.raises(ConfigError) as err:
        load_config(profile="local", conf_dir=CONF_DIR, env={}, overrides=["training.jobs.propensity.lable=x"])
    assert "training.jobs.propensity.lable: unknown key" in str(err.value)
    assert "label" in str(err.value).split("allowed keys here:")[1] and "models" in str(err.value)
    with pytest.raises(ConfigError) as err:
        load_config(profile="local", conf_dir=CONF_DIR, env={}, overrides=[
            "experiments.ab.job=propensity", "experiments.ab.variants.control.alias=champion",
            "experiments.ab.variants.treatment.alias=challenger", "experiments.ab.variants.treatment.wieght=0.5"])
    message = str(err.value)
    assert "experiments.ab.variants.treatment.wieght: unknown key" in message
    assert "weight" in message.split("allowed keys here:")[1]


def test_unknown_top_level_key_lists_the_sections(tmp_path):
    conf = write_conf(tmp_path, BASE + "sprak:\n  master: x\n")
    with pytest.raises(ConfigError) as err:
        load_config(conf_dir=conf, env={})
    message = str(err.value)
    assert f"{conf / 'base.yaml'}: sprak: unknown key" in message
    assert "lake" in message and "spark" in message and "tables" in message


def test_wrong_type_names_file_key_and_value(tmp_path):
    conf = write_conf(tmp_path, bad="spark:\n  shuffle_partitions: lots\n")
    with pytest.raises(ConfigError) as err:
        load_config(profile="bad", conf_dir=conf, env={})
    message = str(err.value)
    assert f"{conf / 'profiles' / 'bad.yaml'}: spark.shuffle_partitions:" in message
    assert "'lots'" in message


def test_missing_required_key(tmp_path):
    conf = write_conf(tmp_path, "landing:\n  root: x\n")
    with pytest.raises(ConfigError, match=r"base.yaml: lake: required key is missing"):
        load_config(conf_dir=conf, env={})


def test_environment_interpolation_with_defaults_and_escapes(tmp_path):
    conf = write_conf(
        tmp_path,
        BASE.replace("root: lakehouse", "root: ${LAKE:-/default/lake}")
        + "mlflow:\n  tracking_uri: http://${HOST}:5000\n  experiment: $${literal}\n",
    )
    config = load_config(conf_dir=conf, env={"HOST": "mlflow.internal"})
    assert config.lake.root == "/default/lake"
    assert config.mlflow.tracking_uri == "http://mlflow.internal:5000"
    assert config.mlflow.experiment == "${literal}"
    config = load_config(conf_dir=conf, env={"HOST": "h", "LAKE": "s3a://bucket/lake"})
    assert config.lake.root == "s3a://bucket/lake"


def test_missing_environment_variable_names_file_and_key(tmp_path):
    conf = write_conf(tmp_path, secret="lake:\n  storage:\n    secret_access_key: ${S3_SECRET}\n")
    with pytest.raises(ConfigError) as err:
        load_config(profile="secret", conf_dir=conf, env={})
    assert f"{conf / 'profiles' / 'secret.yaml'}: lake.storage.secret_access_key: environment variable ${{S3_SECRET}} is not set" in str(err.value)


def test_unknown_profile_lists_available_ones(tmp_path):
    conf = write_conf(tmp_path, staging="")
    with pytest.raises(ConfigError, match=r"unknown profile 'prod'.*available profiles: local, staging"):
        load_config(profile="prod", conf_dir=conf, env={})


def test_invalid_yaml_names_the_file(tmp_path):
    conf = write_conf(tmp_path, broken="spark: [unclosed\n")
    with pytest.raises(ConfigError, match=r"broken.yaml: not valid YAML"):
        load_config(profile="broken", conf_dir=conf, env={})


def test_bad_override_syntax(tmp_path):
    conf = write_conf(tmp_path)
    with pytest.raises(ConfigError, match=r"--set 'spark.master': expected KEY.PATH=VALUE"):
        load_config(conf_dir=conf, overrides=["spark.master"], env={})


def test_override_error_is_attributed_to_the_command_line(tmp_path):
    conf = write_conf(tmp_path)
    with pytest.raises(ConfigError, match=r"--set: spark.master: .*unsupported master 'mesos://x'"):
        load_config(conf_dir=conf, overrides=["spark.master=mesos://x"], env={})


def test_cluster_profile_reads_secrets_from_the_environment():
    env = {"AWS_ACCESS_KEY_ID": "AKIA123", "AWS_SECRET_ACCESS_KEY": "s3cr3t", "CLICKML_S3_ENDPOINT": "http://minio:9000"}
    config = load_config(profile="cluster", conf_dir=CONF_DIR, env=env)
    assert config.lake.root.startswith("s3a://")
    assert config.lake.storage.access_key_id == "AKIA123"
    assert config.lake.storage.endpoint == "http://minio:9000"
    unset = load_config(profile="cluster", conf_dir=CONF_DIR, env={})
    assert unset.lake.storage.endpoint is None and unset.lake.storage.secret_access_key is None


def test_gpu_task_amount_cannot_exceed_executor_amount(tmp_path):
    conf = write_conf(tmp_path, gpu="spark:\n  gpu:\n    enabled: true\n    executor_amount: 1\n    task_amount: 2\n")
    with pytest.raises(ConfigError, match=r"task_amount \(2.0\) cannot exceed"):
        load_config(profile="gpu", conf_dir=conf, env={})


def test_spark_passthrough_keys_must_be_spark_settings(tmp_path):
    conf = write_conf(tmp_path, bad="spark:\n  conf:\n    executor.memory: 4g\n")
    with pytest.raises(ConfigError, match=r"spark.conf: .*must start with 'spark.': executor.memory"):
        load_config(profile="bad", conf_dir=conf, env={})


def test_table_names_must_be_layer_dot_name(tmp_path):
    conf = write_conf(tmp_path, bad="tables:\n  demo_events: events\n")
    with pytest.raises(ConfigError, match=r"tables.demo_events: .*<layer>.<name>"):
        load_config(profile="bad", conf_dir=conf, env={})


def test_a_session_time_zone_other_than_utc_is_refused(tmp_path):
    # Bug: any zone was accepted, and with one that is not UTC event dates became local dates, so
    # "as of D" counted events up to D 05:00 UTC and session ids could collide at a DST change.
    conf = write_conf(tmp_path)
    with pytest.raises(ConfigError, match="spark.session_time_zone"):
        load_config(conf_dir=conf, overrides=["spark.session_time_zone=America/New_York"], env={})
    with pytest.raises(ConfigError, match="the pipeline works in UTC"):
        load_config(conf_dir=conf, overrides=["spark.conf={\"spark.sql.session.timeZone\": \"Europe/Paris\"}"], env={})
    assert load_config(conf_dir=conf, overrides=["spark.session_time_zone=UTC"], env={}).spark.session_time_zone == "UTC"


def test_a_user_config_file_merges_over_base_and_profile(tmp_path):
    conf = write_conf(tmp_path)
    mine = tmp_path / "elsewhere" / "my.yaml"
    mine.parent.mkdir()
    mine.write_text(textwrap.dedent("""\
        spark: {master: "local[1]"}
        lake: {root: my-lake}
    """))
    config = load_config(profile="local", conf_dir=conf, user_config=mine, env={})
    assert config.spark.master == "local[1]"
    assert config.lake.root == str(mine.parent / "my-lake")  # relative to the user file
    # $CLICKML_CONFIG does the same; --set still wins over it.
    from_env = load_config(profile="local", conf_dir=conf, overrides=["spark.master=local[3]"],
                           env={"CLICKML_CONFIG": str(mine)})
    assert from_env.spark.master == "local[3]" and from_env.lake.root == config.lake.root


def test_a_user_config_file_error_names_that_file(tmp_path):
    conf = write_conf(tmp_path)
    mine = tmp_path / "my.yaml"
    mine.write_text("spark: {mastr: local}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(profile="local", conf_dir=conf, user_config=mine, env={})
    assert f"{mine}: spark.mastr: unknown key" in str(caught.value)
    with pytest.raises(ConfigError, match=r"\$CLICKML_CONFIG: user config file .*missing.yaml does not exist"):
        load_config(profile="local", conf_dir=conf, env={"CLICKML_CONFIG": str(tmp_path / "missing.yaml")})
