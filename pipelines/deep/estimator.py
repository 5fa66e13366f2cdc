"""The Spark-ML-style deep tabular estimators: `fit(df)` returns a model whose `transform(df)`
adds predictions.

`DeepTabularClassifier` (binary) and `DeepTabularRegressor` train `network.TabularNet`
data-parallel on Spark executors through a backend (`torch_distributor` or `horovod`). Inputs:

- any DataFrame: Spark executors stage the needed columns as Parquet under the run's folder
  (train and validation rows apart), and each worker reads its own shard of those files;
- a `SnapshotSplit` (a Delta snapshot and its split column): each worker reads its own shard of
  the snapshot's Parquet files directly, keeping the rows of its split.

Either way no training row passes through the driver. Scoring is a pandas UDF over Arrow
batches (`transform`) that loads the network once per task.
"""

from __future__ import annotations

import io
import logging
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from pyspark import keyword_only
from pyspark.ml import Estimator, Model
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pipelines.deep.backends import BACKENDS, get_backend
from pipelines.deep.errors import DeepParamError
from pipelines.deep.features import FeatureSchema, fit_schema
from pipelines.deep.network import NetConfig
from pipelines.deep.shards import ShardSource, folder_source, snapshot_source
from pipelines.deep.store import CheckpointStore, Folder
from pipelines.deep.training import TrainOutput, TrainTask

log = logging.getLogger(__name__)

NUMERIC_TYPES = ("tinyint", "smallint", "int", "bigint", "float", "double")
SCORE_BATCH = 8192


def _to_int(value: Any) -> int:
    """Integers, also as strings (values interpolated from the environment in YAML are strings)."""
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return TypeConverters.toInt(value)


def _param(name: str, doc: str, converter) -> Param:
    return Param(Params._dummy(), name, doc, typeConverter=converter)


class _DeepParams(Params):
    """Parameters shared by the estimators and the model (pyspark.ml naming)."""

    numericCols = _param("numericCols", "numeric feature columns (default: inferred)", TypeConverters.toListString)
    categoricalCols = _param("categoricalCols", "categorical feature columns (default: string/boolean columns)",
                             TypeConverters.toListString)
    labelCol = _param("labelCol", "label column", TypeConverters.toString)
    weightCol = _param("weightCol", "optional row weight column", TypeConverters.toString)
    predictionCol = _param("predictionCol", "prediction column", TypeConverters.toString)
    probabilityCol = _param("probabilityCol", "class probabilities (binary)", TypeConverters.toString)
    rawPredictionCol = _param("rawPredictionCol", "raw scores [-logit, logit] (binary)", TypeConverters.toString)
    validationIndicatorCol = _param("validationIndicatorCol", "boolean column marking validation rows", TypeConverters.toString)
    validationFraction = _param("validationFraction", "share of rows held out for validation when no indicator column",
                                TypeConverters.toFloat)
    maxIter = _param("maxIter", "maximum number of epochs", _to_int)
    stepSize = _param("stepSize", "peak learning rate (AdamW)", TypeConverters.toFloat)
    regParam = _param("regParam", "weight decay (AdamW)", TypeConverters.toFloat)
    batchSize = _param("batchSize", "rows per batch and process", _to_int)
    hiddenLayers = _param("hiddenLayers", "widths of the MLP's hidden layers", TypeConverters.toListInt)
    dropout = _param("dropout", "dropout after each hidden layer", TypeConverters.toFloat)
    embeddingDim = _param("embeddingDim", "largest embedding width of a categorical column", _to_int)
    maxCategories = _param("maxCategories", "vocabulary size per categorical column (the rest: unknown)", _to_int)
    wideAndDeep = _param("wideAndDeep", "add a wide (linear) part to the deep network", TypeConverters.toBoolean)
    lrSchedule = _param("lrSchedule", "learning-rate schedule: cosine, step or constant", TypeConverters.toString)
    warmupEpochs = _param("warmupEpochs", "epochs of linear learning-rate warm-up", TypeConverters.toFloat)
    patience = _param("patience", "early stopping: epochs without improvement (0: off)", _to_int)
    validationMetric = _param("validationMetric", "early-stopping metric: loss or auc", TypeConverters.toString)
    seed = _param("seed", "random seed", _to_int)
    shuffleBufferSize = _param("shuffleBufferSize", "rows in each worker's shuffle buffer", _to_int)
    numProcesses = _param("numProcesses", "training processes (Spark barrier tasks)", _to_int)
    backend = _param("backend", "torch_distributor or horovod", TypeConverters.toString)
    useGpu = _param("useGpu", "auto, true or false", TypeConverters.toString)
    mixedPrecision = _param("mixedPrecision", "float16 autocast + gradient scaling on GPU", TypeConverters.toBoolean)
    checkpointDir = _param("checkpointDir", "checkpoint store root (local path, hdfs://, s3://, s3a://)", TypeConverters.toString)
    timeout = _param("timeout", "seconds before a training run (or a stuck collective) is cancelled", TypeConverters.toFloat)
    threshold = _param("threshold", "binary decision threshold on P(1)", TypeConverters.toFloat)
    threadsPerProcess = _param("threadsPerProcess", "torch CPU threads per training process", _to_int)

    def __init__(self) -> None:
        super().__init__()
        self._setDefault(
            labelCol="label", predictionCol="prediction", probabilityCol="probability", rawPredictionCol="rawPrediction",
            validationFraction=0.1, maxIter=10, stepSize=1e-3, regParam=0.0, batchSize=256, hiddenLayers=[64, 32],
            dropout=0.1, embeddingDim=16, maxCategories=1000, wideAndDeep=False, lrSchedule="cosine", warmupEpochs=0.0,
            patience=3, validationMetric="loss", seed=42, shuffleBufferSize=10_000, numProcesses=2,
            backend="torch_distributor", useGpu="auto", mixedPrecision=True, timeout=3600.0, threshold=0.5,
            threadsPerProcess=1,
        )

    def value(self, name: str) -> Any:
        param = self.getParam(name)
        return self.getOrDefault(param) if self.isDefined(param) else None


