"""Drift of a current (scored) population against a `ReferenceProfile`, counted in Spark.

`compare` counts the current frame into the profile's cells in one Spark job (only cell counts
reach the driver, see `pipelines.monitor.counts`) and derives, per feature and for the score:

* ``psi``: population stability index over the reference quantile bins plus a missing bin
  (numeric) or over the reference categories, `__other__` and `__null__` (categorical):
  sum_i (c_i - r_i) * ln(c_i / r_i), where r_i, c_i are the reference / current proportions with
  a floor of PSI_FLOOR (1e-4) for empty cells (an empty cell would make the term infinite).
* ``ks`` (numeric, missing values ignored): the two-sample Kolmogorov-Smirnov statistic
  D = sup_x |F_ref(x) - F_cur(x)|, evaluated at every profile grid point p and just below it (p-);
  exact, and equal to `scipy.stats.ks_2samp`, when the profile's `ks_exact` is true (the grid holds
  every reference value); else a lower bound (`approximate=True`). The p-value is the asymptotic
  two-sided one, `scipy.stats.kstwo.sf(D, round(n m / (n + m)))`, exactly what
  `ks_2samp(method="asymp")` returns.
* ``chi2`` (categorical): Pearson's chi-square test of homogeneity of the 2 x K table (reference
  counts, current counts) over the categories, `__other__` and `__null__`, cells empty on both
  sides dropped, without continuity correction: equal to
  `scipy.stats.chi2_contingency(table, correction=False)`; p-value `chi2.sf(stat, K' - 1)`.
  The reference is itself a sample, so this two-sample test needs no expected-count floor: an
  expected count is zero only where both sides are empty, and such cells are dropped.
* ``js``: Jensen-Shannon distance, base 2 (in [0, 1]), over the same cells as PSI without a floor:
  equal to `scipy.spatial.distance.jensenshannon(ref, cur, base=2)`.

Undefined statistics (no rows on one side) are NaN with no p-value.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pyspark.sql import DataFrame
from scipy.stats import chi2, kstwo

from pipelines.monitor.counts import CellCounter, category_column, dense, numeric_column
from pipelines.monitor.profile import CategoricalProfile, NumericProfile, ReferenceProfile

PSI_FLOOR = 1e-4
"""Floor for the proportion of an empty PSI cell."""
NAN = float("nan")


@dataclass(frozen=True)
class DriftStat:
    """One drift statistic of one feature: kind is numeric, categorical or score."""

    feature: str
    kind: str
    statistic: str
    value: float
    p_value: float | None
    n_reference: int
    n_current: int
    approximate: bool = False


def compare(profile: ReferenceProfile, current: DataFrame, cells: dict | None = None) -> list[DriftStat]:
    """PSI, KS and JS per numeric feature and the score, PSI, chi-square and JS per categorical one.

    `cells`, when given, receives per feature `(labels, reference counts, current counts)` of the
    PSI cells (for plots)."""
    counter = CellCounter(current)
    numeric = [(f, "numeric") for f in profile.numeric] + ([(profile.score, "score")] if profile.score else [])
    ids = {}
    for f, _ in numeric:
        value = numeric_column(current, f.name)
        ids[f.name] = (counter.bins(value, f.edges), counter.grid(value, f.ks_points))
    for f in profile.categorical:
        ids[f.name] = counter.categories(category_column(current, f.name), f.categories)
    counts = counter.count()  # bounded: cell counts only

    stats: list[DriftStat] = []
    for f, kind in numeric:
        bin_id, grid_id = ids[f.name]
        stats += numeric_drift(f, kind, counts[bin_id], counts[grid_id])
        if cells is not None:
            labels = [f"[{lo:.4g}, {hi:.4g})" for lo, hi in zip(f.edges[:-1], f.edges[1:])] + ["missing"]
            nb = len(f.edges) - 1
            cells[f.name] = (labels, [*f.bin_counts, f.missing], [*dense(counts[bin_id], nb), counts[bin_id].get(-1, 0)])
    for f in profile.categorical:
        stats += categorical_drift(f, counts[ids[f.name]])
        if cells is not None:
            reference = f.cell_counts()
            cells[f.name] = ([*f.categories, "__other__", "__null__"], reference, dense(counts[ids[f.name]], len(reference)))
    return stats


def numeric_drift(ref: NumericProfile, kind: str, bin_cells: dict[int, int], grid_cells: dict[int, int]) -> list[DriftStat]:
    """PSI, KS and JS of one numeric feature from the current cell counts."""
    nb = len(ref.edges) - 1
    ref_bins = [*ref.bin_counts, ref.missing]
    cur_bins = [*dense(bin_cells, nb), bin_cells.get(-1, 0)]
    cur_grid = dense(grid_cells, len(ref.ks_counts))
    n_ref, n_cur = sum(ref_bins), sum(cur_bins)
    d, p = ks_test(ref.ks_counts, cur_grid)
    _, p_bins = chi_square(ref_bins, cur_bins)  # whether the binned shapes PSI and JS measure differ beyond noise
    return [
        DriftStat(ref.name, kind, "psi", psi(ref_bins, cur_bins), p_bins, n_ref, n_cur),
        DriftStat(ref.name, kind, "ks", d, p, sum(ref.ks_counts), sum(cur_grid), approximate=not ref.ks_exact),
        DriftStat(ref.name, kind, "js", js_distance(ref_bins, cur_bins), p_bins, n_ref, n_cur),
    ]


def categorical_drift(ref: CategoricalProfile, cells: dict[int, int]) -> list[DriftStat]:
    """PSI, chi-square and JS of one categorical feature from the current cell counts."""
    ref_cells = ref.cell_counts()
    cur_cells = dense(cells, len(ref_cells))
    n_ref, n_cur = sum(ref_cells), sum(cur_cells)
    stat, p = chi_square(ref_cells, cur_cells)
    return [
        DriftStat(ref.name, "categorical", "psi", psi(ref_cells, cur_cells), p, n_ref, n_cur),
        DriftStat(ref.name, "categorical", "chi2", stat, p, n_ref, n_cur),
        DriftStat(ref.name, "categorical", "js", js_distance(ref_cells, cur_cells), p, n_ref, n_cur),
    ]


def psi(reference: Sequence[int], current: Sequence[int], floor: float = PSI_FLOOR) -> float:
    """sum (c - r) ln(c / r) over cell proportions floored at `floor`."""
    r, c = _proportions(reference), _proportions(current)
    if r is None or c is None:
        return NAN
    r, c = np.maximum(r, floor), np.maximum(c, floor)
    return float(np.sum((c - r) * np.log(c / r)))


def js_distance(reference: Sequence[int], current: Sequence[int]) -> float:
    """Jensen-Shannon distance in base 2: sqrt((KL(r || m) + KL(c || m)) / 2), m = (r + c) / 2."""
    r, c = _proportions(reference), _proportions(current)
    if r is None or c is None:
        return NAN
    m = (r + c) / 2
    divergence = (_kl(r, m) + _kl(c, m)) / math.log(2)
    return float(np.sqrt(max(divergence, 0.0) / 2))


def chi_square(reference: Sequence[int], current: Sequence[int]) -> tuple[float, float | None]:
    """Pearson's chi-square homogeneity test of the 2 x K table, cells empty on both sides dropped."""
    table = np.array([reference, current], dtype=float)
    table = table[:, table.sum(axis=0) > 0]
    rows = table.sum(axis=1)
    if table.shape[1] == 0 or rows.min() == 0:
        return NAN, None
    if table.shape[1] == 1:
        return 0.0, 1.0
    expected = np.outer(rows, table.sum(axis=0)) / table.sum()
    stat = float(np.sum((table - expected) ** 2 / expected))
    return stat, float(chi2.sf(stat, table.shape[1] - 1))


