"""In-process scoring of registered models: no SparkSession, no JVM per request.

A binary MLlib pipeline is exported at registration (`pipelines.serve.export.export_model`) into a
JSON description of its fitted stages; `InProcessModel` replays those stages in numpy with Spark's
semantics:

- the input casts of the `SQLTransformer` (`CAST(c AS DOUBLE)`, `CAST(c AS STRING)`); a missing key
  or None is null; NaN in a categorical column is null too (JSON and pandas have no other null);
- the signed log transform of the numeric columns (`SIGN(x) * LOG1P(ABS(x))`; null stays null);
- `Imputer`: null and the missing value (NaN by default) become the column's surrogate;
- `StringIndexer`: label -> index; with `handleInvalid="keep"` unseen labels and nulls get the
  extra index (the number of labels);
- `OneHotEncoder`: Spark's category sizes, `dropLast` and `handleInvalid` (with both "keep" and
  dropLast the unseen slot is kept: Spark drops the extra category, not the last label);
- `VectorAssembler` in `inputCols` order; `StandardScaler` (x - mean) * (1/std, 0 where std is 0);
- logistic regression: sigmoid of the margin (softmax for the multinomial family); random forest:
  mean of each tree's leaf class counts normalised to sum 1, then normalised; GBT:
  1 / (1 + exp(-2 * margin)) with margin the tree-weighted sum of the leaf predictions;
- the `CalibratedProbability` stage: `Calibrator.apply` on P(1).

The deep models run their saved network in PyTorch directly (`DeepInProcessModel`, the project's
own `Scorer`). Both answer `predict_proba(rows) -> P(class 1)`.
"""

from __future__ import annotations

import json
import logging
import math
import numbers
import re
from decimal import Decimal
from pathlib import Path
from typing import Any, Union

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

FORMAT = "clickml.inprocess"
FORMAT_VERSION = 1
ARTIFACT = "inprocess/model.json"
"""Artifact path, in the registered model's run, of the export."""

Rows = Union[list[dict], pd.DataFrame]


class InProcessError(ValueError):
    """Base class of the errors of in-process models."""


class ExportFormatError(InProcessError):
    """An export this code cannot read (another format, version or stage type)."""


class InvalidInput(InProcessError):
    """A request value that the model cannot take (Spark would fail on it too)."""


class ExportNotFound(InProcessError):
    """The model's run has no in-process export."""


# -- input values, spelled as Spark casts them ----------------------------------------------------


def _is_null(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float | np.floating) and math.isnan(value)


def _to_double(value: Any, column: str) -> float:
    """`CAST(value AS DOUBLE)` of one value; null -> NaN (the imputer's missing value)."""
    if value is None or value is pd.NA:
        return math.nan
    if isinstance(value, bool | np.bool_):
        return 1.0 if value else 0.0
    if isinstance(value, numbers.Real | Decimal):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            raise InvalidInput(f"feature {column!r}: {value!r} is not a number") from None
    raise InvalidInput(f"feature {column!r}: {value!r} ({type(value).__name__}) is not a number")


def _doubles(values: list | pd.Series, column: str) -> np.ndarray:
    if isinstance(values, pd.Series) and values.dtype != object and (
            pd.api.types.is_numeric_dtype(values.dtype) or pd.api.types.is_bool_dtype(values.dtype)):
        return values.to_numpy(dtype=np.float64, na_value=np.nan)
    return np.fromiter((_to_double(v, column) for v in values), dtype=np.float64, count=len(values))


