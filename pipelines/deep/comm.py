"""Collective communication behind one interface, so one training loop serves every backend.

- `TorchComm`: torch.distributed (gloo on CPU, NCCL on GPU) from the env torchrun sets; the model
  is wrapped in DistributedDataParallel.
- `HorovodComm`: horovod.torch; the optimizer is wrapped in hvd.DistributedOptimizer and the
  parameters and optimizer state are broadcast from rank 0.
- `LocalComm`: one process, no communication (tests, single-process baselines).
"""

from __future__ import annotations

import datetime as dt
import os

import torch


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

    def close(self) -> None:
        pass


class TorchComm(LocalComm):
    name = "torch_distributor"

    def __init__(self) -> None:
        self.rank = int(os.environ.get("RANK", "0"))
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))

    def setup(self, device: torch.device, timeout_s: float) -> None:
        import torch.distributed as dist

        self.device = device
        backend = "nccl" if device.type == "cuda" else "gloo"
        if not dist.is_initialized():
            # A bounded timeout: a peer that died makes collectives fail instead of hanging.
            dist.init_process_group(backend=backend, timeout=dt.timedelta(seconds=timeout_s))

    def wrap(self, model, optimizer):
        from torch.nn.parallel import DistributedDataParallel

        if self.world_size == 1:
            return model, optimizer
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=device_ids), optimizer

    def allreduce_sum(self, values: torch.Tensor) -> torch.Tensor:
        import torch.distributed as dist

        out = values.clone().to(self.device)
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out.cpu()

    def max_int(self, value: int) -> int:
        import torch.distributed as dist

        out = torch.tensor([value], dtype=torch.int64, device=self.device)
        dist.all_reduce(out, op=dist.ReduceOp.MAX)
        return int(out.item())

    def close(self) -> None:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


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

    def close(self) -> None:
        self.hvd.shutdown()
