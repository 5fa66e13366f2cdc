"""Build the clickml DAGs from config.

    clickstream_ingest        hourly: per source, wait for the interval's landing files (deferrable),
                              ingest them (`jobs/ingest_clickstream.py --start --end`), gate bronze
    clickstream_etl_features  daily: silver, gate, features, gate, training sets
    model_training            on the training-set assets: gate, every configured model in parallel
                              (`jobs/train.py JOB --model M --no-promote`: train, evaluate, register),
                              then one `jobs/promote.py JOB` per job (champion decision)

The DAGs are chained by Assets: each task that writes a table lists it as an outlet; the training
DAG is scheduled on its training tables. Building a DAG reads the YAML config and creates operator
objects; it starts no Spark, opens no database and reads no table.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pipelines.orchestration.assets import table_asset
from pipelines.orchestration.callbacks import log_failure
from pipelines.orchestration.intervals import MACRO, run_interval
from pipelines.orchestration.intervals import template as interval_template
from pipelines.orchestration.settings import DagSettings, load_dag_settings
from pipelines.orchestration.submit import spark_job

DagKind = Literal["ingest", "etl", "training", "monitoring", "experiments", "bandits"]

BRONZE_GATED = ("bronze.events", "bronze.quarantine", "bronze.ingest_audit")
SILVER_GATED = ("silver.events", "silver.sessions")

INTERVAL_START = interval_template(0)
INTERVAL_END = interval_template(1)
"""The run's data interval; a run without one (no logical date) gets its timetable's manual interval."""
RUN_GROUP = "{{ run_id }}"
"""Models registered by one DAG run share this tag; its promote task decides among them."""


def default_args(settings: DagSettings) -> dict[str, Any]:
    """Owner, retries with exponential back-off, failure callback: shared by every task."""
    orchestration = settings.config.orchestration
    retry = orchestration.retry
    return {
        "owner": orchestration.owner,
        "retries": retry.retries,
        "retry_delay": dt.timedelta(minutes=retry.delay_minutes),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": dt.timedelta(minutes=retry.max_delay_minutes),
        "on_failure_callback": log_failure,
        "depends_on_past": False,
    }


def _dag(settings: DagSettings, dag_id: str, schedule: Any, catchup: bool, doc_md: str, description: str,
         max_active_runs: int = 1):
    from airflow.sdk import DAG

    orchestration = settings.config.orchestration
    start = dt.datetime.combine(orchestration.start_date, dt.time(), tzinfo=dt.timezone.utc)
    return DAG(
        dag_id=dag_id,
        description=description,
        doc_md=doc_md,
        schedule=schedule,
        start_date=start,
        catchup=catchup,
        max_active_runs=max_active_runs,
        dagrun_timeout=dt.timedelta(hours=orchestration.timeouts.dagrun_hours),
        default_args=default_args(settings),
        on_failure_callback=log_failure,
        tags=[*orchestration.tags, f"profile:{settings.job_profile}"],
        user_defined_macros={MACRO: run_interval},
    )


def _gate(settings: DagSettings, task_id: str, tables: list[str], doc: str, **kwargs: Any):
    args = [item for table in tables for item in ("--table", table)]
    orchestration = settings.config.orchestration
    return spark_job(settings, task_id, "validate", args, timeout_minutes=orchestration.timeouts.gate,
                     retries=orchestration.gate_retries, doc_md=doc, **kwargs)


def _cron(expression: str):
    from airflow.sdk import CronDataIntervalTimetable

    return CronDataIntervalTimetable(expression, timezone="UTC")


def ingest_sources(settings: DagSettings) -> list[str]:
    config = settings.config
    return list(config.orchestration.ingest.sources or config.ingest.sources)


def build_ingest_dag(settings: DagSettings):
    """Hourly: per source, sensor -> ingest of [data_interval_start, data_interval_end); then the bronze gate."""
    from airflow.sdk import TaskGroup

    config = settings.config
    ingest_conf = config.orchestration.ingest
    sources = ingest_sources(settings)
    bronze = [table_asset(config, t) for t in (config.tables.bronze_events, config.tables.bronze_quarantine,
                                                 config.tables.ingest_audit)]
    doc = (
        f"### Hourly ingestion (`{ingest_conf.cron}`, UTC)\n\n"
        f"For each source ({', '.join(f'`{s}`' for s in sources)}): a deferrable sensor waits for the data "
        "interval's arrival folders (`date=YYYY-MM-DD/hour=HH`) without holding a worker slot, then "
        "`jobs/ingest_clickstream.py --source S --start START --end END` loads them into `bronze.events` "
        "(bad records to `bronze.quarantine`, one audit row per batch). Re-running an interval changes "
        "nothing. A Kafka source has no sensor: its task runs the streaming ingest with `availableNow` "
        "every interval (what arrived since the checkpoint, exactly once). Finally the Great Expectations gate validates the bronze tables; a failed gate fails the run.\n\n"
        f"Catchup is {'on' if ingest_conf.catchup else 'off'} (`orchestration.ingest.catchup`): backfill past "
        "hours with `airflow backfill create --dag-id clickstream_ingest --from-date ... --to-date ...`."
    )
    sensor = ingest_conf.sensor
    orchestration = config.orchestration
    with _dag(settings, ingest_conf.dag_id, _cron(ingest_conf.cron), ingest_conf.catchup, doc,
              "Landing files -> bronze, hourly, per source", ingest_conf.max_active_runs) as dag:
        ingests = []
        for source in sources:
            if _source_kind(settings, source) == "kafka":
                ingests.append(_kafka_ingest(settings, source, bronze))
                continue
            with TaskGroup(group_id=source, tooltip=f"landing/{source} -> bronze") as group:
                wait = _landing_sensor(settings, source, sensor)
                ingest = spark_job(
                    settings, "ingest", "ingest_clickstream",
                    ["--source", source, "--start", INTERVAL_START, "--end", INTERVAL_END],
                    timeout_minutes=orchestration.timeouts.ingest, outlets=bronze,
                    doc_md=(f"`spark-submit jobs/ingest_clickstream.py --source {source} --start <interval start> "
                            "--end <interval end>`: this interval's files into bronze (idempotent)."),
                )
                wait >> ingest
            ingests.append(group)
        gate = _gate(settings, "validate_bronze", list(BRONZE_GATED),
                     "Great Expectations gate on the bronze tables (`jobs/validate.py`); fails the run on a failed "
                     "expectation.", trigger_rule="none_failed_min_one_success")
        ingests >> gate
    return dag


def _source_kind(settings: DagSettings, source: str) -> str:
    """`files` or `kafka`, from the source file the jobs read (the job's conf dir), else from the
    DAG's own conf dir (the jobs' may live only on the workers); `files` when neither has it (the
    sensor and the job then name the missing file)."""
    from pipelines.config.loader import ConfigError
    from pipelines.sources import load_source

    for conf_dir in dict.fromkeys([settings.job_conf_dir, settings.config.conf_dir]):
        try:
            return load_source(conf_dir, source).kind
        except ConfigError:
            continue
    return "files"


def _kafka_ingest(settings: DagSettings, source: str, outlets):
    """A Kafka source: no sensor; every interval, the availableNow stream ingest takes what the
    topic holds beyond the checkpoint, then stops. One run at a time (one checkpoint)."""
    from airflow.sdk import TaskGroup

    with TaskGroup(group_id=source, tooltip=f"Kafka {source} -> bronze") as group:
        spark_job(
            settings, "ingest", "ingest_clickstream", ["--source", source],
            timeout_minutes=settings.config.orchestration.timeouts.ingest, outlets=outlets,
            max_active_tis_per_dag=1,
            doc_md=(f"`spark-submit jobs/ingest_clickstream.py --source {source}`: Structured Streaming from Kafka "
                    "with `availableNow`: everything the topic holds beyond the checkpoint, then stop. Exactly once "
                    "(checkpoint + Delta transactions); one run at a time, since the runs share the checkpoint."),
        )
    return group


def _landing_sensor(settings: DagSettings, source: str, sensor):
    from pipelines.orchestration.sensors import LandingFilesSensor

    # The job's config (its profile, conf dir and --set overrides), not the DAG's: the sensor must
    # list the folders the ingest job will read. With the DAG's, an override of landing.root for
    # the DAGs only let the sensor find files the job never saw, and the job's empty batch then
    # marked the hour as ingested.
    return LandingFilesSensor(
        task_id="wait_for_landing_files",
        source=source,
        min_files=sensor.min_files,
        profile=settings.job_profile,
        conf_dir=settings.job_conf_dir,
        overrides=list(settings.config.orchestration.spark_submit.job_overrides),
        poke_interval=sensor.poke_interval_seconds,
        timeout=sensor.timeout_hours * 3600,
        skip_on_timeout=sensor.on_timeout == "skip",
        doc_md=(f"Waits (deferred to the triggerer: no worker slot) until `{source}`'s arrival folders for the "
                f"data interval hold {sensor.min_files} file(s); {sensor.timeout_hours} h after the interval's end: "
                f"{'skip the interval' if sensor.on_timeout == 'skip' else 'fail'}."),
    )


def build_etl_dag(settings: DagSettings):
    """Daily: silver -> gate -> features -> gate -> training sets."""
    config = settings.config
    etl = config.orchestration.etl
    timeouts = config.orchestration.timeouts
    tables = config.tables
    features = [tables.user_features, tables.product_features, tables.category_features,
                tables.user_category_features]
    training_sets = [tables.propensity_training, tables.implicit_training]
    as_of = ["--as-of", interval_template(1, "%Y-%m-%d")] if etl.features_as_of == "interval_end" else []
    doc = (
        f"### Daily ETL and features (`{etl.cron}`, UTC)\n\n"
        "`build_silver` (incremental: the event dates that new bronze batches touched) -> `validate_silver` -> "
        "`build_features` (" + ("the as-of date `data_interval_end`" if as_of else
                                "every as-of date whose inputs changed, late data included") + ") -> "
        "`validate_features` -> `build_training_sets`. Each gate stops everything downstream when it fails. "
        "The training-set tables are Assets: writing them schedules `model_training`.\n\n"
        f"Catchup is {'on' if etl.catchup else 'off'}: the stages are incremental, so the next run catches up."
    )
    with _dag(settings, etl.dag_id, _cron(etl.cron), etl.catchup, doc, "bronze -> silver -> gold features -> training sets"
              ) as dag:
        silver = spark_job(settings, "build_silver", "build_silver", [], timeout_minutes=timeouts.silver,
                           inlets=[table_asset(config, tables.bronze_events)],
                           outlets=[table_asset(config, t) for t in SILVER_GATED],
                           doc_md="`spark-submit jobs/build_silver.py`: sessions, bot filter, silver tables.")
        silver_gate = _gate(settings, "validate_silver", list(SILVER_GATED), "Gate on the silver tables.")
        build_features = spark_job(settings, "build_features", "build_features", as_of,
                                   timeout_minutes=timeouts.features,
                                   outlets=[table_asset(config, t) for t in features],
                                   doc_md="`spark-submit jobs/build_features.py`: point-in-time gold features.")
        features_gate = _gate(settings, "validate_features", features, "Gate on the gold feature tables.")
        sets = spark_job(settings, "build_training_sets", "build_training_sets", [],
                         timeout_minutes=timeouts.training_sets,
                         outlets=[table_asset(config, t) for t in training_sets],
                         doc_md="`spark-submit jobs/build_training_sets.py`: propensity and implicit-feedback sets.")
        silver >> silver_gate >> build_features >> features_gate >> sets
    return dag


def training_plan(settings: DagSettings) -> dict[str, list[str]]:
    """Training job -> the models the DAG trains (from `orchestration.training.jobs` or `training`)."""
    config = settings.config
    wanted = config.orchestration.training.jobs
    if wanted is None:
        names = config.training.default_jobs or list(config.training.jobs)
        wanted = {name: [] for name in names}
    plan: dict[str, list[str]] = {}
    for job, models in wanted.items():
        spec = config.training.jobs.get(job)
        if spec is None:
            raise ValueError(f"orchestration.training.jobs: unknown training job {job!r}; "
                             f"configured: {', '.join(config.training.jobs) or 'none'}")
        unknown = [m for m in models if m not in spec.models]
        if unknown:
            raise ValueError(f"orchestration.training.jobs.{job}: unknown model(s) {unknown}; "
                             f"training.jobs.{job}.models has {', '.join(spec.models)}")
        plan[job] = list(models) or [m for m, model in spec.models.items() if model.enabled]
    return plan


def build_training_dag(settings: DagSettings):
    """On the training-set assets: gate -> every model in parallel (train, evaluate, register) -> promote."""
    from airflow.sdk import TaskGroup

    config = settings.config
    training = config.orchestration.training
    timeouts = config.orchestration.timeouts
    plan = training_plan(settings)
    tables = sorted({config.training.jobs[job].data.table for job in plan if config.training.jobs[job].data.table})
    assets = [table_asset(config, t) for t in tables]
    schedule = assets or None
    models = ", ".join(f"`{job}/{m}`" for job, ms in plan.items() for m in ms)
    doc = (
        "### Model training\n\n"
        + (f"Scheduled when all of {', '.join(f'`{t}`' for t in tables)} were updated (Assets written by "
           "`clickstream_etl_features`). " if assets else "Triggered by hand (no training table is an Asset). ")
        + "`validate_training_sets` gates the tables; then every model trains in parallel with "
        "`jobs/train.py JOB --model M --no-promote`, which evaluates it, logs it to MLflow and registers it as "
        "`challenger`. One `promote` task per job then takes the best model of this run and promotes it to "
        "`champion` only if it beats the current champion on the same evaluation data (one decision per run: "
        "parallel tasks cannot overwrite each other's alias). `check_models` fails the run when a model failed, "
        f"after the others were promoted. Models: {models}."
    )
    with _dag(settings, training.dag_id, schedule, False, doc, "gate -> train models in parallel -> register/promote"
              ) as dag:
        gate = _gate(settings, "validate_training_sets", tables, "Gate on the training tables.") if tables else None
        every_model = []
        for job, job_models in plan.items():
            registry = config.training.jobs[job].registry
            with TaskGroup(group_id=f"train_{job}", tooltip=f"training job {job}") as group:
                trained = []
                for model in job_models:
                    spec = config.training.jobs[job].models[model]
                    # Parallel tasks only register their models (challenger); one promote task then
                    # decides the champion, so two tasks cannot overwrite each other's alias.
                    promotion = ["--no-promote", "--run-group", RUN_GROUP] if registry is not None else []
                    trained.append(spark_job(
                        settings, model, "train", [job, "--model", model, *promotion], timeout_minutes=timeouts.train,
                        conf=training.spark_conf.get(f"{job}.{model}"),
                        doc_md=(f"`spark-submit jobs/train.py {job} --model {model} --no-promote --run-group <run id>` "
                                f"({spec.algorithm}): train, evaluate, log to MLflow, register as challenger.")))
                if registry is not None:
                    promote = spark_job(
                        settings, "promote", "promote", [job, "--run-group", RUN_GROUP], timeout_minutes=timeouts.train,
                        doc_md=(f"`spark-submit jobs/promote.py {job} --run-group <run id>`: the best model this run "
                                f"registered under `{registry.name}` and the current champion are scored on the same "
                                "evaluation data; it becomes `champion` only if it beats the champion by the margin."),
                        trigger_rule="all_done_min_one_success")  # the models that trained; none after a failed gate
                    trained >> promote
                every_model.extend(trained)
            if gate is not None:
                gate >> group
        every_model >> _check_models()
    return dag


def _models_failed() -> None:
    from airflow.sdk.exceptions import AirflowFailException

    raise AirflowFailException("a model task of this run failed, or did not run after a failed gate (see the "
                               "failed task's log); the champion decisions used the models that trained")


def _check_models():
    """A leaf that fails the run when a model task failed.

    `promote` runs once one model of its job trained (`all_done_min_one_success`), and a run's state
    comes from its leaves: without this task a run whose model failed ended `success`.
    """
    from airflow.providers.standard.operators.python import PythonOperator

    return PythonOperator(task_id="check_models", python_callable=_models_failed, trigger_rule="one_failed",
                          retries=0, doc_md="Fails the run when a model task failed (skipped when none did).")


def monitored_jobs(settings: DagSettings) -> list[str]:
    """`orchestration.monitoring.jobs`, else every registered binary training job."""
    config = settings.config
    wanted = config.orchestration.monitoring.jobs
    if wanted is None:
        return [name for name, job in config.training.jobs.items() if job.task == "binary" and job.registry is not None]
    unknown = [j for j in wanted if j not in config.training.jobs]
    if unknown:
        raise ValueError(f"orchestration.monitoring.jobs: unknown training job(s) {unknown}; "
                         f"configured: {', '.join(config.training.jobs) or 'none'}")
    return list(wanted)


def drift_alert_reason(config, job: str) -> str | None:
    """The reason to retrain `job`, or None: the features (and score) whose drift alerted in the
    latest monitored as-of date of `tables.monitor_drift`, and an AUC drop on the latest date of
    `tables.monitor_performance`; read with delta-rs (one job's rows: bounded by dates x features x
    statistics)."""
    from deltalake import DeltaTable

    from pipelines.lake.location import table_location

    def latest_rows(name: str, columns: list[str]) -> list[dict]:
        location = table_location(config.lake, name)
        if not DeltaTable.is_deltatable(location.uri, storage_options=location.storage_options or None):
            return []
        table = DeltaTable(location.uri, storage_options=location.storage_options or None)
        rows = table.to_pyarrow_table(filters=[("job", "=", job)], columns=["as_of_date", "model_version", *columns]).to_pylist()
        latest = max((r["as_of_date"] for r in rows), default=None)
        return [r for r in rows if r["as_of_date"] == latest]

    reasons = []
    drift = latest_rows(config.tables.monitor_drift, ["feature", "statistic", "status"])
    alerts = sorted({f"{r['feature']} ({r['statistic']})" for r in drift if r["status"] == "alert"})
    if alerts:
        reasons.append(f"drift alert for {job} v{drift[0]['model_version']} as of {drift[0]['as_of_date']}: {', '.join(alerts)}")
    perf = [r for r in latest_rows(config.tables.monitor_performance, ["metric", "value", "test_value", "status"])
            if r["metric"] == "roc_auc" and r["status"] == "alert"]
    for r in perf:
        reasons.append(f"AUC of {job} v{r['model_version']} as of {r['as_of_date']} fell to {r['value']:.4f} "
                       f"(test {r['test_value']:.4f})")
    return "; ".join(reasons) or None


def _check_drift(job: str, profile: str | None, conf_dir: str, overrides: list[str]) -> str | bool:
    """ShortCircuit callable: the reason (truthy: retrain) or False (no alert: skip retraining)."""
    from pipelines.config import load_config

    config = load_config(profile=profile, conf_dir=conf_dir, overrides=overrides)
    reason = drift_alert_reason(config, job)
    print(reason or f"no drift alert for {job}: no retraining")
    return reason or False


def build_monitoring_dag(settings: DagSettings):
    """Daily: per job, score with the champion -> monitor drift -> on an alert, trigger training."""
    from airflow.providers.standard.operators.python import ShortCircuitOperator
    from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
    from airflow.sdk import TaskGroup

    config = settings.config
    monitoring = config.orchestration.monitoring
    timeouts = config.orchestration.timeouts
    jobs = monitored_jobs(settings)
    training_dag = config.orchestration.training.dag_id
    doc = (
        f"### Model monitoring (`{monitoring.cron}`, UTC)\n\n"
        "Per job: `score` (`jobs/score.py JOB`: the champion scores the latest as-of date into "
        f"`{config.tables.predictions}`, gated by the predictions suite) -> `monitor` (`jobs/monitor.py JOB`: "
        f"drift of that population against the model's training reference into `{config.tables.monitor_drift}`) "
        "-> `check_drift` (short-circuits when nothing alerted: no alert, no retraining) -> "
        f"`retrain` (triggers `{training_dag}` with the reason in the run's conf; the retrained challenger then "
        f"goes through the usual promotion gate). "
        + ("After `score`, `materialize` (`jobs/materialize.py JOB`) writes the as-of date's features to the "
           "online store for the model server. " if monitoring.materialize else "")
        + f"Jobs: {', '.join(f'`{j}`' for j in jobs) or 'none'}."
    )
    with _dag(settings, monitoring.dag_id, _cron(monitoring.cron), False, doc,
              "score with the champion -> drift -> retrain on evidence") as dag:
        for job in jobs:
            with TaskGroup(group_id=f"monitor_{job}", tooltip=f"training job {job}"):
                score = spark_job(settings, "score", "score", [job], timeout_minutes=timeouts.score,
                                  outlets=[table_asset(config, config.tables.predictions)],
                                  doc_md=f"`spark-submit jobs/score.py {job}`: the champion scores the latest as-of date.")
                monitor = spark_job(settings, "monitor", "monitor", [job], timeout_minutes=timeouts.monitor,
                                    outlets=[table_asset(config, config.tables.monitor_drift)],
                                    doc_md=f"`spark-submit jobs/monitor.py {job}`: drift against the training reference.")
                score >> monitor
                if monitoring.materialize:
                    score >> spark_job(
                        settings, "materialize", "materialize", [job], timeout_minutes=timeouts.materialize,
                        doc_md=f"`spark-submit jobs/materialize.py {job}`: the as-of date's features into Redis "
                               "(`serving.redis_url`) for `clickml serve`.")
                if not monitoring.retrain:
                    continue
                check = ShortCircuitOperator(
                    task_id="check_drift", python_callable=_check_drift, retries=0,
                    op_args=[job, settings.job_profile, settings.job_conf_dir,
                             list(config.orchestration.spark_submit.job_overrides)],
                    doc_md="Reads the latest drift rows of the job: an alert continues to `retrain`, else the run ends.")
                retrain = TriggerDagRunOperator(
                    task_id="retrain", trigger_dag_id=training_dag, retries=0,
                    conf={"reason": "{{ ti.xcom_pull(task_ids='monitor_%s.check_drift') }}" % job, "job": job},
                    doc_md=f"Triggers `{training_dag}` with the drift reason in its conf.")
                monitor >> check >> retrain
    return dag


def build_experiments_dag(settings: DagSettings):
    """Daily: one look at every configured experiment (None when no experiment is configured)."""
    config = settings.config
    dag_config, timeouts = config.orchestration.experiments, config.orchestration.timeouts
    if not config.experiments:
        return None
    doc = (f"### Online experiments (`{dag_config.cron}`, UTC)\n\n"
           "Per experiment: `analyze` (`jobs/analyze_experiment.py ID`: exposures of `silver.exposures` joined with the "
           f"users' later events -> `{config.tables.experiment_results}`, an HTML report, and the decision rule, which "
           "moves the champion alias when the experiment's `decision.promote` is on). Experiments: "
           + ", ".join(f"`{e}` ({s.kind})" for e, s in config.experiments.items()) + ".")
    with _dag(settings, dag_config.dag_id, _cron(dag_config.cron), False, doc, "a daily look at every experiment") as dag:
        for experiment_id in config.experiments:
            spark_job(settings, f"analyze_{experiment_id}", "analyze_experiment", [experiment_id],
                      timeout_minutes=timeouts.experiment,
                      doc_md=f"`spark-submit jobs/analyze_experiment.py {experiment_id}`: one look, results and report.")
    return dag


def build_bandits_dag(settings: DagSettings):
    """On `bandit_cron`: every bandit's arm weights from observed conversions to Redis (None without bandits)."""
    config = settings.config
    dag_config, timeouts = config.orchestration.experiments, config.orchestration.timeouts
    bandits = [e for e, s in config.experiments.items() if s.kind == "bandit"]
    if not bandits:
        return None
    doc = (f"### Bandit reweighting (`{dag_config.bandit_cron}`, UTC)\n\n"
           "Per bandit experiment: `jobs/analyze_experiment.py ID --update-bandit` recomputes the Thompson-sampling "
           "weights from the exposed users' conversions and publishes them in Redis, where every model server "
           "picks them up within `bandit.refresh_minutes`. Bandits: " + ", ".join(f"`{b}`" for b in bandits) + ".")
    with _dag(settings, f"{dag_config.dag_id}_bandits", _cron(dag_config.bandit_cron), False, doc,
              "bandit arm weights from observed conversions") as dag:
        for experiment_id in bandits:
            spark_job(settings, f"update_bandit_{experiment_id}", "analyze_experiment", [experiment_id, "--update-bandit"],
                      timeout_minutes=timeouts.experiment,
                      doc_md=f"`spark-submit jobs/analyze_experiment.py {experiment_id} --update-bandit`.")
    return dag


BUILDERS = {"ingest": build_ingest_dag, "etl": build_etl_dag, "training": build_training_dag,
            "monitoring": build_monitoring_dag, "experiments": build_experiments_dag, "bandits": build_bandits_dag}


def build_dag(kind: DagKind, settings: DagSettings | None = None):
    """The DAG of one kind, from the config of `$CLICKML_PROFILE` / `$CLICKML_CONF_DIR` by default."""
    return BUILDERS[kind](settings or load_dag_settings())


def build_dags(settings: DagSettings | None = None) -> dict[str, Any]:
    """All DAGs by dag_id."""
    settings = settings or load_dag_settings()
    dags = [builder(settings) for builder in BUILDERS.values()]
    return {dag.dag_id: dag for dag in dags if dag is not None}  # the experiments DAGs need experiments