def java_double(value: float) -> str:
    """A double spelled as Spark's CAST(double AS STRING) (Java's Double.toString): `1.0`, `0.25`,
    `1.0E7`, `1.0E-4`, `NaN`, `Infinity`."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
    if 1e-3 <= abs(value) < 1e7:
        text = repr(float(value))  # the shortest digits that round-trip; positional in this range
        return text if "." in text else text + ".0"
    sign, digits, exponent = Decimal(repr(float(value))).as_tuple()
    digits = list(digits)
    while len(digits) > 1 and digits[-1] == 0:
        digits.pop()
        exponent += 1
    power = len(digits) - 1 + exponent
    mantissa = f"{digits[0]}.{''.join(map(str, digits[1:])) or '0'}"
    return f"{'-' if sign else ''}{mantissa}E{power}"


def _to_string(value: Any, integer_labels: bool) -> str | None:
    """`CAST(value AS STRING)` of one value (None for null). A whole float for a column whose
    labels are all integers is spelled as the integer (an integer column with nulls reaches pandas
    as floats)."""
    if _is_null(value):
        return None
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, float | np.floating):
        value = float(value)
        if integer_labels and value.is_integer():
            return str(int(value))
        return java_double(value)
    return str(value)


_INTEGER = re.compile(r"-?[0-9]+")


def _columns(rows: Rows, names: list[str]) -> tuple[int, dict[str, list | pd.Series]]:
    """(row count, raw values of each named column); a missing column or key is null."""
    if isinstance(rows, pd.DataFrame):
        n = len(rows)
        return n, {c: rows[c] if c in rows.columns else [None] * n for c in names}
    if isinstance(rows, dict):
        rows = [rows]
    if not isinstance(rows, list | tuple) or not all(isinstance(r, dict) for r in rows):
        raise InvalidInput("rows must be a pandas DataFrame or a list of dicts (feature name -> value)")
    return len(rows), {c: [r.get(c) for r in rows] for c in names}


# -- trees ----------------------------------------------------------------------------------------


class _Forest:
    """Decision trees as one set of arrays (each tree's nodes in pre-order, `roots` the first node
    of each), walked for all rows and trees at once, one level per step; `feature` is -1 at leaves.

    Spark's categorical split keeps the smaller side as its set (`isLeft` when the left categories
    are at most half of `numCategories`): a value in neither side (out of range) goes right when
    the stored set is the left one, left otherwise. Continuous: value <= threshold goes left.
    """

    def __init__(self, trees: list[dict]):
        feature, threshold, left, right, value, categories, sizes, roots = [], [], [], [], [], [], [], []
        offset = 0
        for t in trees:
            n = len(t["feature"])
            roots.append(offset)
            feature += t["feature"]
            threshold += [math.nan if v is None else v for v in t["threshold"]]
            left += [c + offset if c >= 0 else -1 for c in t["left"]]
            right += [c + offset if c >= 0 else -1 for c in t["right"]]
            value += t["value"]
            categories += t.get("left_categories") or [None] * n
            sizes += t.get("num_categories") or [0] * n
            offset += n
        self.roots = np.asarray(roots, dtype=np.int64)
        self.feature = np.asarray(feature, dtype=np.int64)
        self.threshold = np.asarray(threshold, dtype=np.float64)
        self.left = np.asarray(left, dtype=np.int64)
        self.right = np.asarray(right, dtype=np.int64)
        self.value = np.asarray(value, dtype=np.float64).reshape(len(feature), -1)
        self.categorical = np.asarray([c is not None for c in categories], dtype=bool)
        self.num_categories = np.asarray(sizes, dtype=np.int64)
        self.left_table = np.zeros((len(feature), max([int(s) for s in sizes] + [1])), dtype=bool)
        self.stored_left = np.zeros(len(feature), dtype=bool)
        for node, cats in enumerate(categories):
            if cats is not None:
                self.left_table[node, np.asarray(cats, dtype=np.int64)] = True
                self.stored_left[node] = len(cats) <= int(sizes[node]) // 2
        self.depth = _depth(self.roots, self.left, self.right, self.feature)

    def leaves(self, x: np.ndarray) -> np.ndarray:
        """The leaf node of each row of `x` (rows x features) in each tree: rows x trees."""
        node = np.tile(self.roots, (len(x), 1))
        row = np.repeat(np.arange(len(x)), len(self.roots)).reshape(node.shape)
        for _ in range(self.depth + 1):
            feature = self.feature[node]
            inner = feature >= 0
            if not inner.any():
                break
            at = node[inner]
            values = x[row[inner], feature[inner]]
            go_left = values <= self.threshold[at]
            cat = self.categorical[at]
            if cat.any():
                v, nodes = values[cat], at[cat]
                index = np.where(np.isfinite(v), v, -1.0)
                in_range = (index >= 0) & (index < self.num_categories[nodes]) & (index == np.floor(index))
                safe = np.where(in_range, index, 0).astype(np.int64)
                go_left[cat] = np.where(in_range, self.left_table[nodes, safe], ~self.stored_left[nodes])
            node[inner] = np.where(go_left, self.left[at], self.right[at])
        return node


def _depth(roots: np.ndarray, left: np.ndarray, right: np.ndarray, feature: np.ndarray) -> int:
    deepest, stack = 0, [(int(r), 0) for r in roots]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if feature[node] >= 0:
            stack += [(int(left[node]), depth + 1), (int(right[node]), depth + 1)]
    return deepest


# -- stages ---------------------------------------------------------------------------------------

Columns = dict[str, np.ndarray]


def _matrix(values: np.ndarray) -> np.ndarray:
    return values[:, None] if values.ndim == 1 else values


class _Stage:
    def __init__(self, d: dict):
        self.d = d

    def apply(self, cols: Columns, raw: dict[str, list | pd.Series], n: int) -> None:
        raise NotImplementedError


class _SqlCast(_Stage):
    def __init__(self, d: dict, integer_labels: dict[str, bool]):
        super().__init__(d)
        self.integer_labels = integer_labels

    def apply(self, cols, raw, n):
        for cast in self.d["casts"]:
            values = raw[cast["input"]]
            if cast["to"] == "double":
                cols[cast["output"]] = _doubles(values, cast["input"])
            else:
                integer = self.integer_labels.get(cast["output"], False)
                cols[cast["output"]] = np.asarray([_to_string(v, integer) for v in values], dtype=object)


class _Log1p(_Stage):
    def apply(self, cols, raw, n):
        for source, target in zip(self.d["inputs"], self.d["outputs"]):
            x = cols[source]
            cols[target] = np.sign(x) * np.log1p(np.abs(x))  # NaN (a missing value) stays NaN


class _Imputer(_Stage):
    def apply(self, cols, raw, n):
        missing = self.d.get("missing_value")
        for source, target, surrogate in zip(self.d["inputs"], self.d["outputs"], self.d["surrogates"]):
            x = cols[source]
            gap = np.isnan(x) if missing is None else (np.isnan(x) | (x == float(missing)))
            cols[target] = np.where(gap, float(surrogate), x)


class _StringIndexer(_Stage):
    def __init__(self, d: dict):
        super().__init__(d)
        self.maps = [{label: float(i) for i, label in enumerate(labels)} for labels in d["labels"]]

    def apply(self, cols, raw, n):
        keep = self.d["handle_invalid"] == "keep"
        for source, target, mapping in zip(self.d["inputs"], self.d["outputs"], self.maps):
            unseen = float(len(mapping))
            out = np.empty(n, dtype=np.float64)
            for i, value in enumerate(cols[source]):
                index = mapping.get(value) if value is not None else None
                if index is None:
                    if not keep:
                        what = "a null" if value is None else f"unseen label {value!r}"
                        raise InvalidInput(f"feature {source.removesuffix('__str')!r}: {what} (handleInvalid=error)")
                    index = unseen
                out[i] = index
            cols[target] = out


class _OneHot(_Stage):
    def apply(self, cols, raw, n):
        keep, drop_last = self.d["handle_invalid"] == "keep", self.d["drop_last"]
        for source, target, size in zip(self.d["inputs"], self.d["outputs"], self.d["category_sizes"]):
            width = size + 1 if keep and not drop_last else size - 1 if drop_last and not keep else size
            x = cols[source]
            valid = (x >= 0) & (x < size)
            if not keep and not valid.all():
                raise InvalidInput(f"{source}: category index {x[~valid][0]} not seen in training (handleInvalid=error)")
            index = np.where(valid, x, size).astype(np.int64)
            out = np.zeros((n, width), dtype=np.float64)
            hit = index < width
            out[np.nonzero(hit)[0], index[hit]] = 1.0
            cols[target] = out


class _Assembler(_Stage):
    def apply(self, cols, raw, n):
        parts = [_matrix(np.asarray(cols[c], dtype=np.float64)) for c in self.d["inputs"]]
        out = np.hstack(parts) if parts else np.zeros((n, 0))
        if self.d["handle_invalid"] == "error" and np.isnan(out).any():
            raise InvalidInput("a feature is null or NaN after preprocessing (VectorAssembler handleInvalid=error)")
        cols[self.d["output"]] = out


class _Scaler(_Stage):
    def apply(self, cols, raw, n):
        x = cols[self.d["input"]]
        if self.d["with_mean"]:
            x = x - np.asarray(self.d["mean"], dtype=np.float64)
        if self.d["with_std"]:
            std = np.asarray(self.d["std"], dtype=np.float64)
            x = x * np.where(std == 0.0, 0.0, 1.0 / np.where(std == 0.0, 1.0, std))
        cols[self.d["output"]] = x


class _LogisticRegression(_Stage):
    def apply(self, cols, raw, n):
        x = cols[self.d["features"]]
        coefficients = np.asarray(self.d["coefficients"], dtype=np.float64)
        margins = x @ coefficients.T + np.asarray(self.d["intercepts"], dtype=np.float64)
        if not self.d["multinomial"]:
            p = 1.0 / (1.0 + np.exp(-margins[:, 0]))
            probability = np.column_stack([1.0 - p, p])
        else:
            shifted = np.exp(margins - margins.max(axis=1, keepdims=True))
            probability = shifted / shifted.sum(axis=1, keepdims=True)
        cols[self.d["probability"]] = probability


class _RandomForest(_Stage):
    def __init__(self, d: dict):
        super().__init__(d)
        self.forest = _Forest(d["trees"])

    def apply(self, cols, raw, n):
        counts = self.forest.value[self.forest.leaves(cols[self.d["features"]])]  # rows x trees x classes
        total = counts.sum(axis=2, keepdims=True)
        votes = np.where(total != 0, counts / np.where(total == 0, 1.0, total), 0.0).sum(axis=1)
        cols[self.d["probability"]] = votes / votes.sum(axis=1, keepdims=True)


class _GBT(_Stage):
    def __init__(self, d: dict):
        super().__init__(d)
        self.forest = _Forest(d["trees"])
        self.weights = np.asarray(d["weights"], dtype=np.float64)

    def apply(self, cols, raw, n):
        margin = self.forest.value[self.forest.leaves(cols[self.d["features"]]), 0] @ self.weights
        p = 1.0 / (1.0 + np.exp(-2.0 * margin))
        cols[self.d["probability"]] = np.column_stack([1.0 - p, p])


class _Calibration(_Stage):
    def __init__(self, d: dict):
        super().__init__(d)
        from pipelines.train.calibration import Calibrator  # numpy only; importing pyspark starts no JVM

        self.calibrator = Calibrator.from_dict(d["calibrator"])

    def apply(self, cols, raw, n):
        q = self.calibrator.apply(cols[self.d["probability"]][:, 1])
        cols[self.d["probability"]] = np.column_stack([1.0 - q, q])


_STAGES = {
    "log1p": _Log1p, "imputer": _Imputer, "string_indexer": _StringIndexer, "one_hot": _OneHot, "vector_assembler": _Assembler,
    "standard_scaler": _Scaler, "logistic_regression": _LogisticRegression, "random_forest": _RandomForest, "gbt": _GBT,
    "calibration": _Calibration,
}
PROBABILISTIC = ("logistic_regression", "random_forest", "gbt")


class InProcessModel:
    """A binary MLlib pipeline replayed in numpy from its export (see the module's docstring)."""

    def __init__(self, exported: dict, stages: list[_Stage]):
        self.exported = exported
        self._stages = stages
        casts = [c for s in exported["stages"] if s["type"] == "sql_cast" for c in s["casts"]]
        self.input_columns: list[str] = list(dict.fromkeys(c["input"] for c in casts))
        """The raw feature columns a request may carry (others are ignored; missing ones are null)."""
        self.numeric: list[str] = [c["input"] for c in casts if c["to"] == "double"]
        self.categorical: list[str] = [c["input"] for c in casts if c["to"] == "string"]
        self._probability = [s for s in exported["stages"] if s["type"] in PROBABILISTIC][-1]["probability"]

    @classmethod
    def from_dict(cls, exported: dict) -> InProcessModel:
        if not isinstance(exported, dict) or exported.get("format") != FORMAT:
            raise ExportFormatError(f"not a clickml in-process export (format {exported.get('format') if isinstance(exported, dict) else type(exported).__name__!r}; expected {FORMAT})")
        if exported.get("version") != FORMAT_VERSION:
            raise ExportFormatError(f"in-process export version {exported.get('version')!r}; this code reads version {FORMAT_VERSION}")
        if not any(s.get("type") in PROBABILISTIC for s in exported["stages"]):
            raise ExportFormatError("the export has no classifier stage")
        integer_labels: dict[str, bool] = {}
        for s in exported["stages"]:
            if s["type"] == "string_indexer":
                for source, labels in zip(s["inputs"], s["labels"]):
                    integer_labels[source] = bool(labels) and all(_INTEGER.fullmatch(label) for label in labels)
        stages: list[_Stage] = []
        for s in exported["stages"]:
            kind = s.get("type")
            if kind == "sql_cast":
                stages.append(_SqlCast(s, integer_labels))
            elif kind in _STAGES:
                stages.append(_STAGES[kind](s))
            else:
                raise ExportFormatError(f"in-process export: unknown stage type {kind!r}")
        return cls(exported, stages)

    def predict_proba(self, rows: Rows) -> np.ndarray:
        """Calibrated P(class 1) for each row (dicts of raw feature values, or a pandas frame)."""
        n, raw = _columns(rows, self.input_columns)
        cols: Columns = {}
        if n == 0:
            return np.zeros(0, dtype=np.float64)
        for stage in self._stages:
            stage.apply(cols, raw, n)
        return np.asarray(cols[self._probability][:, 1], dtype=np.float64)

    def to_json(self) -> str:
        return json.dumps(self.exported)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json())
        return path


