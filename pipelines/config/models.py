"""Pydantic models of the clickml configuration.

Every field has a docstring: it is the reference documentation of `conf/*.yaml`
(`clickml config show --explain` prints it). Unknown keys are rejected at load time.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from pipelines.config.base import Section
from pipelines.config.generator import GeneratorConfig


class StorageConfig(Section):
    """Object-store settings for `s3://` / `s3a://` lakehouse roots (unused for local paths)."""

    endpoint: str | None = None
    """S3 endpoint URL, e.g. `http://127.0.0.1:9000` for MinIO; None means AWS."""
    region: str | None = None
    """S3 region, e.g. `eu-west-1`."""
    access_key_id: str | None = None
    """Access key; prefer `${AWS_ACCESS_KEY_ID}` interpolation over literal secrets."""
    secret_access_key: str | None = None
    """Secret key; prefer `${AWS_SECRET_ACCESS_KEY}` interpolation over literal secrets."""
    session_token: str | None = None
    """Optional session token for temporary credentials."""
    allow_http: bool = False
    """Allow plain-HTTP endpoints (local S3-compatible servers)."""
    path_style: bool = True
    """Use path-style addressing (`endpoint/bucket/key`), needed by most S3-compatible servers."""
    conditional_put: Literal["etag"] | None = "etag"
    """How delta-rs makes commits atomic on S3: `etag` uses conditional PUT (S3 since 2024,
    MinIO); None leaves delta-rs' default (which refuses unsafe concurrent writes)."""

    @field_validator("*", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # `${AWS_REGION:-}` interpolates to "" when the variable is unset: treat it as not given.
        return None if value == "" else value


class LakeConfig(Section):
    """Where tables live and how they are committed."""

    root: str
    """Lakehouse root: a local path (relative paths are taken from the project root, the parent
    of the config directory), `file://`, `s3a://bucket/prefix` / `s3://...` or `hdfs://...`."""
    writer: Literal["auto", "delta-spark", "delta-rs"] = "auto"
    """`delta-spark` writes with `df.write.format("delta")` (needs the Delta jars on the
    classpath); `delta-rs` writes Parquet with Spark and commits with delta-rs; `auto` picks
    delta-spark when the Delta extension is loaded in the session, delta-rs otherwise."""
    storage: StorageConfig = Field(default_factory=StorageConfig)
    """Object-store endpoint and credentials for S3 roots."""
    commit_retries: int = Field(default=5, ge=0, le=100)
    """How many times a commit is retried after a concurrent-commit conflict."""
    commit_backoff_seconds: float = Field(default=0.2, ge=0.0, le=60.0)
    """First back-off between commit retries; doubles on every retry, with jitter."""
    vacuum_retention_hours: float = Field(default=168.0, ge=0.0)
    """Files unreferenced for longer than this are removed by `clickml lake vacuum`."""
    parquet_compression: Literal["snappy", "zstd", "gzip", "none"] = "snappy"
    """Compression of the Parquet files written by the delta-rs writer."""


class TablesConfig(Section):
    """Logical table names, `<layer>.<name>`, resolved to `<lake.root>/<layer>/<name>`."""

    demo_events: str = "demo.clickstream"
    """The generated clickstream as the demo writes and reads it back."""
    truth_users: str = "truth.users"
    """Generator ground truth: one row per user with its latent propensity."""
    truth_sessions: str = "truth.sessions"
    """Generator ground truth: one row per session with its true purchase probability."""
    bronze_events: str = "bronze.events"
    """Typed canonical events with ingest metadata, partitioned by event_date."""
    bronze_quarantine: str = "bronze.quarantine"
    """Rejected records: raw text, source file and line, reason code, batch id."""
    ingest_audit: str = "bronze.ingest_audit"
    """One row per ingested batch: files, records read, bronze, quarantine by reason, duplicates."""
    silver_events: str = "silver.events"
    """Deduplicated events with rebuilt sessions, bots removed, partitioned by event_date."""
    silver_sessions: str = "silver.sessions"
    """One row per rebuilt session, partitioned by session_date (the date it starts)."""
    silver_bot_users: str = "silver.bot_users"
    """Users removed by the bot filter, with the rule that fired, per event date."""
    silver_progress: str = "silver.progress"
    """Ingest batches the silver stage has processed (drives incremental runs)."""

    @field_validator("*")
    @classmethod
    def _dotted(cls, value: str) -> str:
        parts = value.split(".")
        if len(parts) != 2 or not all(p.replace("_", "").isalnum() and p for p in parts):
            raise ValueError(f"table name {value!r} must look like '<layer>.<name>' (letters, digits, _)")
        return value


class LandingConfig(Section):
    """The landing zone where raw event files arrive (as a Kafka-to-storage sink leaves them)."""

    root: str
    """Landing root: local path (relative to the project root), `s3a://`, `hdfs://`."""


class GpuConfig(Section):
    """GPU resource scheduling for executors (Spark's resource-aware scheduling)."""

    enabled: bool = False
    """Request GPUs for executors and tasks."""
    executor_amount: int = Field(default=1, ge=1)
    """GPUs per executor (`spark.executor.resource.gpu.amount`)."""
    task_amount: float = Field(default=1.0, gt=0.0)
    """GPUs per task (`spark.task.resource.gpu.amount`); 0.25 lets four tasks share one."""
    discovery_script: str | None = None
    """Script that lists the GPUs of an executor (`spark.executor.resource.gpu.discoveryScript`);
    Spark ships `examples/src/main/scripts/getGpusResources.sh`. Not needed on Kubernetes or YARN
    when the cluster manager assigns GPUs."""
    vendor: str | None = None
    """Kubernetes device plugin vendor, e.g. `nvidia.com`."""


class SparkConfig(Section):
    """How the SparkSession is built. spark-submit settings always win over these."""

    master: str = "local[*]"
    """`local[*]`, `local[N]`, `spark://host:7077`, `yarn` or `k8s://https://host:443`."""
    app_name: str = "clickml"
    """Application name shown in the Spark UI and the history server."""
    driver_memory: str | None = "2g"
    """Driver heap (only effective when this process starts the JVM, i.e. not under spark-submit)."""
    executor_memory: str | None = None
    """Executor heap on a cluster, e.g. `8g`."""
    executor_cores: int | None = Field(default=None, ge=1)
    """Cores per executor on a cluster."""
    shuffle_partitions: int = Field(default=8, ge=1)
    """`spark.sql.shuffle.partitions`; adaptive execution coalesces it further."""
    ui_enabled: bool = True
    """Start the Spark UI (port 4040 and up)."""
    session_time_zone: str = "UTC"
    """`spark.sql.session.timeZone`: all timestamps are processed in UTC."""
    local_dir: str | None = None
    """Scratch directory for shuffle and spill (`spark.local.dir`)."""
    conf: dict[str, str] = Field(default_factory=dict)
    """Any other Spark settings, passed through as they are (`spark.*` keys)."""
    gpu: GpuConfig = Field(default_factory=GpuConfig)
    """GPU resources for executors and tasks."""

    @field_validator("master")
    @classmethod
    def _known_master(cls, value: str) -> str:
        if value.startswith(("local", "spark://", "k8s://")) or value == "yarn":
            return value
        raise ValueError(f"unsupported master {value!r}: use local[*], spark://host:port, yarn or k8s://url")

    @field_validator("conf", mode="before")
    @classmethod
    def _spark_keys(cls, value: object) -> object:
        if not isinstance(value, dict):
            return value
        bad = sorted(k for k in value if not k.startswith("spark."))
        if bad:
            raise ValueError(f"Spark settings must start with 'spark.': {', '.join(bad)}")
        return {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in value.items()}


class MlflowConfig(Section):
    """MLflow tracking and registry."""

    tracking_uri: str | None = None
    """Tracking server or store URI; None means the embedded default, a SQLite store at
    `<lake.root>/_mlflow/mlflow.db` (local lakehouse roots only)."""
    artifact_root: str | None = None
    """Where runs store artifacts; None means `<lake.root>/_mlflow/artifacts`."""
    experiment: str = "clickml"
    """Experiment that runs are logged under."""
    registry_uri: str | None = None
    """Model registry URI when it differs from the tracking URI."""


class IngestConfig(Section):
    """Landing files -> bronze (`clickml ingest`)."""

    sources: list[str] = Field(default_factory=lambda: ["clickstream"])
    """Sources ingested when none is named: files `conf/sources/<name>.yaml`."""
    max_event_age_hours: float = Field(default=168.0, gt=0)
    """Events older than this before their file's arrival hour are quarantined (`timestamp_too_old`)."""
    future_tolerance_minutes: float = Field(default=60.0, ge=0)
    """Events later than this after their file's arrival hour are quarantined (`timestamp_in_future`)."""
    checkpoint_root: str | None = None
    """Streaming checkpoints of incremental ingestion; None means `<lake.root>/_checkpoints/ingest`."""
    max_files_per_trigger: int = Field(default=1000, ge=1)
    """Incremental mode: at most this many new files per micro-batch (progress is logged per batch)."""


class BotRulesConfig(Section):
    """The bot/abuse filter of the silver stage; a user matching any rule on a day is dropped for that day."""

    max_events_per_minute: int = Field(default=60, ge=1)
    """Human speed limit: more events than this in one minute ..."""
    sustained_minutes: int = Field(default=3, ge=1)
    """... in at least this many distinct minutes of the day fires `sustained_rate`."""
    max_events_per_session: int = Field(default=2000, ge=1)
    """A rebuilt session with more events than this fires `giant_session`."""
    max_events_per_day: int = Field(default=20000, ge=1)
    """More events than this in one day fires `daily_volume`."""


class SilverConfig(Section):
    """bronze -> silver.events + silver.sessions (`clickml silver`)."""

    session_gap_minutes: float = Field(default=30.0, gt=0)
    """Inactivity gap that starts a new session (a gap exactly this long starts a new one)."""
    max_session_hours: float = Field(default=24.0, gt=0)
    """Events this far before a reprocessed day are re-read so sessions crossing midnight are rebuilt whole."""
    bots: BotRulesConfig = Field(default_factory=BotRulesConfig)
    """The bot/abuse rules."""


class LoggingConfig(Section):
    """Log output of clickml commands and jobs."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """Log level of the `pipelines` loggers."""
    spark_level: Literal["DEBUG", "INFO", "WARN", "ERROR"] = "WARN"
    """Log level of the Spark JVM (`SparkContext.setLogLevel`)."""


class ClickmlConfig(Section):
    """The whole configuration: `conf/base.yaml` merged with `conf/profiles/<profile>.yaml`."""

    profile: str = "local"
    """The profile this config was loaded with (set by the loader)."""
    project_root: str = "."
    """Absolute project root that relative paths were resolved against (set by the loader)."""
    conf_dir: str = "conf"
    """The config directory this config was loaded from (set by the loader); sources live below it."""
    lake: LakeConfig
    """The lakehouse: root URI, writer, object-store settings."""
    tables: TablesConfig = Field(default_factory=TablesConfig)
    """Logical table names."""
    landing: LandingConfig
    """The landing zone of raw event files."""
    spark: SparkConfig = Field(default_factory=SparkConfig)
    """SparkSession settings."""
    mlflow: MlflowConfig = Field(default_factory=MlflowConfig)
    """MLflow tracking and registry."""
    generator: GeneratorConfig = Field(default_factory=GeneratorConfig)
    """The synthetic clickstream generator."""
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    """Ingestion of landing files into bronze."""
    silver: SilverConfig = Field(default_factory=SilverConfig)
    """The silver ETL: sessions and the bot filter."""
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    """Logging."""

    @model_validator(mode="after")
    def _gpu_needs_cluster_or_script(self) -> ClickmlConfig:
        gpu = self.spark.gpu
        if gpu.enabled and gpu.task_amount > gpu.executor_amount:
            raise ValueError(
                f"spark.gpu.task_amount ({gpu.task_amount}) cannot exceed spark.gpu.executor_amount "
                f"({gpu.executor_amount})"
            )
        return self
