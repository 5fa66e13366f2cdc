"""A deferrable sensor for a data interval's landing files.

`LandingFilesSensor` defers at once to `LandingFilesTrigger`, which lists the interval's arrival
folders from the triggerer's event loop (the listing runs in a thread): while it waits, the task
holds no worker slot. With `deferrable=False` it pokes in `reschedule` mode instead (no slot held
between pokes either).

The sensor's `timeout` counts from the end of the data interval, not from when the task starts: a
catch-up over past hours looks once per hour and moves on instead of waiting the full timeout for
each. A listing error (storage, config) fails the task with a plain error, so the task's retries
apply; only a real wait past the deadline is a sensor timeout (skipped, or failed for good).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import AsyncIterator
from typing import Any

from airflow.sdk import BaseSensorOperator
from airflow.sdk.exceptions import (
    AirflowException,
    AirflowSensorTimeout,
    AirflowSkipException,
)
from airflow.triggers.base import BaseTrigger, TriggerEvent

from pipelines.orchestration.intervals import context_interval

log = logging.getLogger(__name__)


def _count(profile: str | None, conf_dir: str | None, overrides: list[str], source: str,
           start: dt.datetime, end: dt.datetime) -> int:
    from pipelines.config import load_config
    from pipelines.orchestration.landing import count_landing_files

    config = load_config(profile=profile, conf_dir=conf_dir, overrides=overrides)
    return count_landing_files(config, source, start, end)


class LandingFilesTrigger(BaseTrigger):
    """Fires when the source's arrival folders for [start, end) hold `min_files` files, or at the deadline.

    Only names travel in the trigger's kwargs (profile, conf dir, source): the config, and with it
    any storage credential, is loaded in the triggerer, never stored in the metadata database.
    """

    def __init__(self, source: str, start: str, end: str, deadline: str, min_files: int = 1,
                 poke_interval: float = 60.0, profile: str | None = None, conf_dir: str | None = None,
                 overrides: list[str] | None = None):
        super().__init__()
        self.source, self.start, self.end, self.deadline = source, start, end, deadline
        self.min_files, self.poke_interval = min_files, poke_interval
        self.profile, self.conf_dir, self.overrides = profile, conf_dir, list(overrides or [])

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}", {
            "source": self.source, "start": self.start, "end": self.end, "deadline": self.deadline,
            "min_files": self.min_files, "poke_interval": self.poke_interval, "profile": self.profile,
            "conf_dir": self.conf_dir, "overrides": self.overrides,
        })

    async def run(self) -> AsyncIterator[TriggerEvent]:
        start, end = dt.datetime.fromisoformat(self.start), dt.datetime.fromisoformat(self.end)
        deadline = dt.datetime.fromisoformat(self.deadline)
        while True:
            try:
                found = await asyncio.to_thread(_count, self.profile, self.conf_dir, self.overrides,
                                                self.source, start, end)
            except Exception as exc:  # noqa: BLE001 - a config or storage error will not heal by waiting
                yield TriggerEvent({"status": "error", "source": self.source, "message": f"{type(exc).__name__}: {exc}"})
                return
            if found >= self.min_files:
                yield TriggerEvent({"status": "found", "source": self.source, "files": found})
                return
            if dt.datetime.now(dt.timezone.utc) >= deadline:
                yield TriggerEvent({"status": "timeout", "source": self.source, "files": found})
                return
            self.log.info("%s: %d of %d landing file(s) for [%s, %s); next look in %.0f s",
                          self.source, found, self.min_files, self.start, self.end, self.poke_interval)
            await asyncio.sleep(self.poke_interval)


class LandingFilesSensor(BaseSensorOperator):
    """Waits until a source's landing files for the run's data interval are there."""

    template_fields = ("source",)
    ui_color = "#e8f4fd"

    def __init__(self, *, source: str, min_files: int = 1, profile: str | None = None,
                 conf_dir: str | None = None, overrides: list[str] | None = None,
                 deferrable: bool = True, skip_on_timeout: bool = True, **kwargs):
        kwargs.setdefault("mode", "reschedule")
        if not deferrable:
            kwargs.setdefault("soft_fail", skip_on_timeout)
        super().__init__(**kwargs)
        self.source, self.min_files = source, min_files
        self.profile, self.conf_dir, self.overrides = profile, conf_dir, list(overrides or [])
        self.deferrable, self.skip_on_timeout = deferrable, skip_on_timeout

    def _interval(self, context) -> tuple[dt.datetime, dt.datetime]:
        start, end = context_interval(context)
        return (dt.datetime.fromisoformat(str(start)).astimezone(dt.timezone.utc),
                dt.datetime.fromisoformat(str(end)).astimezone(dt.timezone.utc))

    def _deadline(self, end: dt.datetime) -> dt.datetime:
        return end + dt.timedelta(seconds=float(self.timeout))

    def poke(self, context) -> bool:
        start, end = self._interval(context)
        found = _count(self.profile, self.conf_dir, self.overrides, self.source, start, end)
        self.log.info("%s: %d landing file(s) for [%s, %s)", self.source, found, start, end)
        if found >= self.min_files:
            return True
        if dt.datetime.now(dt.timezone.utc) >= self._deadline(end):
            self._timed_out(found)
        return False

    def _timed_out(self, found: int):
        message = (f"{self.source}: only {found} of {self.min_files} landing file(s) arrived within "
                   f"{float(self.timeout) / 3600:g} h of the interval's end")
        if self.skip_on_timeout:
            raise AirflowSkipException(message + "; skipping this interval")
        raise AirflowSensorTimeout(message)

    def execute(self, context):
        if not self.deferrable:
            return super().execute(context)
        start, end = self._interval(context)
        deadline = self._deadline(end)
        self.log.info("%s: deferring until %d landing file(s) for [%s, %s) arrive (deadline %s)",
                      self.source, self.min_files, start.isoformat(), end.isoformat(), deadline.isoformat())
        self.defer(
            trigger=LandingFilesTrigger(
                source=self.source, start=start.isoformat(), end=end.isoformat(), deadline=deadline.isoformat(),
                min_files=self.min_files, poke_interval=float(self.poke_interval), profile=self.profile,
                conf_dir=self.conf_dir, overrides=self.overrides,
            ),
            method_name="execute_complete",
        )

    def execute_complete(self, context, event: dict[str, Any] | None = None):
        event = event or {}
        status = event.get("status")
        if status == "found":
            self.log.info("%s: %s landing file(s) found", self.source, event.get("files"))
            return event.get("files")
        if status == "timeout":
            self._timed_out(event.get("files", 0))
        # Not a sensor timeout (which Airflow never retries): a storage hiccup gets the task's retries.
        raise AirflowException(f"{self.source}: listing the landing files failed: {event.get('message', event)}")
