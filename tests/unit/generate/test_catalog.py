"""Catalogue: Zipf ranks, categories, brands, prices."""

from __future__ import annotations

import math

import pytest
from pyspark.sql import functions as F

from pipelines.config.generator import GeneratorConfig
from pipelines.generate import catalog
from pipelines.generate import random as rnd


def test_zipf_rank_follows_its_probabilities(spark):
    products, n, exponents = 50, 40_000, (0.8, 1.0, 1.3)
    u = rnd.uniform(1, "p", F.col("id"))
    ranks = spark.range(n).select(
        *[catalog.zipf_rank(u, products, s).alias(f"r{i}") for i, s in enumerate(exponents)]
    )
    histograms = ranks.select(*[F.collect_list(f"r{i}").alias(f"r{i}") for i in range(len(exponents))]).first()
    for i, exponent in enumerate(exponents):
        values = histograms[f"r{i}"]
        counts = {r: values.count(r) for r in set(values)}
        assert min(counts) >= 0 and max(counts) <= products - 1
        probabilities = catalog.zipf_probabilities(products, exponent)
        assert sum(probabilities) == pytest.approx(1.0)
        for rank in (0, 1, 5, 20):
            expected = probabilities[rank] * n
            assert counts.get(rank, 0) == pytest.approx(expected, abs=4 * math.sqrt(expected) + 5)
        assert counts[0] > counts[1] > counts[5] > counts.get(40, 0)


def test_catalog_is_deterministic_and_consistent(spark):
    config = GeneratorConfig(products=300, seed=5)
    rows = catalog.catalog(spark, config).collect()
    assert rows == catalog.catalog(spark, config).collect()
    assert [r.product_id for r in rows[:3]] == ["p000000", "p000001", "p000002"]
    brands = {name: set(brand_list) for name, _, _, brand_list in catalog.CATEGORIES}
    for row in rows:
        assert row.brand in brands[row.category]
        assert row.price >= catalog.MIN_PRICE and round(row.price, 2) == row.price
    assert len({r.category for r in rows}) >= 8
    other_seed = catalog.catalog(spark, GeneratorConfig(products=300, seed=6)).collect()
    assert [r.price for r in rows] != [r.price for r in other_seed]


def test_price_median_tracks_the_category(spark):
    config = GeneratorConfig(products=4000, seed=1)
    medians = dict(
        catalog.catalog(spark, config)
        .groupBy("category")
        .agg(F.percentile_approx("price", 0.5).alias("median"))
        .collect()
    )
    for name, _, median, _ in catalog.CATEGORIES:
        assert medians[name] == pytest.approx(median, rel=0.25)


def test_price_factor(spark):
    product = F.col("id")
    row = spark.range(1, 2).select(
        catalog.base_price(1, product).alias("base"), catalog.price(1, product, 1.5).alias("drifted")
    ).first()
    assert row.drifted == pytest.approx(round(row.base * 1.5, 2))
