"""The training loop every process runs, whatever the backend.

Each rank reads its shard (`ShardReader`), encodes batches with the fitted `FeatureSchema`, and
takes `steps` optimizer steps per epoch (the same on every rank). After each epoch every rank
scores its validation shard; the loss sums (and, for binary tasks, score histograms for the AUC)
are all-reduced, so every rank sees the same validation metric and takes the same early-stopping
decision without another round trip. Rank 0 writes `best.pt` to the checkpoint store whenever the
metric improves, and at the end returns the best epoch's weights, read back from the store.
"""

from __future__ import annotations

import logging
import math
import os
import random
import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pipelines.deep.features import FeatureSchema, float_values
from pipelines.deep.network import NetConfig
from pipelines.deep.shards import ShardReader, ShardSource
from pipelines.deep.store import CheckpointStore

log = logging.getLogger(__name__)

AUC_BINS = 4096
BEST = "best.pt"
HISTORY = "history.json"


@dataclass(frozen=True)
class TrainTask:
    """Everything a training process needs (picklable; sent to every worker)."""

    task: str
    """`binary` or `regression`."""
    features: FeatureSchema
    net: NetConfig
    label: str
    weight: str | None
    train: ShardSource
    validation: ShardSource | None
    store: CheckpointStore
    batch_size: int = 256
    max_epochs: int = 10
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    lr_schedule: str = "cosine"
    warmup_epochs: float = 0.0
    patience: int = 3
    validation_metric: str = "loss"
    seed: int = 42
    shuffle_buffer: int = 10_000
    use_gpu: bool = False
    mixed_precision: bool = True
    timeout_s: float = 600.0
    threads: int = 1
    class_weights: dict[float, float] | None = None
    """Per-label weights multiplied into the row weights (binary: e.g. balanced)."""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def columns(self) -> list[str]:
        return [*self.features.columns, self.label, *([self.weight] if self.weight else [])]


@dataclass
class TrainOutput:
    """What rank 0 returns: the best epoch's weights and the history."""

    state_dict: dict[str, Any]
    best_epoch: int
    best_metric: float
    history: list[dict[str, float]]
    world_size: int
    device: str
    samples_per_second: float
    checkpoint_uri: str
    stopped_early: bool = False


