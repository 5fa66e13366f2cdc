"""Random predictions with ties (numpy), as Spark frames via pandas, for the evaluation tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


def binary_data(n: int = 2000, seed: int = 7, decimals: int | None = 2) -> pd.DataFrame:
    """Labels drawn from a latent probability; scores are a noisy, rounded (tied) view of it.

    Includes exact 0.0 and 1.0 scores (log-loss clipping) and a weight column.
    """
    rng = np.random.default_rng(seed)
    latent = rng.beta(2.0, 5.0, n)
    label = (rng.random(n) < latent).astype("int64")
    score = np.clip(latent + rng.normal(0.0, 0.15, n), 0.0, 1.0)
    if decimals is not None:
        score = np.round(score, decimals)
    weight = rng.choice([0.5, 1.0, 2.0, 3.0], n)
    return pd.DataFrame({"label": label, "probability_1": score, "weight": weight})


@pytest.fixture(scope="module")
def binary_pdf() -> pd.DataFrame:
    return binary_data()


@pytest.fixture(scope="module")
def binary_df(spark, binary_pdf):
    df = spark.createDataFrame(binary_pdf).cache()
    yield df
    df.unpersist()
