"""Export of a binary MLlib pipeline model into a JSON description that scores without Spark.

`export_model(model)` reads each fitted stage (on the driver, where the model lives): the input
casts of the preprocessing `SQLTransformer` (and its log transform, if any), the imputer's
surrogates, the string indexers' labels, the one-hot encoders' category sizes, the assembler's
inputs, the scaler's mean and std, the classifier's coefficients or its trees (walked through the
JVM model: split feature, threshold or left categories, leaf class counts or predictions, tree
weights), and the calibrator. The description is replayed by
`pipelines.serve.inprocess.InProcessModel`; `check_parity` compares the two on a Spark DataFrame.
A stage of another type raises `UnsupportedStageError` naming it.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import numpy as np
from pyspark.ml import PipelineModel
from pyspark.ml.classification import (
    GBTClassificationModel,
    LogisticRegressionModel,
    RandomForestClassificationModel,
)
from pyspark.ml.feature import (
    ImputerModel,
    OneHotEncoderModel,
    SQLTransformer,
    StandardScalerModel,
    StringIndexerModel,
    VectorAssembler,
)
from pyspark.sql import DataFrame

from pipelines.serve.inprocess import ARTIFACT, FORMAT, FORMAT_VERSION, InProcessError, InProcessModel
from pipelines.train.calibration import CalibratedProbability

log = logging.getLogger(__name__)

__all__ = ["ARTIFACT", "ExportError", "UnsupportedStageError", "check_parity", "export_model"]

TOLERANCE = 1e-6
"""Largest difference in P(1) allowed between Spark and the export."""


class ExportError(InProcessError):
    """A model that cannot be exported for in-process scoring."""


class UnsupportedStageError(ExportError):
    """A pipeline stage the export does not know."""


def _name(stage: Any) -> str:
    return f"{type(stage).__module__}.{type(stage).__name__}"


def _cols(stage: Any, single: str, many: str) -> list[str]:
    """A stage's columns, set as the list param (`inputCols`) or the single one (`inputCol`)."""
    if stage.isDefined(stage.getParam(many)):
        return list(stage.getOrDefault(many))
    return [stage.getOrDefault(single)]


# -- preprocessing --------------------------------------------------------------------------------

_SELECT = re.compile(r"\s*SELECT\s+\*\s*,\s*(.+?)\s+FROM\s+__THIS__\s*", re.IGNORECASE | re.DOTALL)
_CAST = re.compile(r"CAST\((`(?:[^`]|``)+`) AS (DOUBLE|STRING)\) AS (`(?:[^`]|``)+`)")


def _unquote(name: str) -> str:
    return name[1:-1].replace("``", "`")


def _sql_cast(stage: SQLTransformer) -> dict:
    """Only the casts `preprocessing_stages` writes: `SELECT *, CAST(`c` AS DOUBLE|STRING) AS `o`, ... FROM __THIS__`."""
    statement = stage.getStatement()
    found = _SELECT.fullmatch(statement)
    casts = list(_CAST.finditer(found.group(1))) if found else []
    if not casts or ", ".join(m.group(0) for m in casts) != found.group(1).strip():
        raise UnsupportedStageError(f"SQLTransformer statement {statement!r}: only the input casts of "
                                    "pipelines.train.preprocess (CAST(`c` AS DOUBLE|STRING) AS `o`) can be exported")
    return {"type": "sql_cast", "casts": [{"input": _unquote(m.group(1)), "to": m.group(2).lower(), "output": _unquote(m.group(3))}
                                          for m in casts]}


_LOG1P = re.compile(r"SIGN\((`(?:[^`]|``)+`)\) \* LOG1P\(ABS\(\1\)\) AS (`(?:[^`]|``)+`)")


def _sql(stage: SQLTransformer) -> dict:
    """The two statements `pipelines.train.preprocess` writes: the input casts, and the signed log
    transform of the numeric columns (`log1p_statement`)."""
    found = _SELECT.fullmatch(stage.getStatement())
    terms = list(_LOG1P.finditer(found.group(1))) if found else []
    if terms and ", ".join(m.group(0) for m in terms) == found.group(1).strip():
        return {"type": "log1p", "inputs": [_unquote(m.group(1)) for m in terms], "outputs": [_unquote(m.group(2)) for m in terms]}
    return _sql_cast(stage)


