"""A local Redis for tests: Debian's `redis-server` on a free port of 127.0.0.1, no persistence.

    def test_x(redis_server, tmp_path):               # registered in tests/conftest.py
        config = make_config(tmp_path, *redis_server.config_overrides())
        redis_server.flush()                          # a clean store for this test

One server per test session (per pytest-xdist worker). Skips, saying how to install it, where
`redis-server` is missing.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.processes import free_ports, stop_process

START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0


@dataclass
class RedisServer:
    """A running redis-server and how to reach it."""

    port: int
    log_path: Path

    @property
    def url(self) -> str:
        """`redis://127.0.0.1:<port>/0`"""
        return f"redis://127.0.0.1:{self.port}/0"

    def config_overrides(self) -> list[str]:
        """Dotted config overrides that point `serving.redis_url` at this server."""
        return [f"serving.redis_url={self.url}"]

    def client(self):
        """A redis-py client (strings decoded)."""
        import redis

        return redis.Redis.from_url(self.url, decode_responses=True)

    def flush(self) -> None:
        """Remove every key."""
        self.client().flushall()


def _wait_for_ping(server: subprocess.Popen, url: str, log_path: Path, timeout: float) -> None:
    import redis

    deadline = time.monotonic() + timeout
    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    while True:
        try:
            if client.ping():
                return
        except redis.RedisError:
            pass
        if server.poll() is not None:
            raise RuntimeError(f"redis-server exited ({server.returncode}) before answering PING on {url}: "
                               f"{log_path.read_text(errors='replace')[-2000:]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"redis-server did not answer PING on {url} within {timeout:.0f}s: "
                               f"{log_path.read_text(errors='replace')[-2000:]}")
        time.sleep(0.05)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """A redis-server on a free port of 127.0.0.1 (no RDB, no AOF) for the module or session."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed: apt-get install redis-server (Debian's package)")
    pytest.importorskip("redis", reason="redis-py is installed by the serve extra: pip install -e '.[serve]'")
    folder = tmp_path_factory.mktemp("redis")
    log_path = folder / "redis.log"
    port = free_ports()[0]
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
               "--dir", str(folder), "--logfile", str(log_path), "--daemonize", "no"]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        info = RedisServer(port, log_path)
        try:
            _wait_for_ping(server, info.url, log_path, START_TIMEOUT_S)
        except RuntimeError as exc:
            pytest.fail(str(exc))
        yield info
    finally:
        stop_process(server, STOP_TIMEOUT_S)
