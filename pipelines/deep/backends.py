"""Distributed backends behind one interface: `backend.run(spark, task, processes, use_gpu, timeout_s)`.

- `torch_distributor` (default): PySpark's TorchDistributor with `local_mode=False`: a barrier
  Spark job with one task per process; each task starts torchrun, which runs
  `training.torch_distributor_main` (DDP over gloo on CPU, NCCL on GPU).
- `horovod`: `horovod.spark.run` starts one Spark task per process and runs
  `training.horovod_main` in each (horovod.torch over Gloo). Needs `make horovod`.

Both run under a wall-clock limit: the Spark job runs in a helper thread under its own job group,
and when the limit passes the job is cancelled (which kills the tasks and their training
processes), so a stuck worker ends as `WorkerFailedError` instead of a hang. A failing worker
fails the barrier stage; the error names the backend and the worker's last error line.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from pyspark.sql import SparkSession

from pipelines.deep.errors import BackendUnavailableError, WorkerFailedError
from pipelines.deep.training import (
    TrainOutput,
    TrainTask,
    horovod_main,
    torch_distributor_main,
)

log = logging.getLogger(__name__)

BACKENDS = ("torch_distributor", "horovod")
_ERROR_LINE = re.compile(r"^\s*(?:[\w.]+(?:Error|Exception)|RuntimeError|ValueError)\b.*$", re.MULTILINE)


def worker_cause(exc: BaseException) -> str:
    """The most telling line of a worker failure (the last `SomethingError: ...` line)."""
    text = str(exc)
    own = [line.strip() for line in _ERROR_LINE.findall(text) if "DeepLearningError" in line or "pipelines.deep" in line]
    lines = own or [line.strip() for line in _ERROR_LINE.findall(text)
                    if not line.strip().startswith(("py4j", "org.apache"))]
    return (lines[-1] if lines else text.strip().splitlines()[-1] if text.strip() else type(exc).__name__)[:2000]


def describe_failure(exc: BaseException, task: TrainTask) -> str:
    """What failed: the workers' own reports from the store, else the telling line of `exc`."""
    from pipelines.deep.training import failure_reports

    try:
        reports = failure_reports(task.store)
    except Exception:  # noqa: BLE001 - the store itself may be what failed
        reports = {}
    if reports:
        return "; ".join(f"rank {rank}: {line}" for rank, line in reports.items())
    return worker_cause(exc)


def _with_deadline(spark: SparkSession, name: str, timeout_s: float, body: Callable[[], Any],
                   task: TrainTask) -> Any:
    """Run `body` (which starts Spark jobs) in a thread; cancel its jobs after `timeout_s`."""
    sc = spark.sparkContext
    group = f"clickml-deep-{uuid.uuid4().hex[:8]}"
    box: dict[str, Any] = {}

    def target() -> None:
        sc.setJobGroup(group, f"clickml deep model training ({name})", interruptOnCancel=True)
        try:
            box["result"] = body()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name=group, daemon=True)
    started = time.time()
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        log.error("%s: training did not finish within %.0f s; cancelling its Spark jobs", name, timeout_s)
        sc.cancelJobGroup(group)
        thread.join(60)
        raise WorkerFailedError(
            f"deep model training ({name}) did not finish within {timeout_s:.0f} s and was cancelled "
            "(raise the estimator's timeout param for bigger data)"
        )
    if "error" in box:
        exc = box["error"]
        raise WorkerFailedError(
            f"deep model training ({name}) failed after {time.time() - started:.0f} s on the workers: "
            f"{describe_failure(exc, task)}"
        ) from exc
    return box.get("result")


class TorchDistributorBackend:
    name = "torch_distributor"

    def run(self, spark: SparkSession, task: TrainTask, processes: int, use_gpu: bool, timeout_s: float) -> TrainOutput:
        from pyspark.ml.torch.distributor import TorchDistributor

        def body() -> TrainOutput:
            distributor = TorchDistributor(num_processes=processes, local_mode=False, use_gpu=use_gpu)
            return distributor.run(torch_distributor_main, task)

        return _checked(_with_deadline(spark, f"{self.name}, {processes} processes", timeout_s, body, task), self.name)


class HorovodBackend:
    name = "horovod"

    def run(self, spark: SparkSession, task: TrainTask, processes: int, use_gpu: bool, timeout_s: float) -> TrainOutput:
        try:
            import horovod.spark
            import horovod.torch
        except ImportError as exc:
            raise BackendUnavailableError(
                f"backend 'horovod' needs Horovod built for this PyTorch: run `make horovod` ({exc})"
            ) from exc
        if threading.current_thread() is not threading.main_thread():
            raise BackendUnavailableError(
                "backend 'horovod' must be started from the main thread (horovod.spark.run installs signal handlers); "
                "use backend torch_distributor from other threads"
            )
        name = f"{self.name}, {processes} processes"
        sc = spark.sparkContext
        fired = threading.Event()

        def cancel() -> None:
            # horovod.spark.run starts its Spark job from a thread of its own (outside any job
            # group of ours): cancel every job of this context (training owns it while it runs).
            fired.set()
            log.error("%s: training did not finish within %.0f s; cancelling its Spark jobs", name, timeout_s)
            sc.cancelAllJobs()

        # horovod.spark.run must run in this (main) thread; a timer enforces the limit instead.
        watchdog = threading.Timer(timeout_s, cancel)
        watchdog.daemon = True
        started = time.time()
        watchdog.start()
        try:
            results = horovod.spark.run(
                horovod_main, args=(task,), num_proc=processes, use_gloo=True, verbose=1,
                start_timeout=int(min(timeout_s, 600)),
                env={"HOROVOD_GLOO_TIMEOUT_SECONDS": str(int(task.timeout_s))},
            )
        except Exception as exc:
            if fired.is_set():
                raise WorkerFailedError(f"deep model training ({name}) did not finish within {timeout_s:.0f} s and was "
                                        "cancelled (raise the estimator's timeout param for bigger data)") from exc
            raise WorkerFailedError(
                f"deep model training ({name}) failed after {time.time() - started:.0f} s on the workers: "
                f"{describe_failure(exc, task)}"
            ) from exc
        finally:
            watchdog.cancel()
        return _checked(results[0] if results else None, self.name)


def _checked(output: TrainOutput | None, name: str) -> TrainOutput:
    if not isinstance(output, TrainOutput):
        raise WorkerFailedError(f"deep model training ({name}) returned no model from rank 0 (got {type(output).__name__})")
    return output


def get_backend(name: str):
    if name == "torch_distributor":
        return TorchDistributorBackend()
    if name == "horovod":
        return HorovodBackend()
    raise BackendUnavailableError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