@dataclass
class SnapshotSplit:
    """A Delta snapshot whose rows carry their split: workers read the snapshot's own files."""

    spark: SparkSession
    snapshot: Any
    """`pipelines.lake.Snapshot` (delta-rs resolved file list)."""
    split_column: str
    train_values: tuple[Any, ...] = ("train",)
    validation_values: tuple[Any, ...] = ("validation",)

    @classmethod
    def from_lake(cls, lake, name: str, split_column: str, version: int | None = None, **kwargs) -> SnapshotSplit:
        return cls(lake._session(), lake.snapshot(name, version), split_column, **kwargs)

    def frame(self) -> DataFrame:
        """The same table version through Spark (Delta time travel to the snapshot's version)."""
        from pipelines.lake.delta_spark import read_delta_spark

        return read_delta_spark(self.spark, self.snapshot.location, self.snapshot.version)

    def train_frame(self) -> DataFrame:
        return self.frame().where(F.col(self.split_column).isin(list(self.train_values)))


class _DeepEstimator(Estimator, _DeepParams):
    task = "binary"

    @keyword_only
    def __init__(self, **kwargs: Any) -> None:
        super().__init__()
        self._set(**self._input_kwargs)

    @keyword_only
    def setParams(self, **kwargs: Any):
        return self._set(**self._input_kwargs)

    _class_weights: dict[float, float] | None = None
    _storage_options: dict[str, str] | None = None

    def setClassWeights(self, weights: dict[float, float] | None):
        """Per-label weights (e.g. balanced), multiplied into the row weights on the workers."""
        self._class_weights = {float(k): float(v) for k, v in (weights or {}).items()} or None
        return self

    def setStorageOptions(self, options: dict[str, str]):
        """Object-store options (S3 credentials) for the checkpoint store; kept out of the params,
        which are logged."""
        self._storage_options = dict(options)
        return self

    def _set(self, **kwargs: Any):
        for name, value in kwargs.items():
            if not self.hasParam(name):
                known = ", ".join(sorted(p.name for p in self.params))
                raise DeepParamError(f"{type(self).__name__} has no parameter {name!r}; parameters: {known}")
            try:
                super()._set(**{name: value})
            except (TypeError, ValueError) as exc:
                raise DeepParamError(f"{type(self).__name__}: bad value {value!r} for {name}: {exc}") from None
        return self

    # -- checks ------------------------------------------------------------------------------
    def _check(self) -> None:
        choices = {"backend": BACKENDS, "lrSchedule": ("cosine", "step", "constant"), "useGpu": ("auto", "true", "false"),
                   "validationMetric": ("loss", "auc")}
        for name, allowed in choices.items():
            if str(self.value(name)).lower() not in allowed:
                raise DeepParamError(f"{name} must be one of {', '.join(allowed)}; got {self.value(name)!r}")
        for name in ("maxIter", "batchSize", "numProcesses", "embeddingDim", "maxCategories", "threadsPerProcess"):
            if self.value(name) < 1:
                raise DeepParamError(f"{name} must be at least 1; got {self.value(name)}")
        if not 0.0 <= self.value("dropout") < 1.0 or not 0.0 <= self.value("validationFraction") < 1.0:
            raise DeepParamError("dropout and validationFraction must be in [0, 1)")

    def _columns(self, frame: DataFrame) -> tuple[list[str], list[str]]:
        types = dict(frame.dtypes)
        numeric, categorical = self.value("numericCols"), self.value("categoricalCols")
        if numeric is None and categorical is None:
            reserved = {self.value("labelCol"), self.value("weightCol"), self.value("validationIndicatorCol")}
            candidates = [c for c in frame.columns if c not in reserved and not c.startswith("__")]
            categorical = [c for c in candidates if types[c] in ("string", "boolean")]
            numeric = [c for c in candidates if c not in categorical
                       and (types[c] in NUMERIC_TYPES or types[c].startswith("decimal"))]
        numeric, categorical = list(numeric or []), list(categorical or [])
        for column in (*numeric, *categorical, self.value("labelCol"), *([self.value("weightCol")] if self.value("weightCol") else [])):
            if column not in types:
                raise DeepParamError(f"column {column!r} is not in the DataFrame (columns: {', '.join(frame.columns)})")
        if not numeric and not categorical:
            raise DeepParamError("no feature columns: set numericCols and/or categoricalCols")
        return numeric, categorical

    def _use_gpu(self, spark: SparkSession) -> bool:
        from pipelines.deep.gpu import spark_task_gpus

        choice = str(self.value("useGpu")).lower()
        scheduled = spark_task_gpus(spark) >= 1
        if choice == "true" and not scheduled:
            raise DeepParamError(
                "useGpu=true needs GPU scheduling: set spark.gpu.enabled (spark.task.resource.gpu.amount >= 1, "
                "spark.executor.resource.gpu.amount and a discovery script; see docs/deep_learning.md)"
            )
        if choice == "auto" and not scheduled:
            log.info("deep model: no GPUs scheduled (spark.task.resource.gpu.amount unset): training on CPU")
        return choice != "false" and scheduled

    def _processes(self, spark: SparkSession) -> int:
        """numProcesses, capped in local mode by the slots a barrier stage can get."""
        wanted = self.value("numProcesses")
        master = spark.sparkContext.master
        if master.startswith("local"):
            slots = spark.sparkContext.defaultParallelism
            if wanted > slots:
                log.warning("deep model: numProcesses=%d but %s has %d task slots; using %d", wanted, master, slots, slots)
                return slots
        return wanted

    # -- fit ---------------------------------------------------------------------------------
    def _fit(self, dataset: DataFrame | SnapshotSplit) -> DeepTabularModel:
        self._check()
        started = time.time()
        label, weight = self.value("labelCol"), self.value("weightCol")
        run_id = f"run-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        root = self.value("checkpointDir") or os.path.join(tempfile.gettempdir(), "clickml-deep")
        location = getattr(getattr(dataset, "snapshot", None), "location", None)
        options = dict(self._storage_options or (location.storage_options if location is not None else {}))
        run_folder = Folder(f"{root.rstrip('/')}/{run_id}", options)
        if isinstance(dataset, SnapshotSplit):
            spark = dataset.spark
            train_frame = dataset.train_frame()
            numeric, categorical = self._columns(train_frame)
            train_source = snapshot_source(dataset.snapshot, dataset.split_column, dataset.train_values)
            validation_source = snapshot_source(dataset.snapshot, dataset.split_column, dataset.validation_values)
        else:
            spark = dataset.sparkSession
            numeric, categorical = self._columns(dataset)
            train_frame, train_source, validation_source = self._stage(dataset, numeric, categorical, run_folder)
        features = fit_schema(train_frame, numeric, categorical, self.value("maxCategories"))
        net = NetConfig(len(numeric), features.cardinalities, tuple(self.value("hiddenLayers")), self.value("dropout"),
                        self.value("embeddingDim"), self.value("wideAndDeep"))
        processes = self._processes(spark)
        use_gpu = self._use_gpu(spark)
        task = TrainTask(
            task=self.task, features=features, net=net, label=label, weight=weight, train=train_source,
            validation=validation_source, store=CheckpointStore(run_folder.child("checkpoints").uri, options),
            batch_size=self.value("batchSize"), max_epochs=self.value("maxIter"), learning_rate=self.value("stepSize"),
            weight_decay=self.value("regParam"), lr_schedule=self.value("lrSchedule"),
            warmup_epochs=self.value("warmupEpochs"), patience=self.value("patience"),
            validation_metric=self.value("validationMetric"), seed=self.value("seed"),
            shuffle_buffer=self.value("shuffleBufferSize"), use_gpu=use_gpu,
            mixed_precision=self.value("mixedPrecision"), timeout_s=min(self.value("timeout"), 1800.0),
            threads=self.value("threadsPerProcess"), class_weights=self._class_weights,
        )
        backend = get_backend(self.value("backend"))
        log.info("deep model: training %s (%s) with %s, %d process(es), %s; checkpoints in %s", self.task,
                 "wide-and-deep" if net.wide else "embeddings + MLP", backend.name, processes,
                 "GPU" if use_gpu else "CPU", task.store.uri)
        try:
            output = backend.run(spark, task, processes, use_gpu, self.value("timeout"))
        finally:
            _remove_staged(run_folder.child("data"))
        log.info("deep model: best epoch %d of %d (%.4f), %.0f samples/s, %.1f s", output.best_epoch + 1,
                 len(output.history), output.best_metric, output.samples_per_second, time.time() - started)
        state = DeepModelState(self.task, features, net, output.state_dict, label, output.best_epoch, output.best_metric,
                               output.history, backend.name, output.world_size, output.device,
                               output.samples_per_second, output.checkpoint_uri)
        model = DeepTabularModel(state)
        for name in ("predictionCol", "probabilityCol", "rawPredictionCol", "threshold"):
            model._set(**{name: self.value(name)})
        return model

    def _stage(self, frame: DataFrame, numeric: list[str], categorical: list[str], run_folder: Folder):
        """Executors write the training and validation rows as Parquet under the run's folder."""
        label, weight, indicator = self.value("labelCol"), self.value("weightCol"), self.value("validationIndicatorCol")
        columns = [*numeric, *categorical, label, *([weight] if weight else [])]
        if indicator:
            is_validation = F.coalesce(F.col(f"`{indicator}`").cast("boolean"), F.lit(False))
        else:
            is_validation = F.rand(self.value("seed")) < F.lit(self.value("validationFraction"))
        marked = frame.select(*[F.col(f"`{c}`") for c in columns], is_validation.alias("__validation"))
        files = max(2 * self.value("numProcesses"), frame.sparkSession.sparkContext.defaultParallelism)
        data = run_folder.child("data")
        spark_uri = _spark_uri(data.uri)
        log.info("deep model: staging training rows as Parquet in %s", data.uri)
        marked.repartition(files).write.mode("overwrite").partitionBy("__validation").parquet(spark_uri)
        train = folder_source(data.child("__validation=false"), "staged training rows")
        validation = folder_source(data.child("__validation=true"), "staged validation rows")
        train_frame = frame.where(~is_validation) if indicator else frame.sparkSession.read.parquet(
            f"{spark_uri}/__validation=false")
        return train_frame, train, (validation if validation.pieces else None)


