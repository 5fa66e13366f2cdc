"""Suite files: `conf/expectations/<table>.yaml` -> Great Expectations 1.x expectation suites.

A suite file lists GX expectation classes (from `great_expectations.expectations`) with their
arguments, plus our own row-count rule:

    description: One row per rebuilt session.
    row_count:                 # optional; `row_count: false` turns the rule off
      max_drop: 0.5            # default: validation.max_row_drop
    expectations:
      - expectation: ExpectColumnValuesToNotBeNull
        column: session_id
      - expectation: ExpectColumnValuesToBeBetween
        column: revenue
        min_value: 0

Every entry is built into its GX class when the file is loaded, so an unknown expectation or a
bad argument fails at load time with the file, the entry and the problem in the message.

`<longest_window>` in a suite file stands for the longest of `features.windows_days`, so the gold
feature suites follow the configured windows (`column: events_<longest_window>d`,
`max_value: <longest_window>`); such a suite is loaded with the config (or the number given).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from pipelines.validate.errors import SuiteError

if TYPE_CHECKING:
    from great_expectations import ExpectationSuite
    from great_expectations.expectations import Expectation

    from pipelines.config import ClickmlConfig

SUFFIXES = (".yaml", ".yml")
TOP_LEVEL_KEYS = ("description", "row_count", "expectations")
ROW_COUNT_KEYS = ("max_drop",)
LONGEST_WINDOW = "<longest_window>"
"""Placeholder for the longest feature window (days) in suite files."""
RESERVED_ARGUMENTS = frozenset({"id", "result_format", "rendered_content", "batch_id", "windows", "catch_exceptions"})
"""Expectation fields a suite file may not set: the gate decides how results are computed."""

COLUMN_ARGUMENTS = ("column", "column_A", "column_B", "column_list")
"""Expectation arguments that name the columns whose values an expectation reads."""

SCHEMA_ONLY = frozenset(
    {
        "ExpectColumnToExist",
        "ExpectColumnValuesToBeOfType",
        "ExpectColumnValuesToBeInTypeList",
        "ExpectTableColumnCountToBeBetween",
        "ExpectTableColumnCountToEqual",
        "ExpectTableColumnsToMatchOrderedList",
        "ExpectTableColumnsToMatchSet",
    }
)
"""Expectations answered from the DataFrame's schema on Spark: they read no column values."""


@dataclass(frozen=True)
class RowCountRule:
    """Our row-count gate: the validated table version against the previous one."""

    enabled: bool = True
    max_drop: float | None = None
    """Largest tolerated relative drop (0.5: half the rows may go); None: `validation.max_row_drop`."""


@dataclass(frozen=True)
class SuiteEntry:
    """One expectation of a suite file, checked against its GX class."""

    index: int
    line: int | None
    expectation: str
    """GX class name, e.g. `ExpectColumnValuesToNotBeNull`."""
    arguments: dict[str, Any]

    def build(self) -> Expectation:
        """A fresh GX expectation (an instance can belong to one suite only)."""
        return _expectation_class(self.expectation)(**self.arguments)


@dataclass(frozen=True)
class Suite:
    """A loaded suite file."""

    name: str
    """The suite's name: the logical table it gates, e.g. `silver.sessions`."""
    path: Path | None
    description: str
    entries: tuple[SuiteEntry, ...]
    row_count: RowCountRule

    def to_gx(self) -> ExpectationSuite:
        """A new GX `ExpectationSuite` holding new expectation instances."""
        import great_expectations as gx

        return gx.ExpectationSuite(
            name=self.name,
            expectations=[entry.build() for entry in self.entries],
            meta={"clickml_suite_file": str(self.path) if self.path else None, "description": self.description},
        )

    def data_columns(self) -> frozenset[str] | None:
        """Columns whose values some expectation reads; None when that cannot be told (all needed).

        Schema-only expectations (column sets, types) read no values; a `row_condition` may name
        any column, so a suite using one needs them all.
        """
        columns: set[str] = set()
        for entry in self.entries:
            if entry.arguments.get("row_condition"):
                return None
            if entry.expectation in SCHEMA_ONLY:
                continue
            for key in COLUMN_ARGUMENTS:
                value = entry.arguments.get(key)
                if isinstance(value, str):
                    columns.add(value)
                elif isinstance(value, (list, tuple)):
                    columns.update(str(v) for v in value)
            unknown = _column_like_fields(entry.expectation) - set(COLUMN_ARGUMENTS)
            if unknown & set(entry.arguments):
                return None
        return frozenset(columns)


