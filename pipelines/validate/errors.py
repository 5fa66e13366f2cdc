"""The exceptions of the validation gates."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipelines.validate.result import ValidationResult


class DataQualityError(Exception):
    """Base of everything the validation gates raise."""


class SuiteError(DataQualityError, ValueError):
    """A suite file cannot be used; the message names the file and the entry."""


class ValidationError(DataQualityError):
    """A gate failed: the data does not meet its suite.

    The message lists each failed check with its arguments and what was observed; `result` holds
    the whole `ValidationResult` (including where the JSON summary and Data Docs were written).
    """

    def __init__(self, result: ValidationResult):
        super().__init__(result.failure_message())
        self.result = result