def _imputer(stage: ImputerModel) -> dict:
    inputs, outputs = _cols(stage, "inputCol", "inputCols"), _cols(stage, "outputCol", "outputCols")
    row = stage.surrogateDF.first()  # bounded: the one row of fitted surrogates
    missing = float(stage.getMissingValue())
    return {"type": "imputer", "inputs": inputs, "outputs": outputs, "surrogates": [float(row[c]) for c in inputs],
            "missing_value": None if np.isnan(missing) else missing}


def _string_indexer(stage: StringIndexerModel) -> dict:
    invalid = stage.getHandleInvalid()
    if invalid not in ("keep", "error"):
        raise UnsupportedStageError(f"StringIndexerModel with handleInvalid={invalid!r}: in-process scoring cannot drop rows "
                                    "(supported: keep, error)")
    return {"type": "string_indexer", "inputs": _cols(stage, "inputCol", "inputCols"),
            "outputs": _cols(stage, "outputCol", "outputCols"), "labels": [list(labels) for labels in stage.labelsArray],
            "handle_invalid": invalid}


def _one_hot(stage: OneHotEncoderModel) -> dict:
    return {"type": "one_hot", "inputs": _cols(stage, "inputCol", "inputCols"), "outputs": _cols(stage, "outputCol", "outputCols"),
            "category_sizes": [int(s) for s in stage.categorySizes], "drop_last": bool(stage.getDropLast()),
            "handle_invalid": stage.getHandleInvalid()}


def _assembler(stage: VectorAssembler) -> dict:
    invalid = stage.getHandleInvalid()
    if invalid not in ("keep", "error"):
        raise UnsupportedStageError(f"VectorAssembler with handleInvalid={invalid!r}: in-process scoring cannot drop rows")
    return {"type": "vector_assembler", "inputs": list(stage.getInputCols()), "output": stage.getOutputCol(),
            "handle_invalid": invalid}


def _scaler(stage: StandardScalerModel) -> dict:
    return {"type": "standard_scaler", "input": stage.getInputCol(), "output": stage.getOutputCol(),
            "with_mean": bool(stage.getWithMean()), "with_std": bool(stage.getWithStd()),
            "mean": [float(v) for v in stage.mean.toArray()], "std": [float(v) for v in stage.std.toArray()]}


# -- classifiers ----------------------------------------------------------------------------------


def _binary(stage: Any) -> None:
    if stage.numClasses != 2:
        raise ExportError(f"{type(stage).__name__} has {stage.numClasses} classes: only binary models are exported")


def _logistic_regression(stage: LogisticRegressionModel) -> dict:
    _binary(stage)
    matrix = stage.coefficientMatrix.toArray()
    return {"type": "logistic_regression", "features": stage.getFeaturesCol(), "probability": stage.getProbabilityCol(),
            "coefficients": [[float(v) for v in row] for row in matrix],
            "intercepts": [float(v) for v in stage.interceptVector.toArray()], "multinomial": matrix.shape[0] > 1}


def _tree(root: Any, leaf: str) -> dict:
    """One JVM decision tree as pre-order arrays (see `inprocess._Forest`). `leaf`: `stats` (the
    leaf's class counts, classification) or `prediction` (regression trees of boosting). Each
    node is a few py4j calls: fine for the configured forests (thousands of nodes)."""
    out: dict[str, list] = {"feature": [], "threshold": [], "left": [], "right": [], "left_categories": [],
                            "num_categories": [], "value": []}

    def add(node) -> int:
        i = len(out["feature"])
        for key, empty in (("feature", -1), ("threshold", None), ("left", -1), ("right", -1), ("left_categories", None),
                           ("num_categories", 0), ("value", None)):
            out[key].append(empty)
        if node.getClass().getSimpleName() == "InternalNode":
            split = node.split()
            out["feature"][i] = int(split.featureIndex())
            if split.getClass().getSimpleName() == "ContinuousSplit":
                out["threshold"][i] = float(split.threshold())
            else:  # CategoricalSplit
                out["left_categories"][i] = [int(c) for c in split.leftCategories()]
                out["num_categories"][i] = int(split.numCategories())
            out["left"][i] = add(node.leftChild())
            out["right"][i] = add(node.rightChild())
        elif leaf == "stats":
            out["value"][i] = [float(v) for v in node.impurityStats().stats()]
        else:
            out["value"][i] = [float(node.prediction())]
        return i

    add(root)
    width = max(len(v) for v in out["value"] if v is not None)
    out["value"] = [v if v is not None else [0.0] * width for v in out["value"]]
    if not any(c is not None for c in out["left_categories"]):
        del out["left_categories"], out["num_categories"]
    return out


