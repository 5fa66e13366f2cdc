"""The Spark side of drift monitoring: columns cleaned, values mapped to cells, cells counted.

The reference profile and the current data are counted by the same code, so both sides fall into
identical cells. Everything here returns bounded aggregates: cell counts (at most a few cells per
bin, grid point or category), never rows.

Cells of one *counter* (one feature and one purpose):

* PSI bins (`CellCounter.bins`): the index of the bin [e_i, e_{i+1}) holding the value (the last bin is
  closed, as in Spark's `Bucketizer`), or -1 for a missing value (null or NaN).
* KS grid (`CellCounter.grid`): 2 * le + tie, where le = #{grid points <= x} and tie = 1 iff x equals a
  grid point; null for a missing value (KS ignores missing values). With le and tie per value,
  F(p_j) and F(p_j-) at every grid point p_j are exact (see `pipelines.monitor.drift.ks_test`).
* categories (`CellCounter.categories`): the index of the reference category, `len(categories)` for any
  other value (`__other__`), `len(categories) + 1` for null (`__null__`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from pyspark.ml.feature import Bucketizer
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import BooleanType, NumericType

INF = float("inf")


class MonitorInputError(ValueError):
    """A frame that cannot be profiled or compared: a missing or mistyped feature column, a bad profile."""

    def __init__(self, feature: str, message: str):
        self.feature = feature
        super().__init__(f"feature {feature!r}: {message}")


def col(name: str) -> Column:
    """A column by its exact name, even one with dots or spaces in it."""
    return F.col("`" + name.replace("`", "``") + "`")


def numeric_column(frame: DataFrame, name: str) -> Column:
    """The feature as double, NaN turned into null (both count as missing), -0.0 into 0.0.

    (Bucketizer's binary search orders -0.0 before 0.0; numpy and SQL equality do not.)
    """
    _require(frame, name)
    dtype = frame.schema[name].dataType
    if not isinstance(dtype, (NumericType, BooleanType)):
        raise MonitorInputError(name, f"a numeric feature must have a numeric type, got {dtype.simpleString()}")
    value = col(name).cast("double")
    return (F.when(F.isnan(value), F.lit(None).cast("double"))
            .when(value == 0, F.lit(0.0))
            .otherwise(value))


def category_column(frame: DataFrame, name: str) -> Column:
    """The feature as string (categories are compared by their string form)."""
    _require(frame, name)
    return col(name).cast("string")


def _require(frame: DataFrame, name: str) -> None:
    if name not in frame.columns:
        raise MonitorInputError(name, f"no such column (columns: {', '.join(frame.columns) or 'none'})")


class CellCounter:
    """Collects counters (one cell expression each) and counts all of them in one Spark job."""

    def __init__(self, frame: DataFrame):
        self._frame = frame
        self._cells: list[Column] = []
        self._buckets: list[tuple[Column, list[float]]] = []  # (value, Bucketizer splits)

    def bins(self, value: Column, edges: Sequence[float]) -> int:
        """Counts PSI bins of `value` over `edges` (-inf, inner edges..., +inf); returns the counter id."""
        bucket = self._bucket(value, edges)
        cell = F.when(value.isNull(), F.lit(-1)).otherwise(bucket)
        return self._add(cell)

    def grid(self, value: Column, points: Sequence[float]) -> int:
        """Counts KS cells (2 * le + tie) of `value` against the strictly increasing finite `points`."""
        k = len(points)
        le = self._bucket(value, [-INF, *points, INF])
        ge = self._bucket(-value, [-INF, *(-p for p in reversed(points)), INF])
        # le = #{p <= x}, ge = #{p >= x}; #{p < x} = k - ge, so x is a grid point iff le + ge - k == 1.
        cell = 2 * le + (le + ge - F.lit(k))
        return self._add(F.when(value.isNull(), F.lit(None).cast("int")).otherwise(cell))

    def categories(self, value: Column, categories: Sequence[str]) -> int:
        """Counts reference categories, `__other__` and `__null__` of the string `value`."""
        k = len(categories)
        if categories:
            index = F.create_map(*(x for i, c in enumerate(categories) for x in (F.lit(c), F.lit(i))))
            known = F.coalesce(F.try_element_at(index, value), F.lit(k))
        else:
            known = F.lit(k)
        return self._add(F.when(value.isNull(), F.lit(k + 1)).otherwise(known))

    def count(self) -> dict[int, dict[int, int]]:
        """Counts per counter id and cell, in one job (a map-side combined group-by)."""
        if not self._cells:
            return {}
        frame = self._frame
        if self._buckets:
            inputs = [f"__monitor_in_{i}" for i in range(len(self._buckets))]
            frame = frame.select("*", *(value.alias(name) for (value, _), name in zip(self._buckets, inputs)))
            bucketizer = Bucketizer(inputCols=inputs, outputCols=[_bucket_name(i) for i in range(len(inputs))],
                                    splitsArray=[splits for _, splits in self._buckets], handleInvalid="keep")
            frame = bucketizer.transform(frame)
        pairs = F.array(*(F.struct(F.lit(i).alias("counter"), c.cast("int").alias("cell"))
                          for i, c in enumerate(self._cells)))
        exploded = frame.select(F.explode(pairs).alias("p")).select("p.counter", "p.cell").where(F.col("cell").isNotNull())
        counts: dict[int, dict[int, int]] = defaultdict(dict)
        # Bounded: one row per (counter, cell), i.e. at most bins + 1, 2 * (grid points + 1) or
        # categories + 2 rows per counter, whatever the number of input rows.
        for row in exploded.groupBy("counter", "cell").count().collect():
            counts[row["counter"]][row["cell"]] = row["count"]
        return {i: dict(counts.get(i, {})) for i in range(len(self._cells))}

    def _add(self, cell: Column) -> int:
        self._cells.append(cell)
        return len(self._cells) - 1

    def _bucket(self, value: Column, splits: Sequence[float]) -> Column:
        """The Bucketizer index of `value` (null stays null); one bucket (0) when there are no inner splits."""
        if len(splits) < 3:
            return F.lit(0)
        self._buckets.append((value, [float(s) for s in splits]))
        return F.col(_bucket_name(len(self._buckets) - 1)).cast("int")


def _bucket_name(i: int) -> str:
    return f"__monitor_bucket_{i}"


def dense(counts: dict[int, int], size: int, offset: int = 0) -> list[int]:
    """Counts of cells offset..offset+size-1 as a list (absent cells count 0)."""
    return [int(counts.get(offset + i, 0)) for i in range(size)]