def seed_everything(seed: int, deterministic: bool) -> None:
    """Seed Python, NumPy and torch; `deterministic` (CPU runs) also forbids nondeterministic kernels."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(deterministic, warn_only=True)


def _tensors(task: TrainTask, data, device):
    """(numeric, categorical, label, weight) tensors on `device` of a pandas frame or Arrow table."""
    import torch

    numeric, categorical = task.features.encode(data)
    label = float_values(data[task.label]).astype(np.float32)
    weight = (np.nan_to_num(float_values(data[task.weight]), nan=0.0).astype(np.float32) if task.weight
              else np.ones(len(label), dtype=np.float32))
    if np.isnan(label).any():
        raise ValueError(f"label column {task.label!r} has nulls in the training data")
    if task.class_weights:
        weight = weight * pd.Series(label).map(task.class_weights).fillna(1.0).to_numpy(dtype=np.float32)
    return (torch.from_numpy(numeric).to(device), torch.from_numpy(categorical).to(device),
            torch.from_numpy(label).to(device), torch.from_numpy(weight).to(device))


PREFETCH_CHUNKS = 2


def _device_batches(task: TrainTask, reader: ShardReader, epoch: int, steps: int, device):
    """This epoch's `steps` batches as tensors on `device`.

    A background thread reads, shuffles (in Arrow) and encodes the shard a chunk (the shuffle
    buffer's worth of whole batches) at a time and moves each chunk to the device in one copy, up to
    `PREFETCH_CHUNKS` ahead; batches are slices of the chunk on the device. Encoding and copying
    batch by batch cost more than the step itself on a GPU (a third of a plain loop's throughput
    on an H100; see docs/deep_learning.md).
    """
    def chunks():  # runs in the prefetch thread
        if device.type == "cuda":
            import torch

            torch.cuda.set_device(device)  # the thread's own current device, as the process's
        for chunk in reader.table_chunks(epoch, steps, task.batch_size):
            yield _tensors(task, chunk, device)

    for numeric, categorical, label, weight in prefetched(chunks(), PREFETCH_CHUNKS):
        for start in range(0, len(label), task.batch_size):
            end = start + task.batch_size
            yield numeric[start:end], categorical[start:end], label[start:end], weight[start:end]


def prefetched(items, depth: int):
    """Iterate `items` with a background thread running up to `depth` items ahead.

    An error in the thread is raised here, at the item it failed on; when the consumer stops
    early (an error in the step, or `close`), the thread stops at its next item.
    """
    import queue
    import threading

    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    end = object()

    def put(entry) -> bool:
        while not stop.is_set():
            try:
                ready.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((item, None)):
                    return
            put((end, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which raises it
            put((None, exc))

    thread = threading.Thread(target=produce, name="clickml-deep-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item, error = ready.get()
            if error is not None:
                raise error
            if item is end:
                return
            yield item
    finally:
        stop.set()
        thread.join(timeout=30)


def _loss(task: TrainTask, output, label, weight):
    import torch.nn.functional as F

    if task.task == "binary":
        losses = F.binary_cross_entropy_with_logits(output.float(), label, reduction="none")
    else:
        losses = (output.float() - label) ** 2
    return (losses * weight).sum() / weight.sum().clamp_min(1e-12)


def _schedule(task: TrainTask, optimizer, total_steps: int, steps_per_epoch: int):
    import torch

    warmup = int(task.warmup_epochs * steps_per_epoch)

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if task.lr_schedule == "constant":
            return 1.0
        if task.lr_schedule == "step":
            return 0.5 ** ((step - warmup) // max(1, steps_per_epoch * 3))
        progress = (step - warmup) / max(1, total_steps - warmup)  # cosine to 0 over max_epochs
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def auc_from_histograms(positives: np.ndarray, negatives: np.ndarray) -> float:
    """ROC AUC from weight histograms of scores (ties within a bin count one half)."""
    p_total, n_total = positives.sum(), negatives.sum()
    if p_total <= 0 or n_total <= 0:
        return float("nan")
    negatives_below = np.cumsum(negatives) - negatives
    return float((positives * (negatives_below + 0.5 * negatives)).sum() / (p_total * n_total))


def _validate(task: TrainTask, model, reader: ShardReader | None, comm, device) -> dict[str, float]:
    """Validation loss (and AUC) over every rank's validation shard, all-reduced."""
    import torch

    stats = torch.zeros(2 + 2 * AUC_BINS, dtype=torch.float64)
    if reader is not None:
        model.eval()
        with torch.no_grad():
            for frame in reader.scan():
                numeric, categorical, label, weight = _tensors(task, frame, device)
                output = model(numeric, categorical).float()
                stats[0] += float(_loss(task, output, label, weight)) * float(weight.sum())
                stats[1] += float(weight.sum())
                if task.task == "binary":
                    bins = torch.clamp((torch.sigmoid(output) * AUC_BINS).long(), 0, AUC_BINS - 1).cpu()
                    w, y = weight.double().cpu(), label.cpu()
                    stats[2:2 + AUC_BINS] += torch.bincount(bins, weights=w * y, minlength=AUC_BINS)
                    stats[2 + AUC_BINS:] += torch.bincount(bins, weights=w * (1 - y), minlength=AUC_BINS)
        model.train()
    stats = comm.allreduce_sum(stats)
    if stats[1] <= 0:
        return {}
    out = {"val_loss": float(stats[0] / stats[1])}
    if task.task == "binary":
        out["val_auc"] = auc_from_histograms(stats[2:2 + AUC_BINS].numpy(), stats[2 + AUC_BINS:].numpy())
    else:
        out["val_rmse"] = math.sqrt(out["val_loss"])
    return out


def _monitor(task: TrainTask, metrics: dict[str, float]) -> tuple[str, float, bool]:
    """(name, value, greater is better) of the early-stopping metric."""
    if task.validation_metric == "auc" and task.task == "binary":
        return "val_auc", metrics["val_auc"], True
    return "val_loss", metrics["val_loss"], False


def _log(rank: int, message: str, *args) -> None:
    if rank == 0:
        text = message % args if args else message
        log.info(text)
        print(f"[clickml.deep] {text}", file=sys.stderr, flush=True)


def train_process(task: TrainTask, comm) -> TrainOutput | None:
    """Train on this process's shard; rank 0 returns the `TrainOutput`, the others None."""
    import torch

    from pipelines.deep.gpu import select_device

    torch.set_num_threads(max(1, task.threads))
    device = select_device(task.use_gpu, comm.local_rank)
    # Bit-for-bit reproducibility is promised on CPU; on GPU the fast (nondeterministic) kernels stay.
    seed_everything(task.seed, deterministic=device.type == "cpu")
    comm.setup(device, task.timeout_s)
    try:
        output = _train(task, comm, device)
    except BaseException:
        comm.close(failed=True)  # no barrier: the other ranks may be inside a collective
        raise
    comm.close()  # after _train returned: the DDP model is freed while its process group still exists
    return output


def _train(task: TrainTask, comm, device) -> TrainOutput | None:
    import torch

    from pipelines.deep.network import TabularNet

    rank, world = comm.rank, comm.world_size
    train = ShardReader(task.train, rank, world, task.columns, seed=task.seed, shuffle_buffer=task.shuffle_buffer)
    validation = (ShardReader(task.validation, rank, world, task.columns) if task.validation is not None else None)
    rows = train.count()
    largest, smallest = comm.max_int(rows), -comm.max_int(-rows)
    if smallest * 2 < largest and not train.interleaved:
        # the filter left the file shards unbalanced (e.g. files holding one split each)
        _log(rank, "shards unbalanced (%d to %d rows): every rank reads all files, keeping every %d-th row",
             smallest, largest, world)
        train = ShardReader(task.train, rank, world, task.columns, seed=task.seed,
                            shuffle_buffer=task.shuffle_buffer, interleave=True)
        rows = train.count()
        largest = comm.max_int(rows)
    if largest == 0:
        raise ValueError(f"no training rows in {task.train.description}")
    steps = max(1, math.ceil(largest / task.batch_size))
    _log(rank, "%s: %d process(es) on %s, %d training rows on rank 0 (largest shard %d), %d steps/epoch of %d",
         comm.name, world, device, rows, largest, steps, task.batch_size)

    torch.manual_seed(task.seed)  # identical initial weights on every rank
    model = TabularNet(task.net).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=task.learning_rate, weight_decay=task.weight_decay)
    model, optimizer = comm.wrap(model, optimizer)
    raw_model = model.module if hasattr(model, "module") else model
    scheduler = _schedule(task, optimizer, steps * task.max_epochs, steps)
    amp = device.type == "cuda" and task.mixed_precision
    scaler = torch.amp.GradScaler("cuda", enabled=amp)

    history: list[dict[str, float]] = []
    best_value, best_epoch, stale, stopped_early = None, -1, 0, False
    seen = 0.0
    elapsed = 0.0
    for epoch in range(task.max_epochs):
        started = time.perf_counter()
        # summed on the device: reading them every step would stall the GPU's queue
        total = torch.zeros((), dtype=torch.float64, device=device)
        weight_sum = torch.zeros((), dtype=torch.float64, device=device)
        for numeric, categorical, label, weight in _device_batches(task, train, epoch, steps, device):
            optimizer.zero_grad()
            with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=amp):
                output = model(numeric, categorical)
            loss = _loss(task, output, label, weight)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            batch_weight = weight.sum().double()
            total += loss.detach().double() * batch_weight
            weight_sum += batch_weight
        total, weight_sum = float(total), float(weight_sum)
        seconds = time.perf_counter() - started
        elapsed += seconds
        seen += steps * task.batch_size * world
        metrics = {"epoch": float(epoch), "train_loss": total / max(weight_sum, 1e-12),
                   "samples_per_second": steps * task.batch_size * world / max(seconds, 1e-9),
                   "learning_rate": float(scheduler.get_last_lr()[0])}
        metrics.update(_validate(task, raw_model, validation, comm, device))
        history.append(metrics)
        improved = False
        if "val_loss" in metrics:
            name, value, greater = _monitor(task, metrics)
            improved = best_value is None or (value > best_value if greater else value < best_value)
        else:
            name, value, improved = "train_loss", metrics["train_loss"], True
        if improved:
            best_value, best_epoch, stale = value, epoch, 0
            if rank == 0:
                state = {k: v.detach().cpu() for k, v in raw_model.state_dict().items()}
                task.store.put_torch(BEST, {"epoch": epoch, "metric": name, "value": value, "state_dict": state})
        else:
            stale += 1
        _log(rank, "epoch %d/%d: train loss %.4f, %s, %.0f samples/s%s", epoch + 1, task.max_epochs,
             metrics["train_loss"], ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k.startswith("val_")),
             metrics["samples_per_second"], " (best so far, checkpointed)" if improved else "")
        if task.patience and stale >= task.patience:
            stopped_early = True
            _log(rank, "early stopping: %s did not improve for %d epoch(s); best epoch %d", name, stale, best_epoch + 1)
            break
    if rank != 0:
        return None
    task.store.put_json(HISTORY, history)
    best = task.store.get_torch(BEST)  # the best epoch, restored from the store
    return TrainOutput(
        state_dict=best["state_dict"], best_epoch=int(best["epoch"]), best_metric=float(best["value"]),
        history=history, world_size=world, device=str(device), samples_per_second=seen / max(elapsed, 1e-9),
        checkpoint_uri=f"{task.store.uri.rstrip('/')}/{BEST}", stopped_early=stopped_early,
    )


