"""Device selection: the CPU fallback is logged; on a GPU machine the process pins its GPU, trains
with mixed precision (binary and regression), and a torchrun-style process runs the
TorchDistributor entry point over NCCL. The GPU tests skip, with the reason, where there is no
GPU: CI has none."""

from __future__ import annotations

import logging
import multiprocessing
import os

import pytest
import torch

from pipelines.deep.gpu import select_device
from tests.processes import free_ports

LIMIT_S = 180


def test_cpu_when_not_asked_and_a_logged_fallback_without_gpu(caplog, monkeypatch):
    assert select_device(False).type == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with caplog.at_level(logging.WARNING, logger="pipelines.deep.gpu"):
        assert select_device(True).type == "cpu"
    assert "no GPU visible to this process" in caplog.text and "falling back to CPU" in caplog.text


def _require_gpu(count: int = 1) -> None:
    available = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if available < count:
        reason = (f"needs {count} CUDA GPU(s), this machine has {available} "
                  f"(torch {torch.__version__}, CUDA build {torch.version.cuda})")
        print(f"SKIP: {reason}")
        pytest.skip(reason)


def _binary_task(tmp_path, **overrides):
    from pipelines.deep.features import FeatureSchema
    from pipelines.deep.network import NetConfig
    from pipelines.deep.shards import folder_source
    from pipelines.deep.store import CheckpointStore, Folder
    from pipelines.deep.training import TrainTask
    from tests.unit.deep.frames import binary_frame, write_parquet_files

    write_parquet_files(binary_frame(1600, seed=1), tmp_path / "train", files=2)
    write_parquet_files(binary_frame(400, seed=2), tmp_path / "validation", files=1)
    features = FeatureSchema(("x1", "x2"), (0.0, 0.0), (1.0, 1.0), ("device",), (("web", "app", "tv"),))
    settings = {"batch_size": 128, "max_epochs": 3, "learning_rate": 0.01, "use_gpu": True, "mixed_precision": True}
    settings.update(overrides)
    return TrainTask(task="binary", features=features, net=NetConfig(2, features.cardinalities), label="label",
                     weight=None, train=folder_source(Folder(str(tmp_path / "train"))),
                     validation=folder_source(Folder(str(tmp_path / "validation"))),
                     store=CheckpointStore(str(tmp_path / "c")), **settings)


def test_training_on_gpu_pins_the_device_and_uses_mixed_precision(tmp_path):
    _require_gpu()
    from pipelines.deep.comm import LocalComm
    from pipelines.deep.training import train_process

    out = train_process(_binary_task(tmp_path), LocalComm())
    assert out.device.startswith("cuda") and out.history[-1]["val_auc"] > 0.8
    # the checkpoint holds CPU tensors: the driver and CPU scoring load it without a GPU
    assert all(value.device.type == "cpu" for value in out.state_dict.values())


def test_regression_on_gpu_with_mixed_precision_learns(tmp_path):
    _require_gpu()
    from pipelines.deep.comm import LocalComm
    from pipelines.deep.training import train_process
    from tests.unit.deep.frames import regression_task

    out = train_process(regression_task(tmp_path, use_gpu=True, mixed_precision=True), LocalComm())
    assert out.device.startswith("cuda") and out.history[-1]["val_rmse"] < 0.5  # the label's spread is ~2.5


def _torchrun_process(task, rank: int, world: int, port: int, results) -> None:
    # what torchrun sets for each process TorchDistributor starts
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world))
    import torch.distributed as dist

    from pipelines.deep.training import torch_distributor_main

    out = torch_distributor_main(task)
    results.put((rank, dist.is_initialized(), None if out is None else (out.device, out.history[-1]["val_auc"])))


def _run_ranks(task, world: int) -> dict:
    """Start `world` processes as torchrun would and return rank -> (initialized, rank 0's output)."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    port = free_ports()[0]
    processes = [context.Process(target=_torchrun_process, args=(task, rank, world, port, results), name=f"rank-{rank}")
                 for rank in range(world)]
    for process in processes:
        process.start()
    try:
        outputs = {}
        for _ in range(world):
            rank, initialized, output = results.get(timeout=LIMIT_S)
            outputs[rank] = (initialized, output)
        for process in processes:
            process.join(30)
        assert [process.exitcode for process in processes] == [0] * world
        return outputs
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
                process.join(10)


def test_torch_distributor_process_on_gpu_runs_over_nccl(tmp_path):
    _require_gpu()
    import torch.distributed as dist

    if not dist.is_nccl_available():
        reason = f"torch {torch.__version__} was built without NCCL"
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    outputs = _run_ranks(_binary_task(tmp_path), world=1)
    initialized, (device, val_auc) = outputs[0]
    assert not initialized  # the process group was shut down after training
    assert device.startswith("cuda") and val_auc > 0.8


def test_two_processes_on_two_gpus_train_data_parallel_over_nccl(tmp_path):
    _require_gpu(2)  # NCCL refuses two ranks on one GPU; a cluster gives each process its own
    outputs = _run_ranks(_binary_task(tmp_path), world=2)
    _, (device, val_auc) = outputs[0]
    assert outputs[1] == (False, None) and device.startswith("cuda") and val_auc > 0.8
