"""Results under an S3 lakehouse root (moto on loopback): the JSON summary lands there, no Data Docs."""

from __future__ import annotations

import json

import pytest

from pipelines.validate import validate_dataframe
from pipelines.validate.results import results_root
from tests.conftest import CONF_DIR, make_config

pytestmark = pytest.mark.s3


def test_a_remote_results_root_gets_the_json_summary(spark, s3_server, s3_bucket, tmp_path):
    config = make_config(tmp_path, f"lake.root=s3a://{s3_bucket}/validate", *s3_server.storage_overrides())
    assert results_root(config) == f"s3a://{s3_bucket}/validate/_validation"
    scores = spark.createDataFrame([(i / 10,) for i in range(11)], "probability double")
    result = validate_dataframe(config, scores, CONF_DIR / "expectations" / "predictions.yaml", name="model-x")
    assert result.success and result.data_docs_page is None and result.data_docs_index is None
    assert result.summary_path.startswith(f"s3://{s3_bucket}/validate/_validation/model-x/")
    key = result.summary_path.split(f"s3://{s3_bucket}/", 1)[1]
    summary = json.loads(s3_server.client().get_object(Bucket=s3_bucket, Key=key)["Body"].read())
    assert summary["suite"] == "predictions" and summary["success"] is True and summary["rows"] == 11
