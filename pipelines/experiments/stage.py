"""The experiment-analysis stage: `clickml experiment analyze EXPERIMENT` - one daily look at an
online experiment, written to the lake, reported, and (when configured) acted on.

1. Exposures of the experiment from `tables.silver_exposures`, up to the as-of date (default: the
   last day with exposures, within the configured `start` / `end`), and the users' behaviour from
   `tables.silver_events` (only the event dates the pre-period and the attribution windows reach).
2. `pipelines.experiments.analyze`: first exposure per user -> per-user metrics -> per-variant and
   daily sums (the only rows brought to the driver) -> `summarize` (SRM, rates, z-test, Welch,
   CUPED, Beta-Binomial P(beat) and expected loss, mSPRT, the decision rule per variant).
3. The winner: the non-control variant that ships by the rule with the highest P(beat); none when
   the sample-ratio check flags the split.
4. With `decision.promote` (or the run's `promote` flag) the winner's model version (the one its
   users were served, from the exposures) becomes the job's `champion`; the version that was
   champion gets the alias `previous_champion` (one alias move rolls back); other aliases
   (`challenger`, ...) stay where they are. Never when the SRM check flags the split, never when
   the winning variant was served by more than one model version (its alias moved mid-experiment).
5. Rows to `tables.experiment_results` (long format, partitioned by (experiment_id, as_of_date)); a rerun of
   the same look replaces its partition, earlier looks stay: the table is the history of the daily
   looks. The HTML report (`pipelines.experiments.report`) goes beside the Data Docs and into an
   MLflow run.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from dataclasses import dataclass, field

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from pipelines.config import ClickmlConfig
from pipelines.config.serving import ExperimentSpec
from pipelines.experiments import analyze
from pipelines.experiments.stats import ExperimentStatsError
from pipelines.lake import Lake
from pipelines.train.errors import TrainError

log = logging.getLogger(__name__)

"""The results table. TODO: `TablesConfig.experiment_results` in pipelines/config/models.py (not ours to edit yet)."""
PARTITIONS = ["experiment_id", "as_of_date"]
CHAMPION = "champion"
PREVIOUS_CHAMPION = "previous_champion"
"""Alias the replaced champion gets when an experiment promotes its winner."""
PROMOTION_TAG = "experiment_promotion"
UNKNOWN_VERSION = "unknown"
"""The served model version of exposures that carry none."""
RESULTS_SCHEMA = T.StructType([
    T.StructField("experiment_id", T.StringType()),
    T.StructField("as_of_date", T.DateType()),
    T.StructField("variant", T.StringType()),
    T.StructField("metric", T.StringType()),
    T.StructField("statistic", T.StringType()),
    T.StructField("value", T.DoubleType()),
    T.StructField("text", T.StringType()),
    T.StructField("analyzed_at", T.TimestampType()),
])


class ExperimentError(TrainError):
    """An experiment cannot be analysed as asked (unknown id, no exposures); the message says why."""


def results_table(config: ClickmlConfig) -> str:
    """The results table (`tables.experiment_results`, default `experiments.results`)."""
    return config.tables.experiment_results


@dataclass
class Promotion:
    """What the decision did to the registry."""

    requested: bool
    promoted: bool = False
    reason: str = ""
    model_name: str | None = None
    version: str | None = None
    previous_champion: str | None = None


@dataclass
class AnalysisResult:
    experiment_id: str
    as_of: dt.date
    table: str
    summary: dict = field(default_factory=dict)
    daily: list[dict] = field(default_factory=list)
    """`daily_aggregates` rows (bounded: days x variants), for the report."""
    winner: str | None = None
    decision_reason: str = ""
    promotion: Promotion | None = None
    rows: int = 0
    table_version: int | None = None
    report_path: str | None = None
    seconds: float = 0.0

    def report(self) -> str:
        variants = self.summary.get("variants", {})
        shown = ", ".join(
            f"{name} {_pct(v.get('conversion_rate'))} of {v['users']:,}" for name, v in sorted(variants.items())
        )
        head = f"analyze {self.experiment_id} as of {self.as_of}: {shown}"
        parts = [f"{name} P(beat) {_num(c.get('bayes', {}).get('prob_treatment_beats_control'))}, loss "
                 f"{_num(c.get('bayes', {}).get('loss_choose_treatment'))}"
                 for name, c in sorted(self.summary.get("comparisons", {}).items())]
        decision = f"ship {self.winner}" if self.winner else "no winner"
        text = f"{head}; {'; '.join(parts) + '; ' if parts else ''}{decision} ({self.decision_reason})"
        if self.promotion is not None and self.promotion.requested:
            text += f"; {self.promotion.reason}"
        return f"{text} -> {self.table} v{self.table_version} ({self.seconds:.1f}s)"


def _pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def _num(value) -> str:
    return "n/a" if value is None else f"{value:.4g}"


# -- pure parts ------------------------------------------------------------------------------

def experiment_spec(config: ClickmlConfig, experiment_id: str) -> ExperimentSpec:
    spec = config.experiments.get(experiment_id)
    if spec is None:
        raise ExperimentError(f"unknown experiment {experiment_id!r}; configured (experiments:): "
                              f"{', '.join(sorted(config.experiments)) or 'none'}")
    return spec


def look_window(spec: ExperimentSpec, first_day: dt.date, last_day: dt.date, as_of: dt.date | None,
                experiment_id: str) -> tuple[dt.date, dt.date]:
    """(as-of date, last exposure day analysed): the requested date or the last day with exposures
    (within `end`); exposures after min(as-of, end) are left out."""
    if as_of is None:
        as_of = min(last_day, spec.end) if spec.end else last_day
    if as_of < first_day:
        raise ExperimentError(f"experiment {experiment_id}: no exposure on or before {as_of} (the first is on {first_day})")
    return as_of, min(as_of, spec.end) if spec.end else as_of


def pick_winner(summary: dict) -> tuple[str | None, str]:
    """(winner, why): the non-control variant that ships by the rule with the highest P(beat), else None."""
    srm = summary.get("srm", {})
    if srm.get("mismatch"):
        return None, (f"sample-ratio mismatch (chi2 p = {_num(srm.get('p_value'))} < {srm.get('threshold')}): "
                      f"the split is broken, no variant is shipped")
    comparisons = summary.get("comparisons", {})
    if not comparisons:
        return None, summary.get("note", "no variant to compare with the control")
    shipping = [(c["bayes"]["prob_treatment_beats_control"], -c["bayes"]["loss_choose_treatment"], name)
                for name, c in comparisons.items() if c.get("decision", {}).get("ship")]
    if not shipping:
        rule = next(iter(comparisons.values())).get("decision", {}).get("rule", "")
        return None, f"no variant meets the rule ({rule})"
    prob, loss, name = max(shipping)
    return name, f"P(beat) {prob:.4g} and expected loss {-loss:.3g} meet the rule"


def _pair_names(key: str) -> tuple[str, str]:
    if key.startswith("posterior"):
        return "alpha", "beta"
    return "low", "high"


def flatten(value, prefix: str = "") -> list[tuple[str, float | None, str | None]]:
    """A summary value as (statistic, value, text) rows: dict keys joined by '.', numbers in
    `value`, booleans as 1/0 (and 'true'/'false' in `text`), strings in `text`; number pairs
    (intervals, posteriors) as `<key>.low` / `<key>.high` (`.alpha` / `.beta`). Longer lists (the
    mSPRT's daily path) are left out: the report shows them, and the table's history is its looks."""
    out: list[tuple[str, float | None, str | None]] = []
    if isinstance(value, dict):
        for k, v in value.items():
            out += flatten(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(value, (list, tuple)):
        if len(value) == 2 and all(v is None or isinstance(v, (int, float)) for v in value):
            for suffix, v in zip(_pair_names(prefix.rsplit(".", 1)[-1]), value):
                out.append((f"{prefix}.{suffix}", None if v is None else float(v), None))
    elif isinstance(value, bool):
        out.append((prefix, 1.0 if value else 0.0, "true" if value else "false"))
    elif isinstance(value, (int, float)):
        out.append((prefix, float(value) if math.isfinite(value) else None, None))
    elif value is None:
        out.append((prefix, None, None))
    else:
        out.append((prefix, None, str(value)))
    return out


def result_rows(result: AnalysisResult, versions: dict[str, dict[str, int]], analyzed_at: dt.datetime) -> list[tuple]:
    """The rows of one look: (experiment_id, as_of_date, variant, metric, statistic, value, text, analyzed_at).

    metric `experiment` (variant null): kind, control, unknown variants, analysis window;
    `variant`: users, multi_variant_users, conversions, conversion_rate, clicks_per_user, revenue_per_user;
    `model_version`: statistic = the version served, value = users first exposed to it;
    `srm` (variant null): chi2, p_value, threshold, mismatch, observed.<v>, expected.<v> (or skipped);
    per non-control variant: `conversion` (two-proportion z-test), `bayes` (Beta-Binomial), `clicks`
    and `revenue` (Welch), `cuped.<metric>`, `sequential` (mSPRT), `decision` (the rule for that
    variant); `outcome` (variant null): winner, reason, promote_requested, promoted,
    promoted_version, previous_champion, promotion_reason."""
    s = result.summary
    rows: list[tuple] = []

    def add(variant, metric, items):
        for statistic, value, text in items:
            rows.append((result.experiment_id, result.as_of, variant, metric, statistic, value, text, analyzed_at))

    add(None, "experiment", flatten({k: s.get(k) for k in ("kind", "control", "note") if s.get(k) is not None}))
    add(None, "experiment", [("unknown_variants", float(len(s.get("unknown_variants", []))),
                              ",".join(s.get("unknown_variants", [])) or None)])
    for name, stats in sorted(s.get("variants", {}).items()):
        add(name, "variant", flatten(stats))
        add(name, "model_version", [(str(v), float(n), None) for v, n in sorted(versions.get(name, {}).items())])
    add(None, "srm", flatten(s.get("srm", {})))
    for name, comp in sorted(s.get("comparisons", {}).items()):
        for test, value in comp.items():
            if test == "cuped":
                for metric, res in value.items():
                    add(name, f"cuped.{metric}", flatten(res))
            else:
                add(name, test, flatten(value))
    decision: dict = {"winner": result.winner, "reason": result.decision_reason}
    p = result.promotion
    if p is not None:
        decision.update(promote_requested=p.requested, promoted=p.promoted, promoted_version=p.version,
                        previous_champion=p.previous_champion, promotion_reason=p.reason or None)
    add(None, "outcome", flatten(decision))
    return rows


# -- the registry ----------------------------------------------------------------------------

def _champion(client, name: str):
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST" or (
            exc.error_code == "INVALID_PARAMETER_VALUE" and "not found" in str(exc)
        ):
            return None
        raise


def promote_winner(config: ClickmlConfig, spec: ExperimentSpec, result: AnalysisResult,
                   versions: dict[str, dict[str, int]]) -> Promotion:
    """Move `champion` to the version the winning variant served; the old champion becomes
    `previous_champion`. Logs and tags the version with the experiment's evidence."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from pipelines.train.tracking import configure

    promotion = Promotion(requested=True)
    winner = result.winner
    if winner is None:
        promotion.reason = "nothing promoted: no winner"
        return promotion
    job = config.training.jobs[spec.job]
    name = job.registry.name
    promotion.model_name = name
    served = sorted(versions.get(winner, {}))
    if len(served) != 1 or served[0] == UNKNOWN_VERSION:
        why = ("its alias moved during the experiment" if len(served) > 1
               else "the exposures do not say which model version served it")
        promotion.reason = (f"nothing promoted: variant {winner} was served by model versions "
                            f"{', '.join(served) or 'none recorded'} ({why}); move the alias by hand")
        log.warning("experiment %s: %s", result.experiment_id, promotion.reason)
        return promotion
    version = served[0]
    promotion.version = version
    configure(config)
    client = MlflowClient()
    try:
        client.get_model_version(name, version)
    except MlflowException as exc:
        raise ExperimentError(f"experiment {result.experiment_id}: variant {winner} was served {name} v{version}, "
                              f"which the registry does not have ({str(exc).splitlines()[0]}); nothing promoted") from exc
    champion = _champion(client, name)
    if champion is not None and str(champion.version) == version:
        promotion.reason = f"{name} v{version} is already the champion"
        log.info("experiment %s: %s", result.experiment_id, promotion.reason)
        return promotion
    bayes = result.summary["comparisons"][winner]["bayes"]
    evidence = (f"experiment {result.experiment_id} as of {result.as_of}: variant {winner} P(beat) "
                f"{bayes['prob_treatment_beats_control']:.4g}, expected loss {bayes['loss_choose_treatment']:.3g}")
    client.set_registered_model_alias(name, CHAMPION, version)
    if champion is not None:
        client.set_registered_model_alias(name, PREVIOUS_CHAMPION, str(champion.version))
        promotion.previous_champion = str(champion.version)
    client.set_model_version_tag(name, version, PROMOTION_TAG, evidence)
    promotion.promoted = True
    promotion.reason = (f"promoted {name} v{version} to {CHAMPION}"
                        + (f" (v{champion.version} is now {PREVIOUS_CHAMPION})" if champion is not None else ""))
    log.warning("experiment %s: %s (%s)", result.experiment_id, promotion.reason, evidence)
    return promotion


# -- the stage -------------------------------------------------------------------------------

def _exposures(config: ClickmlConfig, lake: Lake, experiment_id: str, spec: ExperimentSpec) -> DataFrame:
    table = config.tables.silver_exposures
    if not lake.exists(table):
        raise ExperimentError(f"{table} does not exist: the model server's exposures reach it through "
                              f"clickml ingest and clickml silver")
    frame = lake.read(table).where(F.col("experiment_id") == experiment_id)
    if spec.start is not None:
        frame = frame.where(F.col("event_date") >= F.lit(spec.start))  # partition pruning
    return frame


def _events(config: ClickmlConfig, lake: Lake, spec: ExperimentSpec, first_day: dt.date, end_day: dt.date) -> DataFrame:
    """silver.events of the days the pre-period and the attribution windows reach (partition pruning)."""
    table = config.tables.silver_events
    if not lake.exists(table):
        raise ExperimentError(f"{table} does not exist: build it first (clickml silver)")
    lo = (spec.start or first_day) - dt.timedelta(days=spec.pre_period_days)
    hi = end_day + dt.timedelta(days=1 + math.ceil(spec.attribution_window_hours / 24))
    return lake.read(table).where(F.col("event_date").between(F.lit(lo), F.lit(hi)))


def user_metrics(config: ClickmlConfig, lake: Lake, experiment_id: str, spec: ExperimentSpec,
                 as_of: dt.date | None = None) -> tuple[DataFrame, DataFrame, dt.date, dt.date]:
    """(first exposures, per-user metrics, as-of date, last exposure day) of one look."""
    exposures = _exposures(config, lake, experiment_id, spec)
    bounds = exposures
    if spec.end is not None:
        bounds = bounds.where(F.col("event_date") <= F.lit(spec.end))
    # Bounded: one row.
    span = bounds.agg(F.min(F.to_date("exposure_time")).alias("lo"), F.max(F.to_date("exposure_time")).alias("hi")).first()
    if span["lo"] is None:
        window = f" between {spec.start or '...'} and {spec.end or '...'}" if spec.start or spec.end else ""
        raise ExperimentError(f"experiment {experiment_id}: no exposure in {config.tables.silver_exposures}{window} "
                              f"(is it served? are its exposures ingested?)")
    as_of, end_day = look_window(spec, span["lo"], span["hi"], as_of, experiment_id)
    exposures = exposures.where(F.col("event_date") <= F.lit(end_day))
    first = analyze.first_exposures(exposures, experiment_id, spec.start, end_day)
    metrics = analyze.user_metrics(
        first, _events(config, lake, spec, span["lo"], end_day), conversion_event=spec.conversion_event,
        attribution_window_hours=spec.attribution_window_hours, pre_period_days=spec.pre_period_days,
        start=spec.start, end=end_day,
    )
    return first, metrics, as_of, end_day


def served_versions(first: DataFrame) -> dict[str, dict[str, int]]:
    """variant -> {model version (`unknown` when the exposure has none): users first exposed to it}
    (bounded: variants x versions)."""
    out: dict[str, dict[str, int]] = {}
    for r in first.groupBy("variant", "model_version").count().collect():
        version = UNKNOWN_VERSION if r["model_version"] in (None, "") else str(r["model_version"])
        out.setdefault(r["variant"], {})[version] = int(r["count"])
    return out


def run(config: ClickmlConfig, spark: SparkSession, experiment_id: str, as_of: dt.date | None = None,
        promote: bool | None = None) -> AnalysisResult:
    """Analyse `experiment_id` as of `as_of` (default: its last day with exposures), write the look to
    the results table and the report, and with `promote` (default: the experiment's
    `decision.promote`) move the registry's champion alias to a winner."""
    started = time.time()
    spec = experiment_spec(config, experiment_id)
    lake = Lake(config, spark)
    table = results_table(config)
    first, metrics, as_of, end_day = user_metrics(config, lake, experiment_id, spec, as_of)
    log.info("analyze %s (%s) as of %s: exposures up to %s, window %sh, pre-period %sd", experiment_id, spec.kind,
             as_of, end_day, spec.attribution_window_hours, spec.pre_period_days)
    first, metrics = first.persist(), metrics.persist()  # first: read by the metrics and by the versions
    try:
        # Bounded: variants rows; days x variants rows; variants x versions rows.
        aggregates = [r.asDict() for r in analyze.variant_aggregates(metrics).collect()]
        daily = [r.asDict() for r in analyze.daily_aggregates(metrics).orderBy("day", "variant").collect()]
        versions = served_versions(first)
    finally:
        metrics.unpersist()
        first.unpersist()
    try:
        summary = analyze.summarize(experiment_id, spec, aggregates, daily)
    except ExperimentStatsError as exc:
        raise ExperimentError(f"experiment {experiment_id} as of {as_of}: {exc}") from exc
    result = AnalysisResult(experiment_id, as_of, table, summary, daily)
    result.winner, result.decision_reason = pick_winner(summary)
    log.info("analyze %s as of %s: %s (%s)", experiment_id, as_of,
             f"variant {result.winner} wins" if result.winner else "no winner", result.decision_reason)
    do_promote = spec.decision.promote if promote is None else promote
    if do_promote:
        result.promotion = promote_winner(config, spec, result, versions)
    else:
        why = f"experiments.{experiment_id}.decision.promote: false" if promote is None else "the run's promote flag is off"
        result.promotion = Promotion(requested=False, reason=f"registry untouched ({why})")
    analyzed_at = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    rows = result_rows(result, versions, analyzed_at)
    frame = spark.createDataFrame(rows, RESULTS_SCHEMA)
    replace = [{"experiment_id": experiment_id, "as_of_date": as_of.isoformat()}]
    if lake.exists(table):
        written = lake.write(frame, table, mode="overwrite_partitions", partition_by=PARTITIONS, replace_partitions=replace)
    else:
        written = lake.write(frame, table, mode="overwrite", partition_by=PARTITIONS)
    result.rows, result.table_version = len(rows), written.version
    from pipelines.experiments.report import write_report

    result.report_path = write_report(config, result)
    result.seconds = time.time() - started
    log.info("%s", result.report())
    return result
