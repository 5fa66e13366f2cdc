"""Config of the synthetic clickstream generator (`clickml generate`).

The latent model these settings parameterise is documented in `docs/generator.md`.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Literal, get_args

from pydantic import Field, field_validator, model_validator

from pipelines.config.base import Section
from pipelines.config.serving import check_variant_names

Device = Literal["desktop", "mobile", "tablet"]
Referrer = Literal["direct", "search", "social", "email", "ads"]
BadRecordKind = Literal[
    "malformed_json",
    "missing_field",
    "wrong_type",
    "duplicate",
    "unknown_event_type",
    "too_old",
    "future",
]

# The value lists, derived from the Literal types so that the two cannot drift apart.
DEVICES: tuple[str, ...] = get_args(Device)
REFERRERS: tuple[str, ...] = get_args(Referrer)
BAD_RECORD_KINDS: tuple[str, ...] = get_args(BadRecordKind)

_ISO2 = re.compile(r"^[A-Z]{2}$")


def _positive_weights(value: dict[str, float], what: str) -> dict[str, float]:
    if any(w < 0 for w in value.values()):
        raise ValueError(f"{what} weights must be >= 0")
    if not value or sum(value.values()) <= 0:
        raise ValueError(f"{what} weights must not all be zero")
    return value


class BehaviourConfig(Section):
    """How users visit: session rate, devices, referrers, countries, funnel depth and pace."""

    sessions_per_day: float = Field(default=0.5, gt=0, le=12)
    """Median over users of the expected number of sessions per user per day (lognormal)."""
    sessions_per_day_sigma: float = Field(default=0.8, ge=0, le=3)
    """Log-scale standard deviation of the users' session rates (0: every user the same rate)."""
    activity_propensity_correlation: float = Field(default=0.3, ge=-1, le=1)
    """Correlation of a user's log session rate with the latent purchase propensity z."""
    device_weights: dict[Device, float] = Field(default_factory=lambda: {"desktop": 0.45, "mobile": 0.45, "tablet": 0.10})
    """Relative frequency of each device as a user's home device (and for non-home sessions)."""
    home_device_stickiness: float = Field(default=0.85, ge=0, le=1)
    """Probability that a session uses the user's home device (else a device drawn anew)."""
    referrer_weights: dict[Referrer, float] = Field(
        default_factory=lambda: {"direct": 0.35, "search": 0.30, "social": 0.15, "email": 0.10, "ads": 0.10}
    )
    """Relative frequency of each session referrer."""
    country_weights: dict[str, float] = Field(
        default_factory=lambda: {
            "US": 0.35, "GB": 0.10, "DE": 0.10, "IN": 0.10, "FR": 0.08,
            "BR": 0.07, "CA": 0.05, "ES": 0.05, "IT": 0.05, "PL": 0.05,
        }
    )
    """Relative frequency of each user's country (ISO 3166-1 alpha-2 codes)."""
    search_share: float = Field(default=0.3, ge=0, le=1)
    """Probability that a session starts with `search` (else with `page_view`)."""
    extra_views_mean: float = Field(default=2.0, gt=0, le=50)
    """Mean number of product views after the first one, for a user with z = 0 (geometric)."""
    views_propensity_weight: float = Field(default=0.3, ge=-3, le=3)
    """Log-multiplier of the extra-views mean per unit of z (propensity makes users browse more)."""
    max_views: int = Field(default=20, ge=1, le=100)
    """Upper bound of product views in one session."""
    cart_intercept: float = Field(default=-2.2, ge=-20, le=20)
    """Logit of the probability that a viewed product is added to the cart, for z = 0."""
    cart_propensity_weight: float = Field(default=0.6, ge=-5, le=5)
    """Logit increase of the add-to-cart probability per unit of z."""
    remove_share: float = Field(default=0.15, ge=0, le=1)
    """Probability that a cart addition is undone by `remove_from_cart` (never the item bought)."""
    event_gap_seconds: float = Field(default=25.0, gt=0, le=120)
    """Median seconds between two events of a session (lognormal per session)."""

    @field_validator("device_weights", "referrer_weights")
    @classmethod
    def _weights(cls, value: dict[str, float]) -> dict[str, float]:
        return _positive_weights(value, "category")

    @field_validator("country_weights")
    @classmethod
    def _countries(cls, value: dict[str, float]) -> dict[str, float]:
        bad = sorted(c for c in value if not _ISO2.match(c))
        if bad:
            raise ValueError(f"country codes must be two upper-case letters (ISO 3166-1 alpha-2): {', '.join(bad)}")
        return _positive_weights(value, "country")


