"""The training reference profile: what drift monitoring compares the scored population with.

`build_profile` computes it in Spark from the training frame; only bounded aggregates reach the
driver (one summary row, quantile arrays, at most `ks_points + 1` distinct values and
`max_categories` categories per feature, cell counts). It is stored as JSON beside the model.

Per numeric feature (and the score, profiled as a numeric feature):

* PSI bins: edges at the reference quantiles i / bins (`percentile_approx`, relative error
  1 / QUANTILE_ACCURACY), deduplicated, with -inf / +inf outer edges; the reference count per bin
  [e_i, e_{i+1}) and the missing (null or NaN) count.
* KS grid: strictly increasing points with the reference count per cell (see
  `pipelines.monitor.counts`). When the reference has at most `ks_points` distinct values (all
  finite), the points are exactly those values and `ks_exact` is true: the KS statistic against any
  current data is then exact, equal to `scipy.stats.ks_2samp` on the raw values. Otherwise the points
  are `ks_points` approximate reference quantiles and the statistic is evaluated on that grid only:
  a lower bound on the exact one, short of it by at most the largest reference plus current mass
  strictly between two neighbouring grid points (about 2 / ks_points when nothing has drifted).
* count, missing count, min, max, mean.

Per categorical feature: the counts of the `max_categories` most frequent values (ties broken by
value), of every other value (`__other__`) and of nulls (`__null__`). The label's base rate is its
mean (the positive rate of a 0/1 label).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from pyspark.sql import Column, DataFrame, Row
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from pipelines.monitor.counts import (
    INF,
    CellCounter,
    MonitorInputError,
    category_column,
    dense,
    numeric_column,
)

PROFILE_VERSION = 1
QUANTILE_ACCURACY = 10_000
"""`percentile_approx` accuracy: relative rank error 1 / 10,000."""
OTHER = "__other__"
NULL = "__null__"


@dataclass
class NumericProfile:
    """A numeric feature (or the score) of the reference; `bin_counts[i]` counts [edges[i], edges[i+1])."""

    name: str
    count: int
    missing: int
    min: float | None
    max: float | None
    mean: float | None
    edges: list[float]
    bin_counts: list[int]
    ks_points: list[float]
    ks_counts: list[int]
    """Per cell 2 * le + tie (le = 0..len(ks_points), tie = 0/1): 2 * len(ks_points) + 2 counts."""
    ks_exact: bool

    def __post_init__(self) -> None:
        if len(self.bin_counts) != len(self.edges) - 1:
            raise MonitorInputError(self.name, f"{len(self.edges)} edges but {len(self.bin_counts)} bin counts")
        if len(self.ks_counts) != 2 * len(self.ks_points) + 2:
            raise MonitorInputError(self.name, f"{len(self.ks_points)} KS points but {len(self.ks_counts)} KS counts")

    @property
    def present(self) -> int:
        """Non-missing values."""
        return self.count - self.missing


@dataclass
class CategoricalProfile:
    """A categorical feature of the reference: counts per kept category, other values and nulls."""

    name: str
    count: int
    categories: list[str]
    category_counts: list[int]
    other: int
    missing: int

    def cell_counts(self) -> list[int]:
        """Counts in cell order: the categories, `__other__`, `__null__`."""
        return [*self.category_counts, self.other, self.missing]


@dataclass
class ReferenceProfile:
    """The reference (training) population, as small aggregates; JSON with a `version`."""

    count: int
    numeric: list[NumericProfile] = field(default_factory=list)
    categorical: list[CategoricalProfile] = field(default_factory=list)
    label: str | None = None
    label_count: int = 0
    label_rate: float | None = None
    score: NumericProfile | None = None
    bins: int = 10
    max_categories: int = 50
    ks_point_limit: int = 2000
    version: int = PROFILE_VERSION

    def to_json(self) -> str:
        """JSON text; non-finite floats (the outer bin edges) are written as "inf" / "-inf" / "nan"."""
        return json.dumps(_finite(asdict(self)), allow_nan=False, indent=1)

    @classmethod
    def from_json(cls, text: str) -> ReferenceProfile:
        data = json.loads(text)
        version = data.get("version")
        if version != PROFILE_VERSION:
            raise ValueError(f"reference profile version {version!r} is not supported (expected {PROFILE_VERSION})")
        return cls(
            **{k: v for k, v in data.items() if k not in ("numeric", "categorical", "score", "label_rate")},
            numeric=[_numeric_from(d) for d in data["numeric"]],
            categorical=[CategoricalProfile(**d) for d in data["categorical"]],
            score=_numeric_from(data["score"]) if data.get("score") else None,
            label_rate=_float(data.get("label_rate")),
        )

    def feature(self, name: str) -> NumericProfile | CategoricalProfile:
        for f in [*self.numeric, *self.categorical]:
            if f.name == name:
                return f
        raise KeyError(name)


def build_profile(
    frame: DataFrame,
    numeric: list[str],
    categorical: list[str],
    label: str | None = None,
    score: str | None = None,
    bins: int = 10,
    max_categories: int = 50,
    ks_points: int = 2000,
) -> ReferenceProfile:
    """The reference profile of `frame` (see the module docstring), computed in Spark."""
    if bins < 1 or max_categories < 0 or ks_points < 1:  # bins = 1: a single bin (-inf, +inf)
        raise ValueError(f"bins ({bins}) and ks_points ({ks_points}) must be >= 1, max_categories ({max_categories}) >= 0")
    names = [*numeric, *([score] if score else [])]
    _check_unique([*names, *categorical, *([label] if label else [])])
    values = {name: numeric_column(frame, name) for name in names}
    cats = {name: category_column(frame, name) for name in categorical}
    label_value = numeric_column(frame, label) if label else None

    summary = _summary(frame, values, label_value, bins, ks_points)
    edges = {name: [-INF, *(_distinct_finite(summary[f"edges{i}"]) if bins > 1 else []), INF]
             for i, name in enumerate(values)}
    points = _distinct_values(frame, values, summary, ks_points)
    exact = {name: name in points for name in values}
    for i, name in enumerate(values):
        if name not in points:
            points[name] = _distinct_finite(summary[f"grid{i}"])
    top = _top_categories(frame, cats, max_categories)
    counter = CellCounter(frame)
    bin_ids = {name: counter.bins(v, edges[name]) for name, v in values.items()}
    grid_ids = {name: counter.grid(v, points[name]) for name, v in values.items()}
    cat_ids = {name: counter.categories(c, top[name]) for name, c in cats.items()}
    counts = counter.count()

    def numeric_profile(i: int, name: str) -> NumericProfile:
        present = summary[f"c{i}"]
        return NumericProfile(
            name=name, count=summary["n"], missing=summary["n"] - present,
            min=_float(summary[f"min{i}"]), max=_float(summary[f"max{i}"]), mean=_float(summary[f"mean{i}"]),
            edges=edges[name], bin_counts=dense(counts[bin_ids[name]], len(edges[name]) - 1),
            ks_points=points[name], ks_counts=dense(counts[grid_ids[name]], 2 * len(points[name]) + 2),
            ks_exact=exact[name],
        )

    profiles = [numeric_profile(i, name) for i, name in enumerate(values)]
    categorical_profiles = []
    for name in categorical:
        cells = dense(counts[cat_ids[name]], len(top[name]) + 2)
        categorical_profiles.append(CategoricalProfile(
            name=name, count=summary["n"], categories=top[name], category_counts=cells[:-2],
            other=cells[-2], missing=cells[-1]))
    return ReferenceProfile(
        count=summary["n"],
        numeric=profiles[: len(numeric)],
        categorical=categorical_profiles,
        label=label,
        label_count=summary["label_n"] if label else 0,
        label_rate=_float(summary["label_mean"]) if label else None,
        score=profiles[-1] if score else None,
        bins=bins, max_categories=max_categories, ks_point_limit=ks_points,
    )


def _summary(frame: DataFrame, values: dict, label: Column | None, bins: int, ks_points: int) -> Row:
    """One job: row count; per numeric feature present count, min, max, mean, approximate distinct count,
    the quantiles i / bins (PSI edges) and i / ks_points (KS grid); the label's count and mean."""
    # Bounded: one row, with bins - 1 and ks_points - 1 quantiles per feature.
    return frame.agg(*_summary_columns(values, label, bins, ks_points)).first()


