"""Results under an S3 lakehouse root (moto on loopback): the JSON summary lands there, no Data Docs."""

from __future__ import annotations

import json

import pytest

from pipelines.validate import validate_dataframe
from pipelines.validate.results import results_root
from tests.conftest import CONF_DIR, make_config
from tests.integration.lake.test_s3 import BUCKET, s3_endpoint  # noqa: F401  (the moto server fixture)

boto3 = pytest.importorskip("boto3", reason="boto3 is installed by the dev extra")

pytestmark = pytest.mark.s3


def test_a_remote_results_root_gets_the_json_summary(spark, s3_endpoint, tmp_path):  # noqa: F811
    config = make_config(
        tmp_path,
        f"lake.root=s3a://{BUCKET}/validate",
        f"lake.storage.endpoint={s3_endpoint}",
        "lake.storage.region=us-east-1",
        "lake.storage.access_key_id=testing",
        "lake.storage.secret_access_key=testing",
        "lake.storage.allow_http=true",
    )
    assert results_root(config) == f"s3a://{BUCKET}/validate/_validation"
    scores = spark.createDataFrame([(i / 10,) for i in range(11)], "probability double")
    result = validate_dataframe(config, scores, CONF_DIR / "expectations" / "predictions.yaml", name="model-x")
    assert result.success and result.data_docs_page is None and result.data_docs_index is None
    assert result.summary_path.startswith(f"s3://{BUCKET}/validate/_validation/model-x/")
    client = boto3.client("s3", endpoint_url=s3_endpoint, aws_access_key_id="testing",
                          aws_secret_access_key="testing", region_name="us-east-1")
    key = result.summary_path.split(f"s3://{BUCKET}/", 1)[1]
    summary = json.loads(client.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    assert summary["suite"] == "predictions" and summary["success"] is True and summary["rows"] == 11