def suites_dir(config: ClickmlConfig) -> Path:
    """The folder of suite files: `validation.suites_dir`, relative to the config directory."""
    directory = Path(config.validation.suites_dir)
    return directory if directory.is_absolute() else Path(config.conf_dir) / directory


def suite_path(directory: str | Path, name: str) -> Path:
    """The file of suite `name` in `directory` (`<name>.yaml`, or `.yml`)."""
    base = Path(directory)
    for suffix in SUFFIXES:
        candidate = base / f"{name}{suffix}"
        if candidate.exists():
            return candidate
    available = sorted(p.stem for p in base.glob("*") if p.suffix in SUFFIXES) if base.is_dir() else []
    raise SuiteError(
        f"no suite file for {name!r} in {base} (expected {name}.yaml); "
        f"available: {', '.join(available) or 'none'}"
    )


def load_suite(name: str | Path, where: ClickmlConfig | str | Path | None = None,
               longest_window: int | None = None) -> Suite:
    """Load suite `name` from `where` (a config: its `validation.suites_dir`; or a folder).

    `name` may also be the path of a suite file (then `where` is not needed). `longest_window`
    replaces `<longest_window>` (default: the config's longest `features.windows_days`).
    """
    if longest_window is None and where is not None and not isinstance(where, (str, Path)):
        longest_window = max(where.features.windows_days)
    text_name = str(name)
    if isinstance(name, Path) or text_name.endswith(SUFFIXES) or "/" in text_name:
        path = Path(name)
        if not path.exists():
            raise SuiteError(f"suite file {path} does not exist")
    else:
        if where is None:
            raise SuiteError(f"suite {text_name!r}: give the config or the folder of the suite files")
        directory = where if isinstance(where, (str, Path)) else suites_dir(where)
        path = suite_path(directory, text_name)
    return parse_suite(path.read_text(encoding="utf-8"), path, longest_window=longest_window)


def parse_suite(text: str, path: Path, name: str | None = None, longest_window: int | None = None) -> Suite:
    """Parse and check the text of a suite file; the suite is named after the file by default."""
    name = name or (path.name[: -len(path.suffix)] if path.suffix in SUFFIXES else path.name)
    if LONGEST_WINDOW in text:
        if longest_window is None:
            raise SuiteError(f"{path}: uses {LONGEST_WINDOW} (the longest of features.windows_days): "
                             "load it with the config, or give the window")
        text = text.replace(LONGEST_WINDOW, str(int(longest_window)))
    try:
        document = yaml.safe_load(text)
        lines = _entry_lines(text)
    except yaml.YAMLError as exc:
        raise SuiteError(f"{path}: not valid YAML: {exc}") from exc
    if document is None:
        raise SuiteError(f"{path}: the file is empty; it needs an `expectations` list")
    if not isinstance(document, dict):
        raise SuiteError(f"{path}: the top level must be a mapping with keys {', '.join(TOP_LEVEL_KEYS)}")
    unknown = sorted(set(document) - set(TOP_LEVEL_KEYS))
    if unknown:
        raise SuiteError(f"{path}: unknown key(s) {', '.join(map(str, unknown))} (allowed: {', '.join(TOP_LEVEL_KEYS)})")
    raw_entries = document.get("expectations")
    if not isinstance(raw_entries, list) or not raw_entries:
        raise SuiteError(f"{path}: `expectations` must be a non-empty list of entries")
    entries = tuple(
        _parse_entry(path, i, lines[i] if i < len(lines) else None, raw) for i, raw in enumerate(raw_entries)
    )
    description = document.get("description") or ""
    if not isinstance(description, str):
        raise SuiteError(f"{path}: `description` must be text")
    return Suite(name, path, description.strip(), entries, _parse_row_count(path, document.get("row_count", True)))


