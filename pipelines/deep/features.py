"""Feature encoding of the deep model: fitted with Spark, applied to pandas frames on workers.

Numeric columns are cast to float, nulls imputed with the training mean, and standardised.
Categorical columns are mapped to indices 1..K by a vocabulary of their K most frequent training
values (as strings; at most `max_categories`); index 0 is unknown, rare or null. The same
`FeatureSchema` encodes training shards on the workers and rows in the scoring UDF.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pipelines.deep.errors import DeepParamError


@dataclass(frozen=True)
class FeatureSchema:
    numeric: tuple[str, ...]
    means: tuple[float, ...]
    stds: tuple[float, ...]
    categorical: tuple[str, ...]
    vocabularies: tuple[tuple[str, ...], ...]

    @property
    def columns(self) -> tuple[str, ...]:
        return self.numeric + self.categorical

    @property
    def cardinalities(self) -> tuple[int, ...]:
        """Embedding rows per categorical column: the vocabulary plus the unknown index 0."""
        return tuple(len(v) + 1 for v in self.vocabularies)

    def encode(self, data: pd.DataFrame | pa.Table) -> tuple[np.ndarray, np.ndarray]:
        """(numeric float32 [n, len(numeric)], categorical int64 [n, len(categorical)]).

        `data` is a pandas frame (scoring) or an Arrow table (training chunks, whose string,
        integer, boolean and numeric columns are encoded in Arrow, without Python objects).
        """
        n = len(data) if isinstance(data, pd.DataFrame) else data.num_rows
        numeric = np.zeros((n, len(self.numeric)), dtype=np.float32)
        for i, (column, mean, std) in enumerate(zip(self.numeric, self.means, self.stds)):
            values = float_values(data[column])
            values = np.where(np.isnan(values), mean, values)
            numeric[:, i] = (values - mean) / std
        categorical = np.zeros((n, len(self.categorical)), dtype=np.int64)
        for i, column in enumerate(self.categorical):
            # position in the vocabulary + 1; unknown values and nulls (-1) become index 0
            categorical[:, i] = self._positions(i, data[column]) + 1
        return numeric, categorical

    def _positions(self, i: int, values: pd.Series | pa.ChunkedArray) -> np.ndarray:
        """Each value's position in vocabulary `i` as Spark would spell it as a string, or -1."""
        if isinstance(values, pd.Series):
            if self._integer_vocabularies[i] and pd.api.types.is_float_dtype(values.dtype):
                # An integer column with nulls reaches pandas as floats (Spark's Arrow conversion);
                # spelled as the integers its vocabulary holds ("7", not "7.0")
                integral = values.isna() | (values == np.floor(values))
                if integral.all():
                    values = values.astype("Int64")
            if not (isinstance(values.dtype, pd.StringDtype) and values.dtype.storage == "pyarrow"):
                return self._indexes[i].get_indexer(as_category_strings(values))
            values = pa.chunked_array(pa.array(values))  # pandas' default strings: already Arrow
        kind = values.type
        if (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)
                or pa.types.is_integer(kind) or pa.types.is_boolean(kind)):
            # Arrow spells these as Spark's CAST(x AS STRING) does (`17`, `true`)
            positions = pc.index_in(pc.cast(values, pa.string()), value_set=self._value_sets[i])
            return np.asarray(pc.fill_null(positions, -1), dtype=np.int64)
        return self._indexes[i].get_indexer(as_category_strings(values.to_pandas()))

    @cached_property
    def _integer_vocabularies(self) -> tuple[bool, ...]:
        """Whether each vocabulary holds integers only (Spark spells a double with a '.' or 'E')."""
        return tuple(bool(v) and all(_INTEGER.fullmatch(value) for value in v) for v in self.vocabularies)

    @cached_property
    def _value_sets(self) -> tuple[pa.Array, ...]:
        return tuple(pa.array(list(vocabulary), type=pa.string()) for vocabulary in self.vocabularies)

    @cached_property
    def _indexes(self) -> tuple[pd.Index, ...]:
        """A hash index per vocabulary (built once per process; not part of equality)."""
        return tuple(pd.Index(list(vocabulary), dtype=object) for vocabulary in self.vocabularies)


_INTEGER = re.compile(r"-?[0-9]+")


def float_values(values: pd.Series | pa.ChunkedArray) -> np.ndarray:
    """float64 values; nulls and values that are not numbers are NaN."""
    if not isinstance(values, pd.Series):
        kind = values.type
        if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind) or pa.types.is_boolean(kind):
            return pc.cast(values, pa.float64()).to_numpy()
        values = values.to_pandas()
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def as_category_strings(series: pd.Series) -> pd.Series:
    """Values spelled as Spark's CAST(x AS STRING) spells them (booleans `true`/`false`)."""
    if pd.api.types.is_bool_dtype(series):
        return series.map({True: "true", False: "false"})
    if series.dtype == object:
        return series.map(lambda v: None if v is None else ("true" if v is True else "false" if v is False else str(v)))
    return series.astype("string").astype(object).where(series.notna(), None)


def fit_schema(train: DataFrame, numeric: list[str], categorical: list[str], max_categories: int) -> FeatureSchema:
    """Means, standard deviations and vocabularies from the training rows (Spark aggregates).

    Bounded results only come back to the driver: one row of moments, and at most
    `max_categories` values per categorical column.
    """
    missing = [c for c in (*numeric, *categorical) if c not in train.columns]
    if missing:
        raise DeepParamError(f"feature column(s) {missing} are not in the DataFrame (columns: {', '.join(train.columns)})")
    means: list[float] = []
    stds: list[float] = []
    if numeric:
        aggs = []
        for c in numeric:
            value = F.nanvl(F.col(f"`{c}`").cast("double"), F.lit(None).cast("double"))  # NaN counts as missing
            aggs += [F.mean(value).alias(f"m{len(aggs)}"), F.stddev_pop(value).alias(f"s{len(aggs)}")]
        row = train.agg(*aggs).first()  # bounded: one row
        for i in range(len(numeric)):
            mean, std = row[2 * i], row[2 * i + 1]
            means.append(float(mean) if mean is not None and math.isfinite(mean) else 0.0)
            stds.append(float(std) if std is not None and std > 1e-12 and math.isfinite(std) else 1.0)
    vocabularies = []
    for c in categorical:
        value = F.col(f"`{c}`").cast("string")
        top = (
            train.select(value.alias("v")).where(F.col("v").isNotNull()).groupBy("v").count()
            .orderBy(F.desc("count"), F.asc("v")).limit(max_categories).collect()
        )  # bounded: at most max_categories rows
        vocabularies.append(tuple(r["v"] for r in top))
    return FeatureSchema(tuple(numeric), tuple(means), tuple(stds), tuple(categorical), tuple(vocabularies))
