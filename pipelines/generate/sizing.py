"""Expected volume of a generator config, before generating anything.

Volume is set by users x days x sessions per user-day x events per session (there is no
`events` knob), plus the heavy users' exact volume: `estimate(config)` gives the expected counts
from the model's parameters by a small Monte Carlo on the driver, e.g. to pick `users` and `days`
for 100M events.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from pipelines.config.generator import DEVICES, REFERRERS, GeneratorConfig
from pipelines.generate import heavy
from pipelines.generate.corrupt import injection_rate
from pipelines.generate.sessions import slot_weights


@dataclass(frozen=True)
class Sizing:
    """Expected volume of a config."""

    users: int
    days: int
    sessions_per_user_day: float
    events_per_session: float
    purchase_rate: float
    sessions: float
    events: float
    lines: float
    heavy_sessions: int = 0
    """Sessions of the heavy users (included in `sessions`)."""
    heavy_events: int = 0
    """Valid events of the heavy users (included in `events` and `lines`)."""

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def estimate(config: GeneratorConfig, samples: int = 50_000, seed: int = 7) -> Sizing:
    """Expected sessions, valid events and output lines (valid + bad) of `config`."""
    behaviour, model = config.behaviour, config.purchase
    rng = np.random.default_rng(seed)
    z = rng.standard_normal(samples)
    rho = behaviour.activity_propensity_correlation
    rate = np.exp(
        math.log(behaviour.sessions_per_day)
        + behaviour.sessions_per_day_sigma * (rho * z + math.sqrt(max(0.0, 1 - rho * rho)) * rng.standard_normal(samples))
    )
    weights = np.asarray(slot_weights())
    per_day = np.minimum(1.0, rate[:, None] * weights[None, :] / len(weights)).sum(axis=1)

    # one session per sampled user, weighted by the user's session rate
    device_w = np.array([behaviour.device_weights.get(d, 0.0) for d in DEVICES])
    referrer_w = np.array([behaviour.referrer_weights.get(r, 0.0) for r in REFERRERS])
    device = rng.choice(len(DEVICES), samples, p=device_w / device_w.sum())
    referrer = rng.choice(len(REFERRERS), samples, p=referrer_w / referrer_w.sum())
    logit = (
        model.intercept
        + model.propensity_weight * z
        + np.array([model.device_effects.get(d, 0.0) for d in DEVICES])[device]
        + np.array([model.referrer_effects.get(r, 0.0) for r in REFERRERS])[referrer]
    )
    p = 1.0 / (1.0 + np.exp(-logit))
    views_mean = behaviour.extra_views_mean * np.exp(behaviour.views_propensity_weight * z)
    views = np.minimum(behaviour.max_views, 1 + rng.geometric(1.0 / (1.0 + views_mean)) - 1)
    cart = 1.0 / (1.0 + np.exp(-(behaviour.cart_intercept + behaviour.cart_propensity_weight * z)))
    r = behaviour.remove_share
    # random carts on all views; a purchasing session forces (and keeps) the cart on the last view
    carts = views * cart + p * (1 - cart)
    removes = (views - p) * cart * r
    purchases = p * (1 + (views - 1) * cart * (1 - r))
    events = 1 + views + carts + removes + purchases

    sessions_per_user_day = float(per_day.mean())
    events_per_session = float(np.average(events, weights=per_day))
    heavy_sessions = heavy.session_count(config)
    heavy_events = heavy.event_count(config)
    sessions = config.users * config.days * sessions_per_user_day
    total = sessions * events_per_session + heavy_events
    return Sizing(
        users=config.users,
        days=config.days,
        sessions_per_user_day=sessions_per_user_day,
        events_per_session=events_per_session,
        purchase_rate=float(np.average(p, weights=per_day)),
        sessions=sessions + heavy_sessions,
        events=total,
        lines=total * (1.0 + injection_rate(config.bad_records.share)),
        heavy_sessions=heavy_sessions,
        heavy_events=heavy_events,
    )
