"""`clickml generate`: landing files plus ground-truth tables, and the oracle AUCs."""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pipelines.config import ClickmlConfig
from pipelines.config.generator import BAD_RECORD_KINDS, GeneratorConfig
from pipelines.generate import corrupt, heavy, landing, latent, sizing
from pipelines.generate import events as ev
from pipelines.generate import sessions as sess
from pipelines.generate import users as usr

log = logging.getLogger("pipelines.generate")


@dataclass
class LandingResult:
    """What `generate_landing` wrote."""

    path: str
    files: int
    hours: int
    lines: int
    events: int
    late_events: int
    bad_counts: dict[str, int] = field(default_factory=dict)

    @property
    def bad_lines(self) -> int:
        return sum(self.bad_counts.values())


@dataclass
class GenerateResult:
    """What `run` wrote and measured."""

    landing_path: str
    users: int
    sessions: int
    purchasing_sessions: int
    events: int
    lines: int
    files: int
    hours: int
    late_events: int
    bad_counts: dict[str, int]
    oracle_session_auc: float
    expected_session_auc: float
    oracle_window_auc: float
    window_cutoff: dt.date
    window_horizon_days: int
    seconds: float
    heavy_users: int = 0
    """Heavy users (bots/abusers; included in `users`)."""
    heavy_sessions: int = 0
    """Sessions of the heavy users (included in `sessions`)."""
    heavy_events: int = 0
    """Valid events of the heavy users (included in `events`)."""
    heavy_user_ids: list[str] = field(default_factory=list)
    """Ids of the heavy users (also `truth.users.is_heavy`)."""

    @property
    def bad_lines(self) -> int:
        return sum(self.bad_counts.values())

    @property
    def output_path(self) -> str:
        """Alias of `landing_path`."""
        return self.landing_path

    def report(self) -> str:
        """A human-readable summary (printed by `clickml generate`)."""
        bad = ", ".join(f"{k} {v:,}" for k, v in self.bad_counts.items() if v) or "none"
        share = self.bad_lines / self.lines if self.lines else 0.0
        heavy_lines = []
        if self.heavy_users:
            ids = ", ".join(self.heavy_user_ids[:5]) + (", ..." if len(self.heavy_user_ids) > 5 else "")
            heavy_share = self.heavy_events / self.events if self.events else 0.0
            heavy_lines = [
                f"heavy users            {self.heavy_users:,} ({ids}): {self.heavy_events:,} valid events "
                f"({heavy_share:.1%}) in {self.heavy_sessions:,} session(s)"
            ]
        return "\n".join(
            [
                f"landing files          {self.landing_path} ({self.files:,} files in {self.hours:,} hour folders)",
                f"users / sessions       {self.users:,} / {self.sessions:,} ({self.purchasing_sessions:,} with a purchase)",
                f"valid events           {self.events:,} ({self.late_events:,} arriving 1-48 h late)",
                *heavy_lines,
                f"bad lines              {self.bad_lines:,} of {self.lines:,} ({share:.1%}): {bad}",
                f"oracle AUC (session)   {self.oracle_session_auc:.4f} realised, {self.expected_session_auc:.4f} expected from the model",
                f"oracle AUC (user)      {self.oracle_window_auc:.4f} for a purchase in ({self.window_cutoff}, +{self.window_horizon_days} days]",
                f"took                   {self.seconds:.1f}s",
            ]
        )

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["window_cutoff"] = self.window_cutoff.isoformat()
        data["bad_lines"] = self.bad_lines
        return data


def landing_path(config: ClickmlConfig) -> str:
    """`<landing.root>/<generator.source>`."""
    return config.landing.root.rstrip("/") + "/" + config.generator.source


def build_users(spark: SparkSession, gen: GeneratorConfig) -> DataFrame:
    """The normal users with their latent attributes (internal columns included); the heavy
    users are `heavy.heavy_users`."""
    return usr.users(spark, gen)


def build_sessions(spark: SparkSession, gen: GeneratorConfig) -> DataFrame:
    """Sessions with their funnel (`events` array); the source of both truth and events. With
    heavy users, their sessions are appended and the frame has an `is_heavy` column."""
    return heavy.with_heavy_sessions(ev.with_funnel(sess.sessions(build_users(spark, gen), gen), gen), spark, gen)


def build_events(spark: SparkSession, gen: GeneratorConfig) -> DataFrame:
    """Valid events, typed (see `events.events`)."""
    return ev.events(build_sessions(spark, gen), gen)


def build_lines(spark: SparkSession, gen: GeneratorConfig) -> DataFrame:
    """All output lines: line, arrival_ms, kind, late."""
    return corrupt.output_lines(build_events(spark, gen), gen)