class DeepTabularClassifier(_DeepEstimator):
    """Binary classification: `transform` adds rawPrediction, probability and prediction."""

    task = "binary"


class DeepTabularRegressor(_DeepEstimator):
    """Regression: `transform` adds prediction."""

    task = "regression"


def _remove_staged(folder: Folder) -> None:
    """Delete the Parquet files staged for a run (the checkpoints stay)."""
    import pyarrow.fs as pafs

    try:
        fs, base = folder.filesystem()
        if fs.get_file_info(base).type == pafs.FileType.Directory:
            fs.delete_dir(base)
    except OSError as exc:
        log.warning("deep model: could not remove the staged data %s: %s", folder.uri, exc)


def _spark_uri(uri: str) -> str:
    return "s3a://" + uri[len("s3://"):] if uri.startswith("s3://") else uri


@dataclass
class DeepModelState:
    """Everything needed to score: the encoding, the network's shape and its best weights."""

    task: str
    features: FeatureSchema
    net: NetConfig
    state_dict: dict[str, Any]
    label: str
    best_epoch: int
    best_metric: float
    history: list[dict[str, float]]
    backend: str
    processes: int
    device: str
    samples_per_second: float
    checkpoint_uri: str
    extra: dict[str, Any] = field(default_factory=dict)

    def calibrator(self):
        """The `pipelines.train.calibration.Calibrator` fitted after training (binary), or None."""
        values = self.extra.get("calibration")
        if not values:
            return None
        from pipelines.train.calibration import Calibrator

        return Calibrator.from_dict(values)

    def to_bytes(self) -> bytes:
        import torch

        buffer = io.BytesIO()
        torch.save(self, buffer)
        return buffer.getvalue()

    @staticmethod
    def from_bytes(payload: bytes) -> DeepModelState:
        import torch

        return torch.load(io.BytesIO(payload), map_location="cpu", weights_only=False)


