"""DAG structure: tasks, dependencies, assets, schedules, retries, timeouts, arguments."""

from __future__ import annotations

import datetime as dt
import itertools
import sys
from types import SimpleNamespace

import pytest

from pipelines.orchestration.factory import build_dags, training_plan


@pytest.fixture
def dags(dag_settings):
    return build_dags(dag_settings())


def _upstream(dag, task_id):
    return set(dag.get_task(task_id).upstream_task_ids)


def test_four_dags_with_their_schedules(dags):
    assert set(dags) == {"clickstream_ingest", "clickstream_etl_features", "model_training", "model_monitoring"}
    ingest, etl = dags["clickstream_ingest"], dags["clickstream_etl_features"]
    assert type(ingest.timetable).__name__ == "CronDataIntervalTimetable"
    assert ingest.timetable.expression == "0 * * * *"
    assert etl.timetable.expression == "30 0 * * *"
    assert ingest.catchup is False and etl.catchup is False
    assert ingest.start_date == dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    for dag in dags.values():
        assert dag.doc_md and dag.description and "clickml" in dag.tags
        assert dag.on_failure_callback is not None
        assert dag.dagrun_timeout == dt.timedelta(hours=12)


def test_ingest_dag_waits_ingests_the_interval_and_gates(dags, dag_settings):
    dag = dags["clickstream_ingest"]
    assert set(dag.task_ids) == {"clickstream.wait_for_landing_files", "clickstream.ingest", "validate_bronze"}
    assert _upstream(dag, "clickstream.ingest") == {"clickstream.wait_for_landing_files"}
    assert _upstream(dag, "validate_bronze") == {"clickstream.ingest"}
    sensor = dag.get_task("clickstream.wait_for_landing_files")
    assert type(sensor).__name__ == "LandingFilesSensor" and sensor.deferrable
    assert sensor.timeout == 6 * 3600 and sensor.poke_interval == 60
    ingest = dag.get_task("clickstream.ingest")
    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

    assert isinstance(ingest, SparkSubmitOperator) and type(ingest).__name__ == "ClickmlSparkSubmitOperator"
    assert ingest.application.endswith("/jobs/ingest_clickstream.py")
    args = ingest.application_args
    assert args[:2] == ["--profile", "local"] and "--conf-dir" in args
    assert args[args.index("--source") + 1] == "clickstream"
    hour = dt.datetime(2024, 1, 3, 10, tzinfo=dt.timezone.utc)
    scheduled = SimpleNamespace(data_interval_start=hour, data_interval_end=hour + dt.timedelta(hours=1))
    assert _render(dag, args[args.index("--start") + 1], scheduled) == "2024-01-03T10:00"
    assert _render(dag, args[args.index("--end") + 1], scheduled) == "2024-01-03T11:00"
    # Without a logical date (no data interval): the last complete hour before the trigger.
    triggered = SimpleNamespace(data_interval_start=None, data_interval_end=None, run_after=hour + dt.timedelta(minutes=90))
    assert _render(dag, args[args.index("--start") + 1], triggered) == "2024-01-03T10:00"
    assert {a.name for a in ingest.outlets} == {"bronze.events", "bronze.quarantine", "bronze.ingest_audit"}
    assert ingest.retries == 2 and ingest.retry_exponential_backoff == 2.0
    assert ingest.execution_timeout == dt.timedelta(minutes=60)
    gate = dag.get_task("validate_bronze")
    assert gate.retries == 0 and gate.trigger_rule == "none_failed_min_one_success"
    assert gate.application.endswith("/jobs/validate.py")


def test_a_new_site_is_config_only(dag_settings):
    dag = build_dags(dag_settings("orchestration.ingest.sources=[clickstream, rees46]"))["clickstream_ingest"]
    assert _upstream(dag, "validate_bronze") == {"clickstream.ingest", "rees46.ingest"}
    args = dag.get_task("rees46.ingest").application_args
    assert args[args.index("--source") + 1] == "rees46"


