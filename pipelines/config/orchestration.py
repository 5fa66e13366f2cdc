"""Config of the Airflow DAGs (`orchestration:` in conf/*.yaml), read by `pipelines.orchestration`.

The DAG files in `dags/` are a few lines each: the DAGs, their tasks, schedules, retries and
timeouts come from here, so a new landing source (site) needs `conf/sources/<name>.yaml` and its
name in `orchestration.ingest.sources` (or `ingest.sources`), not a new DAG file.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field, field_validator

from pipelines.config.base import Section


class RetryConfig(Section):
    """Retries of a kind of task: exponential back-off from `delay_minutes` up to `max_delay_minutes`."""

    retries: int = Field(default=2, ge=0, le=20)
    """Retries after the first failure."""
    delay_minutes: float = Field(default=5.0, ge=0.0)
    """First delay before a retry; doubles on every retry (with Airflow's jitter)."""
    max_delay_minutes: float = Field(default=60.0, ge=0.0)
    """Upper bound of the back-off."""


class TimeoutsConfig(Section):
    """`execution_timeout` per kind of task, in minutes: a run over it is killed and fails (then retries)."""

    ingest: float = Field(default=60.0, gt=0)
    silver: float = Field(default=120.0, gt=0)
    features: float = Field(default=180.0, gt=0)
    training_sets: float = Field(default=120.0, gt=0)
    gate: float = Field(default=60.0, gt=0)
    score: float = Field(default=60.0, gt=0)
    monitor: float = Field(default=60.0, gt=0)
    materialize: float = Field(default=60.0, gt=0)
    experiment: float = Field(default=60.0, gt=0)
    """Great Expectations gates."""
    train: float = Field(default=240.0, gt=0)
    dagrun_hours: float = Field(default=12.0, gt=0)
    """`dagrun_timeout` of every DAG, in hours."""


class SparkSubmitConfig(Section):
    """How every Spark task is submitted (`SparkSubmitOperator`). The Airflow connection
    `spark_conn_id` decides the master (local, standalone, YARN, Kubernetes) and deploy mode."""

    conn_id: str = "clickml_spark"
    """Airflow connection of the Spark master, e.g. `AIRFLOW_CONN_CLICKML_SPARK='{"conn_type": "spark",
    "host": "spark://127.0.0.1", "port": 7077}'` (`make up` sets it)."""
    jobs_dir: str | None = None
    """Folder of the `jobs/*.py` entry points as the submitting host sees it; default
    `<project_root>/jobs` (beside the conf dir), else the `jobs/` of the checkout the code runs from."""
    conf: dict[str, str] = Field(default_factory=dict)
    """Extra `--conf` settings of every submit (e.g. `spark.executor.instances`)."""
    archives: str | None = None
    """`--archives`: a packed virtual environment for the executors, e.g.
    `/opt/clickml/clickml-env.tar.gz#environment` (see docs/orchestration.md, `make pack-env`)."""
    jars: str | None = None
    """`--jars` (comma-separated): None means the jars `make jars` resolved from jvm/pom.xml on
    the submitting host; "" means none (the cluster's `$SPARK_HOME/jars` holds Delta and
    hadoop-aws, as in docker/spark). See docs/operations.md, "Jars on a cluster"."""
    py_files: str | None = None
    """`--py-files`: a zip of the `pipelines` package for executors that have its dependencies
    (`make pack-pyfiles`)."""
    python: str | None = None
    """`spark.pyspark.python` of the executors, e.g. `./environment/bin/python` with `archives`."""
    driver_python: str | None = None
    """`spark.pyspark.driver.python` (client mode: the Python running the job on the Airflow worker)."""
    env: dict[str, str] = Field(default_factory=dict)
    """Environment of the spark-submit process (e.g. `JAVA_HOME`)."""
    job_overrides: list[str] = Field(default_factory=list)
    """`--set KEY=VALUE` passed to every job, e.g. `spark.shuffle_partitions=2`."""
    pool: str | None = None
    """Airflow pool of the Spark tasks (limits concurrent submits on a small cluster); none: default pool."""
    verbose: bool = False
    """`spark-submit --verbose`."""

    @field_validator("conf", mode="before")
    @classmethod
    def _spark_keys(cls, value: object) -> object:
        if isinstance(value, dict):
            bad = sorted(k for k in value if not str(k).startswith("spark."))
            if bad:
                raise ValueError(f"Spark settings must start with 'spark.': {', '.join(bad)}")
            return {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in value.items()}
        return value


class SensorConfig(Section):
    """The landing-files sensor of the ingest DAG. It defers to the triggerer, so waiting holds no
    worker slot."""

    poke_interval_seconds: float = Field(default=60.0, gt=0)
    """How often the trigger lists the interval's arrival folders."""
    timeout_hours: float = Field(default=6.0, gt=0)
    """Give up after this long."""
    min_files: int = Field(default=1, ge=1)
    """Files the interval's arrival folders must hold before ingestion starts."""
    on_timeout: Literal["fail", "skip"] = "skip"
    """`skip`: an hour without files is skipped (no traffic is not an error); `fail`: the run fails."""


class IngestDagConfig(Section):
    """The hourly ingest DAG: per source, wait for the interval's files, ingest them, gate bronze."""

    dag_id: str = "clickstream_ingest"
    cron: str = "0 * * * *"
    """Cron of the data intervals (UTC); each run ingests the files that arrived in [start, end)."""
    catchup: bool = False
    """Create runs for past intervals since `start_date`. Off: generated and historical data would
    create one run per hour since then; backfill chosen hours with `airflow backfill create`."""
    max_active_runs: int = Field(default=4, ge=1)
    sources: list[str] | None = None
    """Sources this DAG ingests (`conf/sources/<name>.yaml`); default: `ingest.sources`."""
    sensor: SensorConfig = Field(default_factory=SensorConfig)


class EtlDagConfig(Section):
    """The daily ETL DAG: silver, gate, features, gate, training sets."""

    dag_id: str = "clickstream_etl_features"
    cron: str = "30 0 * * *"
    """Cron of the daily interval (UTC); 00:30 leaves the last hourly ingest of the day time to finish."""
    catchup: bool = False
    """Off: silver and features are incremental (each run processes every batch not yet processed
    and every as-of date whose inputs changed), so a missed day is caught up by the next run."""
    features_as_of: Literal["changed", "interval_end"] = "changed"
    """`changed`: build every as-of date whose inputs changed (late data included);
    `interval_end`: only the as-of date `data_interval_end` (`--as-of`)."""


class TrainingDagConfig(Section):
    """The training DAG, scheduled on the training-set assets: gate, models in parallel, each
    evaluated, registered and promoted by `jobs/train.py`."""

    dag_id: str = "model_training"
    jobs: dict[str, list[str]] | None = None
    """Training jobs and models to train (`{propensity: [lr, gbt]}`; an empty list: all its models);
    default: `training.default_jobs` (or every job) with all their models."""
    spark_conf: dict[str, dict[str, str]] = Field(default_factory=dict)
    """Extra `--conf` of one model's task, keyed `job.model`, e.g. more cores for a distributed
    deep model: `{propensity.deep: {spark.cores.max: "2"}}`."""


class MonitoringDagConfig(Section):
    """The daily monitoring DAG: per job, score the latest as-of date with the champion, monitor its
    drift, and trigger `model_training` when drift alerts (no alert, no retraining)."""

    dag_id: str = "model_monitoring"
    cron: str = "0 3 * * *"
    """Cron (UTC); 03:00 runs after the daily ETL (00:30) has built the day's features."""
    jobs: list[str] | None = None
    """Training jobs to monitor; default: every registered binary job."""
    retrain: bool = True
    """Trigger the training DAG on an alert (off: alerts are only recorded)."""
    materialize: bool = True
    """After scoring, write the job's features of that as-of date to the online store
    (`jobs/materialize.py`, Redis at `serving.redis_url`) for `clickml serve`."""


class ExperimentsDagConfig(Section):
    """The online-experiments DAG (built only when `experiments:` has entries): per experiment, a
    daily look (`jobs/analyze_experiment.py`: results, report, decision rule); a bandit's arm
    weights recomputed from observed conversions and published to the model servers."""

    dag_id: str = "online_experiments"
    cron: str = "0 4 * * *"
    """Cron (UTC) of the analysis; 04:00 runs after the ETL has built the day's silver tables."""
    bandit_cron: str = "15 * * * *"
    """Cron (UTC) of the bandit reweighting (a DAG of its own, `<dag_id>_bandits`, when a bandit exists)."""


class OrchestrationConfig(Section):
    """The Airflow DAGs: schedules, retries, timeouts, how Spark jobs are submitted."""

    owner: str = "clickml"
    """Owner shown in the Airflow UI."""
    start_date: dt.date = dt.date(2024, 1, 1)
    """First data interval of the scheduled DAGs (UTC)."""
    tags: list[str] = Field(default_factory=lambda: ["clickml"])
    """Tags of every DAG (UI filter)."""
    job_profile: str | None = None
    """Profile the submitted jobs load (`--profile`); default: the profile the DAGs were built with."""
    job_conf_dir: str | None = None
    """Config directory the submitted jobs load (`--conf-dir`), as the Spark driver sees it;
    default: the one the DAGs were built with."""
    retry: RetryConfig = Field(default_factory=RetryConfig)
    """Retries of the Spark tasks and the sensor."""
    gate_retries: int = Field(default=0, ge=0, le=20)
    """Retries of the Great Expectations gates: a failed gate is a data problem, retrying does not fix it."""
    timeouts: TimeoutsConfig = Field(default_factory=TimeoutsConfig)
    spark_submit: SparkSubmitConfig = Field(default_factory=SparkSubmitConfig)
    ingest: IngestDagConfig = Field(default_factory=IngestDagConfig)
    etl: EtlDagConfig = Field(default_factory=EtlDagConfig)
    training: TrainingDagConfig = Field(default_factory=TrainingDagConfig)
    monitoring: MonitoringDagConfig = Field(default_factory=MonitoringDagConfig)
    experiments: ExperimentsDagConfig = Field(default_factory=ExperimentsDagConfig)
