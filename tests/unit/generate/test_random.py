"""Hash-based randomness: ranges, moments, partition independence, choice weights."""

from __future__ import annotations

import math

import pytest
from pyspark.sql import functions as F

from pipelines.generate import random as rnd

N = 20_000


def test_uniform_is_in_unit_interval_with_mean_one_half(spark):
    row = spark.range(N).select(rnd.uniform(7, "u", F.col("id")).alias("u")).agg(
        F.min("u").alias("lo"), F.max("u").alias("hi"), F.avg("u").alias("mean"), F.variance("u").alias("var")
    ).first()
    assert 0.0 <= row.lo and row.hi < 1.0
    assert row.mean == pytest.approx(0.5, abs=0.01)
    assert row.var == pytest.approx(1 / 12, abs=0.005)


def test_draws_do_not_depend_on_partitioning_and_change_with_seed_and_salt(spark):
    def draws(partitions, seed=7, salt="u"):
        df = spark.range(0, 500, 1, partitions).select("id", rnd.uniform(seed, salt, F.col("id")).alias("u"))
        return dict(df.collect())

    one = draws(1)
    assert one == draws(4)
    assert one != draws(1, seed=8)
    assert one != draws(1, salt="v")


def test_normal_has_zero_mean_and_unit_variance(spark):
    row = spark.range(N).select(rnd.normal(3, "z", F.col("id")).alias("z")).agg(
        F.avg("z").alias("mean"), F.stddev("z").alias("sd"), F.avg((F.col("z") > 1.96).cast("double")).alias("tail")
    ).first()
    assert row.mean == pytest.approx(0.0, abs=0.03)
    assert row.sd == pytest.approx(1.0, abs=0.03)
    assert row.tail == pytest.approx(0.025, abs=0.006)


def test_choice_follows_weights_and_never_picks_zero_weights(spark):
    weights = [0.5, 0.0, 0.3, 0.2, 0.0]
    values = ["a", "b", "c", "d", "e"]
    counts = dict(
        spark.range(N)
        .select(rnd.choice(rnd.uniform(1, "c", F.col("id")), values, weights).alias("v"))
        .groupBy("v")
        .count()
        .collect()
    )
    assert set(counts) == {"a", "c", "d"}
    for value, weight in zip(values, weights):
        if weight:
            assert counts[value] / N == pytest.approx(weight, abs=0.015)


def test_choice_index_on_hand_made_uniforms(spark):
    df = spark.createDataFrame([(0.0,), (0.099,), (0.1,), (0.55,), (0.999,)], "u double")
    got = [r.i for r in df.select(rnd.choice_index(F.col("u"), [1, 0, 4, 5]).alias("i")).collect()]
    assert got == [0, 0, 2, 3, 3]


def test_geometric_mean_and_exponential_mean(spark):
    row = spark.range(N).select(
        rnd.geometric(rnd.uniform(1, "g", F.col("id")), 2.5).alias("g"),
        rnd.exponential(rnd.uniform(1, "e", F.col("id")), 4.0).alias("e"),
    ).agg(F.avg("g").alias("g"), F.min("g").alias("gmin"), F.avg("e").alias("e")).first()
    assert row.gmin == 0
    assert row.g == pytest.approx(2.5, rel=0.05)
    assert row.e == pytest.approx(4.0, rel=0.05)


def test_sigmoid_and_ids(spark):
    row = spark.range(1).select(
        rnd.sigmoid(F.lit(0.7)).alias("s"),
        rnd.hex16(1, "h", F.lit(5)).alias("h"),
        rnd.uuid_string(1, "id", F.lit(5)).alias("uuid"),
    ).first()
    assert row.s == pytest.approx(1 / (1 + math.exp(-0.7)))
    assert len(row.h) == 16 and int(row.h, 16) >= 0
    parts = row.uuid.split("-")
    assert [len(p) for p in parts] == [8, 4, 4, 4, 12]


def test_cumulative_rejects_bad_weights():
    assert rnd.cumulative([1, 1, 2]) == [0.25, 0.5, 1.0]
    with pytest.raises(ValueError):
        rnd.cumulative([0, 0])
    with pytest.raises(ValueError):
        rnd.cumulative([1, -1, 3])
