"""TorchComm over gloo with two real processes: a run that ends right after its last collective
(what rank 1 does when its epoch loop ends) shuts its process group down without hanging.

PyTorch 2.13 deadlocked there about one teardown in three: the group's destructor joined a gloo
worker thread while holding the GIL, and that thread needed the GIL to free a finished work's
tensors. The DDP run and torchrun's exit barrier then waited until the training's wall-clock limit.

Rank 0 chooses each run's rendezvous port just before it listens there and hands it to rank 1: ports
chosen all at once before the runs were taken meanwhile by the runs' own gloo connections (EADDRINUSE
in CI; rank 0 died and rank 1 waited for it).
"""

from __future__ import annotations

import multiprocessing
import os
import time

import pytest

from tests.processes import free_ports

RUNS = 25  # the old teardown hung within ~20 runs every time it was tried; these take ~15 s
LIMIT_S = 90


def _one_run() -> int | None:
    import torch

    from pipelines.deep.comm import TorchComm

    comm = TorchComm()
    comm.setup(torch.device("cpu"), timeout_s=30)
    try:
        model, _ = comm.wrap(torch.nn.Linear(4, 1), None)
        model(torch.randn(8, 4)).sum().backward()
        total = comm.allreduce_sum(torch.tensor([1.0, float(comm.rank)]))
        assert total.tolist() == [2.0, 1.0]
        assert comm.max_int(comm.rank) == 1
        return None if comm.rank else 0  # rank 1 returns at once, as in train_process
    finally:
        comm.close()


def _process(rank: int, ports) -> None:
    import torch

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank))
    for _ in range(RUNS):
        if rank == 0:
            port = free_ports()[0]
            ports.put(port)
        else:
            port = ports.get(timeout=LIMIT_S)
        os.environ["MASTER_PORT"] = str(port)
        _one_run()


@pytest.mark.slow
def test_two_gloo_processes_tear_down_right_after_their_last_collective():
    pytest.importorskip("torch.distributed", reason="torch without distributed support")
    context = multiprocessing.get_context("spawn")
    ports = context.Queue()
    processes = [context.Process(target=_process, args=(rank, ports), name=f"rank-{rank}") for rank in range(2)]
    for process in processes:
        process.start()
    try:
        deadline = time.monotonic() + LIMIT_S
        while any(p.is_alive() for p in processes) and time.monotonic() < deadline:
            if any(p.exitcode not in (None, 0) for p in processes):
                break  # the other rank would wait for the dead one until its own timeouts
            time.sleep(0.2)
        failed = {process.name: process.exitcode for process in processes if process.exitcode not in (None, 0)}
        assert not failed, f"exit codes {failed}: a run failed (its traceback is in the captured stderr)"
        hung = [process.name for process in processes if process.is_alive()]
        assert not hung, f"{hung} still running after {LIMIT_S} s: the process group teardown deadlocked"
        assert [process.exitcode for process in processes] == [0, 0]
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
                process.join(10)
