"""The training loop in one process (LocalComm): it learns, is reproducible on CPU with a seed,
stops early and returns the best epoch's weights, restored from the checkpoint store."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipelines.deep.comm import LocalComm
from pipelines.deep.features import FeatureSchema
from pipelines.deep.network import NetConfig
from pipelines.deep.shards import folder_source
from pipelines.deep.store import CheckpointStore, Folder
from pipelines.deep.training import (
    TrainTask,
    auc_from_histograms,
    prefetched,
    train_process,
)
from tests.unit.deep.frames import binary_frame, regression_task, write_parquet_files


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("deepdata")
    write_parquet_files(binary_frame(1600, seed=1), root / "train", files=3)
    write_parquet_files(binary_frame(400, seed=2), root / "validation", files=1)
    return root


def _task(data, store: str, **overrides) -> TrainTask:
    features = FeatureSchema(("x1", "x2"), (0.0, 0.0), (1.0, 1.0), ("device",), (("web", "app", "tv"),))
    settings = {"batch_size": 64, "max_epochs": 4, "learning_rate": 0.02, "seed": 7, "patience": 2, "shuffle_buffer": 256}
    settings.update(overrides)
    return TrainTask(
        task="binary", features=features, net=NetConfig(2, features.cardinalities, hidden=(16,)), label="label", weight=None,
        train=folder_source(Folder(str(data / "train"))), validation=folder_source(Folder(str(data / "validation"))),
        store=CheckpointStore(store), **settings,
    )


def test_learns_is_reproducible_and_returns_the_best_checkpoint(data, tmp_path):
    first = train_process(_task(data, str(tmp_path / "a")), LocalComm())
    second = train_process(_task(data, str(tmp_path / "b")), LocalComm())
    assert first.history[-1]["val_auc"] > 0.8  # chance is 0.5
    for name, tensor in first.state_dict.items():
        assert torch.equal(tensor, second.state_dict[name]), name  # seeded: bit-identical on CPU
    losses = [h["val_loss"] for h in first.history]
    assert first.best_epoch == int(np.argmin(losses)) and first.best_metric == min(losses)
    saved = CheckpointStore(str(tmp_path / "a")).get_torch("best.pt")
    assert saved["epoch"] == first.best_epoch and all(torch.equal(saved["state_dict"][k], v) for k, v in first.state_dict.items())
    assert CheckpointStore(str(tmp_path / "a")).get_json("history.json") == first.history


def test_early_stopping_keeps_the_best_epoch_not_the_last(data, tmp_path):
    # a huge constant learning rate diverges after the first epochs: training stops early and
    # the model returned is the best epoch's, not the last one's
    out = train_process(_task(data, str(tmp_path / "c"), learning_rate=3.0, lr_schedule="constant", max_epochs=8,
                              patience=1), LocalComm())
    losses = [h["val_loss"] for h in out.history]
    assert out.best_epoch == int(np.argmin(losses))
    assert out.stopped_early == (len(out.history) < 8)
    if out.best_epoch < len(out.history) - 1:
        assert losses[-1] > out.best_metric


def test_auc_from_histograms_matches_sklearn():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    s = np.clip(rng.normal(0.4 + 0.2 * y, 0.2), 0, 0.9999)
    bins = (s * 4096).astype(int)
    pos = np.bincount(bins, weights=y, minlength=4096)
    neg = np.bincount(bins, weights=1 - y, minlength=4096)
    assert auc_from_histograms(pos, neg) == pytest.approx(roc_auc_score(y, s), abs=2e-3)
    assert np.isnan(auc_from_histograms(pos, np.zeros(4096)))


def test_regression_learns(tmp_path):
    out = train_process(regression_task(tmp_path), LocalComm())
    assert out.history[-1]["val_rmse"] < 0.5  # the label's spread is ~2.5


def test_prefetched_keeps_order_raises_where_the_producer_failed_and_stops_when_closed():
    import threading

    assert list(prefetched(iter(range(50)), depth=2)) == list(range(50))

    def failing():
        yield 1
        raise ValueError("label column 'y' has nulls")

    items = prefetched(failing(), depth=2)
    assert next(items) == 1  # the items before the failure arrive first
    with pytest.raises(ValueError, match="has nulls"):
        next(items)

    produced = []

    def endless():
        while True:
            produced.append(len(produced))
            yield produced[-1]

    items = prefetched(endless(), depth=2)
    assert next(items) == 0
    items.close()  # what a failing training step does to its batch iterator
    assert not any(t.name == "clickml-deep-prefetch" for t in threading.enumerate())
    assert len(produced) <= 4  # the thread ran at most `depth` items (+ the one in hand) ahead, then stopped