def test_a_kafka_source_runs_the_stream_ingest_every_interval_without_a_sensor(dag_settings):
    dag = build_dags(dag_settings("orchestration.ingest.sources=[clickstream, clickstream_kafka]"))["clickstream_ingest"]
    assert "clickstream_kafka.wait_for_landing_files" not in dag.task_ids
    ingest = dag.get_task("clickstream_kafka.ingest")
    args = ingest.application_args
    assert args[args.index("--source") + 1] == "clickstream_kafka"
    assert "--start" not in args and "--end" not in args  # availableNow from the checkpoint
    assert ingest.max_active_tis_per_dag == 1  # the runs share one checkpoint
    assert _upstream(dag, "validate_bronze") == {"clickstream.ingest", "clickstream_kafka.ingest"}


def test_etl_dag_is_a_gated_chain_with_asset_outlets(dags):
    dag = dags["clickstream_etl_features"]
    chain = ["build_silver", "validate_silver", "build_features", "validate_features", "build_training_sets"]
    for before, after in itertools.pairwise(chain):
        assert _upstream(dag, after) == {before}
    assert {a.name for a in dag.get_task("build_training_sets").outlets} == {
        "gold.propensity_training", "gold.implicit_training"}
    assert {a.name for a in dag.get_task("build_silver").inlets} == {"bronze.events"}
    assert "--as-of" not in dag.get_task("build_features").application_args


def test_features_can_take_the_interval_end(dag_settings):
    dag = build_dags(dag_settings("orchestration.etl.features_as_of=interval_end"))["clickstream_etl_features"]
    args = dag.get_task("build_features").application_args
    day = SimpleNamespace(data_interval_start=dt.datetime(2024, 1, 3, 0, 30, tzinfo=dt.timezone.utc),
                          data_interval_end=dt.datetime(2024, 1, 4, 0, 30, tzinfo=dt.timezone.utc))
    assert _render(dag, args[args.index("--as-of") + 1], day) == "2024-01-04"


def _render(dag, text: str, dag_run) -> str:
    """A templated argument as the task would get it (the DAG's Jinja environment and macros)."""
    return dag.get_template_env().from_string(text).render(dag=dag, dag_run=dag_run)


def test_training_dag_runs_on_the_training_assets_models_in_parallel(dags, dag_settings, tmp_path):
    dag = dags["model_training"]
    jobs = dag_settings().config.training.jobs
    condition = dag.timetable.asset_condition
    uris = {a.uri for a in condition.objects}
    assert uris == {(tmp_path / "lakehouse/gold/propensity_training").as_uri(),
                    (tmp_path / "lakehouse/gold/implicit_training").as_uri()}
    models = {f"train_{job}.{model}" for job, spec in jobs.items() for model in spec.models}
    assert {"train_propensity.lr", "train_propensity.rf", "train_propensity.gbt", "train_recommender.als"} <= models
    promotes = {f"train_{job}.promote" for job, spec in jobs.items() if spec.registry is not None}
    assert promotes == {"train_propensity.promote", "train_recommender.promote"}
    assert set(dag.task_ids) == models | promotes | {"validate_training_sets", "check_models"}
    # a failed model fails the run: promote (all_done_min_one_success) is not the only leaf
    assert _upstream(dag, "check_models") == models and dag.get_task("check_models").trigger_rule == "one_failed"
    for task_id in models:
        assert _upstream(dag, task_id) == {"validate_training_sets"}  # parallel: only the gate upstream
    # the models only register (no alias race); one promote task per job decides after all of them
    args = dag.get_task("train_propensity.gbt").application_args
    assert args[-6:] == ["propensity", "--model", "gbt", "--no-promote", "--run-group", "{{ run_id }}"]
    promote = dag.get_task("train_propensity.promote")
    assert _upstream(dag, "train_propensity.promote") == {f"train_propensity.{m}" for m in jobs["propensity"].models}
    assert promote.application.endswith("jobs/promote.py")
    assert promote.application_args[-3:] == ["propensity", "--run-group", "{{ run_id }}"]
    assert promote.trigger_rule == "all_done_min_one_success"
    assert dag.get_task("train_propensity.gbt").execution_timeout == dt.timedelta(minutes=240)


def test_training_plan_names_unknown_jobs_and_models(dag_settings):
    assert training_plan(dag_settings("orchestration.training.jobs={recommender: []}")) == {"recommender": ["als"]}
    with pytest.raises(ValueError, match="unknown model.*'nope'.*lr, rf, gbt"):  # names the job's models
        training_plan(dag_settings("orchestration.training.jobs={propensity: [nope]}"))
    with pytest.raises(ValueError, match="unknown training job 'ghost'"):
        training_plan(dag_settings("orchestration.training.jobs={ghost: []}"))