class PurchaseModelConfig(Section):
    """The latent purchase model: p = sigmoid(intercept + propensity_weight * z + device + referrer [+ drift])."""

    intercept: float = Field(default=-3.2, ge=-20, le=20)
    """Logit intercept of a session's purchase probability."""
    propensity_weight: float = Field(default=1.0, ge=-10, le=10)
    """Weight of the user's latent propensity z ~ N(0, 1) in the purchase logit."""
    device_effects: dict[Device, float] = Field(default_factory=lambda: {"desktop": 0.2, "mobile": -0.3, "tablet": 0.0})
    """Additive logit effect of the session's device (a device left out has effect 0)."""
    referrer_effects: dict[Referrer, float] = Field(
        default_factory=lambda: {"direct": 0.2, "search": 0.1, "social": -0.5, "email": 0.4, "ads": -0.2}
    )
    """Additive logit effect of the session's referrer (a referrer left out has effect 0)."""


class BadRecordsConfig(Section):
    """Injected bad records: extra lines derived from valid events, each of one kind."""

    share: float = Field(default=0.0, ge=0, le=0.5)
    """Fraction of all output lines that are bad (0 = none). Bad lines are added on top of the
    valid events, so the valid events always match the ground-truth tables."""
    kinds: dict[BadRecordKind, float] = Field(default_factory=lambda: {k: 1.0 for k in BAD_RECORD_KINDS})
    """Relative weight of each kind: malformed_json, missing_field, wrong_type, duplicate,
    unknown_event_type, too_old, future (a kind left out has weight 0)."""

    @field_validator("kinds")
    @classmethod
    def _weights(cls, value: dict[str, float]) -> dict[str, float]:
        return _positive_weights(value, "bad-record kind")


class DriftConfig(Section):
    """Distribution drift from a date on (sessions starting at or after `start_date`)."""

    start_date: dt.date | None = None
    """First day (UTC) of the drifted distribution; None disables drift."""
    price_factor: float = Field(default=1.0, gt=0, le=100)
    """Prices of all products are multiplied by this factor."""
    mobile_share_shift: float = Field(default=0.0, ge=0, le=1)
    """Probability that a session's device is replaced by `mobile` (moves the device mix)."""
    purchase_logit_shift: float = Field(default=0.0, ge=-10, le=10)
    """Added to every session's purchase logit (a shift of the latent model itself)."""
    device_effects: dict[Device, float] | None = None
    """Purchase-logit effect of the session's device in the drifted period, replacing
    `purchase.device_effects` there (a device left out has effect 0); None: unchanged. A change of
    what the device means for buying (concept drift through one driver), e.g. with
    `mobile_share_shift` a mobile checkout that now converts better."""


_EXPERIMENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
SHARE_TOLERANCE = 1e-6
"""How far the variants' shares may sum from 1 (the server's `WEIGHT_TOLERANCE`)."""


class ExperimentVariantConfig(Section):
    """One arm of the generated experiment: its traffic share and its true effect."""

    share: float = Field(ge=0, le=1)
    """Share of users assigned to this variant (the shares sum to 1)."""
    logit_effect: float = Field(default=0.0, ge=-10, le=10)
    """Added to the purchase logit of the variant's users in every session from the start on."""


