"""What a validation run found: per-check outcomes, a one-line report, the failure message, JSON."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

OBSERVED_KEYS = (
    "observed_value", "element_count", "unexpected_count", "unexpected_percent", "missing_count",
    "partial_unexpected_list", "details",
)
"""The parts of a GX result kept in summaries (all bounded in size)."""
EXAMPLES_SHOWN = 5
VALUE_WIDTH = 200


@dataclass
class ExpectationOutcome:
    """One check of a suite: a GX expectation, or our row-count rule."""

    expectation: str
    """GX class name (`ExpectColumnValuesToNotBeNull`) or `RowCountVsPreviousVersion`."""
    arguments: dict[str, Any]
    success: bool
    observed: dict[str, Any] = field(default_factory=dict)
    """observed_value, unexpected_count, unexpected_percent, partial_unexpected_list, ... as GX reports them."""
    exception: str | None = None
    """The error GX caught while computing this check (it then counts as failed)."""

    def describe(self) -> str:
        """`Name(arg=value, ...): what was observed`."""
        args = ", ".join(f"{k}={_short(v)}" for k, v in self.arguments.items() if v is not None)
        head = f"{self.expectation}({args})"
        if self.exception:
            return f"{head}: raised {self.exception}"
        parts = []
        observed = self.observed
        if "unexpected_count" in observed and observed["unexpected_count"] is not None:
            text = f"unexpected_count={observed['unexpected_count']:,}"
            if observed.get("element_count") is not None:
                text += f" of {observed['element_count']:,} rows"
            if observed.get("unexpected_percent") is not None:
                text += f" ({observed['unexpected_percent']:.4g}%)"
            parts.append(text)
        for key, value in observed.items():
            if key in ("unexpected_count", "element_count", "unexpected_percent", "partial_unexpected_list"):
                continue
            if key == "missing_count" and not value:
                continue
            parts.append(f"{key}={_short(value)}")
        examples = observed.get("partial_unexpected_list")
        if examples:
            shown = ", ".join(_short(v) for v in examples[:EXAMPLES_SHOWN])
            more = ", ..." if len(examples) > EXAMPLES_SHOWN else ""
            parts.append(f"unexpected values e.g. [{shown}{more}]")
        return f"{head}: {'; '.join(parts) or 'no observation'}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "expectation": self.expectation,
            "kwargs": self.arguments,
            "success": self.success,
            "observed": self.observed,
            "exception": self.exception,
        }


@dataclass
class ValidationResult:
    """The outcome of running a suite on one table version (or one DataFrame)."""

    suite: str
    success: bool
    expectations: list[ExpectationOutcome]
    table: str | None = None
    """Logical table validated; None for a DataFrame."""
    version: int | None = None
    rows: int | None = None
    started_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc))
    duration_seconds: float = 0.0
    suite_file: str | None = None
    columns_read: list[str] | None = None
    """The columns whose values the suite read (the others were only checked in the schema)."""
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds per phase: scan (source -> cache), checks (GX), examples (failed checks), docs."""
    summary_path: str | None = None
    """The JSON summary of this run."""
    data_docs_index: str | None = None
    data_docs_page: str | None = None
    """This run's Data Docs page (URL)."""

    @property
    def failed(self) -> list[ExpectationOutcome]:
        return [e for e in self.expectations if not e.success]

    @property
    def subject(self) -> str:
        if self.table is None:
            return f"dataframe ({self.suite})"
        return f"{self.table} v{self.version}" if self.version is not None else self.table

    def report(self) -> str:
        """One line for logs and job output."""
        total = len(self.expectations)
        rows = f"{self.rows:,} rows" if self.rows is not None else "unknown rows"
        if self.success:
            state = f"passed {total}/{total} checks"
        else:
            names = ", ".join(_label(e) for e in self.failed)
            state = f"FAILED {len(self.failed)}/{total} checks ({names})"
        where = f"; docs {self.data_docs_page or self.data_docs_index}" if (self.data_docs_page or self.data_docs_index) else ""
        summary = f"; summary {self.summary_path}" if self.summary_path else ""
        return f"validate {self.subject} [suite {self.suite}]: {state} on {rows} in {self.duration_seconds:.1f}s{where}{summary}"

    def failure_message(self) -> str:
        """Every failed check with its arguments and what was observed, one per line."""
        head = f"validation of {self.subject} against suite {self.suite} failed: {len(self.failed)} of {len(self.expectations)} checks"
        lines = [head]
        lines += [f"  - {e.describe()}" for e in self.failed]
        if self.summary_path:
            lines.append(f"  summary: {self.summary_path}")
        if self.data_docs_page or self.data_docs_index:
            lines.append(f"  data docs: {self.data_docs_page or self.data_docs_index}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """The JSON summary of the run."""
        return {
            "table": self.table,
            "version": self.version,
            "suite": self.suite,
            "suite_file": self.suite_file,
            "success": self.success,
            "rows": self.rows,
            "started_at": self.started_at.isoformat(),
            "duration_seconds": round(self.duration_seconds, 3),
            "columns_read": self.columns_read,
            "timings": self.timings,
            "statistics": {
                "evaluated": len(self.expectations),
                "successful": len(self.expectations) - len(self.failed),
                "unsuccessful": len(self.failed),
            },
            "expectations": [e.to_dict() for e in self.expectations],
            "data_docs": {"index": self.data_docs_index, "page": self.data_docs_page},
        }


def _label(outcome: ExpectationOutcome) -> str:
    args = outcome.arguments
    target = args.get("column") or args.get("column_list") or args.get("column_A")
    return f"{outcome.expectation} {_short(target, 60)}" if target else outcome.expectation


def _short(value: Any, width: int = VALUE_WIDTH) -> str:
    text = repr(value) if not isinstance(value, float) else _float(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def _float(value: float) -> str:
    text = f"{value:.6g}"
    return text if any(c in text for c in ".einf") else text + ".0"