def _summary_columns(values: dict, label: Column | None, bins: int, ks_points: int) -> list[Column]:
    """The aggregates of `_summary`. The quantile probabilities are one array literal each (a numpy
    array becomes a single Literal node): given as a Python list, they became an array() of
    ks_points literal children per feature, and planning that tree took ~28 s per profile of 24
    features (most of a small training run)."""
    edge_probs = F.lit(np.array([i / bins for i in range(1, bins)] or [0.5], dtype=np.float64))
    grid_probs = F.lit(np.array([i / ks_points for i in range(1, ks_points)] or [0.5], dtype=np.float64))
    aggs = [F.count(F.lit(1)).alias("n")]
    for i, v in enumerate(values.values()):
        aggs += [F.count(v).alias(f"c{i}"), F.min(v).alias(f"min{i}"), F.max(v).alias(f"max{i}"),
                 F.mean(v).alias(f"mean{i}"), F.approx_count_distinct(v).alias(f"d{i}"),
                 F.percentile_approx(v, edge_probs, QUANTILE_ACCURACY).alias(f"edges{i}"),
                 F.percentile_approx(v, grid_probs, QUANTILE_ACCURACY).alias(f"grid{i}")]
    if label is not None:
        aggs += [F.count(label).alias("label_n"), F.mean(label).alias("label_mean")]
    return aggs