def ks_test(reference: Sequence[int], current: Sequence[int]) -> tuple[float, float | None]:
    """KS statistic and asymptotic two-sided p-value from KS grid cell counts (2 * le + tie, see counts)."""
    ref, cur = np.asarray(reference, dtype=np.int64), np.asarray(current, dtype=np.int64)
    n, m = int(ref.sum()), int(cur.sum())
    if n == 0 or m == 0 or len(ref) < 4:
        return NAN, None
    f_ref_below, f_ref_at = _below(ref) / n, _at(ref) / n
    f_cur_below, f_cur_at = _below(cur) / m, _at(cur) / m
    d = float(max(np.max(np.abs(f_ref_below - f_cur_below)), np.max(np.abs(f_ref_at - f_cur_at))))
    # As scipy.stats.ks_2samp(method="asymp"): m >= n, en = m n / (m + n), rounded.
    big, small = sorted([float(n), float(m)], reverse=True)
    en = big * small / (big + small)
    p = float(np.clip(kstwo.sf(d, np.round(en)), 0, 1))
    return d, p


def _below(cells: np.ndarray) -> np.ndarray:
    """Counts of values < p_j, j = 1..k: all cells with le < j (cell indices < 2 j)."""
    return np.cumsum(cells)[1:-1:2]


def _at(cells: np.ndarray) -> np.ndarray:
    """Counts of values <= p_j, j = 1..k: values < p_j plus the ties at p_j (cell 2 j + 1)."""
    return _below(cells) + cells[3::2]


def _proportions(counts: Sequence[int]) -> np.ndarray | None:
    a = np.asarray(counts, dtype=float)
    total = a.sum()
    return None if total == 0 else a / total


def _kl(p: np.ndarray, q: np.ndarray) -> float:
    mask = p > 0
    return float(np.sum(p[mask] * np.log(p[mask] / q[mask])))
