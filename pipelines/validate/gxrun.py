"""Run a suite on a Spark DataFrame with an ephemeral Great Expectations 1.x context.

Cost. GX's Spark engine bundles the aggregate metrics of one domain (row count, null and range
counts, means, ...) into a single `df.agg(...)` per dependency level, but every level, every
uniqueness window and every "unexpected values" sample is its own Spark job, and each job re-reads
the DataFrame it was given (GX issue #10757). So here:

- only the columns whose values the suite reads are selected and materialized once for the
  duration of the run: the source is scanned once, and GX's jobs read the materialized rows; the
  other columns are handed to GX as typed null literals, so schema checks still see the whole
  table. By default the rows are kept as a local checkpoint in executor memory (spilling to
  disk, MEMORY_AND_DISK_DESER): about half the CPU of building Spark's columnar cache, and GX's
  jobs read it as fast. Its price is that an executor lost mid-run fails the run instead of
  recomputing the lost part; `MATERIALIZE = "persist"` switches to `persist()` with the same
  storage level (measured in docs/validation.md). Either is released when the run ends;
- the first pass asks for no unexpected-value samples (`partial_unexpected_count: 0`, a `LIMIT 0`
  that Spark answers without a job); only when a check fails are a few examples fetched, for the
  failed checks alone, in a second pass.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from py4j.protocol import Py4JError
from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pipelines.locks import exclusive_lock
from pipelines.validate.result import OBSERVED_KEYS, ExpectationOutcome
from pipelines.validate.suites import Suite

if TYPE_CHECKING:
    from great_expectations.core import ExpectationSuiteValidationResult
    from great_expectations.data_context import EphemeralDataContext

log = logging.getLogger(__name__)

SITE_NAME = "clickml"
DATASOURCE_NAME = "clickml"
BATCH_DEFINITION_NAME = "whole_dataframe"
STORAGE_LEVEL = StorageLevel.MEMORY_AND_DISK_DESER
MATERIALIZE = "checkpoint"
"""How the columns read are kept during a run: `checkpoint` (local checkpoint) or `persist` (cache)."""
FIRST_PASS_FORMAT = {"result_format": "BASIC", "partial_unexpected_count": 0}
EXAMPLES = 20
EXAMPLES_FORMAT = {"result_format": "BASIC", "partial_unexpected_count": EXAMPLES}


@dataclass(frozen=True)
class DocsTarget:
    """Where GX keeps suites and results (filesystem stores) and builds the Data Docs site."""

    root: Path
    """`<results_root>`: holds `gx/expectations`, `gx/validations` and `data_docs/`."""

    @property
    def site_dir(self) -> Path:
        return self.root / "data_docs"

    @property
    def lock_path(self) -> Path:
        return self.root / ".data_docs.lock"


@dataclass
class FrameRun:
    """What one GX run produced."""

    outcomes: list[ExpectationOutcome]
    rows: int
    columns_read: list[str]
    docs_page: str | None = None
    docs_index: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds spent: `scan` (reading the columns into memory), `checks` (GX), `examples`, `docs`."""


