"""Splits (column, time, random), label checks, class weights, search grids, promotion rule."""

from __future__ import annotations

import datetime as dt

import pytest
from pyspark.ml.classification import LogisticRegression

from pipelines.config.models import RegistrySpec, SearchSpec, TrainJobSpec
from pipelines.train.data import TrainingDataError, split
from pipelines.train.estimators import ModelSpecError, build_estimator
from pipelines.train.preprocess import FeatureColumns
from pipelines.train.promotion import compare
from pipelines.train.search import param_maps
from pipelines.train.supervised import _tree_bins, class_weights


def job(data: dict, **kw) -> TrainJobSpec:
    return TrainJobSpec.model_validate({"data": {"table": "t.x", **data}, "task": "binary", "label": "label",
                                        "models": {"lr": {"algorithm": "logistic_regression"}}, **kw})


def test_split_by_column_time_and_random(spark):
    rows = [(i, i % 2, dt.date(2024, 1, 1) + dt.timedelta(days=i), ("train", "validation", "test")[i % 3]) for i in range(100)]
    frame = spark.createDataFrame(rows, "id int, label int, day date, split string")
    by_column = split(frame, job({"split_column": "split"}), "t")
    assert {k: v.count() for k, v in by_column.items()} == {"train": 34, "validation": 33, "test": 33}
    by_time = split(frame, job({"time_column": "day", "validation_share": 0.2, "test_share": 0.2}), "t")
    last_train = by_time["train"].agg({"day": "max"}).first()[0]
    first_test = by_time["test"].agg({"day": "min"}).first()[0]
    assert last_train < first_test and by_time["test"].count() in range(18, 23)
    randomly = split(frame, job({"validation_share": 0.0, "test_share": 0.3}), "t")
    assert set(randomly) == {"train", "test"} and sum(v.count() for v in randomly.values()) == 100
    bad = spark.createDataFrame([(1, 0, "holdout")], "id int, label int, split string")
    with pytest.raises(TrainingDataError, match="holdout"):
        split(bad, job({"split_column": "split"}), "t.x")



def test_a_time_split_that_leaves_a_split_empty_says_so(spark):
    # Bug: two dates only: both split points fell on the last one, validation was empty, and
    # training failed after the fit with "no rows to evaluate".
    rows = [(i, i % 2, dt.date(2024, 1, 1 + (i >= 50))) for i in range(100)]
    frame = spark.createDataFrame(rows, "id int, label int, day date")
    with pytest.raises(TrainingDataError, match="the validation split has no rows .*too few distinct times"):
        split(frame, job({"time_column": "day", "validation_share": 0.2, "test_share": 0.2}), "t.x")
    empty = spark.createDataFrame([], "id int, label int, day date")
    with pytest.raises(TrainingDataError, match="no rows with a day"):
        split(empty, job({"time_column": "day"}), "t.x")


def test_class_weights_balance_and_label_checks(spark):
    frame = spark.createDataFrame([(0,)] * 30 + [(1,)] * 10, "label int")
    weights = class_weights(frame, job({}), "t")
    assert weights == {0.0: pytest.approx(40 / 60), 1.0: pytest.approx(40 / 20)}
    assert class_weights(frame, job({}, class_weights="none"), "t") is None
    with pytest.raises(TrainingDataError, match="0/1"):
        class_weights(spark.createDataFrame([(0,), (2,)], "label int"), job({}), "t")
    with pytest.raises(TrainingDataError, match="single class"):
        class_weights(spark.createDataFrame([(1,), (1,)], "label int"), job({}), "t")


def test_label_errors_say_what_is_wrong(spark):
    # Bug: text labels ("yes"/"no") failed in Spark's cast (CAST_INVALID_INPUT, no table, no
    # fix), and an empty training split was reported as "a single class ([])".
    words = spark.createDataFrame([("yes",), ("no",), ("1",), (None,)], "label string")
    with pytest.raises(TrainingDataError, match=r"3 training row\(s\) have a null or non-numeric label \(e.g. '(yes|no)'"):
        class_weights(words, job({}), "t")
    nulls = spark.createDataFrame([(1,), (None,)], "label int")
    with pytest.raises(TrainingDataError, match=r"1 training row\(s\) have a null label"):
        class_weights(nulls, job({}), "t")
    with pytest.raises(TrainingDataError, match="the training split is empty"):
        class_weights(spark.createDataFrame([], "label int"), job({}), "t")


