"""The bot filter's rules on tiny frames."""

from __future__ import annotations

import datetime as dt

from pipelines.config.models import BotRulesConfig
from pipelines.silver.bots import flag_bots

T0 = dt.datetime(2024, 1, 1, 10, 0, 0)
RULES = BotRulesConfig(max_events_per_minute=5, sustained_minutes=2, max_events_per_session=30, max_events_per_day=50)


def frame(spark, rows):
    data = [(u, s, T0 + dt.timedelta(seconds=sec), (T0 + dt.timedelta(seconds=sec)).date()) for u, s, sec in rows]
    return spark.createDataFrame(data, "user_id string, session_id string, event_time timestamp, event_date date")


def flagged(spark, rows):
    return {(r.user_id, tuple(r.rules)) for r in flag_bots(frame(spark, rows), RULES).collect()}  # tiny


def test_human_is_not_flagged(spark):
    rows = [("human", "s1", k * 20) for k in range(10)]
    assert flagged(spark, rows) == set()


def test_sustained_rate(spark):
    fast = [("bot", f"s{m}", m * 600 + k) for m in range(2) for k in range(6)]  # 6/min in 2 minutes
    burst = [("burst", "s", k) for k in range(6)]  # fast in one minute only: not sustained
    assert flagged(spark, fast + burst) == {("bot", ("sustained_rate",))}


def test_giant_session_and_daily_volume(spark):
    giant = [("giant", "s", k * 13) for k in range(31)]  # 31 events, ~4.6/min
    heavy = [("heavy", f"s{k}", k * 20) for k in range(51)]  # 51 events a day in small sessions
    result = flagged(spark, giant + heavy)
    assert ("giant", ("giant_session",)) in result
    assert ("heavy", ("daily_volume",)) in result
