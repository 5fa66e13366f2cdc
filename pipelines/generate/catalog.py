"""The product catalogue: Zipf popularity, categories, brands and prices.

A product is its index 0..products-1, which is also its popularity rank (0 = most viewed).
Category, brand and price are deterministic functions of (seed, product index), so events carry
them without a join and `catalog()` rebuilds the same table on its own.
"""

from __future__ import annotations

import math

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from pipelines.config.generator import GeneratorConfig
from pipelines.generate import random as rnd

# (category code, relative share of products, median price in USD, brands)
CATEGORIES: tuple[tuple[str, float, float, tuple[str, ...]], ...] = (
    ("electronics.smartphone", 0.16, 320.0, ("samsung", "apple", "xiaomi", "huawei", "oppo")),
    ("electronics.audio.headphone", 0.08, 60.0, ("sony", "jbl", "apple", "sennheiser")),
    ("electronics.video.tv", 0.06, 480.0, ("samsung", "lg", "sony", "tcl")),
    ("computers.notebook", 0.08, 750.0, ("lenovo", "hp", "asus", "acer", "apple")),
    ("computers.peripherals.mouse", 0.06, 25.0, ("logitech", "razer", "hp")),
    ("appliances.kitchen.refrigerators", 0.06, 620.0, ("lg", "samsung", "bosch", "whirlpool")),
    ("appliances.kitchen.kettle", 0.06, 30.0, ("tefal", "philips", "bosch")),
    ("apparel.shoes", 0.14, 85.0, ("nike", "adidas", "puma", "reebok")),
    ("furniture.living_room.sofa", 0.06, 520.0, ("ikea", "ashley", "wayfair")),
    ("sport.bicycle", 0.06, 450.0, ("trek", "giant", "cube")),
    ("kids.toys", 0.10, 35.0, ("lego", "hasbro", "mattel")),
    ("construction.tools.drill", 0.08, 95.0, ("bosch", "makita", "dewalt")),
)
PRICE_SIGMA = 0.45
"""Log-scale spread of prices inside a category."""
MIN_PRICE = 0.99


def zipf_rank(u: Column, products: int, exponent: float) -> Column:
    """Popularity rank 0..products-1 with P(rank r) ~ (r+1)^-exponent, by inverse CDF.

    The continuous power law on [1, N+1) is inverted and floored, which is close to the discrete
    Zipf law and needs no table: x = (1 + u((N+1)^(1-s) - 1))^(1/(1-s)), or (N+1)^u for s = 1.
    """
    n1 = float(products + 1)
    if abs(exponent - 1.0) < 1e-9:
        x = F.pow(F.lit(n1), u)
    else:
        a = 1.0 - exponent
        x = F.pow(F.lit(1.0) + u * F.lit(n1**a - 1.0), F.lit(1.0 / a))
    rank = F.floor(x).cast("long") - F.lit(1)
    return F.least(F.greatest(rank, F.lit(0).cast("long")), F.lit(products - 1).cast("long"))


def zipf_probabilities(products: int, exponent: float) -> list[float]:
    """Exact probabilities of each rank under `zipf_rank` (for tests and documentation)."""
    n1 = float(products + 1)

    def cdf(x: float) -> float:
        if abs(exponent - 1.0) < 1e-9:
            return math.log(x) / math.log(n1)
        a = 1.0 - exponent
        return (x**a - 1.0) / (n1**a - 1.0)

    return [cdf(r + 2.0) - cdf(r + 1.0) for r in range(products)]


def product_id(product: Column) -> Column:
    """The product's string id, e.g. `p000042`."""
    return F.format_string("p%06d", product)


def category_index(seed: int, product: Column) -> Column:
    """Index into CATEGORIES of a product."""
    return rnd.choice_index(rnd.uniform(seed, "category", product), [c[1] for c in CATEGORIES])


def category_name(index: Column) -> Column:
    """The category code of a category index, e.g. `electronics.smartphone`."""
    return F.element_at(F.array(*[F.lit(c[0]) for c in CATEGORIES]), index + 1)


def category(seed: int, product: Column) -> Column:
    """The product's category code."""
    return category_name(category_index(seed, product))


def brand(seed: int, product: Column, index: Column | None = None) -> Column:
    """A brand of the product's category (the first brands of a list are the more frequent).
    `index` is the product's category index when already computed."""
    index = category_index(seed, product) if index is None else index
    lists = F.array(*[F.array(*[F.lit(b) for b in c[3]]) for c in CATEGORIES])
    brands = F.element_at(lists, index + 1)
    u = rnd.uniform(seed, "brand", product)
    # u^2 favours the first brands of the list: a mild brand concentration.
    pick = F.floor(F.pow(u, F.lit(2.0)) * F.size(brands)).cast("int") + 1
    return F.element_at(brands, pick)


def base_price(seed: int, product: Column, index: Column | None = None) -> Column:
    """List price in USD: lognormal around the category's median, rounded to cents."""
    index = category_index(seed, product) if index is None else index
    medians = F.array(*[F.lit(math.log(c[2])) for c in CATEGORIES])
    log_median = F.element_at(medians, index + 1)
    price = F.exp(log_median + F.lit(PRICE_SIGMA) * rnd.normal(seed, "price", product))
    return F.greatest(F.round(price, 2), F.lit(MIN_PRICE))


def price(seed: int, product: Column, factor: Column | float = 1.0, index: Column | None = None) -> Column:
    """Price in USD after a (drift) factor, rounded to cents."""
    base = base_price(seed, product, index)
    if not isinstance(factor, Column) and float(factor) == 1.0:
        return base
    factor_col = factor if isinstance(factor, Column) else F.lit(float(factor))
    return F.greatest(F.round(base * factor_col, 2), F.lit(MIN_PRICE))


def catalog(spark: SparkSession, config: GeneratorConfig) -> DataFrame:
    """The catalogue as a table: product_id, popularity_rank, category, brand, price (before drift)."""
    seed = config.seed
    product = F.col("id")
    indexed = spark.range(config.products).select(product, category_index(seed, product).alias("category_index"))
    index = F.col("category_index")
    return indexed.select(
        product_id(product).alias("product_id"),
        product.alias("popularity_rank"),
        category_name(index).alias("category"),
        brand(seed, product, index).alias("brand"),
        base_price(seed, product, index).alias("price"),
    )
