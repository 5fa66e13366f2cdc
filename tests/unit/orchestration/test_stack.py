"""`make up`'s service supervisor, with stand-in services (sleeping processes)."""

from __future__ import annotations

import sys

import pytest

from pipelines.orchestration.stack import Service, Stack, StackError


def _service(name: str, ready: bool) -> Service:
    return Service(name=name, argv=[sys.executable, "-c", "import time; time.sleep(120)"], env={},
                   url=f"http://127.0.0.1/{name}", ready=lambda: ready, port=1)


def test_a_failed_up_stops_only_the_services_it_started(tmp_path, monkeypatch):
    # Bug: a failing `up` stopped every service it was asked for, including ones that an earlier
    # `make up` had started and that were serving.
    stack = Stack(tmp_path / "state", lakehouse=tmp_path / "lake")
    services = {"old": _service("old", ready=True), "new": _service("new", ready=False)}
    monkeypatch.setattr(stack, "services", lambda: services)
    try:
        stack.up(["old"], timeout=10, echo=lambda _: None)
        old_pid = stack.running("old")
        assert old_pid
        with pytest.raises(StackError, match="new did not answer"):
            stack.up(["old", "new"], timeout=1, echo=lambda _: None)
        assert stack.running("old") == old_pid
        assert stack.running("new") is None
    finally:
        stack.down(["old", "new"], echo=lambda _: None, grace=5)
