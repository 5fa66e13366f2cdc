"""Config of the synthetic clickstream generator (`clickml generate`)."""

from __future__ import annotations

import datetime as dt

from pydantic import Field

from pipelines.config.base import Section


class GeneratorConfig(Section):
    """Size, time span and randomness of the generated clickstream."""

    seed: int = 42
    """Seed: the same seed and settings give byte-identical output."""
    users: int = Field(default=2000, ge=1)
    """Number of users."""
    products: int = Field(default=500, ge=1)
    """Number of products in the catalogue."""
    start_date: dt.date = dt.date(2024, 1, 1)
    """First day of events (UTC)."""
    days: int = Field(default=14, ge=1)
    """Number of days of events."""
    source: str = "clickstream"
    """Landing sub-folder the files go to: `<landing.root>/<source>/date=YYYY-MM-DD/hour=HH/`."""