def load_exported(path: str | Path) -> InProcessModel:
    """The in-process model of an export written to a JSON file."""
    try:
        exported = json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise ExportFormatError(f"{path}: not JSON ({exc})") from None
    return InProcessModel.from_dict(exported)


# -- deep models ----------------------------------------------------------------------------------


class DeepInProcessModel:
    """A deep model's saved network in PyTorch (the project's `Scorer`), behind `predict_proba`."""

    def __init__(self, state):
        from pipelines.deep.estimator import Scorer

        if state.task != "binary":
            raise InProcessError(f"deep model for {state.task}: predict_proba needs a binary model")
        self.scorer = Scorer(state)
        self.input_columns: list[str] = list(state.features.columns)
        self.numeric: list[str] = list(state.features.numeric)
        self.categorical: list[str] = list(state.features.categorical)

    @classmethod
    def from_mlflow(cls, uri: str) -> DeepInProcessModel:
        from pipelines.deep.mlflow_model import load_deep_model

        return cls(load_deep_model(uri).state)

    def predict_proba(self, rows: Rows) -> np.ndarray:
        """Calibrated P(class 1) per row, as the pyfunc and the Spark transform compute it."""
        n, raw = _columns(rows, self.input_columns)
        if n == 0:
            return np.zeros(0, dtype=np.float64)
        frame = pd.DataFrame({c: (v if isinstance(v, pd.Series) else pd.Series(v, dtype=object)).reset_index(drop=True)
                              for c, v in raw.items()})
        return np.asarray(self.scorer.predict(frame), dtype=np.float64)


