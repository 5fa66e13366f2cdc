"""Drift monitoring: a reference profile of the training data and drift statistics against it.

Both are computed in Spark; only bounded aggregates (quantiles, cell counts, at most a bounded
number of distinct values or categories per feature) reach the driver.
"""

from pipelines.monitor.counts import MonitorInputError
from pipelines.monitor.drift import PSI_FLOOR, DriftStat, chi_square, compare, js_distance, ks_test, psi
from pipelines.monitor.profile import (
    PROFILE_VERSION,
    CategoricalProfile,
    NumericProfile,
    ReferenceProfile,
    build_profile,
)

__all__ = [
    "PROFILE_VERSION",
    "PSI_FLOOR",
    "CategoricalProfile",
    "DriftStat",
    "MonitorInputError",
    "NumericProfile",
    "ReferenceProfile",
    "build_profile",
    "chi_square",
    "compare",
    "js_distance",
    "ks_test",
    "psi",
]
