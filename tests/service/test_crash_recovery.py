"""kill -9 between detection and delivery: the restart delivers exactly once.

A child process (tests/service/alert_doubles.py) runs a real Market whose book
trips the detector, wired to an AlertManager that sends to the fake
Telegram.  The parent SIGKILLs it after the alert reached the outbox but
before Telegram accepted it, restarts it on the same database and checks
the chat received the alert exactly once, and nothing more on a further
restart.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import pytest

from sentrycoin.store import AlertStore
from tests.service.fake_telegram import FakeTelegram, Hang

REPO_ROOT = Path(__file__).resolve().parents[2]


async def _spawn(mode: str, db: Path, api_url: str, token: str) -> asyncio.subprocess.Process:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), PYTHONUNBUFFERED="1")
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.service.alert_doubles", mode, "--db", str(db), "--api-url", api_url,
        "--token", token, cwd=REPO_ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )


async def _line(proc: asyncio.subprocess.Process, timeout_s: float = 20.0) -> str:
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), timeout_s)
    if not line:
        assert proc.stderr is not None
        err = await proc.stderr.read()
        pytest.fail(f"child exited early: {err.decode(errors='replace')[-2000:]}")
    return line.decode().strip()


async def _kill9(proc: asyncio.subprocess.Process) -> None:
    proc.send_signal(signal.SIGKILL)
    assert await asyncio.wait_for(proc.wait(), 10) == -signal.SIGKILL


async def _restart_and_deliver(db: Path, tg: FakeTelegram, expect_pending: int) -> None:
    proc = await _spawn("deliver", db, tg.url, tg.token)
    try:
        assert await _line(proc) == f"PENDING {expect_pending}"
        assert await _line(proc) == "DELIVERED"
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def _pending(db: Path) -> int:
    store = AlertStore(db)
    try:
        return store.pending_count("telegram")
    finally:
        store.close()


async def test_sigkill_during_send_then_restart_delivers_once(tmp_path: Path) -> None:
    db = tmp_path / "alerts.db"
    async with FakeTelegram() as tg:
        tg.push(Hang(30.0))  # Telegram does not answer before the crash
        proc = await _spawn("detect", db, tg.url, tg.token)
        try:
            assert await _line(proc) == "SUBMITTED 1"
            await tg.wait_for_requests(1, timeout_s=10)  # the send is in flight...
        finally:
            await _kill9(proc)  # ...and the process dies
        assert tg.messages == []
        assert _pending(db) == 1

        await _restart_and_deliver(db, tg, expect_pending=1)
        assert len(tg.messages) == 1
        assert "ETH-USDT" in tg.messages[0]["text"] and "binance" in tg.messages[0]["text"]
        assert _pending(db) == 0

        await _restart_and_deliver(db, tg, expect_pending=0)  # nothing is sent twice
        assert len(tg.messages) == 1


async def test_sigkill_during_outage_then_restart_delivers_once(tmp_path: Path) -> None:
    db = tmp_path / "alerts.db"
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead_url = f"http://127.0.0.1:{s.getsockname()[1]}"  # bound, not listening: refused
    async with FakeTelegram() as tg:
        proc = await _spawn("detect", db, dead_url, tg.token)
        try:
            assert await _line(proc) == "SUBMITTED 1"
            await asyncio.sleep(0.3)  # a few failed attempts against the dead endpoint
        finally:
            await _kill9(proc)
            s.close()
        assert tg.requests == []
        await _restart_and_deliver(db, tg, expect_pending=1)
        assert len(tg.messages) == 1 and len(tg.requests) == 1
