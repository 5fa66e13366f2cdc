"""MLflow locations for a config: embedded defaults, a tracking server, a remote lakehouse."""

from __future__ import annotations

import pytest

from pipelines.train.tracking import TrackingError, default_uris
from tests.conftest import make_config


def test_a_local_lakehouse_gets_sqlite_and_artifacts_beside_it(tmp_path):
    tracking, artifacts = default_uris(make_config(tmp_path))
    assert tracking == f"sqlite:///{tmp_path / 'lakehouse' / '_mlflow' / 'mlflow.db'}"
    assert artifacts == str(tmp_path / "lakehouse" / "_mlflow" / "artifacts")


def test_a_tracking_server_without_an_artifact_root_keeps_the_servers_default(tmp_path):
    # The s3-standalone profile: lakehouse on S3, MLflow server with its artifact root in the
    # bucket. This raised "lake.root ... is not local" and the demo failed on the stack.
    config = make_config(tmp_path, "lake.root=s3a://bucket/lake", "mlflow.tracking_uri=http://127.0.0.1:5000")
    assert default_uris(config) == ("http://127.0.0.1:5000", None)


def test_a_remote_lakehouse_without_a_tracking_server_is_an_error_naming_the_keys(tmp_path):
    with pytest.raises(TrackingError, match="lake.root s3a://bucket/lake is not local: set mlflow.tracking_uri"):
        default_uris(make_config(tmp_path, "lake.root=s3a://bucket/lake"))
    # a database tracking store still needs an artifact root
    with pytest.raises(TrackingError):
        default_uris(make_config(tmp_path, "lake.root=s3a://bucket/lake", f"mlflow.tracking_uri=sqlite:///{tmp_path}/m.db"))