def test_spark_submit_settings_come_from_config(dag_settings):
    settings = dag_settings(
        "orchestration.spark_submit.conn_id=my_spark", "orchestration.spark_submit.archives=env.tar.gz#environment",
        "orchestration.spark_submit.python=./environment/bin/python", "orchestration.spark_submit.pool=spark",
        "orchestration.spark_submit.job_overrides=[spark.shuffle_partitions=2]",
        "orchestration.job_profile=cluster", "orchestration.job_conf_dir=/opt/clickml/conf",
    )
    task = build_dags(settings)["clickstream_etl_features"].get_task("build_silver")
    assert task._conn_id == "my_spark" and task._archives == "env.tar.gz#environment" and task.pool == "spark"
    assert task.conf["spark.pyspark.python"] == "./environment/bin/python"
    assert "spark.pyspark.driver.python" not in task.conf  # the driver uses the packed env's python too
    assert task.application_args == ["--profile", "cluster", "--conf-dir", "/opt/clickml/conf",
                                      "--set", "spark.shuffle_partitions=2"]


def test_the_landing_sensor_loads_the_ingest_jobs_config(dag_settings):
    # Bug: the sensor loaded the DAG's config (profile, DAG overrides) while the job loaded its
    # own: with landing.root overridden for the DAGs only, the sensor found files, the job listed
    # another folder, found none, and its empty batch marked the hour as ingested for good.
    settings = dag_settings(
        "landing.root=/dag/only/landing", "orchestration.job_profile=cluster",
        "orchestration.job_conf_dir=/opt/clickml/conf", "orchestration.spark_submit.job_overrides=[landing.root=/data]",
    )
    dag = build_dags(settings)["clickstream_ingest"]
    sensor, job = dag.get_task("clickstream.wait_for_landing_files"), dag.get_task("clickstream.ingest")
    assert (sensor.profile, sensor.conf_dir, sensor.overrides) == ("cluster", "/opt/clickml/conf", ["landing.root=/data"])
    args = job.application_args
    assert args[:4] == ["--profile", sensor.profile, "--conf-dir", sensor.conf_dir]
    assert args[args.index("--set") + 1] == "landing.root=/data"


def test_a_model_task_can_get_its_own_spark_settings(dag_settings):
    settings = dag_settings("orchestration.training.spark_conf={propensity.gbt: {spark.cores.max: '4'}}")
    dag = build_dags(settings)["model_training"]
    assert dag.get_task("train_propensity.gbt").conf["spark.cores.max"] == "4"
    assert "spark.cores.max" not in dag.get_task("train_propensity.lr").conf


def test_local_default_runs_this_python(dags):
    task = dags["clickstream_etl_features"].get_task("build_silver")
    assert task.conf == {"spark.pyspark.python": sys.executable, "spark.pyspark.driver.python": sys.executable}
    assert task._conn_id == "clickml_spark"


def test_the_jobs_dir_defaults_to_this_checkout_when_the_conf_dir_lives_elsewhere(tmp_path):
    # Bug: the default was always <conf dir's parent>/jobs, so a conf dir kept outside the
    # checkout (/etc/clickml/conf) made every task submit a missing /etc/clickml/jobs/*.py.
    import shutil

    from pipelines.orchestration.settings import load_dag_settings
    from tests.conftest import CONF_DIR, REPO_ROOT

    conf = tmp_path / "etc" / "conf"
    shutil.copytree(CONF_DIR, conf)
    settings = load_dag_settings(profile="local", conf_dir=str(conf), overrides=[f"lake.root={tmp_path / 'lake'}"])
    assert settings.jobs_dir == str(REPO_ROOT / "jobs")
    task = build_dags(settings)["clickstream_etl_features"].get_task("build_silver")
    assert task.application == str(REPO_ROOT / "jobs" / "build_silver.py")
    beside = tmp_path / "etc" / "jobs"
    beside.mkdir()
    (beside / "ingest_clickstream.py").write_text("# the site's own copy\n")
    assert load_dag_settings(profile="local", conf_dir=str(conf)).jobs_dir == str(beside)