def _random_forest(stage: RandomForestClassificationModel) -> dict:
    _binary(stage)
    trees = [_tree(t.rootNode(), "stats") for t in stage._java_obj.trees()]
    return {"type": "random_forest", "features": stage.getFeaturesCol(), "probability": stage.getProbabilityCol(),
            "num_classes": int(stage.numClasses), "trees": trees}


def _gbt(stage: GBTClassificationModel) -> dict:
    _binary(stage)
    if stage.getLossType() != "logistic":
        raise ExportError(f"GBTClassificationModel with lossType={stage.getLossType()!r}: only logistic is exported")
    trees = [_tree(t.rootNode(), "prediction") for t in stage._java_obj.trees()]
    return {"type": "gbt", "features": stage.getFeaturesCol(), "probability": stage.getProbabilityCol(),
            "weights": [float(w) for w in stage.treeWeights], "trees": trees}


def _calibration(stage: CalibratedProbability) -> dict:
    return {"type": "calibration", "probability": stage.getOrDefault(stage.probabilityCol),
            "calibrator": stage.calibrator.to_dict()}


EXPORTERS = {
    SQLTransformer: _sql, ImputerModel: _imputer, StringIndexerModel: _string_indexer, OneHotEncoderModel: _one_hot,
    VectorAssembler: _assembler, StandardScalerModel: _scaler, LogisticRegressionModel: _logistic_regression,
    RandomForestClassificationModel: _random_forest, GBTClassificationModel: _gbt, CalibratedProbability: _calibration,
}


def export_model(model: PipelineModel) -> dict:
    """The JSON-serialisable description of a binary pipeline model (see the module's docstring)."""
    import pyspark

    if not isinstance(model, PipelineModel):
        raise UnsupportedStageError(f"{_name(model)} is not a Spark PipelineModel: only MLlib pipelines are exported "
                                    "(deep models run in PyTorch: pipelines.serve.inprocess.DeepInProcessModel)")
    stages = []
    for position, stage in enumerate(model.stages):
        exporter = EXPORTERS.get(type(stage))
        if exporter is None:
            known = ", ".join(sorted(cls.__name__ for cls in EXPORTERS))
            raise UnsupportedStageError(f"pipeline stage {position} ({stage.uid}) is a {_name(stage)}: no in-process export "
                                        f"for it (supported: {known})")
        stages.append(exporter(stage))
    if not any(s["type"] in ("logistic_regression", "random_forest", "gbt") for s in stages):
        raise ExportError("the pipeline has no binary classifier (LogisticRegression, RandomForestClassifier, GBTClassifier)")
    return {"format": FORMAT, "version": FORMAT_VERSION, "spark_version": pyspark.__version__, "stages": stages}


def check_parity(model: PipelineModel, exported: dict, frame: DataFrame, limit: int = 2000) -> tuple[float, int]:
    """(largest |P(1) Spark - P(1) in-process|, rows compared) on up to `limit` rows of `frame`,
    scored by Spark with `pipelines.train.scoring.score`. Rows whose Spark score is null or NaN
    must be NaN in-process too (else the difference is infinite)."""
    from pipelines.train.scoring import SCORE, score

    inprocess = InProcessModel.from_dict(exported)
    present = [c for c in inprocess.input_columns if c in frame.columns]
    scored = score(model, frame.limit(limit), "binary").select(*present, SCORE).toPandas()  # bounded: `limit` rows
    if scored.empty:
        return 0.0, 0
    spark_p = scored[SCORE].to_numpy(dtype=np.float64, na_value=np.nan)
    local_p = inprocess.predict_proba(scored[present])
    both_nan = np.isnan(spark_p) & np.isnan(local_p)
    diff = np.where(both_nan, 0.0, np.abs(spark_p - local_p))
    return float(np.nan_to_num(diff, nan=np.inf).max()), len(scored)
