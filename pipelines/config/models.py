"""Pydantic models of the clickml configuration.

Every field has a docstring: it is the reference documentation of `conf/*.yaml`
(`clickml config show --explain` prints it). Unknown keys are rejected at load time.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from pipelines.config.base import Section
from pipelines.config.generator import GeneratorConfig
from pipelines.config.monitoring import MonitoringConfig
from pipelines.config.orchestration import OrchestrationConfig
from pipelines.config.serving import ExperimentSpec, ServingConfig, check_serving


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
    """delta-rs' S3 setting for plain-Python access to tables (`etag`: conditional PUT, S3
    since 2024, MinIO); tables are written by delta-spark, which does not use it."""

    @field_validator("*", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # `${AWS_REGION:-}` interpolates to "" when the variable is unset: treat it as not given.
        return None if value == "" else value


class LakeConfig(Section):
    """Where tables live and how they are committed (Delta through delta-spark, the one writer)."""

    root: str
    """Lakehouse root: a local path (relative paths are taken from the project root, the parent
    of the config directory), `file://`, `s3a://bucket/prefix` / `s3://...` or `hdfs://...`."""
    storage: StorageConfig = Field(default_factory=StorageConfig)
    """Object-store endpoint and credentials for S3 roots."""
    commit_retries: int = Field(default=5, ge=0, le=100)
    """How many times a commit is retried after a concurrent-commit conflict."""
    commit_backoff_seconds: float = Field(default=0.2, ge=0.0, le=60.0)
    """First back-off between commit retries; doubles on every retry, with jitter."""
    vacuum_retention_hours: float = Field(default=168.0, ge=0.0)
    """Files unreferenced for longer than this are removed by `clickml lake vacuum`."""


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
    experiment_results: str = "experiments.results"
    """`clickml experiment analyze`: one row per experiment, as-of date (look), variant, metric and statistic."""
    silver_exposures: str = "silver.exposures"
    """The model server's exposure events (experiment, variant, user, request, model version),
    deduplicated, bot users removed, partitioned by event_date (`pipelines/silver/stage.py`)."""
    silver_bot_users: str = "silver.bot_users"
    """Users removed by the bot filter, with the rule that fired, per event date."""
    silver_progress: str = "silver.progress"
    """Ingest batches the silver stage has processed (drives incremental runs)."""
    user_features: str = "gold.user_features"
    """User features keyed by (user_id, as_of_date), partitioned by as_of_date."""
    product_features: str = "gold.product_features"
    """Product features keyed by (product_id, as_of_date), partitioned by as_of_date."""
    category_features: str = "gold.category_features"
    """Category features keyed by (category, as_of_date), partitioned by as_of_date."""
    user_category_features: str = "gold.user_category_features"
    """User x category affinity keyed by (user_id, category, as_of_date), partitioned by as_of_date."""
    features_progress: str = "gold.features_progress"
    """One row per built as-of date with the fingerprint of the silver files it read."""
    propensity_training: str = "gold.propensity_training"
    """Purchase-propensity examples: features as of a cutoff, label within the horizon, split."""
    implicit_training: str = "gold.implicit_training"
    """Implicit feedback (user_id, product_id, strength) per period, for matrix factorization."""
    predictions: str = "gold.predictions"
    """`clickml score` of binary jobs: score and decision per entity, by job and as-of date."""
    recommendations: str = "gold.recommendations"
    """`clickml score` of recommendation jobs: the top k items per user, by job and as-of date."""
    monitor_drift: str = "monitor.drift"
    """`clickml monitor`: one row per job, as-of date, model version, feature and drift statistic."""
    monitor_performance: str = "monitor.performance"
    """`clickml monitor`: metrics per job, as-of date and model version once its labels matured."""

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
    session_time_zone: Literal["UTC"] = "UTC"
    """`spark.sql.session.timeZone`: UTC, the only one the pipeline's dates mean what they say in
    (event dates, session ids, "as of D" is before D 00:00 UTC); sources give their own zone."""
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
        zone = value.get("spark.sql.session.timeZone")
        if zone is not None and str(zone) != "UTC":
            raise ValueError(
                f"spark.sql.session.timeZone={zone}: the pipeline works in UTC (event dates, session ids, as-of "
                "dates); give a source's own zone in its conf/sources file instead"
            )
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
    bronze_dedup_days: int = Field(default=1, ge=0, le=366)
    """An event whose id bronze already holds (from another batch) with an event date at most this
    many days from its own is a duplicate (`duplicates_in_bronze`): 1 catches a retry re-stamped
    across midnight, 0 looks at the same event date only. Each day widens the slice of bronze
    (event_id and event_date only) that every batch reads."""


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
    """Longest session an incremental rebuild keeps whole, rounded up to whole days: the days this far
    around a day with new events are rebuilt, and as many again are read as context."""
    bots: BotRulesConfig = Field(default_factory=BotRulesConfig)
    """The bot/abuse rules."""


class FeaturesConfig(Section):
    """Point-in-time feature tables (gold). A feature as of date D uses only events before D 00:00 UTC."""

    windows_days: list[int] = Field(default_factory=lambda: [1, 7, 30])
    """Trailing windows, in days, of the windowed features (the last one also bounds recency)."""
    start_date: dt.date | None = None
    """First as-of date to build; default: the day after the first silver event date."""
    end_date: dt.date | None = None
    """Last as-of date to build; default: the day after the last silver event date."""

    @field_validator("windows_days")
    @classmethod
    def _windows(cls, value: list[int]) -> list[int]:
        if not value or any(w < 1 or w > 366 for w in value):
            raise ValueError("windows_days must be a non-empty list of days between 1 and 366")
        return sorted(set(value))


class PropensityConfig(Section):
    """The purchase-propensity training set."""

    unit: Literal["user", "user_product"] = "user"
    """Example unit: a user active in the lookback before the cutoff, or a (user, product) pair
    the user interacted with in that lookback."""
    horizon_days: int = Field(default=7, ge=1)
    """Label: a purchase (of the pair's product, for `user_product`) in [cutoff, cutoff + horizon)."""
    lookback_days: int = Field(default=30, ge=1)
    """Examples are the users (pairs) with an event in [cutoff - lookback, cutoff)."""
    cutoffs: list[dt.date] = Field(default_factory=list)
    """Explicit cutoff dates (midnight UTC). Empty: every `cutoff_every_days` from the first
    date with `min_history_days` of history to the last date whose horizon is fully observed."""
    cutoff_every_days: int = Field(default=1, ge=1)
    """Spacing of the derived cutoffs."""
    min_history_days: int = Field(default=3, ge=1)
    """The first derived cutoff leaves at least this many days of history before it."""
    validation_share: float = Field(default=0.2, ge=0.0, lt=1.0)
    """Share of the cutoffs (the later ones, at least one when > 0) that form the validation split."""
    test_share: float = Field(default=0.2, ge=0.0, lt=1.0)
    """Share of the cutoffs (the latest ones, at least one when > 0) that form the test split."""
    embargo: bool = True
    """Drop the cutoffs of a split whose label horizon reaches the next split's first cutoff, so
    no label of an earlier split is observed in a later split's period."""

    @model_validator(mode="after")
    def _shares(self) -> PropensityConfig:
        if self.validation_share + self.test_share >= 1.0:
            raise ValueError("validation_share + test_share must leave cutoffs for training (< 1)")
        return self


class ImplicitConfig(Section):
    """Implicit-feedback strengths for matrix factorization: sum of weights per (user, product)."""

    weights: dict[str, float] = Field(
        default_factory=lambda: {"product_view": 1.0, "add_to_cart": 3.0, "remove_from_cart": -1.0, "purchase": 5.0}
    )
    """Weight per event type; types not listed count 0. Pairs with a total <= 0 are dropped."""
    max_strength: float | None = Field(default=None, gt=0)
    """Cap on a pair's strength (limits the pull of heavy users); none by default."""
    test_days: int = Field(default=2, ge=1)
    """The last `test_days` event dates form the `test` split (a later period to rank against);
    the earlier dates the `train` split."""


class TrainingSetsConfig(Section):
    """Training sets built from silver and the gold feature tables."""

    propensity: PropensityConfig = Field(default_factory=PropensityConfig)
    implicit: ImplicitConfig = Field(default_factory=ImplicitConfig)


class ValidationConfig(Section):
    """Great Expectations gates: one suite file per table under `<conf_dir>/expectations/`."""

    suites_dir: str = "expectations"
    """Folder of the suite files, relative to the config directory."""
    results_root: str | None = None
    """Where Data Docs HTML and JSON summaries go; default `<lake.root>/_validation`."""
    max_row_drop: float = Field(default=0.5, ge=0.0, le=1.0)
    """Row-count gate: a table version with fewer than (1 - max_row_drop) x the rows of the
    previous version fails (a sudden drop)."""


Algorithm = Literal[
    "logistic_regression", "random_forest", "gbt", "linear_regression", "random_forest_regression",
    "gbt_regression", "als", "deep_mlp", "wide_and_deep",
]
"""MLlib algorithms, plus the deep tabular models trained on Spark executors (pipelines.deep):
`deep_mlp` (categorical embeddings + MLP) and `wide_and_deep`; both for binary and regression."""


class RandomSplitSpec(Section):
    """A random split of a table's rows, optionally stratified by the label."""

    test: float = Field(default=0.2, gt=0.0, lt=1.0)
    """Share of the rows in the test split."""
    validation: float = Field(default=0.2, ge=0.0, lt=1.0)
    """Share of the rows in the validation split (calibration, threshold, early stopping)."""
    stratify: bool = False
    """Keep each label value's share the same in every split (classification labels)."""
    seed: int = 42
    """Seed of the row hash that places each row (the same rows land in the same split every run)."""

    @model_validator(mode="after")
    def _leaves_training_rows(self) -> RandomSplitSpec:
        if self.test + self.validation >= 1.0:
            raise ValueError(f"test + validation must leave rows for training (< 1), got {self.test} + {self.validation}")
        return self


class DataSpec(Section):
    """Where a training job's table is and how it is split."""

    table: str | None = None
    """A lakehouse table (logical name like gold.propensity_training, or a Delta path)."""
    path: str | None = None
    """A Parquet or CSV file or folder (relative paths are taken from the project root)."""
    format: Literal["delta", "parquet", "csv"] = "delta"
    """Format of `path` (`table` is always Delta)."""
    version: int | None = None
    """Delta version to train on; default: the latest (the version used is logged)."""
    csv_options: dict[str, str] = Field(default_factory=lambda: {"header": "true", "inferSchema": "true"})
    """Spark CSV reader options."""
    split_column: str | None = None
    """A column holding train / validation / test per row (e.g. the training sets' `split`)."""
    time_column: str | None = None
    """Without `split_column`: split by time, the latest rows test, the ones before validation."""
    split: RandomSplitSpec | None = None
    """A random split by a hash of each row, e.g. {test: 0.2, validation: 0.15, stratify: true,
    seed: 42}; instead of split_column or time_column."""
    validation_share: float = Field(default=0.2, ge=0.0, lt=1.0)
    test_share: float = Field(default=0.2, gt=0.0, lt=1.0)
    seed: int = 42
    """Seed of the models (and of the random split when `split` is not given)."""

    @model_validator(mode="after")
    def _one_source(self) -> DataSpec:
        if (self.table is None) == (self.path is None):
            raise ValueError("give exactly one of table (a lakehouse Delta table) or path (with format)")
        given = [k for k in ("split_column", "time_column") if getattr(self, k)]
        if self.split is not None and given:
            raise ValueError(f"give one way to split: split (random) or {given[0]}, not both")
        if self.validation_share + self.test_share >= 1.0:
            raise ValueError("validation_share + test_share must leave rows for training (< 1)")
        return self


class SearchSpec(Section):
    """Hyperparameter search on Spark."""

    method: Literal["none", "grid", "random"] = "none"
    """`grid`: every combination of `grid`; `random`: `trials` combinations drawn from `grid`, or,
    without a grid, from the algorithm's default search space (pipelines/train/spaces.py)."""
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    """Estimator parameter (pyspark.ml name, e.g. regParam) -> values to try."""
    trials: int = Field(default=8, ge=1)
    """Random search: how many combinations to try."""
    validation: Literal["cross_validation", "train_validation_split"] = "train_validation_split"
    folds: int = Field(default=3, ge=2)
    train_ratio: float = Field(default=0.8, gt=0.0, lt=1.0)
    parallelism: int = Field(default=2, ge=1)
    """Models fitted in parallel by the search."""

    @model_validator(mode="after")
    def _grid_given(self) -> SearchSpec:
        if self.method == "grid" and not self.grid:
            raise ValueError("a grid search needs search.grid (parameter -> values); or method: random, which has default spaces")
        return self


class ModelSpec(Section):
    """One model of a training job."""

    algorithm: Algorithm
    enabled: bool = True
    """False: trained only when named (`clickml train --model M`, or listed in
    `orchestration.training.jobs`); a run of the whole job leaves it out."""
    params: dict[str, Any] = Field(default_factory=dict)
    """Estimator parameters (pyspark.ml names), e.g. {maxIter: 50, regParam: 0.01}. Deep models
    take the `pipelines.deep` estimator's, e.g. {maxIter: 8, hiddenLayers: [32, 16], numProcesses: 2,
    backend: torch_distributor | horovod, useGpu: auto} (docs/deep_learning.md)."""
    search: SearchSpec = Field(default_factory=SearchSpec)
    class_weights: Literal["none", "balanced"] | None = None
    """Overrides the job's `class_weights` for this model (None: the job's)."""
    calibration: Literal["auto", "platt", "isotonic", "none"] | None = None
    """Overrides the job's `calibration` for this model (None: the job's)."""
    numeric_transform: Literal["auto", "log1p", "none"] = "auto"
    """Transform of the numeric features before imputation: `log1p` = sign(x) * log(1 + |x|), for
    heavy-tailed counts and amounts; `auto` = log1p for logistic regression (whose fit a few
    extreme counts dominate), none for linear regression (a target linear in a feature would no
    longer be) and for trees (invariant to it)."""


class RegistrySpec(Section):
    """Registration in the MLflow registry and champion/challenger promotion."""

    name: str
    """Registered model name."""
    metric: str | None = None
    """Metric compared between challenger and champion, on the same evaluation data. Default by
    the job's task: roc_auc (binary), weighted_f1 (multiclass), rmse (regression), ndcg_at_k
    (recommendation)."""
    greater_is_better: bool | None = None
    """Direction of `metric`; default: lower is better for error metrics (rmse, mse, mae,
    log_loss, brier, brier_score, calibration_error), higher for the others."""
    margin: float = Field(default=0.0, ge=0.0)
    """The challenger must beat the champion by more than this."""
    prediction_suite: str | None = "predictions"
    """GX suite the challenger's predictions must pass (none: no prediction gate)."""

    @model_validator(mode="after")
    def _direction(self) -> RegistrySpec:
        if self.greater_is_better is None and self.metric is not None:
            self.greater_is_better = self.metric not in LOWER_IS_BETTER
        return self


LOWER_IS_BETTER = frozenset({"rmse", "mse", "mae", "log_loss", "brier", "brier_score", "calibration_error"})
"""Registry metrics where a smaller value is the better model."""
DEFAULT_REGISTRY_METRIC = {
    "binary": "roc_auc", "multiclass": "weighted_f1", "regression": "rmse", "recommendation": "ndcg_at_k",
}


class TrainJobSpec(Section):
    """A training job: a table, a task and the models to train on it."""

    data: DataSpec
    task: Literal["binary", "multiclass", "regression", "recommendation"]
    label: str | None = None
    """Label column (the rating or strength column for recommendation)."""
    features: list[str] | None = None
    """Feature columns; default: every column but the label, weight, split/time, ids and `exclude`."""
    exclude: list[str] = Field(default_factory=list)
    categorical: list[str] | None = None
    """Categorical columns; default: the string and boolean feature columns."""
    weight: str | None = None
    """Optional weight column."""
    positive: str | int | float | bool | None = None
    """Binary: the label value meaning positive (e.g. yes, TRUE, purchased); other non-null values
    are negative. Default: the label holds 0/1 (or true/false)."""
    class_weights: Literal["none", "balanced"] = "balanced"
    """Classification: `balanced` weighs each class by n / (classes x class count) (times `weight`)."""
    calibration: Literal["auto", "platt", "isotonic", "none"] = "auto"
    """Binary: map the model's P(1) to a calibrated probability, fitted on the validation split and
    stored in the registered model: Platt scaling, isotonic regression, `auto` (the one with the
    lower log loss on held-out validation rows) or `none` (pipelines/train/calibration.py)."""
    threshold: Literal["f1", "fixed"] = "f1"
    """Binary decision threshold: maximise F1 on the validation split, or `fixed_threshold`."""
    fixed_threshold: float = Field(default=0.5, gt=0.0, lt=1.0)
    user_column: str = "user_id"
    """Recommendation: the user column."""
    item_column: str = "product_id"
    """Recommendation: the item column."""
    implicit: bool = True
    """Recommendation: the label is implicit feedback (strength), not an explicit rating."""
    k: int = Field(default=10, ge=1)
    """Recommendation: ranking metrics @k."""
    models: dict[str, ModelSpec]
    registry: RegistrySpec | None = None
    """Register the models in MLflow and promote the best challenger (none: track only)."""

    @model_validator(mode="after")
    def _consistent(self) -> TrainJobSpec:
        if self.task != "recommendation" and not self.label:
            raise ValueError(f"task {self.task} needs a label column")
        if self.positive is not None and self.task != "binary":
            raise ValueError(f"positive applies to binary jobs only, not {self.task}")
        ranking = {"als"}
        for name, model in self.models.items():
            if (model.algorithm in ranking) != (self.task == "recommendation"):
                raise ValueError(f"model {name}: algorithm {model.algorithm} does not fit task {self.task}")
            if self.task == "regression" and model.algorithm in ("logistic_regression", "random_forest", "gbt"):
                raise ValueError(f"model {name}: {model.algorithm} is a classifier; use its _regression variant")
            if model.algorithm in ("deep_mlp", "wide_and_deep") and self.task not in ("binary", "regression"):
                raise ValueError(f"model {name}: {model.algorithm} supports tasks binary and regression, not {self.task}")
            if model.algorithm in ("deep_mlp", "wide_and_deep") and model.search.method != "none":
                raise ValueError(f"model {name}: {model.algorithm} does not support search; set params directly")
            if model.algorithm in ("deep_mlp", "wide_and_deep", "als") and model.numeric_transform == "log1p":
                raise ValueError(f"model {name}: numeric_transform log1p applies to MLlib's tabular models, not {model.algorithm}")
            if model.calibration not in (None, "none") and self.task != "binary":
                raise ValueError(f"model {name}: calibration {model.calibration} applies to binary jobs only, not {self.task}")
            if self.task in ("binary", "multiclass") and model.algorithm.endswith("regression") and model.algorithm != "logistic_regression":
                raise ValueError(f"model {name}: {model.algorithm} is a regressor; task {self.task} needs a classifier")
        if self.registry is not None and self.registry.metric is None:
            self.registry.metric = DEFAULT_REGISTRY_METRIC[self.task]
            self.registry.greater_is_better = self.registry.metric not in LOWER_IS_BETTER
        return self


class TrainingConfig(Section):
    """Training jobs (`clickml train [JOB ...]`)."""

    jobs: dict[str, TrainJobSpec] = Field(default_factory=dict)
    default_jobs: list[str] = Field(default_factory=list)
    """Jobs `clickml train` runs when none is named; default: all."""
    plots: bool = True
    """Log ROC, PR, lift, calibration and feature-importance PNGs."""


class LoggingConfig(Section):
    """Log output of clickml commands and jobs."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """Log level of the `pipelines` loggers."""
    spark_level: Literal["DEBUG", "INFO", "WARN", "ERROR"] = "WARN"
    """Log level of the Spark JVM (`SparkContext.setLogLevel`)."""
    dir: str | None = "logs"
    """Where each `clickml` command writes its full log (its Python logs and the Spark JVM's), as
    clickml-<command>-<time>-<pid>.log; relative to the project root; null: console only. The
    console shows the stages, progress and summaries; Spark's own lines go to the file only."""


class ClickmlConfig(Section):
    """The whole configuration: `conf/base.yaml` merged with `conf/profiles/<profile>.yaml`."""

    profile: str = "local"
    """The profile this config was loaded with (set by the loader)."""
    project_root: str = "."
    """Absolute project root that relative paths were resolved against (set by the loader)."""
    conf_dir: str = "conf"
    """The config directory this config was loaded from (set by the loader); sources live below it."""
    lake: LakeConfig
    """The lakehouse: root URI, object-store settings, commit retries, vacuum retention."""
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
    features: FeaturesConfig = Field(default_factory=FeaturesConfig)
    """Point-in-time feature tables."""
    training_sets: TrainingSetsConfig = Field(default_factory=TrainingSetsConfig)
    """Training sets: purchase propensity and implicit feedback."""
    validation: ValidationConfig = Field(default_factory=ValidationConfig)
    """Great Expectations gates."""
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    """Model training jobs."""
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    """Logging."""
    orchestration: OrchestrationConfig = Field(default_factory=OrchestrationConfig)
    """The Airflow DAGs: schedules, retries, timeouts, Spark submission (pipelines/config/orchestration.py)."""
    monitoring: MonitoringConfig = Field(default_factory=MonitoringConfig)
    """Drift monitoring of scored populations (pipelines/config/monitoring.py)."""
    serving: ServingConfig = Field(default_factory=ServingConfig)
    """The online store (Redis) and the model server (pipelines/config/serving.py)."""
    experiments: dict[str, ExperimentSpec] = Field(default_factory=dict)
    """Online experiments: experiment id -> job, kind, variants and decision rule (pipelines/config/serving.py)."""

    @model_validator(mode="after")
    def _gpu_needs_cluster_or_script(self) -> ClickmlConfig:
        gpu = self.spark.gpu
        if gpu.enabled and gpu.task_amount > gpu.executor_amount:
            raise ValueError(
                f"spark.gpu.task_amount ({gpu.task_amount}) cannot exceed spark.gpu.executor_amount "
                f"({gpu.executor_amount})"
            )
        check_serving(self.serving, self.experiments, self.training.jobs, self.conf_dir)
        return self
