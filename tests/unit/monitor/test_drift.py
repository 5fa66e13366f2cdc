"""Drift statistics computed in Spark agree with numpy / scipy on the same data (to 1e-6)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pyspark.sql import functions as F
from scipy.spatial.distance import jensenshannon
from scipy.stats import chi2_contingency, ks_2samp

from pipelines.monitor import (
    PSI_FLOOR,
    MonitorInputError,
    ReferenceProfile,
    build_profile,
    compare,
    psi,
)
from pipelines.monitor.drift import chi_square, js_distance, ks_test

NUMERIC = ["stable", "shifted", "continuous"]
CATEGORICAL = ["device"]
SCHEMA = "stable double, shifted double, continuous double, device string, label int, score double"
DEVICES = np.array(["a", "b", "c", "d", "e"])


def population(n: int, seed: int, shift: float) -> dict[str, np.ndarray]:
    """Columns as numpy arrays, NaN for missing; `shift` moves `shifted`, `device`, `score` only."""
    rng = np.random.default_rng(seed)
    stable = np.round(rng.normal(0.0, 1.0, n), 2)  # ~600 distinct values: exact KS
    stable[rng.random(n) < 0.05] = np.nan
    shifted = np.round(rng.normal(shift, 1.0, n), 2)
    shifted[rng.random(n) < 0.02 + 0.05 * shift] = np.nan
    continuous = rng.gamma(2.0, 1.0, n)  # n distinct values: more than ks_points, approximate KS
    probs = np.array([0.4, 0.3, 0.2, 0.1, 0.0]) if shift == 0 else np.array([0.25, 0.25, 0.2, 0.15, 0.15])
    device = rng.choice(DEVICES, n, p=probs).astype(object)
    device[rng.random(n) < 0.03] = None
    label = (rng.random(n) < 0.3).astype(int)
    score = np.round(rng.beta(2.0 + 2 * shift, 5.0, n), 3)
    return {"stable": stable, "shifted": shifted, "continuous": continuous, "device": device,
            "label": label, "score": score}


def to_frame(spark, data: dict[str, np.ndarray]):
    """Missing numeric values alternate between null and NaN (both count as missing)."""
    n = len(data["label"])

    def num(x, i):
        return (None if i % 2 else float("nan")) if np.isnan(x) else float(x)

    rows = [(num(data["stable"][i], i), num(data["shifted"][i], i), float(data["continuous"][i]),
             data["device"][i], int(data["label"][i]), float(data["score"][i])) for i in range(n)]
    return spark.createDataFrame(rows, SCHEMA)


@pytest.fixture(scope="module")
def reference():
    return population(3000, seed=11, shift=0.0)


@pytest.fixture(scope="module")
def same():
    return population(2500, seed=12, shift=0.0)


@pytest.fixture(scope="module")
def drifted():
    return population(2500, seed=13, shift=1.0)


@pytest.fixture(scope="module")
def profile(spark, reference):
    return build_profile(to_frame(spark, reference), NUMERIC, CATEGORICAL, label="label", score="score",
                         bins=10, max_categories=3, ks_points=2000)


@pytest.fixture(scope="module")
def stats_same(spark, profile, same):
    return index(compare(profile, to_frame(spark, same)))


@pytest.fixture(scope="module")
def stats_drifted(spark, profile, drifted):
    return index(compare(profile, to_frame(spark, drifted)))


def index(stats):
    return {(s.feature, s.statistic): s for s in stats}


def present(x: np.ndarray) -> np.ndarray:
    return x[~np.isnan(x)]


def numpy_bins(x: np.ndarray, edges: list[float]) -> np.ndarray:
    """Counts per bin [e_i, e_{i+1}) plus a last missing bin, directly in numpy."""
    inner = np.asarray(edges[1:-1])
    values = present(x)
    counts = np.bincount(np.searchsorted(inner, values, side="right"), minlength=len(edges) - 1)
    return np.append(counts, np.isnan(x).sum())


def numpy_psi(ref: np.ndarray, cur: np.ndarray, floor: float = PSI_FLOOR) -> float:
    r = np.maximum(ref / ref.sum(), floor)
    c = np.maximum(cur / cur.sum(), floor)
    return float(np.sum((c - r) * np.log(c / r)))


def numpy_categories(x: np.ndarray, categories: list[str]) -> np.ndarray:
    """Counts of the categories, of any other value and of nulls."""
    counts = [sum(v == c for v in x) for c in categories]
    missing = sum(v is None for v in x)
    return np.array([*counts, len(x) - sum(counts) - missing, missing])


# --- the profile ----------------------------------------------------------------------------

def test_profile_summaries(profile, reference):
    stable = profile.feature("stable")
    assert stable.count == 3000 and stable.missing == int(np.isnan(reference["stable"]).sum())
    assert stable.min == np.nanmin(reference["stable"]) and stable.max == np.nanmax(reference["stable"])
    assert stable.mean == pytest.approx(np.nanmean(reference["stable"]), abs=1e-9)
    assert stable.edges[0] == -math.inf and stable.edges[-1] == math.inf
    assert np.all(np.diff(stable.edges) > 0) and len(stable.edges) == 11
    assert stable.bin_counts == list(numpy_bins(reference["stable"], stable.edges)[:-1])
    # Deciles hold about a tenth each (percentile_approx, rounded values: ties at the edges).
    assert max(abs(c / stable.present - 0.1) for c in stable.bin_counts) < 0.02
    assert stable.ks_exact and stable.ks_points == sorted(set(present(reference["stable"])))
    # Exact grid: every present value is a grid point (-0.0 included), no value falls between points.
    assert ((reference["stable"] == 0) & np.signbit(reference["stable"])).any()
    assert sum(stable.ks_counts[0::2]) == 0
    assert sum(stable.ks_counts) == stable.present
    assert not profile.feature("continuous").ks_exact
    assert len(profile.feature("continuous").ks_points) <= 2000
    assert profile.score.name == "score" and profile.score.ks_exact
    assert profile.label_rate == pytest.approx(reference["label"].mean(), abs=1e-12)
    assert profile.label_count == 3000


def test_profile_categories(profile, reference):
    device = profile.feature("device")
    assert device.categories == ["a", "b", "c"]  # the top max_categories=3
    assert device.cell_counts() == list(numpy_categories(reference["device"], ["a", "b", "c"]))
    assert device.other > 0 and device.missing > 0


def test_profile_quantile_probabilities_are_one_literal_each(spark):
    """Regression: the 1,999 KS-grid probabilities were passed as a Python list, i.e. an array() of
    1,999 literal expressions per feature; planning the summary of 24 features took ~28 s, most of
    a small training run. They are now one array literal per aggregate."""
    from pipelines.monitor.profile import _summary_columns

    values = {f"x{i}": F.col(f"x{i}").cast("double") for i in range(3)}
    columns = _summary_columns(values, F.col("label"), bins=10, ks_points=2000)
    quantiles = [str(c) for c in columns if "percentile_approx" in str(c)]
    assert len(quantiles) == 2 * len(values)
    assert not [c for c in quantiles if "array(" in c], quantiles[0][:200]


def test_profile_round_trips_through_json(profile):
    text = profile.to_json()
    assert "Infinity" not in text and '"inf"' in text and '"version": 1' in text
    assert ReferenceProfile.from_json(text) == profile


def test_profile_rejects_unknown_version(profile):
    text = profile.to_json().replace('"version": 1', '"version": 99')
    with pytest.raises(ValueError, match="version 99"):
        ReferenceProfile.from_json(text)


# --- agreement with numpy / scipy ---------------------------------------------------------------

@pytest.mark.parametrize("feature", ["stable", "shifted", "continuous", "score"])
@pytest.mark.parametrize("current", ["same", "drifted"])
def test_psi_and_js_match_numpy_and_scipy(request, profile, reference, feature, current):
    data = request.getfixturevalue(current)
    stats = request.getfixturevalue(f"stats_{current}")
    edges = profile.score.edges if feature == "score" else profile.feature(feature).edges
    ref, cur = numpy_bins(reference[feature], edges), numpy_bins(data[feature], edges)
    assert stats[feature, "psi"].value == pytest.approx(numpy_psi(ref, cur), abs=1e-6)
    assert stats[feature, "js"].value == pytest.approx(jensenshannon(ref, cur, base=2), abs=1e-6)
    assert stats[feature, "psi"].n_reference == 3000 and stats[feature, "psi"].n_current == 2500


@pytest.mark.parametrize("feature", ["stable", "shifted", "score"])
@pytest.mark.parametrize("current", ["same", "drifted"])
def test_exact_ks_matches_scipy(request, reference, feature, current):
    stats = request.getfixturevalue(f"stats_{current}")
    ref, cur = present(reference[feature]), present(request.getfixturevalue(current)[feature])
    expected = ks_2samp(ref, cur, method="asymp")
    ks = stats[feature, "ks"]
    assert not ks.approximate
    assert ks.value == pytest.approx(expected.statistic, abs=1e-6)
    assert ks.p_value == pytest.approx(expected.pvalue, abs=1e-6)
    assert (ks.n_reference, ks.n_current) == (len(ref), len(cur))


def test_grid_ks_is_a_close_lower_bound(stats_same, reference, same):
    ks = stats_same["continuous", "ks"]
    exact = ks_2samp(reference["continuous"], same["continuous"], method="asymp").statistic
    assert ks.approximate
    assert exact - 0.005 <= ks.value <= exact + 1e-12


def test_chi_square_and_js_match_scipy(profile, reference, same, drifted, stats_same, stats_drifted):
    categories = profile.feature("device").categories
    ref = numpy_categories(reference["device"], categories)
    for data, stats in ((same, stats_same), (drifted, stats_drifted)):
        cur = numpy_categories(data["device"], categories)
        expected = chi2_contingency(np.array([ref, cur]), correction=False)
        assert stats["device", "chi2"].value == pytest.approx(expected.statistic, abs=1e-6)
        assert stats["device", "chi2"].p_value == pytest.approx(expected.pvalue, abs=1e-6)
        assert stats["device", "js"].value == pytest.approx(jensenshannon(ref, cur, base=2), abs=1e-6)
        assert stats["device", "psi"].value == pytest.approx(numpy_psi(ref, cur), abs=1e-6)


# --- drift detected where there is drift -----------------------------------------------------------

def test_shifted_features_score_high_and_stable_ones_low(stats_same, stats_drifted):
    for feature in ("shifted", "score", "device"):
        assert stats_drifted[feature, "psi"].value > 0.25
        assert stats_same[feature, "psi"].value < 0.1
        assert stats_drifted[feature, "js"].value > 2 * stats_same[feature, "js"].value
    for feature in ("shifted", "score"):
        assert stats_drifted[feature, "ks"].p_value < 0.01 < stats_same[feature, "ks"].p_value
    assert stats_drifted["device", "chi2"].p_value < 0.01 < stats_same["device", "chi2"].p_value
    for stats in (stats_same, stats_drifted):
        assert stats["stable", "psi"].value < 0.1 and stats["stable", "ks"].p_value > 0.01
    kinds = {s.kind for s in stats_same.values()}
    assert kinds == {"numeric", "categorical", "score"}


# --- empty cells, missing values, errors ---------------------------------------------------------

@pytest.fixture(scope="module")
def edge(same):
    """`shifted` all in the last bin, `stable` half missing, `continuous` all missing."""
    return dict(same, shifted=np.full(2500, 100.0), stable=np.where(np.arange(2500) < 1250, np.nan, same["stable"]),
                continuous=np.full(2500, np.nan))


@pytest.fixture(scope="module")
def stats_edge(spark, profile, edge):
    frame = to_frame(spark, edge).withColumn("continuous", F.lit(None).cast("double"))
    return index(compare(profile, frame))


def test_empty_bins_use_the_floor(profile, reference, edge, stats_edge):
    edges = profile.feature("shifted").edges
    ref, cur = numpy_bins(reference["shifted"], edges), numpy_bins(edge["shifted"], edges)
    assert (cur == 0).sum() == len(cur) - 1
    assert stats_edge["shifted", "psi"].value == pytest.approx(numpy_psi(ref, cur), abs=1e-6)
    assert stats_edge["shifted", "ks"].value == pytest.approx(1.0)
    assert psi([10, 0], [0, 10]) == pytest.approx(2 * (1 - PSI_FLOOR) * math.log(1 / PSI_FLOOR), abs=1e-12)


def test_missing_values_drift_through_the_missing_bin(profile, reference, edge, stats_edge):
    edges = profile.feature("stable").edges
    ref, cur = numpy_bins(reference["stable"], edges), numpy_bins(edge["stable"], edges)
    assert cur[-1] >= 1250
    psi_stat = stats_edge["stable", "psi"]
    assert psi_stat.value == pytest.approx(numpy_psi(ref, cur), abs=1e-6) and psi_stat.value > 0.25
    # KS ignores missing values: the present half is still the same distribution.
    expected = ks_2samp(present(reference["stable"]), present(edge["stable"]), method="asymp")
    assert stats_edge["stable", "ks"].value == pytest.approx(expected.statistic, abs=1e-6)
    assert stats_edge["stable", "ks"].p_value == pytest.approx(expected.pvalue, abs=1e-6)
    assert stats_edge["stable", "ks"].n_current == len(present(edge["stable"]))


def test_all_missing_current_feature(stats_edge):
    ks = stats_edge["continuous", "ks"]
    assert math.isnan(ks.value) and ks.p_value is None and ks.n_current == 0
    assert stats_edge["continuous", "psi"].value > 1 and stats_edge["continuous", "js"].value == pytest.approx(1.0)


def test_errors_name_the_feature(spark, profile, same):
    frame = to_frame(spark, same)
    with pytest.raises(MonitorInputError, match="'shifted'.*no such column"):
        compare(profile, frame.drop("shifted"))
    with pytest.raises(MonitorInputError, match="'stable'.*numeric type"):
        compare(profile, frame.withColumn("stable", F.lit("x")))
    with pytest.raises(MonitorInputError, match="'device'.*more than once"):
        build_profile(frame, ["device"], ["device"], label=None, score=None)


def test_pure_functions_edge_cases():
    assert chi_square([5, 0, 3], [4, 0, 6]) == pytest.approx(
        tuple(chi2_contingency(np.array([[5, 3], [4, 6]]), correction=False)[:2]), abs=1e-12)
    assert chi_square([5, 0], [3, 0]) == (0.0, 1.0)
    assert math.isnan(chi_square([5, 1], [0, 0])[0])
    assert math.isnan(psi([1, 2], [0, 0])) and math.isnan(js_distance([0, 0], [1, 2]))
    assert js_distance([1, 0], [0, 1]) == pytest.approx(1.0)
    d, p = ks_test([0, 0], [0, 0])
    assert math.isnan(d) and p is None