def _parse_row_count(path: Path, raw: Any) -> RowCountRule:
    if raw is True or raw is None:
        return RowCountRule()
    if raw is False:
        return RowCountRule(enabled=False)
    if not isinstance(raw, dict):
        raise SuiteError(f"{path}: row_count must be false or a mapping like {{max_drop: 0.5}}")
    unknown = sorted(set(raw) - set(ROW_COUNT_KEYS))
    if unknown:
        raise SuiteError(f"{path}: row_count: unknown key(s) {', '.join(map(str, unknown))} (allowed: max_drop)")
    drop = raw.get("max_drop")
    if drop is not None and (isinstance(drop, bool) or not isinstance(drop, (int, float)) or not 0 <= drop <= 1):
        raise SuiteError(f"{path}: row_count.max_drop must be a number between 0 and 1, got {drop!r}")
    return RowCountRule(enabled=True, max_drop=None if drop is None else float(drop))


def _parse_entry(path: Path, index: int, line: int | None, raw: Any) -> SuiteEntry:
    where = f"{path}: expectations[{index}]" + (f" (line {line})" if line else "")
    if not isinstance(raw, dict):
        raise SuiteError(f"{where}: an entry must be a mapping like {{expectation: ExpectColumnValuesToNotBeNull, column: id}}")
    arguments = dict(raw)
    name = arguments.pop("expectation", None)
    if not isinstance(name, str) or not name:
        raise SuiteError(f"{where}: the entry has no `expectation: <GX expectation class>` key")
    class_name = _class_name(name)
    where = f"{where} {class_name}"
    try:
        cls = _expectation_class(class_name)
    except LookupError as exc:
        raise SuiteError(f"{where}: {exc}") from None
    reserved = sorted(RESERVED_ARGUMENTS & set(arguments))
    if reserved:
        raise SuiteError(f"{where}: {', '.join(reserved)} cannot be set in a suite file")
    from great_expectations.exceptions import GreatExpectationsError

    try:
        cls(**arguments)
    except (ValueError, TypeError, GreatExpectationsError) as exc:  # pydantic's ValidationError is a ValueError
        raise SuiteError(f"{where}: invalid arguments: {_describe_errors(exc)}") from None
    return SuiteEntry(index, line, class_name, arguments)


def _class_name(name: str) -> str:
    """`expect_column_values_to_not_be_null` (GX's type name) -> `ExpectColumnValuesToNotBeNull`."""
    if "_" in name and name == name.lower():
        return "".join(part.capitalize() for part in name.split("_"))
    return name


def _expectation_names() -> list[str]:
    import great_expectations.expectations as gxe
    from great_expectations.expectations import Expectation

    return sorted(
        n for n in dir(gxe)
        if n.startswith("Expect") and isinstance(getattr(gxe, n), type) and issubclass(getattr(gxe, n), Expectation)
    )


def _expectation_class(name: str) -> type[Expectation]:
    import great_expectations.expectations as gxe
    from great_expectations.expectations import Expectation

    cls = getattr(gxe, name, None)
    if not (isinstance(cls, type) and issubclass(cls, Expectation) and cls is not Expectation):
        close = difflib.get_close_matches(name, _expectation_names(), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise LookupError(f"unknown expectation {name!r}: not a class of great_expectations.expectations{hint}")
    return cls


def _column_like_fields(name: str) -> set[str]:
    """Fields of an expectation class whose name says they hold columns."""
    fields = getattr(_expectation_class(name), "__fields__", {})
    return {f for f in fields if re.search(r"column", f)}


def _describe_errors(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        parts = []
        for error in errors():
            location = ".".join(str(p) for p in error.get("loc", ()) if p != "__root__")
            message = error.get("msg", "invalid")
            parts.append(f"{location}: {message}" if location else message)
        if parts:
            return "; ".join(dict.fromkeys(parts))
    return str(exc)


def _entry_lines(text: str) -> list[int]:
    """1-based line of each entry of the `expectations` list (for error messages)."""
    node = yaml.compose(text)
    if not isinstance(node, yaml.MappingNode):
        return []
    for key, value in node.value:
        if isinstance(key, yaml.ScalarNode) and key.value == "expectations" and isinstance(value, yaml.SequenceNode):
            return [item.start_mark.line + 1 for item in value.value]
    return []
