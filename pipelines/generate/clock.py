"""Time as epoch milliseconds (long columns), formatted without the session time zone.

The generator keeps every instant as UTC epoch milliseconds and formats it with integer
arithmetic, so the output does not depend on `spark.sql.session.timeZone`.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column
from pyspark.sql import functions as F

MS_PER_SECOND = 1000
MS_PER_MINUTE = 60 * MS_PER_SECOND
MS_PER_HOUR = 60 * MS_PER_MINUTE
MS_PER_DAY = 24 * MS_PER_HOUR

_EPOCH = dt.date(1970, 1, 1)


def epoch_millis(day: dt.date | dt.datetime) -> int:
    """UTC epoch milliseconds of a date's midnight, or of a datetime (naive = UTC)."""
    if isinstance(day, dt.datetime):
        if day.tzinfo is None:
            day = day.replace(tzinfo=dt.timezone.utc)
        return int(round(day.timestamp() * 1000))
    return (day - _EPOCH).days * MS_PER_DAY


def date_string(ms: Column) -> Column:
    """`yyyy-MM-dd` (UTC) of epoch milliseconds."""
    days = F.floor(ms / F.lit(MS_PER_DAY)).cast("int")
    return F.date_add(F.lit(_EPOCH.isoformat()).cast("date"), days).cast("string")


def hour_string(ms: Column) -> Column:
    """Two-digit UTC hour `HH` of epoch milliseconds."""
    of_day = F.pmod(ms, F.lit(MS_PER_DAY))
    return F.lpad(F.floor(of_day / F.lit(MS_PER_HOUR)).cast("string"), 2, "0")


def _padded(value: Column, digits: int) -> Column:
    return F.lpad(value.cast("string"), digits, "0")


def iso_millis(ms: Column) -> Column:
    """ISO-8601 UTC with milliseconds and `Z`, e.g. `2024-01-03T10:15:02.123Z`.

    (Concatenation of padded parts: about 3x faster in Spark than `format_string`.)
    """
    of_day = F.pmod(ms, F.lit(MS_PER_DAY))
    return F.concat(
        date_string(ms),
        F.lit("T"),
        _padded(F.floor(of_day / F.lit(MS_PER_HOUR)), 2),
        F.lit(":"),
        _padded(F.floor(F.pmod(of_day, F.lit(MS_PER_HOUR)) / F.lit(MS_PER_MINUTE)), 2),
        F.lit(":"),
        _padded(F.floor(F.pmod(of_day, F.lit(MS_PER_MINUTE)) / F.lit(MS_PER_SECOND)), 2),
        F.lit("."),
        _padded(F.pmod(of_day, F.lit(MS_PER_SECOND)), 3),
        F.lit("Z"),
    )


def timestamp(ms: Column) -> Column:
    """A Spark TIMESTAMP (an instant) from epoch milliseconds."""
    return F.timestamp_millis(ms)