class ExperimentConfig(Section):
    """An online experiment with a known truth, run by the generator as the model server would."""

    id: str
    """Experiment id (the exposures' `experiment_id`; an `experiments.<id>` entry analyses it)."""
    salt: str | None = None
    """Salt of the sticky assignment `sha256(salt + ":" + user_id)`; default: the id (as the server)."""
    start_date: dt.date | None = None
    """First day (UTC) of the experiment; or give `start_offset_days`; neither: `generator.start_date`."""
    start_offset_days: int | None = Field(default=None, ge=0)
    """First day of the experiment as days after `generator.start_date` (0: the first day)."""
    variants: dict[str, ExperimentVariantConfig]
    """Variant name -> share and true logit effect, in the server's slice order; at least two."""
    model_version: str = "sim"
    """The `model_version` the exposure events carry."""

    @field_validator("id", "salt")
    @classmethod
    def _plain(cls, value: str | None) -> str | None:
        if value is not None and not _EXPERIMENT_NAME.match(value):
            raise ValueError(f"{value!r} must be letters, digits, _ . - (no spaces or ':')")
        return value

    @field_validator("variants")
    @classmethod
    def _variants(cls, value: dict[str, ExperimentVariantConfig]) -> dict[str, ExperimentVariantConfig]:
        check_variant_names(value)
        total = math.fsum(v.share for v in value.values())
        if abs(total - 1.0) > SHARE_TOLERANCE:
            shown = ", ".join(f"{k}={v.share:g}" for k, v in value.items())
            raise ValueError(f"variants.<name>.share must sum to 1, got {total:g} ({shown})")
        return value

    @model_validator(mode="after")
    def _one_start(self) -> ExperimentConfig:
        if self.start_date is not None and self.start_offset_days is not None:
            raise ValueError("give start_date or start_offset_days, not both")
        return self

    @property
    def salt_value(self) -> str:
        """The assignment salt: `salt`, or the id (as `ExperimentSpec.salt_for`)."""
        return self.salt if self.salt is not None else self.id

    def traffic(self) -> dict[str, float]:
        """Variant -> share, in config order (the server's slice order)."""
        return {name: float(v.share) for name, v in self.variants.items()}

    def start(self, generator_start: dt.date) -> dt.date:
        """The first day of the experiment for a generated period starting at `generator_start`."""
        if self.start_date is not None:
            return self.start_date
        return generator_start + dt.timedelta(days=self.start_offset_days or 0)


HEAVY_SESSION_GAP_MINUTES = 45
"""Heavy-user sessions are at least this far apart (more than the ETL's 30-minute session gap)."""


class HeavyUsersConfig(Section):
    """A few heavy users (bots, scrapers, abusers) with a huge number of events at machine speed."""

    count: int = Field(default=0, ge=0, le=1000)
    """Number of heavy users, added after the normal users (ids `u<users>`, `u<users + 1>`, ...;
    0 = off). `truth.users.is_heavy` marks them."""
    events_per_day: int = Field(default=50_000, ge=1, le=10_000_000)
    """Valid events of each heavy user on each day (exactly)."""
    session_events: int = Field(default=5_000, ge=1, le=200_000)
    """Events per heavy session (the day's last session takes the remainder): a giant session.
    A heavy user has ceil(events_per_day / session_events) sessions a day."""
    events_per_second: float = Field(default=10.0, gt=0, le=200)
    """Mean event rate inside a heavy session (sustained machine speed)."""

    @property
    def sessions_per_day(self) -> int:
        """Heavy sessions per user and day."""
        return math.ceil(self.events_per_day / self.session_events)

    @property
    def events_per_session(self) -> int:
        """Events of a full heavy session (at most `session_events`)."""
        return min(self.session_events, self.events_per_day)

    @model_validator(mode="after")
    def _sessions_fit_in_a_day(self) -> HeavyUsersConfig:
        window_s = 86_400 / self.sessions_per_day
        # event k of a session lies at most (k + 0.8) gaps after its start
        duration_s = (self.events_per_session - 0.2) / self.events_per_second
        if duration_s + HEAVY_SESSION_GAP_MINUTES * 60 > window_s:
            raise ValueError(
                f"{self.sessions_per_day} heavy sessions a day of {self.events_per_session} events at "
                f"{self.events_per_second:g} events/s ({duration_s / 60:.0f} minutes each) do not fit in a day "
                f"with {HEAVY_SESSION_GAP_MINUTES} minutes between them: raise events_per_second or lower "
                "events_per_day / session_events"
            )
        return self


