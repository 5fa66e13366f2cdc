"""The synthetic clickstream generator (`clickml generate`).

Spark-native and deterministic: every value is a hash of (seed, entity, purpose), rows are built
from `spark.range` and `explode(sequence(...))`, and only small counts reach the driver. See
`docs/generator.md` for the latent model, the output format and the options.
"""

from pipelines.generate.latent import (
    ex_ante_window_auc,
    ex_ante_window_probability,
    expected_session_auc,
    oracle_window_auc,
    session_auc,
    window_scores,
)
from pipelines.generate.sizing import Sizing, estimate
from pipelines.generate.stage import (
    GenerateResult,
    LandingResult,
    build_events,
    build_lines,
    build_sessions,
    build_users,
    generate_landing,
    landing_path,
    run,
    write_truth,
)

__all__ = [
    "GenerateResult",
    "LandingResult",
    "Sizing",
    "build_events",
    "build_lines",
    "build_sessions",
    "build_users",
    "estimate",
    "ex_ante_window_auc",
    "ex_ante_window_probability",
    "expected_session_auc",
    "generate_landing",
    "landing_path",
    "oracle_window_auc",
    "run",
    "session_auc",
    "window_scores",
    "write_truth",
]
