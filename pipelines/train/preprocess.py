"""Feature preprocessing inside the Spark ML Pipeline, so a saved model scores raw rows.

Numeric features are cast to double, optionally log-transformed (sign(x) * log1p(|x|): logistic
regression by default, see `ModelSpec.numeric_transform`) and imputed (mean of the training rows);
categorical ones (strings and booleans unless configured) are string-indexed with
`handleInvalid="keep"`, so unseen categories and nulls go to an extra index instead of failing. Models that need it (linear
ones) get one-hot encoding and standard scaling; tree models take the indices as categorical
features. Label and weight are not pipeline inputs: scoring rows need neither.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.ml import Transformer
from pyspark.ml.feature import (
    Imputer,
    OneHotEncoder,
    SQLTransformer,
    StandardScaler,
    StringIndexer,
    VectorAssembler,
)
from pyspark.sql import DataFrame

from pipelines.config.models import TrainJobSpec
from pipelines.train.errors import FeatureSpecError

NUMERIC_TYPES = ("tinyint", "smallint", "int", "bigint", "float", "double")
FEATURES = "features"
LABEL = "__label"
WEIGHT = "__weight"




@dataclass(frozen=True)
class FeatureColumns:
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]

    @property
    def all(self) -> tuple[str, ...]:
        return self.numeric + self.categorical


def _quoted(column: str) -> str:
    return "`" + column.replace("`", "``") + "`"


def feature_columns(frame: DataFrame, job: TrainJobSpec, source: str) -> FeatureColumns:
    """The job's numeric and categorical feature columns, checked against the table's schema."""
    types = dict(frame.dtypes)
    reserved = {job.label, job.weight, job.data.split_column, job.data.time_column, *job.exclude} - {None}
    if job.features is not None:
        missing = [c for c in job.features if c not in types]
        if missing:
            raise FeatureSpecError(f"{source}: feature column(s) {missing} not in the table (columns: {', '.join(frame.columns)})")
        chosen = list(job.features)
    else:
        chosen = [c for c in frame.columns if c not in reserved and not c.startswith("__")]
    if job.categorical is not None:
        unknown = [c for c in job.categorical if c not in chosen]
        if unknown:
            raise FeatureSpecError(f"{source}: categorical column(s) {unknown} are not feature columns")
        categorical = [c for c in chosen if c in job.categorical]
    else:
        categorical = [c for c in chosen if types[c] in ("string", "boolean")]
    numeric = [c for c in chosen if c not in categorical]
    bad = [f"{c} ({types[c]})" for c in numeric if types[c] not in NUMERIC_TYPES and not types[c].startswith("decimal")]
    if bad:
        raise FeatureSpecError(
            f"{source}: feature column(s) {', '.join(bad)} are neither numeric nor categorical; "
            "exclude them or list them in categorical"
        )
    if not chosen:
        raise FeatureSpecError(f"{source}: no feature columns left (check features / exclude)")
    return FeatureColumns(tuple(numeric), tuple(categorical))


def log1p_statement(pairs: list[tuple[str, str]]) -> str:
    """The SQLTransformer statement of the signed log transform, (input, output) column pairs: null
    and NaN stay null / NaN (imputed next)."""
    terms = [f"SIGN({_quoted(i)}) * LOG1P(ABS({_quoted(i)})) AS {_quoted(o)}" for i, o in pairs]
    return f"SELECT *, {', '.join(terms)} FROM __THIS__"


def preprocessing_stages(columns: FeatureColumns, one_hot: bool, scale: bool, log_numeric: bool = False) -> list[Transformer]:
    """Stages from raw feature columns to the `features` vector."""
    casts = [f"CAST({_quoted(c)} AS DOUBLE) AS {_quoted(c + '__num')}" for c in columns.numeric]
    casts += [f"CAST({_quoted(c)} AS STRING) AS {_quoted(c + '__str')}" for c in columns.categorical]
    stages: list = [SQLTransformer(statement=f"SELECT *, {', '.join(casts)} FROM __THIS__")]
    inputs: list[str] = []
    if columns.numeric:
        numeric = [c + "__num" for c in columns.numeric]
        if log_numeric:
            logged = [c + "__log" for c in columns.numeric]
            stages.append(SQLTransformer(statement=log1p_statement(list(zip(numeric, logged)))))
            numeric = logged
        imputed = [c + "__imp" for c in columns.numeric]
        stages.append(Imputer(inputCols=numeric, outputCols=imputed, strategy="mean"))
        inputs += imputed
    if columns.categorical:
        indexed = [c + "__idx" for c in columns.categorical]
        stages.append(StringIndexer(
            inputCols=[c + "__str" for c in columns.categorical], outputCols=indexed, handleInvalid="keep",
            stringOrderType="frequencyDesc",
        ))
        if one_hot:
            encoded = [c + "__ohe" for c in columns.categorical]
            stages.append(OneHotEncoder(inputCols=indexed, outputCols=encoded, handleInvalid="keep", dropLast=True))
            inputs += encoded
        else:
            inputs += indexed
    assembled = FEATURES + "__raw" if scale else FEATURES
    stages.append(VectorAssembler(inputCols=inputs, outputCol=assembled, handleInvalid="keep"))
    if scale:
        stages.append(StandardScaler(inputCol=assembled, outputCol=FEATURES, withMean=False, withStd=True))
    return stages


def feature_names(frame: DataFrame, column: str = FEATURES) -> list[str]:
    """Names of the slots of an assembled vector column, from its ML attribute metadata (the
    scaler drops it: the unscaled `<column>__raw` is read when present)."""
    if column + "__raw" in frame.columns:
        column += "__raw"
    meta = frame.schema[column].metadata.get("ml_attr", {})
    slots: dict[int, str] = {}
    for group in meta.get("attrs", {}).values():
        for attr in group:
            slots[attr["idx"]] = attr.get("name", f"f{attr['idx']}")
    size = meta.get("num_attrs", len(slots))
    return [_readable(slots.get(i, f"f{i}")) for i in range(size)]


def _readable(name: str) -> str:
    for suffix in ("__imp", "__idx", "__ohe", "__num", "__str"):
        name = name.replace(suffix, "")
    return name
