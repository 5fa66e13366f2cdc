"""Feature encoding (as Spark would spell categories) and the network's shapes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from pipelines.deep.features import FeatureSchema, as_category_strings, fit_schema
from pipelines.deep.network import NetConfig, TabularNet


def test_encode_standardises_imputes_and_maps_unknown_categories_to_zero():
    schema = FeatureSchema(("x",), (2.0,), (4.0,), ("c", "flag"), (("a", "b"), ("true",)))
    frame = pd.DataFrame({"x": [2.0, 6.0, None], "c": ["b", "zzz", None], "flag": [True, False, None]})
    numeric, categorical = schema.encode(frame)
    assert numeric.dtype == np.float32 and numeric[:, 0].tolist() == [0.0, 1.0, 0.0]  # null -> the mean
    assert categorical.tolist() == [[2, 1], [0, 0], [0, 0]]
    assert schema.cardinalities == (3, 2) and schema.columns == ("x", "c", "flag")


def test_encode_categories_of_every_pandas_dtype():
    vocabularies = (("a", "b"), ("a", "b"), ("a", "b"), ("1", "2"), ("1.5",))
    schema = FeatureSchema((), (), (), ("arrow", "python", "object", "i", "f"), vocabularies)
    strings = ["b", None, "a"]
    frame = pd.DataFrame({"arrow": pd.Series(strings, dtype=pd.StringDtype("pyarrow")),
                          "python": pd.Series(strings, dtype=pd.StringDtype("python")),
                          "object": pd.Series(strings, dtype=object), "i": [2, 3, 1], "f": [1.5, float("nan"), 2.0]})
    assert schema.encode(frame)[1].tolist() == [[2, 2, 2, 2, 1], [0, 0, 0, 0, 0], [1, 1, 1, 1, 0]]
    assert schema == FeatureSchema((), (), (), ("arrow", "python", "object", "i", "f"), vocabularies)  # caches not compared


def test_encoding_an_arrow_table_matches_encoding_its_pandas_frame():
    import pyarrow as pa

    table = pa.table({
        "s": pa.array(["b", None, "zz", "a"]), "ls": pa.array(["a", "b", None, "q"], type=pa.large_string()),
        "d": pa.array(["a", "b", "a", None]).dictionary_encode(), "i": pa.array([2, 1, 7, 2], type=pa.int32()),
        "flag": pa.array([True, False, None, True]), "f": pa.array([1.5, None, float("nan"), 2.0]),
        "x": pa.array([1.0, None, float("nan"), 4.0]), "n": pa.array([1, None, 3, 4], type=pa.int64()),
        "txt": pa.array(["1.5", "oops", None, "2"]),
    })
    schema = FeatureSchema(("x", "n", "txt"), (1.0, 2.0, 0.5), (2.0, 1.0, 1.0), ("s", "ls", "d", "i", "flag", "f"),
                           (("a", "b"), ("a", "b"), ("a", "b"), ("1", "2"), ("true",), ("1.5", "2.0")))
    from_arrow, from_pandas = schema.encode(table), schema.encode(table.to_pandas())
    assert from_arrow[0].tolist() == from_pandas[0].tolist()
    assert from_arrow[1].tolist() == from_pandas[1].tolist() == [
        [2, 1, 1, 2, 1, 1], [0, 2, 2, 1, 0, 0], [0, 0, 1, 0, 0, 0], [1, 0, 0, 2, 1, 2]]
    # an integer category with nulls is spelled as Spark spells it ("1"), not as pandas' float ("1.0")
    with_null = pa.table({"i": pa.array([1, None], type=pa.int64())})
    ints = FeatureSchema((), (), (), ("i",), (("1",),))
    assert ints.encode(with_null)[1].tolist() == [[1], [0]]
    # ... and so when it reaches the scoring UDF as pandas floats (Spark's Arrow conversion)
    assert ints.encode(with_null.to_pandas())[1].tolist() == [[1], [0]]
    doubles = FeatureSchema((), (), (), ("x",), (("1.0", "2.5"),))  # a double column keeps Spark's "1.0"
    assert doubles.encode(pd.DataFrame({"x": [1.0, 2.5, None]}))[1].tolist() == [[1], [2], [0]]


def test_category_strings_match_spark_casts():
    assert as_category_strings(pd.Series([True, False])).tolist() == ["true", "false"]
    assert as_category_strings(pd.Series([1, 2])).tolist() == ["1", "2"]
    mixed = as_category_strings(pd.Series(["a", None], dtype=object))
    assert mixed.iloc[0] == "a" and pd.isna(mixed.iloc[1])


def test_fit_schema_with_spark(spark):
    frame = spark.createDataFrame(pd.DataFrame({"x": [1.0, 3.0, None], "c": ["a", "b", "a"], "k": [True, True, False]}))
    schema = fit_schema(frame, ["x"], ["c", "k"], max_categories=1)
    assert schema.means == (2.0,) and schema.stds == (1.0,)
    assert schema.vocabularies == (("a",), ("true",))  # the most frequent value only


def test_network_shapes_and_wide_part():
    config = NetConfig(numeric=2, cardinalities=(4, 30), hidden=(8,), wide=True)
    assert config.embedding_dims() == (3, 11)
    net = TabularNet(config)
    out = net(torch.zeros(5, 2), torch.zeros(5, 2, dtype=torch.long))
    assert out.shape == (5,)
    names = {n for n, _ in net.named_parameters()}
    assert "wide_numeric.weight" in names and "wide_categorical.0.weight" in names
    assert not any(n.startswith("wide") for n, _ in TabularNet(NetConfig(2, (4,))).named_parameters())
