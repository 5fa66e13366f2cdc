"""Deterministic randomness as Spark Column expressions.

Every random number is a pure function of (seed, salt, entity keys): Spark's `xxhash64` of those
values, mapped to a uniform in [0, 1). Nothing depends on partitioning, task order or the
cluster, so the same seed gives the same data on a laptop and on a cluster, and any row can be
recomputed alone. Salts name the purpose of a draw ("z", "device", ...), so draws for different
purposes of the same entity are independent.
"""

from __future__ import annotations

import math
from typing import Sequence

from pyspark.sql import Column
from pyspark.sql import functions as F

_TWO_POW_53 = float(2**53)


def _key(value: Column | int | str) -> Column:
    if isinstance(value, Column):
        return value
    return F.lit(value)


def hash64(seed: int, salt: str, *keys: Column | int) -> Column:
    """A 64-bit hash (long) of the seed, the salt and the keys (integral keys are cast to long)."""
    parts = [F.lit(int(seed)).cast("long"), F.lit(salt)]
    for key in keys:
        column = _key(key)
        parts.append(column if isinstance(key, str) else column.cast("long"))
    return F.xxhash64(*parts)


def uniform(seed: int, salt: str, *keys: Column | int) -> Column:
    """A uniform double in [0, 1): the top 53 bits of `hash64` divided by 2^53."""
    return F.shiftrightunsigned(hash64(seed, salt, *keys), 11).cast("double") / F.lit(_TWO_POW_53)


def normal(seed: int, salt: str, *keys: Column | int) -> Column:
    """A standard normal draw (Box-Muller on two independent uniforms)."""
    u1 = uniform(seed, salt + ":bm1", *keys)
    u2 = uniform(seed, salt + ":bm2", *keys)
    return F.sqrt(F.lit(-2.0) * F.log(F.lit(1.0) - u1)) * F.cos(F.lit(2.0 * math.pi) * u2)


def exponential(u: Column, mean: float | Column) -> Column:
    """An exponential draw with the given mean from a uniform `u` in [0, 1)."""
    return -_key(mean) * F.log(F.lit(1.0) - u)


def geometric(u: Column, mean: Column | float) -> Column:
    """Number of failures before the first success (0, 1, 2, ...) with the given mean > 0."""
    success = F.lit(1.0) / (F.lit(1.0) + _key(mean))
    return F.floor(F.log(F.lit(1.0) - u) / F.log(F.lit(1.0) - success)).cast("int")


def sigmoid(x: Column) -> Column:
    """The logistic function 1 / (1 + e^-x)."""
    return F.lit(1.0) / (F.lit(1.0) + F.exp(-x))


def cumulative(weights: Sequence[float]) -> list[float]:
    """Normalised cumulative weights (the last one is exactly 1.0)."""
    total = float(sum(weights))
    if total <= 0 or any(w < 0 for w in weights):
        raise ValueError(f"weights must be >= 0 and not all zero: {list(weights)}")
    bounds, running = [], 0.0
    for weight in weights:
        running += weight
        bounds.append(running / total)
    bounds[-1] = 1.0
    return bounds


def choice_index(u: Column, weights: Sequence[float]) -> Column:
    """The index i (int) with probability weights[i] / sum(weights), by inverse CDF of `u`.

    Counts the cumulative bounds at or below `u` (u appears once in the expression, so the
    plan stays small however many categories there are).
    """
    bounds = cumulative(weights)[:-1]
    if not bounds:
        return F.lit(0)
    return F.size(F.filter(F.array(*[F.lit(b) for b in bounds]), lambda b: b <= u))


def choice(u: Column, values: Sequence[str], weights: Sequence[float]) -> Column:
    """One of `values` with probability proportional to `weights`, by inverse CDF of `u`."""
    if len(values) != len(weights):
        raise ValueError("values and weights must have the same length")
    return F.element_at(F.array(*[F.lit(v) for v in values]), choice_index(u, weights) + 1)


def hex16(seed: int, salt: str, *keys: Column | int) -> Column:
    """A 16-character lower-case hex string of `hash64` (64 random bits)."""
    return F.lower(F.lpad(F.hex(hash64(seed, salt, *keys)), 16, "0"))


def uuid_from_hex(high: Column, low: Column) -> Column:
    """A UUID-formatted string (8-4-4-4-12) from two 16-character hex strings."""
    return F.concat_ws(
        "-",
        F.substring(high, 1, 8),
        F.substring(high, 9, 4),
        F.substring(high, 13, 4),
        F.substring(low, 1, 4),
        F.substring(low, 5, 12),
    )


def uuid_string(seed: int, salt: str, *keys: Column | int) -> Column:
    """A UUID-formatted string (8-4-4-4-12 hex digits) from 128 hash bits."""
    return uuid_from_hex(hex16(seed, salt + ":hi", *keys), hex16(seed, salt + ":lo", *keys))
