"""Device selection in a training or scoring process: pin the GPU Spark gave it, else CPU.

Spark's resource scheduling (`spark.task.resource.gpu.amount`) gives each barrier task GPU
addresses; TorchDistributor and our Horovod task function export them as CUDA_VISIBLE_DEVICES,
so a process sees only its own GPU(s) and takes the one at its local rank. Without a usable
GPU it logs why and trains on CPU.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


def select_device(use_gpu: bool, local_rank: int = 0):
    """The torch device for this process, pinned (`torch.cuda.set_device`) when it is a GPU."""
    import torch

    if not use_gpu:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        log.warning("no GPU visible to this process (CUDA_VISIBLE_DEVICES=%r, torch %s, CUDA build %s): "
                    "falling back to CPU", os.environ.get("CUDA_VISIBLE_DEVICES"), torch.__version__, torch.version.cuda)
        return torch.device("cpu")
    index = local_rank % torch.cuda.device_count()
    torch.cuda.set_device(index)
    device = torch.device("cuda", index)
    log.info("training process pinned to GPU %d (%s)", index, torch.cuda.get_device_name(index))
    return device


def gpu_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def spark_task_gpus(spark) -> float:
    """`spark.task.resource.gpu.amount` of the session (0 when GPUs are not scheduled)."""
    try:
        return float(spark.sparkContext.getConf().get("spark.task.resource.gpu.amount", "0"))
    except ValueError:
        return 0.0


def task_gpu_addresses() -> list[str]:
    """The GPU addresses Spark assigned to the running task (inside a Spark task), or []."""
    try:
        from pyspark import BarrierTaskContext, TaskContext

        context = BarrierTaskContext.get() or TaskContext.get()
    except Exception:  # noqa: BLE001 - not inside a task
        return []
    if context is None:
        return []
    resources = context.resources()
    return list(resources["gpu"].addresses) if "gpu" in resources else []