def generate_landing(config: ClickmlConfig, spark: SparkSession) -> LandingResult:
    """Write the landing files (replacing the source folder) and count lines by kind."""
    gen = config.generator
    path = landing_path(config)
    expected = sizing.estimate(gen)
    kinds = (corrupt.VALID, *BAD_RECORD_KINDS)
    lines = build_lines(spark, gen)
    # Counted in an aggregate of its own rather than with DataFrame.observe: once a session has
    # used an Observation, Spark 4.1 fails MLlib model selection later in the same session with
    # "Task not serializable: ObservationManager" (tests/integration/generate covers it). The lines
    # are a deterministic function of the config, so counting recomputes them without I/O.
    metrics = lines.agg(
        F.count(F.lit(1)).alias("lines"),
        F.sum(F.col("late").cast("long")).alias("late"),
        *[F.sum((F.col("kind") == F.lit(kind)).cast("long")).alias(kind) for kind in kinds],
    ).first().asDict()  # one row
    files = landing.write_lines(spark, lines, path, gzip=gen.gzip, files_per_hour=gen.files_per_hour,
                                expected_lines=int(expected.lines))
    bad = {kind: int(metrics.get(kind) or 0) for kind in BAD_RECORD_KINDS}
    result = LandingResult(
        path=path,
        files=files.files,
        hours=files.hours,
        lines=int(metrics.get("lines") or 0),
        events=int(metrics.get(corrupt.VALID) or 0),
        late_events=int(metrics.get("late") or 0),
        bad_counts=bad,
    )
    log.info(
        "landed %d lines (%d valid events, %d late, %d bad: %s) in %d files over %d hours under %s",
        result.lines, result.events, result.late_events, result.bad_lines,
        ", ".join(f"{k}={v}" for k, v in bad.items() if v), result.files, result.hours, path,
    )
    return result


def write_truth(config: ClickmlConfig, spark: SparkSession, lake) -> None:
    """Write `truth.users` and `truth.sessions` through the lake (overwrite)."""
    gen = config.generator
    users_df = build_users(spark, gen)
    truth_users = usr.truth_users(users_df)
    if heavy.enabled(gen):
        truth_users = truth_users.unionByName(usr.truth_users(heavy.heavy_users(spark, gen)))
    lake.write(truth_users, config.tables.truth_users, mode="overwrite")
    funnel = heavy.with_heavy_sessions(ev.with_funnel(sess.sessions(users_df, gen), gen), spark, gen)
    lake.write(sess.truth_sessions(funnel), config.tables.truth_sessions, mode="overwrite")


def run(config: ClickmlConfig, spark: SparkSession, lake=None) -> GenerateResult:
    """Generate the clickstream: landing files, `truth.users`, `truth.sessions`, oracle AUCs."""
    started = time.monotonic()
    if lake is None:
        from pipelines.lake import Lake

        lake = Lake(config, spark)
    gen = config.generator
    plan = sizing.estimate(gen)
    log.info(
        "generating seed=%d: %d users x %d days from %s, expected ~%.0f sessions, ~%.0f events, ~%.0f lines",
        gen.seed, gen.users, gen.days, gen.start_date, plan.sessions, plan.events, plan.lines,
    )
    if heavy.enabled(gen):
        log.info(
            "plus %d heavy users (%s): %d events a day each in %d sessions at %.0f events/s, %d events in all",
            gen.heavy_users.count, ", ".join(heavy.heavy_user_ids(gen)[:5]), gen.heavy_users.events_per_day,
            gen.heavy_users.sessions_per_day, gen.heavy_users.events_per_second, plan.heavy_events,
        )
    write_truth(config, spark, lake)
    log.info("wrote %s and %s", config.tables.truth_users, config.tables.truth_sessions)
    landed = generate_landing(config, spark)

    all_sessions = lake.read(config.tables.truth_sessions)
    heavy_session = F.col("is_heavy")
    counts = all_sessions.agg(
        F.count(F.lit(1)).alias("sessions"),
        F.sum(F.col("purchased").cast("long")).alias("purchasing"),
        F.sum(heavy_session.cast("long")).alias("heavy_sessions"),
        F.sum(F.when(heavy_session, F.col("n_events")).otherwise(F.lit(0)).cast("long")).alias("heavy_events"),
    ).first()
    users = lake.read(config.tables.truth_users).count()
    # the oracle AUCs are about the normal users' purchases: heavy users never buy
    truth_sessions = all_sessions.where(~heavy_session)
    session_auc = latent.session_auc(truth_sessions)
    expected_auc = latent.expected_session_auc(gen)
    cutoff, horizon = latent.default_window(gen)
    window_auc = latent.oracle_window_auc(truth_sessions, cutoff, horizon)
    result = GenerateResult(
        landing_path=landed.path,
        users=int(users),
        sessions=int(counts["sessions"] or 0),
        purchasing_sessions=int(counts["purchasing"] or 0),
        events=landed.events,
        lines=landed.lines,
        files=landed.files,
        hours=landed.hours,
        late_events=landed.late_events,
        bad_counts=landed.bad_counts,
        oracle_session_auc=session_auc,
        expected_session_auc=expected_auc,
        oracle_window_auc=window_auc,
        window_cutoff=cutoff,
        window_horizon_days=horizon,
        seconds=time.monotonic() - started,
        heavy_users=gen.heavy_users.count,
        heavy_sessions=int(counts["heavy_sessions"] or 0),
        heavy_events=int(counts["heavy_events"] or 0),
        heavy_user_ids=heavy.heavy_user_ids(gen),
    )
    log.info(
        "oracle AUC: session %.4f (expected from the model %.4f), user window (%s, +%dd] %.4f; %d users, "
        "%d sessions (%d purchasing) in %.1fs",
        session_auc, expected_auc, cutoff, horizon, window_auc, result.users, result.sessions,
        result.purchasing_sessions, result.seconds,
    )
    return result
