"""Process helpers for tests: kill a script at a marked point (kill -9); free local ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


def kill_when_marked(script: Path, marker: Path, timeout: float = 240.0) -> None:
    """Start `script`, wait (bounded) until it writes `marker`, then SIGKILL it and its JVM."""
    proc = subprocess.Popen([sys.executable, str(script)], start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + timeout
        while not marker.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.5)
        if not marker.exists():
            detail = proc.stderr.read().decode()[-3000:] if proc.poll() is not None else f"timed out after {timeout:.0f}s"
            raise AssertionError(f"{script.name} never reached its kill point: {detail}")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)


def free_ports(count: int = 1) -> list[int]:
    """`count` distinct free TCP ports on 127.0.0.1 (all held open while choosing)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def stop_process(process: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after `timeout` seconds; nothing when it already exited."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)
