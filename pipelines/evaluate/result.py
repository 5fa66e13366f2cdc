"""The result of an evaluation: flat metrics for MLflow, small tables for reports, JSON for both."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd


def _plain(value: Any) -> Any:
    """A JSON-safe value: numpy scalars to Python, NaN and infinities to null."""
    if hasattr(value, "item") and not isinstance(value, (list, dict, str)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _records(table: pd.DataFrame) -> list[dict]:
    """Rows as dicts; a meaningful index (e.g. the true label of a confusion matrix) becomes a column."""
    if not isinstance(table.index, pd.RangeIndex):
        table = table.reset_index()
    return table.to_dict("records")


@dataclass
class Evaluation:
    """Metrics and tables computed from one set of predictions."""

    kind: str
    """`binary`, `multiclass`, `regression` or `ranking`."""
    metrics: dict[str, float]
    """Flat, MLflow-ready metric names (`roc_auc`, `f1`, `precision_at_10`, ...); NaN where undefined."""
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    """Small (bounded) tables: confusion matrix, deciles, calibration, curves."""
    params: dict[str, Any] = field(default_factory=dict)
    """How the evaluation was made: columns, threshold rule, k, ..."""

    def prefixed(self, prefix: str) -> dict[str, float]:
        """The metrics with a prefix, e.g. `test_roc_auc`, for logging several splits to one MLflow run."""
        return {f"{prefix}{name}": value for name, value in self.metrics.items()}

    def to_dict(self) -> dict[str, Any]:
        """Plain Python: metrics, params, and tables as lists of records (NaN as None)."""
        return {
            "kind": self.kind,
            "metrics": {k: _plain(v) for k, v in self.metrics.items()},
            "params": {k: _plain(v) for k, v in self.params.items()},
            "tables": {
                name: [{str(c): _plain(v) for c, v in row.items()} for row in _records(table)]
                for name, table in self.tables.items()
            },
        }

    def to_json(self, indent: int | None = 2) -> str:
        """Strict JSON (no NaN literals): undefined metrics are null."""
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False, default=str)

    def write_json(self, path: str | Path) -> Path:
        """Write `to_json()` to a file (for an MLflow artifact) and return its path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json() + "\n", encoding="utf-8")
        return path

    def summary(self) -> str:
        """One line with every metric, for logs."""
        return f"{self.kind}: " + ", ".join(f"{k}={v:.6g}" for k, v in self.metrics.items())
