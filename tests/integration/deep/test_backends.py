"""The backends' wall-clock limit: a run that hangs is cancelled and reported, not waited for."""

from __future__ import annotations

import time

import pytest

from pipelines.deep.backends import _with_deadline, get_backend, worker_cause
from pipelines.deep.errors import BackendUnavailableError, WorkerFailedError
from pipelines.deep.store import CheckpointStore


class _Task:  # the parts of a TrainTask the deadline helper reads
    def __init__(self, store: CheckpointStore):
        self.store = store


@pytest.mark.slow  # 5-8 s: out of make test-fast (under 8 min); make test runs it
def test_a_stuck_spark_job_is_cancelled_at_the_deadline(spark, tmp_path):
    def stuck():
        return spark.sparkContext.parallelize([1, 2], 2).map(lambda x: time.sleep(120) or x).collect()

    started = time.time()
    with pytest.raises(WorkerFailedError, match=r"did not finish within 3 s and was cancelled"):
        _with_deadline(spark, "test, 2 processes", 3.0, stuck, _Task(CheckpointStore(str(tmp_path))))
    assert time.time() - started < 60
    # the session is usable again: the stuck job was cancelled, not left running
    assert spark.range(3).count() == 3


def test_failures_are_reported_with_the_workers_own_error(spark, tmp_path):
    store = CheckpointStore(str(tmp_path))
    store.child("failures").put("rank-1.txt", b"Traceback (most recent call last):\n  ...\nValueError: bad shard\n")

    def failing():
        raise RuntimeError("Command [...] failed with return code 1")

    with pytest.raises(WorkerFailedError, match=r"failed after \d+ s on the workers: rank 1: ValueError: bad shard"):
        _with_deadline(spark, "test", 30.0, failing, _Task(store))
    assert worker_cause(RuntimeError("noise\nValueError: the cause\nmore")) == "ValueError: the cause"
    with pytest.raises(BackendUnavailableError, match="unknown backend 'mpi'"):
        get_backend("mpi")
