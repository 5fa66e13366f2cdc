"""Checks and column expressions shared by the evaluators; every error names the table and column."""

from __future__ import annotations

from pyspark.ml.functions import vector_to_array
from pyspark.ml.linalg import VectorUDT
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import BooleanType, DataType, NumericType, StringType


class EvaluationInputError(ValueError):
    """Predictions that cannot be evaluated: missing or mistyped column, no rows, invalid values."""

    def __init__(self, table: str, message: str):
        self.table = table
        super().__init__(f"{table}: {message}")


def col(name: str) -> Column:
    """A column by its exact name, even one with dots or spaces in it."""
    return F.col("`" + name.replace("`", "``") + "`")


def column_type(df: DataFrame, column: str, table: str, role: str) -> DataType:
    """The column's data type; a clear error when it is missing."""
    if column not in df.columns:
        raise EvaluationInputError(
            table, f"no {role} column {column!r} (columns: {', '.join(df.columns) or 'none'})"
        )
    return df.schema[column].dataType


def numeric(df: DataFrame, column: str, table: str, role: str) -> Column:
    """A numeric (or boolean) column as double."""
    dtype = column_type(df, column, table, role)
    if not isinstance(dtype, (NumericType, BooleanType)):
        raise EvaluationInputError(table, f"{role} column {column!r} must be numeric, got {dtype.simpleString()}")
    return col(column).cast("double")


def binary_label(df: DataFrame, column: str, table: str) -> Column:
    """The label as double: numeric, boolean, or a string holding a number ('0', '1'); else null."""
    dtype = column_type(df, column, table, "label")
    if isinstance(dtype, (NumericType, BooleanType)):
        return col(column).cast("double")
    if isinstance(dtype, StringType):
        return col(column).try_cast("double")
    raise EvaluationInputError(table, f"label column {column!r} must be numeric or boolean, got {dtype.simpleString()}")


def positive_probability(df: DataFrame, column: str, table: str) -> Column:
    """P(positive) as double: a numeric column, or element 1 of a Spark ML probability vector."""
    dtype = column_type(df, column, table, "score")
    if isinstance(dtype, VectorUDT):
        # Spark ML's `probability` vector: [P(0), P(1)]; a shorter vector yields null (reported as invalid).
        return F.try_element_at(vector_to_array(col(column)), F.lit(2))
    if isinstance(dtype, NumericType):
        return col(column).cast("double")
    raise EvaluationInputError(
        table,
        f"score column {column!r} must be a probability (double) or a probability vector, got {dtype.simpleString()}",
    )


def weight(df: DataFrame, column: str | None, table: str) -> Column:
    """The sample weight as double, or 1.0 for every row when no weight column is given."""
    return F.lit(1.0) if column is None else numeric(df, column, table, "weight")