class GeneratorConfig(Section):
    """Size, time span and randomness of the generated clickstream."""

    seed: int = 42
    """Seed: the same seed and settings give byte-identical output."""
    users: int = Field(default=2000, ge=1)
    """Number of users. Volume ~ users x days x sessions/day x ~7 events (see docs/generator.md)."""
    products: int = Field(default=500, ge=1)
    """Number of products in the catalogue."""
    start_date: dt.date = dt.date(2024, 1, 1)
    """First day of events (UTC)."""
    days: int = Field(default=14, ge=1)
    """Number of days of events."""
    source: str = "clickstream"
    """Landing sub-folder the files go to: `<landing.root>/<source>/date=YYYY-MM-DD/hour=HH/`.
    The generator replaces this folder on every run."""
    zipf_exponent: float = Field(default=1.1, gt=0, le=5)
    """Exponent s of the Zipf product popularity: P(rank r) ~ r^-s."""
    gzip: bool = False
    """Write `part-NNNNN.jsonl.gz` (gzip) instead of plain `part-NNNNN.jsonl` files."""
    files_per_hour: int = Field(default=1, ge=1, le=1000)
    """Number of files per hour folder (events are spread over them by a hash of the line)."""
    arrival_delay_seconds: float = Field(default=3.0, ge=0, le=600)
    """Mean delay between an event and its arrival in the landing zone (exponential, capped at 10
    minutes); the hour folder is the arrival hour."""
    late_share: float = Field(default=0.0, ge=0, le=1)
    """Fraction of valid events that arrive 1 to 48 hours late (valid, but in a later folder)."""
    oracle_horizon_days: int = Field(default=7, ge=1)
    """Horizon of the reported user-level oracle AUC: purchase in (cutoff, cutoff + horizon],
    cutoff = end of the generated period - horizon (halved while it exceeds half the period)."""
    oracle_samples: int = Field(default=200_000, ge=1000, le=10_000_000)
    """Monte-Carlo sample size of the expected oracle AUC computed from the model's parameters."""
    behaviour: BehaviourConfig = Field(default_factory=BehaviourConfig)
    """Sessions, devices, referrers, countries and funnel of the simulated users."""
    purchase: PurchaseModelConfig = Field(default_factory=PurchaseModelConfig)
    """The latent purchase model (its parameters give the best achievable AUC)."""
    bad_records: BadRecordsConfig = Field(default_factory=BadRecordsConfig)
    """Share and kinds of injected bad records."""
    drift: DriftConfig = Field(default_factory=DriftConfig)
    """Optional distribution drift after a date."""
    heavy_users: HeavyUsersConfig = Field(default_factory=HeavyUsersConfig)
    """Optional heavy users (bots/abusers): huge daily volume, giant sessions, machine speed."""
    experiment: ExperimentConfig | None = None
    """Optional online experiment with a known truth (assignment, true effects, exposure events);
    None: no experiment (the output is unchanged)."""

    @field_validator("source")
    @classmethod
    def _folder_name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", value):
            raise ValueError(f"source {value!r} must be a folder name (letters, digits, '_', '-', '.')")
        return value

    @model_validator(mode="after")
    def _drift_inside_period(self) -> GeneratorConfig:
        start = self.drift.start_date
        if start is not None and start < self.start_date:
            raise ValueError(f"drift.start_date {start} is before start_date {self.start_date}")
        if self.experiment is not None:
            first = self.experiment.start(self.start_date)
            if not self.start_date <= first < self.end_date:
                raise ValueError(
                    f"experiment: start {first} is outside the generated period {self.start_date} .. "
                    f"{self.end_date - dt.timedelta(days=1)}"
                )
        return self

    @property
    def experiment_start(self) -> dt.date | None:
        """The first day of the generated experiment, None without one."""
        return None if self.experiment is None else self.experiment.start(self.start_date)

    @property
    def end_date(self) -> dt.date:
        """The first day after the generated period."""
        return self.start_date + dt.timedelta(days=self.days)
