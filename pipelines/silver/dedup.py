"""Bronze rows that share an event id: silver keeps one, the same one whatever else is read.

The ingest drops repeats of an event id within a batch and within `ingest.bronze_dedup_days` of
its event date; a source that sends one id again with a time further off puts it in bronze on two
dates (and `stage.plan_rebuild` rebuilds the days of all its copies together). Which copy silver keeps must
not depend on the days a run happens to read (an arbitrary pick let one run keep the Jan 1 copy
and a later run the Jan 2 copy, and the event left both days).
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.window import Window

ORDER = ("event_time", "ingested_at", "batch_id", "source_file", "source_line")
"""The copy kept: the earliest event time, then the first ingested (file and line break ties)."""


def first_copy_per_event(bronze: DataFrame) -> DataFrame:
    """One row per event id: the first by `ORDER` (nulls last)."""
    window = Window.partitionBy("event_id").orderBy(*[F.col(c).asc_nulls_last() for c in ORDER])
    return bronze.withColumn("__copy", F.row_number().over(window)).where(F.col("__copy") == 1).drop("__copy")
