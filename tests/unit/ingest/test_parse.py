"""Parsing and classification of raw records: one test per reason code, on hand-made lines."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from pyspark.sql import functions as F

from pipelines.ingest import reasons
from pipelines.ingest.parse import classify, parse_fields
from pipelines.sources import load_source
from tests.conftest import CONF_DIR

ARRIVAL = dt.datetime(2024, 1, 3, 11, 0)  # end of the 10:00 arrival hour
GOOD = {
    "event_id": "e1", "event_time": "2024-01-03T10:15:02.123Z", "event_type": "add_to_cart", "user_id": "u1",
    "session_id": "s1", "product_id": "p1", "category": "electronics.phone", "brand": "acme", "price": 12.5,
    "currency": "USD", "device": "mobile", "referrer": "search", "country": "FR",
}


def line(**changes):
    record = {**GOOD, **changes}
    return json.dumps({k: v for k, v in record.items() if v is not ...})


def classify_lines(spark, lines, source_name="clickstream", arrival=ARRIVAL):
    source = load_source(CONF_DIR, source_name)
    raw = spark.createDataFrame(
        [(text, "file:/landing/x.jsonl", i + 1, arrival) for i, text in enumerate(lines)],
        "raw string, source_file string, source_line long, arrival_time timestamp",
    )
    out = classify(parse_fields(raw, source), source, 168.0, 60.0, F.lit(arrival).cast("timestamp"))
    return out.orderBy("source_line").collect()  # tiny test frames


def test_valid_record_is_typed(spark):
    (row,) = classify_lines(spark, [line()])
    assert row.reason is None
    assert row.event_time == dt.datetime(2024, 1, 3, 10, 15, 2, 123000)
    assert row.event_date == dt.date(2024, 1, 3)
    assert row.price == 12.5 and row.event_type == "add_to_cart" and row.event_id == "e1"


@pytest.mark.parametrize(
    "text, reason",
    [
        ('{"event_id": "e1", "event_time": "2024-01-03T10:15', reasons.MALFORMED),
        ("[1, 2, 3]", reasons.MALFORMED),
        ("not json at all", reasons.MALFORMED),
        (line(user_id=...), reasons.MISSING_FIELD),
        (line(event_time=""), reasons.MISSING_FIELD),
        (line(session_id=None), reasons.MISSING_FIELD),
        (line(price="12.5 USD"), reasons.WRONG_TYPE),
        (line(price={"amount": 3}), reasons.WRONG_TYPE),
        (line(event_time=1704276902), reasons.WRONG_TYPE),
        (line(event_time="yesterday"), reasons.WRONG_TYPE),
        (line(event_type="hover"), reasons.UNKNOWN_EVENT_TYPE),
        (line(event_time="2023-01-03T10:00:00Z"), reasons.TOO_OLD),
        (line(event_time="2024-01-03T12:30:00Z"), reasons.IN_FUTURE),
        (line(price=-1), reasons.INVALID_PRICE),
        (line(price=5e6), reasons.INVALID_PRICE),
    ],
)
def test_reason_codes(spark, text, reason):
    (row,) = classify_lines(spark, [text])
    assert row.reason == reason


def test_time_window_edges_are_inclusive(spark):
    rows = classify_lines(
        spark,
        [
            line(event_time="2023-12-27T11:00:00Z"),  # exactly 168 h before arrival: kept
            line(event_time="2024-01-03T12:00:00Z"),  # exactly 60 min after arrival: kept
        ],
    )
    assert [r.reason for r in rows] == [None, None]


def test_first_failing_check_wins(spark):
    (row,) = classify_lines(spark, [line(user_id=..., event_type="hover", price=-5)])
    assert row.reason == reasons.MISSING_FIELD


REES_ARRIVAL = dt.datetime(2019, 10, 1, 1, 0)
REES_HEADER = "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session"


def test_rees46_csv_lines(spark):
    rows = classify_lines(
        spark,
        [
            "2019-10-01 00:00:00 UTC,view,44600062,2103807459595387724,,shiseido,35.79,541312140,72d76fde-8bb3",
            "2019-10-01 00:00:01 UTC,cart,3900821,2053013552326770905,appliances.water_heater,aqua,33.20,554748717,9333dfbd",
            "2019-10-01 00:00:02 UTC,view,17200506",  # too few fields
            '2019-10-01 00:00:03 UTC,wishlist,1,2,"a,b",x,1.0,5,s',  # quoted comma, unknown type
        ],
        "rees46",
        REES_ARRIVAL,
    )
    first, second, short, wish = rows
    assert first.reason is None and first.event_type == "product_view" and first.category is None
    assert first.brand == "shiseido" and first.currency == "USD" and first.session_id == "72d76fde-8bb3"
    assert first.event_time == dt.datetime(2019, 10, 1, 0, 0, 0)
    assert len(first.event_id) == 32  # derived from (user, time, type, product)
    assert second.reason is None and second.event_type == "add_to_cart" and second.category == "appliances.water_heater"
    assert short.reason == reasons.MALFORMED
    assert wish.reason == reasons.UNKNOWN_EVENT_TYPE and wish.category == "a,b"


def test_derived_ids_identify_the_same_event(spark):
    text = "2019-10-01 00:00:00 UTC,view,44600062,1,,b,35.79,541312140,s1"
    other_session = "2019-10-01 00:00:00 UTC,view,44600062,1,,b,35.79,541312140,s2"
    other_product = "2019-10-01 00:00:00 UTC,view,44600063,1,,b,35.79,541312140,s1"
    a, b, c = classify_lines(spark, [text, other_session, other_product], "rees46", REES_ARRIVAL)
    assert a.event_id == b.event_id  # same user, time, type, product: the same event
    assert a.event_id != c.event_id


def test_rees46_too_many_fields_is_malformed(spark):
    (row,) = classify_lines(spark, ["2019-10-01 00:00:00 UTC,view,1,2,,b,3.5,4,s,EXTRA"], "rees46", REES_ARRIVAL)
    assert row.reason == reasons.MALFORMED


def test_exposure_lines_of_the_model_server_are_events_with_their_experiment(spark):
    from pipelines.serve.exposures import Exposure

    served = Exposure("propensity_ab", "treatment", "u7", "r1", "4", dt.datetime(2024, 1, 3, 10, 20, tzinfo=dt.timezone.utc))
    no_variant = json.loads(Exposure("propensity_ab", "x", "u7", "r2", "4", served.time).to_line())
    del no_variant["variant"]
    exposure, missing, plain = classify_lines(spark, [served.to_line(), json.dumps(no_variant), line()])
    assert exposure.reason is None and exposure.event_type == "exposure" and exposure.event_id == "exp-r1"
    assert (exposure.experiment_id, exposure.variant, exposure.model_version) == ("propensity_ab", "treatment", "4")
    assert exposure.event_time == dt.datetime(2024, 1, 3, 10, 20)
    assert missing.reason == reasons.MISSING_FIELD  # an exposure must say which experiment and variant
    assert plain.reason is None and (plain.experiment_id, plain.variant, plain.model_version) == (None, None, None)