def test_tree_bins_cover_every_value_of_a_categorical_column(spark):
    # Bug: maxBins came from approx_count_distinct, which counts these 300 values as 289; a random
    # forest then refused to train ("maxBins ... at least as large as the number of values").
    frame = spark.range(300).selectExpr("concat('cat-', id) AS category", "id % 3 AS small")
    assert _tree_bins(frame, FeatureColumns(numeric=(), categorical=("small", "category"))) == 302
    assert _tree_bins(frame, FeatureColumns(numeric=(), categorical=("small",))) == 32


def test_grid_and_random_search_maps():
    lr = LogisticRegression()
    grid = SearchSpec(method="grid", grid={"regParam": [0.1, 0.01], "elasticNetParam": [0.0, 0.5, 1.0]})
    assert len(param_maps(lr, grid, 1, "lr")) == 6
    sampled = param_maps(lr, SearchSpec(method="random", grid=grid.grid, trials=3), 1, "lr")
    assert len(sampled) == 3 and sampled == param_maps(lr, SearchSpec(method="random", grid=grid.grid, trials=3), 1, "lr")
    with pytest.raises(ModelSpecError, match="numTrees"):
        param_maps(lr, SearchSpec(method="grid", grid={"numTrees": [1]}), 1, "lr")


def test_estimator_parameters_are_checked():
    assert build_estimator("gbt", {"maxIter": 7}, 1, True).getMaxIter() == 7
    with pytest.raises(ModelSpecError, match="no parameter 'trees'"):
        build_estimator("random_forest", {"trees": 5}, 1, False)


def test_job_config_rejects_models_that_do_not_fit_the_task():
    with pytest.raises(ValueError, match="does not fit task"):
        TrainJobSpec.model_validate({"data": {"table": "t.x"}, "task": "binary", "label": "y", "models": {"m": {"algorithm": "als"}}})
    with pytest.raises(ValueError, match="regressor"):
        TrainJobSpec.model_validate({"data": {"table": "t.x"}, "task": "binary", "label": "y", "models": {"m": {"algorithm": "gbt_regression"}}})


def test_promotion_needs_a_gain_beyond_the_margin():
    spec = RegistrySpec(name="m", metric="roc_auc", margin=0.01)
    assert compare(spec, 0.80, 0.78)[0] is True
    assert compare(spec, 0.785, 0.78)[0] is False
    lower = RegistrySpec(name="m", metric="rmse", greater_is_better=False)
    assert compare(lower, 1.0, 1.2)[0] is True and compare(lower, 1.3, 1.2)[0] is False
    assert compare(spec, float("nan"), 0.5)[0] is False


def test_error_metrics_are_lower_is_better_and_each_task_has_its_default_metric():
    # Bug: greater_is_better defaulted to True whatever the metric, so a challenger with a higher
    # log_loss or rmse beat the champion; a regression job's default metric was roc_auc.
    assert compare(RegistrySpec(name="m", metric="log_loss"), 0.90, 0.30)[0] is False
    assert compare(RegistrySpec(name="m", metric="rmse"), 1.0, 5.0)[0] is True
    assert RegistrySpec(name="m", metric="rmse", greater_is_better=True).greater_is_better is True  # explicit wins
    job = {"data": {"table": "t.x"}, "label": "y", "registry": {"name": "m"}}
    regression = TrainJobSpec.model_validate({**job, "task": "regression", "models": {"m": {"algorithm": "linear_regression"}}})
    assert (regression.registry.metric, regression.registry.greater_is_better) == ("rmse", False)
    binary = TrainJobSpec.model_validate({**job, "task": "binary", "models": {"m": {"algorithm": "logistic_regression"}}})
    assert (binary.registry.metric, binary.registry.greater_is_better) == ("roc_auc", True)


