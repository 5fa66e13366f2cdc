"""Collective communication behind one interface, so one training loop serves every backend.

- `TorchComm`: torch.distributed (gloo on CPU, NCCL on GPU) from the env torchrun sets; the model
  is wrapped in DistributedDataParallel.
- `HorovodComm`: horovod.torch; the optimizer is wrapped in hvd.DistributedOptimizer and the
  parameters and optimizer state are broadcast from rank 0.
- `LocalComm`: one process, no communication (tests, single-process baselines).
"""

from __future__ import annotations

import collections
import datetime as dt
import logging
import os

import torch

log = logging.getLogger(__name__)


class LocalComm:
    rank = 0
    world_size = 1
    local_rank = 0
    name = "local"

    def setup(self, device: torch.device, timeout_s: float) -> None:
        self.device = device

    def wrap(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer):
        return model, optimizer

    def allreduce_sum(self, values: torch.Tensor) -> torch.Tensor:
        return values

    def max_int(self, value: int) -> int:
        return value

    def close(self, failed: bool = False) -> None:
        pass


# Collective works of finished TorchComm groups, kept until the process exits (see TorchComm).
_RETIRED_WORKS: list = []


class TorchComm(LocalComm):
    """torch.distributed from torchrun's env.

    Every collective keeps its work handle alive here until the group is gone. PyTorch 2.13's gloo
    worker threads otherwise drop the last reference to a finished work, and freeing a tensor that
    has a Python object needs the GIL; the group's destructor (run when the DDP model is freed)
    joins those threads while holding the GIL. A rank that tore down right after its last
    collective (rank 1 returns as soon as its loop ends) deadlocked there: its worker never
    finished, torchrun's exit barrier waited, and the run hung until its wall-clock limit. With
    our handle held, a worker thread's release is never the last one and needs no GIL.
    """

    name = "torch_distributor"
    _KEEP = 64  # works older than this were long released by gloo's threads; freeing them is safe

    def __init__(self) -> None:
        self.rank = int(os.environ.get("RANK", "0"))
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self._works: collections.deque = collections.deque(maxlen=self._KEEP)

    def setup(self, device: torch.device, timeout_s: float) -> None:
        import torch.distributed as dist

        self.device = device
        backend = "nccl" if device.type == "cuda" else "gloo"
        if not dist.is_initialized():
            # A bounded timeout: a peer that died makes collectives fail instead of hanging.
            # NCCL is bound to this process's GPU up front (its barrier would otherwise guess the device)
            dist.init_process_group(backend=backend, timeout=dt.timedelta(seconds=timeout_s),
                                    device_id=device if device.type == "cuda" else None)

    def wrap(self, model, optimizer):
        from torch.nn.parallel import DistributedDataParallel

        if self.world_size == 1:
            return model, optimizer
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=device_ids), optimizer

    def _wait(self, work) -> None:
        work.wait()
        self._works.append(work)

    def allreduce_sum(self, values: torch.Tensor) -> torch.Tensor:
        import torch.distributed as dist

        out = values.clone().to(self.device)
        self._wait(dist.all_reduce(out, op=dist.ReduceOp.SUM, async_op=True))
        return out.cpu()

    def max_int(self, value: int) -> int:
        import torch.distributed as dist

        out = torch.tensor([value], dtype=torch.int64, device=self.device)
        self._wait(dist.all_reduce(out, op=dist.ReduceOp.MAX, async_op=True))
        return int(out.item())

    def close(self, failed: bool = False) -> None:
        """Shut the group down: after a barrier when this rank finished, at once when it `failed`
        (the others may be inside a collective, which then fails on the lost peer)."""
        import torch.distributed as dist

        if not dist.is_initialized():
            return
        if not failed:
            try:
                self._wait(dist.barrier(async_op=True))
            except Exception as exc:  # noqa: BLE001 - a peer that died must not hide this rank's own outcome
                log.warning("rank %d: barrier before shutting down the process group failed: %s", self.rank, exc)
        dist.destroy_process_group()
        # The DDP model still holds the group; its threads may release our works until it is freed.
        _RETIRED_WORKS.extend(self._works)
        self._works.clear()


class HorovodComm(LocalComm):
    name = "horovod"

    def __init__(self) -> None:
        import horovod.torch as hvd

        hvd.init()
        self.hvd = hvd
        self.rank, self.world_size, self.local_rank = hvd.rank(), hvd.size(), hvd.local_rank()

    def setup(self, device: torch.device, timeout_s: float) -> None:
        self.device = device

    def wrap(self, model, optimizer):
        hvd = self.hvd
        optimizer = hvd.DistributedOptimizer(optimizer, named_parameters=model.named_parameters())
        hvd.broadcast_parameters(model.state_dict(), root_rank=0)
        hvd.broadcast_optimizer_state(optimizer, root_rank=0)
        return model, optimizer

    def allreduce_sum(self, values: torch.Tensor) -> torch.Tensor:
        return self.hvd.allreduce(values.clone(), op=self.hvd.Sum).cpu()

    def max_int(self, value: int) -> int:
        out = self.hvd.allreduce(torch.tensor([value], dtype=torch.int64), op=self.hvd.Max)
        return int(out.item())

    def close(self, failed: bool = False) -> None:
        self.hvd.shutdown()
