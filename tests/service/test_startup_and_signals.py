"""`sentrycoin run` with a bad SENTRY_DB, and SIGHUP: as a user would meet them."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sentrycoin.store import AlertStore

ROOT = Path(__file__).resolve().parents[2]


def _env(db: Path) -> dict[str, str]:
    env = dict(os.environ, SENTRY_DB=str(db), HOST="127.0.0.1", PORT="0", LOG_LEVEL="INFO",
               PYTHONPATH=str(ROOT))
    for key in ("EXCHANGE", "SYMBOLS", "SYMBOL", "TELEGRAM_BOT_TOKEN", "TELEGRAM_CHAT_ID", "WEBHOOK_URL", "REDIS_URL"):
        env.pop(key, None)
    return env


def _start(db: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-m", "sentrycoin.cli", "run", "--scenario", "flash_crash",
                             "--speed", "20", "--seed", "3"], env=_env(db), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    return proc


def _wait_for_line(proc: subprocess.Popen[str], pattern: str, timeout_s: float = 60.0) -> list[str]:
    assert proc.stderr is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        if re.search(pattern, line):
            return lines
    proc.kill()
    pytest.fail(f"no line matching {pattern!r}:\n" + "".join(lines))


def test_unwritable_sentry_db_is_one_line_and_exit_2(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the directory should be")
    db = blocker / "alerts.db"
    proc = subprocess.run([sys.executable, "-m", "sentrycoin.cli", "run", "--no-http", "--scenario", "normal"],
                          env=_env(db), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    err_lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(err_lines) == 1, proc.stderr
    assert f"SENTRY_DB={db}" in err_lines[0] and "Traceback" not in proc.stderr


def test_corrupt_sentry_db_is_moved_aside_and_monitoring_starts(tmp_path: Path) -> None:
    db = tmp_path / "alerts.db"
    db.write_bytes(b"\x00garbage, not a database\x00" * 200)
    proc = _start(db)
    try:
        lines = _wait_for_line(proc, r"dashboard: http://")
        if not any("moved aside" in line for line in lines):  # the writer thread may log it later
            lines += _wait_for_line(proc, r"moved aside", timeout_s=30)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = "".join(lines) + err
    assert proc.returncode == 0 and "Traceback" not in text
    assert "WARNING" in text and "corrupt" in text
    aside = list(tmp_path.glob("alerts.db.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"\x00garbage")  # kept, never deleted
    store = AlertStore(db)  # the fresh store works
    try:
        assert store.count() >= 0
    finally:
        store.close()


def test_sighup_drains_like_sigterm(tmp_path: Path) -> None:
    db = tmp_path / "alerts.db"
    proc = _start(db)
    try:
        _wait_for_line(proc, r"dashboard: http://")
        # Wait for the flash crash's first alert on the console, then hang up.
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        first = ""
        while time.monotonic() < deadline and "ALERT" not in first:
            first = proc.stdout.readline()
        assert "ALERT" in first, "no alert before SIGHUP"
        proc.send_signal(signal.SIGHUP)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err[-2000:]
    assert "SIGHUP received" in err and "stopped cleanly" in err and "Traceback" not in err
    store = AlertStore(db)
    try:
        rows = store.recent(limit=100)
    finally:
        store.close()
    # drained: every alert delivered (console) and written before exit
    assert rows and all(r["deliveries"]["console"]["state"] == "delivered" for r in rows)
    assert (first + out).count("ALERT") == len(rows)