def make_context(docs: DocsTarget | None) -> EphemeralDataContext:
    """An ephemeral GX context: no project folder; with `docs`, suites and results are kept on
    disk under it so that the Data Docs site accumulates every run."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    defaults = InMemoryStoreBackendDefaults(init_temp_docs_sites=False)
    sites: dict[str, Any] = {}
    if docs is not None:
        for store, folder in ((defaults.expectations_store_name, "expectations"),
                              (defaults.validation_results_store_name, "validations")):
            defaults.stores[store]["store_backend"] = {
                "class_name": "TupleFilesystemStoreBackend",
                "base_directory": str(docs.root / "gx" / folder),
            }
        sites[SITE_NAME] = {
            "class_name": "SiteBuilder",
            "show_how_to_buttons": False,
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs.site_dir)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        }
    config = DataContextConfig(
        store_backend_defaults=defaults,
        data_docs_sites=sites,
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
    )
    return gx.get_context(mode="ephemeral", project_config=config)


def prepare_frame(df: DataFrame, suite: Suite, how: str | None = None) -> tuple[DataFrame, DataFrame, list[str]]:
    """(frame of the columns read, to be materialized, the frame GX sees, the columns read).

    Nothing runs yet: the first action on the first frame materializes it; `release` frees it.
    """
    how = how or MATERIALIZE
    if how not in ("checkpoint", "persist"):
        raise ValueError(f"materialize must be 'checkpoint' or 'persist', got {how!r}")
    wanted = suite.data_columns()
    read = [c for c in df.columns if wanted is None or c in wanted]
    selected = df.select(*[F.col(_quoted(c)) for c in read])
    if how == "checkpoint":
        cached = selected.localCheckpoint(eager=False, storageLevel=STORAGE_LEVEL)
    else:
        cached = selected.persist(STORAGE_LEVEL)
    view = cached.select(
        *[F.col(_quoted(f.name)) if f.name in read else F.lit(None).cast(f.dataType).alias(f.name) for f in df.schema.fields]
    )
    return cached, view, read


def run_suite(
    df: DataFrame,
    suite: Suite,
    asset_name: str,
    run_name: str,
    run_time: dt.datetime,
    docs: DocsTarget | None,
) -> FrameRun:
    """Validate `df` against `suite` (one scan of the source, then GX on the materialized rows)."""
    from great_expectations import ValidationDefinition
    from great_expectations.core.run_identifier import RunIdentifier

    timings: dict[str, float] = {}
    clock = time.monotonic()
    cached, view, read = prepare_frame(df, suite)
    try:
        rows = cached.count()  # the one scan of the source: it materializes the columns read
        timings["scan"], clock = _lap(clock)
        log.info("validate %s: suite %s, %d check(s), %d row(s), values read from %d of %d column(s)",
                 asset_name, suite.name, len(suite.entries), rows, len(read), len(df.columns))
        context = make_context(docs)
        batch_definition = (
            context.data_sources.add_spark(name=DATASOURCE_NAME, persist=False)
            .add_dataframe_asset(name=asset_name)
            .add_batch_definition_whole_dataframe(BATCH_DEFINITION_NAME)
        )
        gx_suite = context.suites.add_or_update(suite.to_gx())
        definition = context.validation_definitions.add(
            ValidationDefinition(name=f"{asset_name}:{suite.name}", data=batch_definition, suite=gx_suite)
        )
        run_id = RunIdentifier(run_name=run_name, run_time=run_time)
        result = definition.run(batch_parameters={"dataframe": view}, result_format=FIRST_PASS_FORMAT, run_id=run_id)
        timings["checks"], clock = _lap(clock)
        sampled = _add_examples(batch_definition, view, suite, result)
        timings["examples"], clock = _lap(clock)
        run = FrameRun(_outcomes(suite, result), rows, read, timings=timings)
        if docs is not None:
            run.docs_page, run.docs_index = _build_docs(context, docs, gx_suite.name, run_id, result, sampled)
            timings["docs"], clock = _lap(clock)
        log.info("validate %s: %s", asset_name, ", ".join(f"{k} {v:.2f}s" for k, v in timings.items()))
        return run
    finally:
        release(cached)


def release(frame: DataFrame) -> None:
    """Free the rows kept for a run: unpersist a cache, or the RDD behind a local checkpoint."""
    if frame.is_cached:
        frame.unpersist(blocking=True)
        return
    try:  # a local checkpoint is a LogicalRDD over a persisted RDD; DataFrame.unpersist ignores it.
        # Spark logs a warning that the RDD cannot be recomputed after this: expected, it is done.
        frame._jdf.queryExecution().analyzed().rdd().unpersist(True)
    except (AttributeError, Py4JError) as exc:  # another plan shape: Spark's cleaner frees it once unused
        log.debug("local checkpoint left to Spark's context cleaner: %s", exc)


def _lap(since: float) -> tuple[float, float]:
    now = time.monotonic()
    return round(now - since, 3), now


def _add_examples(batch_definition, view: DataFrame, suite: Suite, result: ExpectationSuiteValidationResult) -> bool:
    """Fetch up to EXAMPLES unexpected values for the failed checks that have some; True if any."""
    failed = [
        r for r in result.results
        if not r.success and not (r.exception_info or {}).get("raised_exception") and (r.result or {}).get("unexpected_count")
    ]
    if not failed:
        return False
    import great_expectations as gx

    keys = {_config_key(r.expectation_config) for r in failed}
    entries = [e for e in suite.entries if _config_key(e.build().configuration) in keys]
    probe = gx.ExpectationSuite(name=f"{suite.name}.examples", expectations=[e.build() for e in entries])
    batch = batch_definition.get_batch(batch_parameters={"dataframe": view})
    # Bounded: at most EXAMPLES values per failed check come back to the driver.
    samples = {_config_key(r.expectation_config): r.result.get("partial_unexpected_list") for r in
               batch.validate(probe, result_format=EXAMPLES_FORMAT).results}
    for r in failed:
        values = samples.get(_config_key(r.expectation_config))
        if values is not None:
            r.result["partial_unexpected_list"] = values
    return True


def _config_key(configuration) -> str:
    """Identifies an expectation by type and arguments (GX adds the batch id to results' kwargs)."""
    kwargs = {k: v for k, v in configuration.kwargs.items() if k != "batch_id"}
    return json.dumps([configuration.type, kwargs], sort_keys=True, default=str)


def _outcomes(suite: Suite, result: ExpectationSuiteValidationResult) -> list[ExpectationOutcome]:
    """Outcomes in the suite file's order (GX returns its results in its own order)."""
    from great_expectations.util import convert_to_json_serializable

    by_key = {_config_key(r.expectation_config): r for r in result.results}
    outcomes = []
    for entry in suite.entries:
        r = by_key.get(_config_key(entry.build().configuration))
        if r is None:  # pragma: no cover - GX returns one result per expectation
            raise RuntimeError(f"GX returned no result for {entry.expectation} (entry {entry.index})")
        info = r.exception_info or {}
        exception = None
        if info.get("raised_exception"):
            exception = str(info.get("exception_message") or "an exception")
        else:  # one level deeper when a metric failed: {metric id: {exception_message: ...}}
            nested = [v for v in info.values() if isinstance(v, dict) and v.get("raised_exception")]
            if nested:
                exception = str(nested[0].get("exception_message") or "an exception")
        observed = {k: r.result[k] for k in OBSERVED_KEYS if r.result and k in r.result}
        if observed.get("partial_unexpected_list") == []:
            observed.pop("partial_unexpected_list")
        arguments = dict(entry.arguments)
        outcomes.append(
            ExpectationOutcome(
                entry.expectation, convert_to_json_serializable(arguments), bool(r.success),
                convert_to_json_serializable(observed), exception,
            )
        )
    return outcomes


def _build_docs(context, docs: DocsTarget, suite_name: str, run_id, result, restore: bool) -> tuple[str | None, str | None]:
    """Store the (completed) result again if examples were added, then build this run's pages."""
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    suite_key = ExpectationSuiteIdentifier(name=suite_name)
    key = ValidationResultIdentifier(expectation_suite_identifier=suite_key, run_id=run_id, batch_identifier=result.batch_id)
    if restore:
        context.validation_results_store.set(key, result)
    docs.site_dir.mkdir(parents=True, exist_ok=True)
    # The index builder drops pages whose results it did not list: serialize builds.
    with exclusive_lock(docs.lock_path):  # other validate processes on this filesystem wait
        context.build_data_docs(site_names=[SITE_NAME], resource_identifiers=[key, suite_key])
    page = context.get_docs_sites_urls(resource_identifier=key, site_name=SITE_NAME)
    index = context.get_docs_sites_urls(site_name=SITE_NAME)
    return (page[0].get("site_url") if page else None), (index[0].get("site_url") if index else None)




def _quoted(name: str) -> str:
    return f"`{name.replace('`', '``')}`"