class Scorer:
    """The network in eval mode on CPU; `predict(frame)` gives P(1) (binary) or the prediction."""

    def __init__(self, state: DeepModelState):
        import torch

        from pipelines.deep.network import TabularNet

        self.state = state
        self.net = TabularNet(state.net)
        self.net.load_state_dict(state.state_dict)
        self.net.eval()
        self._torch = torch

    def raw(self, frame: pd.DataFrame) -> np.ndarray:
        torch = self._torch
        out = np.empty(len(frame), dtype=np.float64)
        with torch.no_grad():
            for start in range(0, len(frame), SCORE_BATCH):
                part = frame.iloc[start:start + SCORE_BATCH]
                numeric, categorical = self.state.features.encode(part)
                values = self.net(torch.from_numpy(numeric), torch.from_numpy(categorical))
                out[start:start + len(part)] = values.double().numpy()
        return out

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """P(1), calibrated when the model carries a calibrator (binary), or the prediction."""
        raw = self.raw(frame)
        if self.state.task != "binary":
            return raw
        p = 1.0 / (1.0 + np.exp(-raw))
        calibrator = self.state.calibrator()
        return p if calibrator is None else calibrator.apply(p)


class DeepTabularModel(Model, _DeepParams):
    """A trained deep tabular model (Spark ML Model): `transform` scores with a pandas UDF."""

    def __init__(self, state: DeepModelState | None = None):
        super().__init__()
        self.state = state

    def _set(self, **kwargs: Any):
        return super()._set(**kwargs)

    @property
    def best_epoch(self) -> int:
        return self.state.best_epoch

    @property
    def history(self) -> list[dict[str, float]]:
        return self.state.history

    def scorer(self) -> Scorer:
        return Scorer(self.state)

    def predict_pandas(self, frame: pd.DataFrame) -> np.ndarray:
        """P(1) (binary) or the prediction for rows in pandas (used by the MLflow pyfunc)."""
        return self.scorer().predict(frame)

    def _transform(self, dataset: DataFrame) -> DataFrame:
        from pyspark.ml.functions import array_to_vector
        from pyspark.sql.functions import pandas_udf

        columns = list(self.state.features.columns)
        missing = [c for c in columns if c not in dataset.columns]
        if missing:
            raise DeepParamError(f"cannot score: column(s) {missing} missing (model features: {', '.join(columns)})")
        payload = self.state.to_bytes()  # shipped in the UDF's closure: kilobytes to a few MB

        @pandas_udf("double")
        def raw_scores(batches: Iterator[pd.DataFrame]) -> Iterator[pd.Series]:
            import torch

            torch.set_num_threads(1)
            scorer = Scorer(DeepModelState.from_bytes(payload))  # once per task, not per batch
            for batch in batches:
                yield pd.Series(scorer.raw(batch))

        raw_name = "__deep_raw"
        scored = dataset.withColumn(raw_name, raw_scores(F.struct(*[F.col(f"`{c}`") for c in columns])))
        prediction = self.value("predictionCol")
        if self.state.task == "binary":
            p = 1.0 / (1.0 + F.exp(-F.col(raw_name)))
            calibrator = self.state.calibrator()
            if calibrator is not None:  # fitted on the validation split after training
                scored = scored.withColumn("__deep_p", calibrator.column(p))
                p = F.col("__deep_p")
            scored = (
                scored.withColumn(self.value("rawPredictionCol"), array_to_vector(F.array(-F.col(raw_name), F.col(raw_name))))
                .withColumn(self.value("probabilityCol"), array_to_vector(F.array(1.0 - p, p)))
                .withColumn(prediction, (p >= F.lit(self.value("threshold"))).cast("double"))
            )
        else:
            scored = scored.withColumn(prediction, F.col(raw_name))
        return scored.drop(raw_name, "__deep_p")

    # -- persistence (the MLflow flavor and plain files) ----------------------------------------
    def to_bytes(self) -> bytes:
        params = {name: self.value(name) for name in ("predictionCol", "probabilityCol", "rawPredictionCol", "threshold")}
        self.state.extra["params"] = params
        return self.state.to_bytes()

    @classmethod
    def from_bytes(cls, payload: bytes) -> DeepTabularModel:
        state = DeepModelState.from_bytes(payload)
        model = cls(state)
        model._set(**state.extra.get("params", {}))
        return model

    def save_to(self, folder: Folder, name: str = "model.pt") -> str:
        return folder.put(name, self.to_bytes())

    @classmethod
    def load_from(cls, folder: Folder, name: str = "model.pt") -> DeepTabularModel:
        return cls.from_bytes(folder.get(name))

    @classmethod
    def from_checkpoint(cls, checkpoint_uri: str, like: DeepTabularModel, storage_options: dict | None = None) -> DeepTabularModel:
        """A model with the weights of a `best.pt` checkpoint (the encoding, shape and calibration of `like`)."""
        parent, _, name = checkpoint_uri.rstrip("/").rpartition("/")
        saved = CheckpointStore(parent, storage_options or {}).get_torch(name)
        state = DeepModelState(**{**like.state.__dict__, "state_dict": saved["state_dict"], "best_epoch": int(saved["epoch"]),
                                  "best_metric": float(saved["value"]),
                                  # the calibration fitted on the best epoch's scores stays with it
                                  "extra": {k: v for k, v in like.state.extra.items() if k == "calibration"}})
        model = cls(state)
        model._set(**{n: like.value(n) for n in ("predictionCol", "probabilityCol", "rawPredictionCol", "threshold")})
        return model


__all__ = ["DeepTabularClassifier", "DeepTabularModel", "DeepTabularRegressor", "ShardSource", "SnapshotSplit",
           "TrainOutput"]
