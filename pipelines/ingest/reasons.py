"""Quarantine reason codes, in the order they are checked (the first that applies wins)."""

MALFORMED = "malformed_record"
"""The line is not a record of the source's format (broken JSON, wrong CSV field count)."""
MISSING_FIELD = "missing_required_field"
"""A required field is absent or empty."""
WRONG_TYPE = "wrong_type"
"""A field cannot be read as its type (event_time not a timestamp, price not a number)."""
UNKNOWN_EVENT_TYPE = "unknown_event_type"
"""The event type is not in the source's event-type mapping."""
TOO_OLD = "timestamp_too_old"
"""event_time is older than `ingest.max_event_age_hours` before the file's arrival hour."""
IN_FUTURE = "timestamp_in_future"
"""event_time is later than `ingest.future_tolerance_minutes` after the file's arrival hour."""
INVALID_PRICE = "invalid_price"
"""The price is negative or above the source's `max_price`."""

ALL = (MALFORMED, MISSING_FIELD, WRONG_TYPE, UNKNOWN_EVENT_TYPE, TOO_OLD, IN_FUTURE, INVALID_PRICE)
