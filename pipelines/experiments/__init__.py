"""Online experiment analysis: statistics on per-variant aggregates (`stats`), the simulation that
checks them (`simulate`)."""

from pipelines.experiments.stats import (
    BetaBinomialResult,
    CupedResult,
    ExperimentStatsError,
    Moments,
    Proportion,
    ProportionTestResult,
    SequentialLook,
    SequentialPath,
    SrmResult,
    WelchResult,
    beta_binomial,
    cuped_test,
    msprt,
    msprt_path,
    proportion_test,
    sample_ratio_mismatch,
    thompson_weights,
    welch_test,
)

__all__ = [
    "BetaBinomialResult",
    "CupedResult",
    "ExperimentStatsError",
    "Moments",
    "Proportion",
    "ProportionTestResult",
    "SequentialLook",
    "SequentialPath",
    "SrmResult",
    "WelchResult",
    "beta_binomial",
    "cuped_test",
    "msprt",
    "msprt_path",
    "proportion_test",
    "sample_ratio_mismatch",
    "thompson_weights",
    "welch_test",
]
