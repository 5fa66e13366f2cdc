"""MLflow set-up: the embedded default (SQLite + local artifacts under the lakehouse) or a server.

`configure(config)` points the MLflow client at the configured store and returns where it is, so
the stage can print the command that opens the UI on these runs.
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
