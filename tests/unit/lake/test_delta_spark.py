"""Pieces of the Delta-jars writer that run without the jars."""

from __future__ import annotations

from pipelines.lake.delta_spark import _replace_where


def test_replace_where_escapes_quotes_and_backslashes(spark):
    # Bug: partition values went into the replaceWhere predicate unescaped, so a value with a
    # quote broke the predicate (or changed what it matched).
    awkward = ["O'Brien", "back\\slash", "x' OR '1'='1"]
    frame = spark.createDataFrame([(v,) for v in [*awkward, "other", None]], "city string")
    written = frame.where("city <> 'other' OR city IS NULL")
    predicate = _replace_where([{"city": "O'Brien"}], written)
    matched = sorted((r.city for r in frame.where(predicate).collect()), key=str)  # tiny
    assert matched == sorted([*awkward, None], key=str)