# -- from MLflow ----------------------------------------------------------------------------------


def _run_of(uri: str) -> str:
    from mlflow import MlflowClient
    from mlflow.models import get_model_info

    run_id = get_model_info(uri).run_id
    if run_id:
        return run_id
    name = uri[len("models:/"):]
    client = MlflowClient()
    if "@" in name:
        model, alias = name.split("@", 1)
        return client.get_model_version_by_alias(model, alias).run_id
    model, _, version = name.rpartition("/")
    return client.get_model_version(model, version).run_id


def load_inprocess(source: str) -> InProcessModel | DeepInProcessModel:
    """The in-process model of a registered or logged model: `models:/<name>@<alias>`,
    `models:/<name>/<version>`, `runs:/<run id>` or a bare run id. MLlib models: their export
    (`ARTIFACT` in the model's run, downloaded through MLflow); deep models: their network."""
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.models import get_model_info

    if source.startswith("models:/"):
        if "spark" not in get_model_info(source).flavors:
            return DeepInProcessModel.from_mlflow(source)
        run_id = _run_of(source)
    else:
        run_id = source[len("runs:/"):].strip("/").split("/")[0] if source.startswith("runs:/") else source
    try:
        text = mlflow.artifacts.load_text(f"runs:/{run_id}/{ARTIFACT}")
    except (MlflowException, OSError) as exc:
        if not source.startswith("models:/"):
            try:
                if "spark" not in get_model_info(f"runs:/{run_id}/model").flavors:
                    return DeepInProcessModel.from_mlflow(f"runs:/{run_id}/model")
            except (MlflowException, OSError):
                pass
        raise ExportNotFound(f"{source}: run {run_id} has no in-process export ({ARTIFACT}): it was registered before "
                             f"exports existed or its export failed (see the run's inprocess.export tag): {exc}") from None
    model = InProcessModel.from_dict(json.loads(text))
    log.info("in-process model of %s loaded from run %s", source, run_id)
    return model