def test_random_search_without_a_grid_draws_from_the_default_space():
    from pipelines.train.search import combinations, param_maps, searched
    from pipelines.train.spaces import SPACES

    search = SearchSpec(method="random", trials=5)
    for algorithm in ("random_forest", "gbt", "logistic_regression"):
        drawn = combinations(search, 7, algorithm)
        assert len(drawn) == 5 and drawn == combinations(search, 7, algorithm)  # deterministic per seed
        assert all(set(c) == set(SPACES[algorithm]) for c in drawn)
        assert searched(search, algorithm) == sorted(SPACES[algorithm])
    gbt = combinations(search, 7, "gbt")
    assert all(2 <= c["maxDepth"] <= 8 and 20 <= c["maxIter"] <= 150 and 0.02 <= c["stepSize"] <= 0.3 for c in gbt)
    assert len({c["stepSize"] for c in gbt}) > 1
    # Every drawn name is a parameter of the Spark estimator.
    assert len(param_maps(build_estimator("random_forest", {}, 1, False), search, 7, "rf", "random_forest")) == 5
    als = combinations(SearchSpec(method="random", trials=3), 1, "als", implicit=False)
    assert all(set(c) == {"rank", "regParam"} for c in als)  # alpha is for implicit feedback only


def test_a_grid_search_needs_a_grid():
    with pytest.raises(ValueError, match="a grid search needs search.grid"):
        SearchSpec(method="grid")


def test_stratified_random_split_keeps_each_class_share(spark):
    from pipelines.config.models import RandomSplitSpec
    from pipelines.train.data import random_split

    # 1000 rows, 60 positives: a plain Bernoulli split would put anywhere near 12 +- 3 in test.
    frame = spark.range(1000).selectExpr("id", "CAST(id % 50 < 3 AS INT) AS label", "id % 7 AS x")
    spec = RandomSplitSpec(test=0.2, validation=0.15, stratify=True, seed=5)
    parts = random_split(frame, spec, "label", "t")
    counts = {name: {r["label"]: r["count"] for r in part.groupBy("label").count().collect()} for name, part in parts.items()}
    assert counts["test"] == {1: 12, 0: 188} and counts["validation"] == {1: 9, 0: 141}
    assert counts["train"] == {1: 39, 0: 611}
    # The same rows land in the same split every time, however the table is partitioned.
    again = random_split(frame.repartition(7), spec, "label", "t")
    assert sorted(r.id for r in again["test"].collect()) == sorted(r.id for r in parts["test"].collect())
    plain = random_split(frame, RandomSplitSpec(test=0.3, validation=0.0, seed=5), None, "t")
    assert set(plain) == {"train", "test"} and 240 < plain["test"].count() < 360


def test_a_stratified_split_needs_a_classification_label(spark):
    from pipelines.config.models import RandomSplitSpec
    from pipelines.train.data import MAX_STRATA, random_split

    frame = spark.range(MAX_STRATA + 5).selectExpr("id", "CAST(id AS DOUBLE) AS label")
    with pytest.raises(TrainingDataError, match="label 'label' has more than 1000 values"):
        random_split(frame, RandomSplitSpec(stratify=True), "label", "t")
    with pytest.raises(ValueError, match="give one way to split"):
        TrainJobSpec.model_validate({"data": {"table": "t.x", "split_column": "s", "split": {"test": 0.2}},
                                     "task": "binary", "label": "y", "models": {"m": {"algorithm": "gbt"}}})


def test_a_yes_no_label_becomes_0_1(spark):
    from pipelines.train.data import positive_label

    frame = spark.createDataFrame([("yes",), ("No",), (" YES ",), (None,), ("maybe",)], "y string")
    assert [r.y for r in positive_label(frame, "y", "yes", "t").collect()] == [1, 0, 1, None, 0]
    # Unquoted yes in YAML is a boolean; it still matches the text.
    assert [r.y for r in positive_label(frame, "y", True, "t").collect()] == [1, 0, 1, None, 0]
    booleans = spark.createDataFrame([(True,), (False,)], "y boolean")
    assert [r.y for r in positive_label(booleans, "y", "true", "t").collect()] == [1, 0]
    with pytest.raises(ValueError, match="positive applies to binary jobs only"):
        TrainJobSpec.model_validate({"data": {"table": "t.x"}, "task": "regression", "label": "y", "positive": "yes",
                                     "models": {"m": {"algorithm": "gbt_regression"}}})


def test_a_disabled_model_is_trained_only_when_named(tmp_path):
    from pipelines.train.stage import selected_models
    from tests.conftest import make_config

    config = make_config(tmp_path, "training.jobs.propensity.models.rf.enabled=false")
    job = config.training.jobs["propensity"]
    assert "rf" not in selected_models(job, None) and "lr" in selected_models(job, None)
    assert list(selected_models(job, ["rf"])) == ["rf"]
