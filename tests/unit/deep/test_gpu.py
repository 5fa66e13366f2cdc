"""Device selection: the CPU fallback is logged; on a GPU machine the process pins its GPU and
trains with mixed precision (skipped, with the reason, where there is no GPU: CI has none)."""

from __future__ import annotations

import logging

import pytest
import torch

from pipelines.deep.gpu import select_device


def test_cpu_when_not_asked_and_a_logged_fallback_without_gpu(caplog, monkeypatch):
    assert select_device(False).type == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with caplog.at_level(logging.WARNING, logger="pipelines.deep.gpu"):
        assert select_device(True).type == "cpu"
    assert "no GPU visible to this process" in caplog.text and "falling back to CPU" in caplog.text


def test_training_on_gpu_pins_the_device_and_uses_mixed_precision(tmp_path):
    if not torch.cuda.is_available():
        reason = f"no CUDA GPU on this machine (torch {torch.__version__}, CUDA build {torch.version.cuda})"
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    from pipelines.deep.comm import LocalComm
    from pipelines.deep.features import FeatureSchema
    from pipelines.deep.network import NetConfig
    from pipelines.deep.shards import folder_source
    from pipelines.deep.store import CheckpointStore, Folder
    from pipelines.deep.training import TrainTask, train_process
    from tests.unit.deep.frames import binary_frame, write_parquet_files

    write_parquet_files(binary_frame(1600, seed=1), tmp_path / "train", files=2)
    write_parquet_files(binary_frame(400, seed=2), tmp_path / "validation", files=1)
    features = FeatureSchema(("x1", "x2"), (0.0, 0.0), (1.0, 1.0), ("device",), (("web", "app", "tv"),))
    task = TrainTask(task="binary", features=features, net=NetConfig(2, features.cardinalities), label="label",
                     weight=None, train=folder_source(Folder(str(tmp_path / "train"))),
                     validation=folder_source(Folder(str(tmp_path / "validation"))), store=CheckpointStore(str(tmp_path / "c")),
                     batch_size=128, max_epochs=3, learning_rate=0.01, use_gpu=True, mixed_precision=True)
    out = train_process(task, LocalComm())
    assert out.device.startswith("cuda") and out.history[-1]["val_auc"] > 0.8