FAILURES = "failures"


def _reported(task: TrainTask, rank: int, run) -> TrainOutput | None:
    """Run `run()`; on failure leave the traceback in the store for the driver's error message."""
    try:
        return run()
    except BaseException as exc:
        text = "".join(traceback.format_exception(exc))
        try:
            task.store.child(FAILURES).put(f"rank-{rank}.txt", text.encode())
        except Exception as report_error:  # noqa: BLE001 - reporting must not hide the original error
            log.warning("rank %d: could not write its failure report: %s", rank, report_error)
        raise


def failure_reports(store: CheckpointStore) -> dict[int, str]:
    """Rank -> the last line (the exception) of each failure a worker reported, if any."""
    import pyarrow.fs as pafs

    fs, base = store.child(FAILURES).filesystem()
    reports = {}
    for info in fs.get_file_info(pafs.FileSelector(base, allow_not_found=True)):
        name = info.base_name
        if info.type == pafs.FileType.File and name.startswith("rank-") and name.endswith(".txt"):
            lines = [line for line in store.child(FAILURES).get(name).decode(errors="replace").splitlines() if line.strip()]
            reports[int(name[5:-4])] = lines[-1].strip() if lines else "unknown error"
    return dict(sorted(reports.items()))


def torch_distributor_main(task: TrainTask) -> TrainOutput | None:
    """Entry point of a TorchDistributor process (torchrun set RANK, WORLD_SIZE, MASTER_ADDR, ...)."""
    from pipelines.deep.comm import TorchComm

    _worker_logging()
    rank = int(os.environ.get("RANK", "0"))
    return _reported(task, rank, lambda: train_process(task, TorchComm()))


def horovod_main(task: TrainTask) -> TrainOutput | None:
    """Entry point of a Horovod process (horovod.spark.run starts it in a Spark task)."""
    from pipelines.deep.comm import HorovodComm

    _worker_logging()
    _pin_task_gpus()
    rank = int(os.environ.get("HOROVOD_RANK", "0"))
    return _reported(task, rank, lambda: train_process(task, HorovodComm()))


def _pin_task_gpus() -> None:
    """Export the GPUs Spark assigned to this task as CUDA_VISIBLE_DEVICES (before CUDA starts)."""
    from pipelines.deep.gpu import task_gpu_addresses

    addresses = task_gpu_addresses()
    if addresses and "CUDA_VISIBLE_DEVICES" not in os.environ:
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(addresses)


def _worker_logging() -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
