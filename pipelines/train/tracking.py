"""MLflow set-up: the embedded default (SQLite + local artifacts under the lakehouse) or a server.

`configure(config)` points the MLflow client at the configured store and returns where it is, so
the stage can print the command that opens the UI on these runs; `log_spark_model` and
`log_inprocess_export` log what a trained MLlib model leaves in its run.
"""

from __future__ import annotations

import logging
import subprocess
from dataclasses import dataclass
from pathlib import Path

from pipelines.config import ClickmlConfig
from pipelines.train.errors import TrackingError

log = logging.getLogger(__name__)




@dataclass(frozen=True)
class Tracking:
    tracking_uri: str
    registry_uri: str
    artifact_root: str | None
    """None: the tracking server's default artifact root."""
    experiment_id: str

    @property
    def ui_command(self) -> str:
        if self.tracking_uri.startswith(("http://", "https://")):
            return f"open {self.tracking_uri}"
        return (
            f"mlflow ui --backend-store-uri {self.tracking_uri} "
            f"--default-artifact-root {self.artifact_root} --host 127.0.0.1 --port 5000"
        )


def _local_root(config: ClickmlConfig) -> Path | None:
    root = config.lake.root
    if root.startswith("file:"):
        root = root[len("file:"):].lstrip("/")
        return Path("/" + root)
    return None if "://" in root else Path(root)


SERVER_SCHEMES = ("http://", "https://", "databricks")


def default_uris(config: ClickmlConfig) -> tuple[str, str | None]:
    """(tracking URI, artifact root) with the embedded defaults filled in.

    With a tracking server and no `mlflow.artifact_root`, the artifact root is None: the server's
    own default artifact root (`mlflow server --default-artifact-root`) applies.
    """
    local = _local_root(config)
    tracking = config.mlflow.tracking_uri
    artifacts = config.mlflow.artifact_root
    if tracking is not None and artifacts is None and tracking.startswith(SERVER_SCHEMES):
        return tracking, None
    if tracking is None or artifacts is None:
        if local is None:
            raise TrackingError(
                f"lake.root {config.lake.root} is not local: set mlflow.tracking_uri (a tracking server) "
                "and mlflow.artifact_root for this profile"
            )
        (local / "_mlflow").mkdir(parents=True, exist_ok=True)
    tracking = tracking or f"sqlite:///{local / '_mlflow' / 'mlflow.db'}"
    artifacts = artifacts or str(local / "_mlflow" / "artifacts")
    return tracking, artifacts


def configure(config: ClickmlConfig) -> Tracking:
    import mlflow

    tracking_uri, artifact_root = default_uris(config)
    mlflow.set_tracking_uri(tracking_uri)
    registry_uri = config.mlflow.registry_uri or tracking_uri
    mlflow.set_registry_uri(registry_uri)
    name = config.mlflow.experiment
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is None:
        if artifact_root is None:  # the tracking server's default artifact root
            experiment_id = mlflow.create_experiment(name)
        else:
            location = artifact_root if "://" in artifact_root else Path(artifact_root).as_uri()
            experiment_id = mlflow.create_experiment(name, artifact_location=f"{location.rstrip('/')}/{name}")
        log.info("mlflow: created experiment %s (%s)", name, experiment_id)
    else:
        experiment_id = experiment.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    log.info("mlflow: tracking %s, registry %s, experiment %s", tracking_uri, registry_uri, name)
    return Tracking(tracking_uri, registry_uri, artifact_root, experiment_id)


def log_inprocess_export(model, task: str, name: str, test=None, run_id: str | None = None) -> bool:
    """Binary MLlib models: log their in-process export (`pipelines.serve.export`, what the model
    server scores with, without Spark) as `inprocess/model.json` of the run (`run_id`, default the
    active run: the one the model version is registered from), after checking its P(1) against
    Spark's on up to 2000 rows of `test` (the test split; metric `inprocess_max_abs_diff`).

    Returns whether it was logged. An export that fails, or differs from Spark by more than the
    tolerance, does not fail training: a warning names the model and the reason, and the run's tag
    `inprocess.export` says `failed: <reason>` (the server then cannot load the model in-process).
    Other tasks and deep models (served by PyTorch from their own artifact) log nothing."""
    from pyspark.ml import PipelineModel

    if task != "binary" or not isinstance(model, PipelineModel):
        return False
    import mlflow

    from pipelines.serve.export import TOLERANCE, ExportError, check_parity, export_model
    from pipelines.serve.inprocess import ARTIFACT

    client = mlflow.MlflowClient()
    run_id = run_id or mlflow.active_run().info.run_id
    try:
        exported = export_model(model)
        if test is not None:
            difference, rows = check_parity(model, exported, test)
            if not difference <= TOLERANCE:
                raise ExportError(f"its scores differ from Spark's by up to {difference:.3g} on {rows} test rows "
                                  f"(tolerance {TOLERANCE})")
            client.log_metric(run_id, "inprocess_max_abs_diff", difference)
    except Exception as exc:  # any failure (py4j included) is reported, never fatal to training
        log.warning("model %s: no in-process export for serving: %s: %s", name, type(exc).__name__, exc)
        client.set_tag(run_id, "inprocess.export", f"failed: {type(exc).__name__}: {exc}"[:4000])
        return False
    client.log_dict(run_id, exported, ARTIFACT)
    client.set_tag(run_id, "inprocess.export", ARTIFACT)
    log.info("model %s: in-process export logged (%s)", name, ARTIFACT)
    return True


def log_spark_model(model, signature, example, pip_requirements: list[str]):
    """`mlflow.spark.log_model(model, artifact_path="model", ...)` without loading the model back.

    validate_serving_input=False asks MLflow not to load the logged model as a pyfunc and score the
    input example (`models:/...@champion` scoring is exercised by the promotion instead). MLflow
    3.17's spark flavor takes the argument but drops it on its path for a local artifact store,
    which calls `Model._log_v2` without it: the check cost ~2 s a model in the session that trained
    it (py-spy of the demo, 2026-12-07). On that path this calls `Model._log_v2` itself, as the
    flavor does, with the argument; other artifact stores (S3, HDFS) go through the flavor, which
    there writes the model with Spark and does not load it back (unless that write fails and it
    falls back to `Model._log_v2`, check included).
    """
    import mlflow
    import mlflow.spark
    from mlflow.environment_variables import MLFLOW_DFS_TMP
    from mlflow.models import Model
    from mlflow.utils.uri import is_local_uri
    from pyspark.ml import PipelineModel

    arguments = {"signature": signature, "input_example": example, "pip_requirements": pip_requirements}
    if not is_local_uri(mlflow.get_artifact_uri()) or not hasattr(Model, "_log_v2"):
        return mlflow.spark.log_model(model, artifact_path="model", validate_serving_input=False, **arguments)
    if not isinstance(model, PipelineModel):  # as the flavor does: it saves PipelineModels only
        model = PipelineModel([model])
    return Model._log_v2(artifact_path="model", flavor=mlflow.spark, spark_model=model, dfs_tmpdir=MLFLOW_DFS_TMP.get(),
                         validate_serving_input=False, **arguments)


def git_commit(project_root: str) -> str:
    """The project's git commit (with `-dirty` when the tree has changes), or `unknown`."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=project_root, capture_output=True, text=True, timeout=10, check=False)
        if head.returncode != 0:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=project_root,
                               capture_output=True, text=True, timeout=10, check=False)
        return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
