"""A real `redis-server` per test, on 127.0.0.1 and an ephemeral port.

The fixture can kill and restart the server on the same port (outage tests).
Persistence is off (--save '' --appendonly no): a restart starts empty,
which is the worst case for the coordinator.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REDIS_BIN = shutil.which("redis-server")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        assert self.proc is None
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir), "--protected-mode", "no", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10.0
        while not _ping(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.01)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=5)
            self.proc = None

    def restart(self) -> None:
        self.kill()
        self.start()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    if REDIS_BIN is None:
        pytest.skip("redis-server binary not found (install Debian's redis-server) - HA tests need a real Redis")
    server = RedisServer(REDIS_BIN, tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()


async def wait_until(cond, timeout_s: float = 3.0, step_s: float = 0.02) -> bool:  # type: ignore[no-untyped-def]
    """Poll `cond()` until true or the timeout; returns the last value."""
    import asyncio

    deadline = time.monotonic() + timeout_s
    while True:
        if cond():
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(step_s)
