"""The baseline predictor (global mean + regularised biases) and ALS on its residuals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pyspark.ml import PipelineModel

from pipelines.config.models import TrainJobSpec
from pipelines.train import recommend
from pipelines.train.baseline import BiasBaseline
from pipelines.train.data import Dataset
from pipelines.train.errors import ModelSpecError


def _ratings(seed: int = 3) -> pd.DataFrame:
    """Ratings with strong user and item biases, a weak rank-2 interaction and noise; most users
    rate only a few items (3 to 8), as in real rating tables."""
    rng = np.random.default_rng(seed)
    users, items = 300, 40
    b_u, b_i = rng.normal(0, 0.8, users), rng.normal(0, 0.8, items)
    p, q = rng.normal(0, 0.4, (users, 2)), rng.normal(0, 0.4, (items, 2))
    rows = []
    for u in range(users):
        for i in rng.choice(items, int(rng.integers(3, 9)), replace=False):
            r = 3.0 + b_u[u] + b_i[i] + p[u] @ q[i] + rng.normal(0, 0.3)
            rows.append((f"u{u}", f"i{i}", float(r), "test" if rng.random() < 0.2 else "train"))
    return pd.DataFrame(rows, columns=["user_id", "product_id", "rating", "split"])


def test_biases_match_a_direct_computation(spark):
    frame = _ratings()
    train = frame[frame.split == "train"]
    model = BiasBaseline(userCol="user_id", itemCol="product_id", ratingCol="rating", userReg=10.0, itemReg=25.0).fit(
        spark.createDataFrame(train))
    mu = train.rating.mean()
    items = train.groupby("product_id").rating.agg(lambda r: (r - mu).sum() / (25.0 + len(r)))
    with_bi = train.assign(b_i=train.product_id.map(items))
    users = with_bi.groupby("user_id").apply(lambda g: (g.rating - mu - g.b_i).sum() / (10.0 + len(g)), include_groups=False)
    assert model.mu == pytest.approx(mu, abs=1e-12)
    got_items = {r["product_id"]: r["b_i"] for r in model.items.collect()}  # bounded: 40 items
    got_users = {r["user_id"]: r["b_u"] for r in model.users.collect()}  # bounded: 80 users
    assert got_items == pytest.approx(items.to_dict(), abs=1e-9)
    assert got_users == pytest.approx(users.to_dict(), abs=1e-9)
    # An unseen user and item get the global mean.
    unseen = spark.createDataFrame([("nobody", "nothing")], "user_id string, product_id string")
    assert model.transform(unseen).first()["__baseline"] == pytest.approx(mu)


@pytest.mark.slow
def test_als_on_the_baseline_residuals_beats_plain_als_and_saves(spark, tmp_path):
    frame = spark.createDataFrame(_ratings())
    splits = {s: frame.where(frame.split == s) for s in ("train", "test")}
    dataset = Dataset("ratings", None, splits)

    def job(params: dict) -> TrainJobSpec:
        return TrainJobSpec.model_validate({
            "data": {"table": "t.r", "split_column": "split"}, "task": "recommendation", "label": "rating",
            "implicit": False, "models": {"als": {"algorithm": "als", "params": params}}})

    def rmse(params: dict, name: str):
        fitted = recommend.fit(dataset, job(params), name, job(params).models["als"])
        return fitted, fitted.evaluation.metrics["rmse"]

    # A user with few ratings: regularised plain ALS shrinks them towards 0, ALS on the baseline's
    # residuals towards mu + b_u + b_i. Measured on this table: plain ALS 0.597 (regParam 0.1),
    # 0.582 (0.3, its best); with the baseline (default bias regularisation) 0.556 at 0.1.
    common = {"rank": 4, "maxIter": 10, "regParam": 0.1}
    plain = min(rmse(common, "plain")[1], rmse({**common, "regParam": 0.3}, "plain 0.3")[1])
    biased, with_baseline = rmse({**common, "baseline": True}, "baseline")
    assert with_baseline < plain - 0.01, (with_baseline, plain)

    path = str(tmp_path / "model")
    biased.model.save(path)
    loaded = PipelineModel.load(path)
    test = splits["test"].withColumnRenamed("rating", "__label")
    before = biased.model.transform(test).select("user_id", "product_id", "prediction").orderBy("user_id", "product_id")
    after = loaded.transform(test).select("user_id", "product_id", "prediction").orderBy("user_id", "product_id")
    # Bounded: the test split of a tiny table.
    np.testing.assert_allclose([r.prediction for r in after.collect()], [r.prediction for r in before.collect()], atol=1e-9)


def test_the_baseline_is_for_explicit_ratings_only():
    implicit = TrainJobSpec.model_validate({"data": {"table": "t.r"}, "task": "recommendation", "label": "s",
                                            "models": {"als": {"algorithm": "als", "params": {"baseline": True}}}})
    with pytest.raises(ModelSpecError, match="baseline: true is for explicit ratings"):
        recommend.als_pipeline(implicit, {"baseline": True}, "als")
    with pytest.raises(ModelSpecError, match="apply with baseline: true"):
        recommend.als_pipeline(implicit, {"userBiasReg": 5}, "als")
