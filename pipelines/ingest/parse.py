"""Pure transforms from raw landing records to canonical, typed, validated events.

Input of `parse_fields`: a frame with `raw` (the record's text), `source_file`, `source_line`,
`arrival_time`, and optionally `raw_reason` (a reason decided before parsing). Output of `classify`: the canonical columns, `event_id`, `event_date`, and
`reason` (null for a valid event, else a code from `reasons`).
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from pipelines.ingest import reasons
from pipelines.sources import CANONICAL_FIELDS, SourceConfig

EXPOSURE = "exposure"

CORRUPT = "_corrupt_record"
RAW_REASON = "raw_reason"
"""Optional input column: a quarantine reason decided before parsing (stream messages)."""
FIELD_PREFIX = "f_"


def _source_fields(source: SourceConfig) -> list[str]:
    if source.format == "csv" and source.csv is not None:
        return list(source.csv.columns)
    return sorted(set(source.columns.values()))


def parse_fields(raw: DataFrame, source: SourceConfig) -> DataFrame:
    """Parse `raw` into one string column per source field plus `malformed` (boolean)."""
    fields = _source_fields(source)
    if source.format == "json":
        schema = T.StructType([T.StructField(f, T.StringType()) for f in fields] + [T.StructField(CORRUPT, T.StringType())])
        parsed = F.from_json("raw", schema, {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT})
    elif source.format == "csv":
        assert source.csv is not None
        ddl = ", ".join(f"`{f}` STRING" for f in fields) + f", `{CORRUPT}` STRING"
        options = {
            "sep": source.csv.delimiter, "quote": source.csv.quote, "mode": "PERMISSIVE",
            "columnNameOfCorruptRecord": CORRUPT, "nullValue": "",
        }
        # Spark puts a line with more or fewer fields than the schema into the corrupt column.
        parsed = F.from_csv("raw", ddl, options)
    else:  # parquet: fields were read as columns and rendered as strings by the reader
        return raw.withColumn("malformed", F.lit(False))
    # The parser runs once per line: every derived column reads the parsed struct, never the
    # parser expression itself (an expression repeated in one projection is evaluated each time).
    # A line that is valid JSON but not an object parses to null: malformed too.
    parsed_col = F.col("__parsed")
    return raw.select("*", parsed.alias("__parsed")).select(
        *[F.col(f"`{c}`") for c in raw.columns],
        (parsed_col.isNull() | parsed_col.getField(CORRUPT).isNotNull()).alias("malformed"),
        *[parsed_col.getField(f).alias(FIELD_PREFIX + f) for f in fields],
    )


def _field(source: SourceConfig, canonical: str) -> Column:
    """The canonical field as a trimmed string (empty -> null), from its source field or constant."""
    if canonical in source.columns:
        value = F.trim(F.col(f"`{FIELD_PREFIX}{source.columns[canonical]}`"))
        return F.when(value == "", None).otherwise(value)
    if canonical in source.constants:
        return F.lit(source.constants[canonical])
    return F.lit(None).cast("string")


def parse_time(column: str, source: SourceConfig) -> Column:
    """Event time (the string column `column`) as a UTC timestamp; null when it does not parse."""
    spec = source.timestamp
    value = F.col(column)
    if spec.format:
        parsed = F.try_to_timestamp(value, F.lit(spec.format))
    else:
        # ISO-8601 only: a bare number (epoch seconds) is a wrong type, not a time.
        iso = value.rlike(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")
        parsed = F.when(iso, F.expr(f"try_cast(`{column}` AS TIMESTAMP)"))
    if spec.timezone.upper() != "UTC":
        parsed = F.to_utc_timestamp(parsed, spec.timezone)
    return parsed


def classify(
    parsed: DataFrame,
    source: SourceConfig,
    max_age_hours: float,
    future_tolerance_minutes: float,
    reference_time: Column,
) -> DataFrame:
    """Canonical typed columns plus `reason` (null when the record is a valid event).

    `reference_time` is used for the time window where a record has no `arrival_time`.
    """
    out = parsed
    for canonical in CANONICAL_FIELDS:
        out = out.withColumn(f"c_{canonical}", _field(source, canonical))
    out = out.withColumn("t_event_time", parse_time("c_event_time", source))
    out = out.withColumn("t_price", F.expr("try_cast(c_price AS DOUBLE)"))
    type_map = F.create_map(*[F.lit(x) for pair in source.event_types.items() for x in pair])
    out = out.withColumn("t_event_type", F.element_at(type_map, F.col("c_event_type")))
    reference = F.coalesce(F.col("arrival_time"), reference_time)

    missing = F.lit(False)
    for field in source.required:
        missing = missing | F.col(f"c_{field}").isNull()
    # An exposure that does not say which experiment and variant served it cannot be analysed.
    missing = missing | ((F.col("t_event_type") == EXPOSURE) & (F.col("c_experiment_id").isNull() | F.col("c_variant").isNull()))
    wrong_type = (F.col("c_event_time").isNotNull() & F.col("t_event_time").isNull()) | (
        F.col("c_price").isNotNull() & (F.col("t_price").isNull() | F.isnan("t_price"))
    )
    too_old = F.col("t_event_time") < reference - F.expr(f"make_dt_interval(0, 0, 0, {float(max_age_hours) * 3600})")
    in_future = F.col("t_event_time") > reference + F.expr(f"make_dt_interval(0, 0, 0, {float(future_tolerance_minutes) * 60})")
    bad_price = (F.col("t_price") < 0) | (F.col("t_price") > F.lit(source.max_price))
    # A stream message can be refused before parsing (empty, too large, not UTF-8): `raw_reason`.
    refused = F.col(RAW_REASON) if RAW_REASON in parsed.columns else F.lit(None).cast("string")
    reason = (
        F.when(refused.isNotNull(), refused)
        .when(F.col("malformed"), reasons.MALFORMED)
        .when(missing, reasons.MISSING_FIELD)
        .when(wrong_type, reasons.WRONG_TYPE)
        .when(F.col("t_event_type").isNull(), reasons.UNKNOWN_EVENT_TYPE)
        .when(too_old, reasons.TOO_OLD)
        .when(in_future, reasons.IN_FUTURE)
        .when(bad_price, reasons.INVALID_PRICE)
    )
    out = out.withColumn("reason", reason)
    derived_id = F.sha2(
        F.concat_ws("\u0001", F.col("c_user_id"), F.date_format("t_event_time", "yyyy-MM-dd'T'HH:mm:ss.SSSSSS"),
                    F.col("t_event_type"), F.coalesce(F.col("c_product_id"), F.lit(""))),
        256,
    ).substr(1, 32)
    event_id = F.col("c_event_id") if source.has_event_id else derived_id
    return out.select(
        *[c for c in parsed.columns if not c.startswith(FIELD_PREFIX) and c not in ("malformed", RAW_REASON)],
        "reason",
        event_id.alias("event_id"),
        F.col("t_event_time").alias("event_time"),
        F.to_date("t_event_time").alias("event_date"),
        F.col("t_event_type").alias("event_type"),
        F.col("c_user_id").alias("user_id"),
        F.col("c_session_id").alias("session_id"),
        F.col("c_product_id").alias("product_id"),
        F.col("c_category").alias("category"),
        F.col("c_brand").alias("brand"),
        F.col("t_price").alias("price"),
        F.col("c_currency").alias("currency"),
        F.col("c_device").alias("device"),
        F.col("c_referrer").alias("referrer"),
        F.col("c_country").alias("country"),
        F.col("c_experiment_id").alias("experiment_id"),
        F.col("c_variant").alias("variant"),
        F.col("c_model_version").alias("model_version"),
    )
