"""The bandit's reweighting: `clickml experiment update-bandit EXPERIMENT` - observed (exposed
users, converted users) per variant from the lake -> Thompson-sampling weights
(`pipelines.serve.routing.bandit_weights`, with the experiment's Beta prior and a floor per arm) ->
Redis, where the model servers pick them up (`routing.read_bandit_weights`).

The counts are the analysis' own (`pipelines.experiments.analyze`): users by the variant of their
first exposure, converted when the conversion event falls in the attribution window. Only users
whose window has closed by the latest event in silver.events count: a user exposed an hour ago
has not had the chance to convert yet, and counting them as non-converted would push traffic
away from whichever arm got the most recent users.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from pipelines.config import ClickmlConfig
from pipelines.experiments import analyze
from pipelines.experiments.stage import ExperimentError, experiment_spec, user_metrics
from pipelines.lake import Lake

log = logging.getLogger(__name__)


@dataclass
class BanditUpdate:
    experiment_id: str
    counts: dict[str, tuple[int, int]] = field(default_factory=dict)
    """variant -> (users whose window closed, converted users)."""
    weights: dict[str, float] = field(default_factory=dict)
    mature_before: dt.datetime | None = None
    """Users first exposed before this time (the latest event minus the window) were counted."""
    key: str = ""
    seconds: float = 0.0

    def report(self) -> str:
        arms = ", ".join(f"{name} {self.weights[name]:.3f} ({c}/{n})" for name, (n, c) in self.counts.items())
        return f"update-bandit {self.experiment_id}: weights {arms} -> redis {self.key} ({self.seconds:.1f}s)"


def observed_counts(config: ClickmlConfig, spark: SparkSession, experiment_id: str) -> tuple[dict[str, tuple[int, int]], dt.datetime | None]:
    """(variant -> (users, converted users) of the users whose attribution window has closed, the
    cutoff on first exposure) from silver.exposures and silver.events; variants without users get (0, 0)."""
    spec = experiment_spec(config, experiment_id)
    lake = Lake(config, spark)
    events_table = config.tables.silver_events
    if not lake.exists(events_table):
        raise ExperimentError(f"{events_table} does not exist: build it first (clickml silver)")
    # Bounded: one row. The newest event says how far behaviour has been observed.
    latest = lake.read(events_table).agg(F.max("event_time").alias("t")).first()["t"]
    spec_no_pre = spec.model_copy(update={"pre_period_days": 0})  # no CUPED covariate needed
    _, metrics, _, _ = user_metrics(config, lake, experiment_id, spec_no_pre)
    cutoff = None if latest is None else latest - dt.timedelta(hours=spec.attribution_window_hours)
    mature = metrics if cutoff is None else metrics.where(F.col("first_exposure") <= F.lit(cutoff))
    counts = {name: (0, 0) for name in spec.variants}
    # Bounded: one row per variant.
    for r in analyze.variant_aggregates(mature).collect():
        if r["variant"] in counts:
            counts[r["variant"]] = (int(r["users"]), int(r["converted_sum"] or 0))
        else:
            log.warning("bandit %s: exposures name variant %r, not in the config; ignored", experiment_id, r["variant"])
    return counts, cutoff


def update(config: ClickmlConfig, spark: SparkSession, experiment_id: str, client=None) -> BanditUpdate:
    """Recompute a bandit's arm weights from the lake and publish them to Redis (`serving.redis_url`,
    or `client`). Raises ExperimentError when the experiment is not kind bandit."""
    from pipelines.serve.online import connect
    from pipelines.serve.routing import bandit_key, bandit_weights, publish_bandit_weights

    started = time.time()
    spec = experiment_spec(config, experiment_id)
    if spec.kind != "bandit":
        raise ExperimentError(f"experiment {experiment_id} is kind {spec.kind}, not bandit: its traffic split is fixed by "
                              f"the config (experiments.{experiment_id}.kind); only a bandit's weights are updated")
    counts, cutoff = observed_counts(config, spark, experiment_id)
    weights = bandit_weights(spec, counts)
    prefix = config.serving.key_prefix
    import redis

    try:
        publish_bandit_weights(client or connect(config.serving.redis_url), prefix, experiment_id, weights, counts)
    except redis.RedisError as exc:  # the URL may hold a password: named by its key, not printed
        raise ExperimentError(f"bandit {experiment_id}: cannot publish the weights {weights} to Redis "
                              f"(serving.redis_url): {exc}") from exc
    result = BanditUpdate(experiment_id, counts, weights, cutoff, bandit_key(prefix, experiment_id), time.time() - started)
    log.info("%s", result.report())
    return result
