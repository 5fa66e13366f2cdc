"""The pure parts of `clickml materialize`: which columns are stored, the defaults, when to skip."""

from __future__ import annotations

import datetime as dt

from pipelines.serve.materialize import defaults_of, feature_columns, should_skip
from pipelines.serve.online import decode

D = dt.date(2024, 1, 5)


def test_defaults_are_medians_modes_or_zeros(spark):
    frame = spark.createDataFrame(
        [("u1", 1, 1.0, True, "a", None), ("u2", 2, 10.0, True, "b", None), ("u3", 9, None, False, "b", None),
         ("u4", None, 4.0, None, None, None)],
        "user_id string, n int, x double, flag boolean, top string, empty double",
    )
    columns = feature_columns(frame)
    assert columns == ["n", "x", "flag", "top", "empty"]
    defaults = defaults_of(frame, columns)
    assert defaults == {"n": "2", "x": "4.0", "flag": "true", "top": "b", "empty": "0.0"}
    assert decode(defaults["n"], "int") == 2 and decode(defaults["empty"], "float") == 0.0


def test_feature_columns_leave_out_keys_and_example_metadata(spark):
    frame = spark.createDataFrame([("u1", "u1|2024-01-05", D, 0.5)], "user_id string, example_id string, cutoff date, u_x double")
    assert feature_columns(frame) == ["u_x"]


def test_skip_only_when_the_store_holds_this_date_or_a_later_one():
    assert should_skip(D, "features", None, D, "features", None, force=False)
    assert should_skip(D, "features", None, D - dt.timedelta(days=1), "features", None, force=False)
    assert not should_skip(D, "features", None, D + dt.timedelta(days=1), "features", None, force=False)
    assert not should_skip(D, "features", None, D, "features", None, force=True)
    assert not should_skip(None, None, None, D, "features", None, force=False)
    assert not should_skip(D, "recommendations", "1", D, "recommendations", "2", force=False)  # another version
    assert should_skip(D, "recommendations", "2", D, "recommendations", "2", force=False)
    assert not should_skip(D, "recommendations", "2", D, "features", None, force=False)
