"""Online experiment analysis: statistics on per-variant aggregates (`stats`, pure numpy / scipy,
also used by the model server's bandit), the Spark transforms that produce those aggregates
(`analyze`, imported on its own so the server does not need Spark) and the simulation that checks
the statistics (`simulate`). See docs/experiments.md."""

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
