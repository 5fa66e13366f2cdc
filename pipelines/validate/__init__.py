"""Great Expectations gates: suite files under `conf/expectations/`, one run per table version.

    from pipelines import validate
    validate.run(config, spark, "silver.sessions")                     # raises ValidationError on failure
    validate.validate_dataframe(config, predictions, "predictions")

Great Expectations itself is imported only when a suite is loaded or run.
"""

from pipelines.validate.errors import DataQualityError, SuiteError, ValidationError
from pipelines.validate.result import ExpectationOutcome, ValidationResult
from pipelines.validate.stage import run, validate_dataframe
from pipelines.validate.suites import Suite, load_suite

__all__ = [
    "DataQualityError",
    "ExpectationOutcome",
    "Suite",
    "SuiteError",
    "ValidationError",
    "ValidationResult",
    "load_suite",
    "run",
    "validate_dataframe",
]