def test_a_disabled_model_gets_no_task_unless_listed(dag_settings):
    dag = build_dags(dag_settings("training.jobs.propensity.models.rf.enabled=false"))["model_training"]
    assert "train_propensity.rf" not in dag.task_ids and "train_propensity.gbt" in dag.task_ids
    listed = build_dags(dag_settings("training.jobs.propensity.models.rf.enabled=false",
                                     "orchestration.training.jobs={propensity: [rf]}"))["model_training"]
    assert "train_propensity.rf" in listed.task_ids


def test_monitoring_dag_scores_monitors_and_retrains_only_on_an_alert(dags):
    dag = dags["model_monitoring"]
    assert dag.timetable.expression == "0 3 * * *"
    group = "monitor_propensity"
    assert set(dag.task_ids) == {f"{group}.score", f"{group}.monitor", f"{group}.materialize", f"{group}.check_drift",
                                 f"{group}.retrain"}
    assert _upstream(dag, f"{group}.monitor") == {f"{group}.score"}
    assert _upstream(dag, f"{group}.materialize") == {f"{group}.score"}
    assert dag.get_task(f"{group}.materialize").application.endswith("/jobs/materialize.py")
    assert _upstream(dag, f"{group}.retrain") == {f"{group}.check_drift"}
    assert type(dag.get_task(f"{group}.check_drift")).__name__ == "ShortCircuitOperator"
    retrain = dag.get_task(f"{group}.retrain")
    assert retrain.trigger_dag_id == "model_training" and "check_drift" in retrain.conf["reason"]
    assert dag.get_task(f"{group}.score").application.endswith("/jobs/score.py")
    assert dag.get_task(f"{group}.monitor").application.endswith("/jobs/monitor.py")


def test_monitoring_without_retraining_and_unknown_jobs(dag_settings):
    dag = build_dags(dag_settings("orchestration.monitoring.retrain=false", "orchestration.monitoring.materialize=false"))[
        "model_monitoring"]
    assert set(dag.task_ids) == {"monitor_propensity.score", "monitor_propensity.monitor"}
    with pytest.raises(ValueError, match="unknown training job"):
        build_dags(dag_settings("orchestration.monitoring.jobs=[nope]"))


def test_the_drift_check_reads_the_latest_alerts_of_the_job(tmp_path):
    import pyarrow as pa
    from deltalake import write_deltalake

    from pipelines.orchestration.factory import drift_alert_reason
    from tests.conftest import make_config

    config = make_config(tmp_path)
    rows = [
        ("propensity", dt.date(2024, 1, 9), "3", "pages_7d", "psi", "alert"),
        ("propensity", dt.date(2024, 1, 10), "3", "pages_7d", "psi", "warn"),
        ("propensity", dt.date(2024, 1, 10), "3", "score", "ks", "alert"),
        ("other", dt.date(2024, 1, 11), "1", "x", "psi", "alert"),
    ]
    names = ["job", "as_of_date", "model_version", "feature", "statistic", "status"]
    write_deltalake(str(tmp_path / "lakehouse" / "monitor" / "drift"), pa.Table.from_pylist([dict(zip(names, r)) for r in rows]))
    assert drift_alert_reason(config, "propensity") == "drift alert for propensity v3 as of 2024-01-10: score (ks)"
    assert drift_alert_reason(config, "nobody") is None


def test_experiment_dags_exist_only_with_experiments_and_bandits(dag_settings):
    assert not {"online_experiments", "online_experiments_bandits"} & set(build_dags(dag_settings()))
    experiments = []
    for name, kind in (("ab", "ab"), ("explore", "bandit")):
        experiments += [f"experiments.{name}.job=propensity", f"experiments.{name}.kind={kind}",
                        f"experiments.{name}.variants.control.alias=champion",
                        f"experiments.{name}.variants.treatment.alias=challenger"]
    dags = build_dags(dag_settings(*experiments))
    daily = dags["online_experiments"]
    assert daily.timetable.expression == "0 4 * * *"
    assert set(daily.task_ids) == {"analyze_ab", "analyze_explore"}
    analyze = daily.get_task("analyze_ab")
    assert analyze.application.endswith("/jobs/analyze_experiment.py") and "ab" in analyze.application_args
    bandits = dags["online_experiments_bandits"]
    assert bandits.timetable.expression == "15 * * * *" and set(bandits.task_ids) == {"update_bandit_explore"}
    assert "--update-bandit" in bandits.get_task("update_bandit_explore").application_args