def _distinct_values(frame: DataFrame, values: dict, summary, limit: int) -> dict[str, list[float]]:
    """The sorted distinct values of the features with at most `limit` of them, all finite; one job."""
    candidates = {}
    for i, (name, v) in enumerate(values.items()):
        finite = all(summary[k] is None or math.isfinite(summary[k]) for k in (f"min{i}", f"max{i}"))
        # approx_count_distinct errs by a few percent: features up to twice the limit are counted exactly.
        if finite and summary[f"d{i}"] <= 2 * limit:
            candidates[name] = v
    if not candidates:
        return {}
    pairs = F.array(*(F.struct(F.lit(j).alias("f"), v.alias("v")) for j, v in enumerate(candidates.values())))
    distinct = frame.select(F.explode(pairs).alias("p")).select("p.f", "p.v").where("v IS NOT NULL").distinct()
    ranked = distinct.withColumn("r", F.row_number().over(Window.partitionBy("f").orderBy("v")))
    found: dict[int, list[float]] = {j: [] for j in range(len(candidates))}
    # Bounded: at most limit + 1 values per candidate feature.
    for row in ranked.where(F.col("r") <= limit + 1).collect():
        found[row["f"]].append(row["v"])
    return {name: _distinct_finite(found[j]) for j, name in enumerate(candidates) if len(found[j]) <= limit}


def _top_categories(frame: DataFrame, cats: dict, limit: int) -> dict[str, list[str]]:
    """The `limit` most frequent non-null values per categorical feature, ties broken by value; one job."""
    if limit == 0 or not cats:
        return {name: [] for name in cats}
    pairs = F.array(*(F.struct(F.lit(j).alias("f"), c.alias("v")) for j, c in enumerate(cats.values())))
    counts = frame.select(F.explode(pairs).alias("p")).select("p.f", "p.v").where("v IS NOT NULL").groupBy("f", "v").count()
    ranked = counts.withColumn("r", F.row_number().over(Window.partitionBy("f").orderBy(F.desc("count"), F.asc("v"))))
    found: dict[int, list[tuple[int, str]]] = {j: [] for j in range(len(cats))}
    # Bounded: at most `limit` rows per categorical feature.
    for row in ranked.where(F.col("r") <= limit).collect():
        found[row["f"]].append((row["r"], row["v"]))
    return {name: [v for _, v in sorted(found[j])] for j, name in enumerate(cats)}


def _distinct_finite(values) -> list[float]:
    """Sorted, deduplicated, finite, -0.0 as 0.0."""
    return sorted({float(x) + 0.0 for x in values or [] if x is not None and math.isfinite(x)})


def _check_unique(names: list[str]) -> None:
    seen = set()
    for name in names:
        if name in seen:
            raise MonitorInputError(name, "listed more than once (numeric, categorical, label and score must differ)")
        seen.add(name)


def _float(x: Any) -> float | None:
    return None if x is None else float(x)


def _finite(obj: Any) -> Any:
    """`obj` with non-finite floats replaced by their string form (JSON has no infinity)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj


def _numeric_from(data: dict) -> NumericProfile:
    floats = {k: _float(data[k]) for k in ("min", "max", "mean")}
    return NumericProfile(**{**data, **floats, "edges": [float(e) for e in data["edges"]],
                             "ks_points": [float(p) for p in data["ks_points"]]})
