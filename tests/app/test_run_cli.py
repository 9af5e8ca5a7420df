"""`sentrycoin run` as a user runs it: simulated market, HTTP surface, clean SIGTERM."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest


def _start(tmp_path: Path, *args: str, env_extra: dict | None = None) -> tuple[subprocess.Popen, int]:
    env = dict(os.environ, SENTRY_DB=str(tmp_path / "alerts.db"), HOST="127.0.0.1", PORT="0", LOG_LEVEL="INFO")
    for key in ("EXCHANGE", "SYMBOLS", "SYMBOL", "TELEGRAM_BOT_TOKEN", "TELEGRAM_CHAT_ID", "WEBHOOK_URL", "REDIS_URL"):
        env.pop(key, None)
    env.update(env_extra or {})
    proc = subprocess.Popen([sys.executable, "-m", "sentrycoin.cli", "run", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    port = None
    lines = []
    while time.monotonic() < deadline and port is None:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        m = re.search(r"dashboard: http://127\.0\.0\.1:(\d+)/", line)
        if m:
            port = int(m.group(1))
    if port is None:
        proc.kill()
        pytest.fail("monitor did not start:\n" + "".join(lines))
    return proc, port


def _get(port: int, path: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def _wait_for(predicate, timeout_s: float = 30.0, every_s: float = 0.2):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every_s)
    return None


def test_run_simulated_market_alerts_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    proc, port = _start(tmp_path, "--scenario", "flash_crash", "--speed", "20", "--seed", "3")
    try:
        assert _wait_for(lambda: _get(port, "/health")[0] == 200), "never became healthy"
        status = _get(port, "/status")[1]
        assert status["mode"] == "simulated"
        assert {b["source"] for b in status["books"]} == {"simulated"}
        assert all(b["book_valid"] for b in status["books"])
        # The flash crash raises an alert, labelled simulated, delivered to the console.
        alerted = _wait_for(lambda: any(b["alerts"] for b in _get(port, "/status")[1]["books"]), 60)
        assert alerted, "the flash crash raised no alert"
        alerts = _get(port, "/alerts")[1]["alerts"]
        assert alerts and alerts[0]["source"] == "simulated"
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, err[-2000:]
        assert time.monotonic() - started < 10
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "[SIMULATED]" in out and "ALERT" in out
    assert "stopped cleanly" in err and "Traceback" not in err
    # The outbox was flushed: every alert delivered to the console before exit.
    from sentrycoin.store import AlertStore

    store = AlertStore(tmp_path / "alerts.db")
    try:
        rows = store.recent(limit=100)
    finally:
        store.close()
    assert rows and out.count("ALERT") == len(rows)
    assert all(r["deliveries"]["console"]["state"] == "delivered" for r in rows)


def test_run_with_unknown_venue_is_a_one_line_error(tmp_path: Path) -> None:
    env = dict(os.environ, SENTRY_DB=str(tmp_path / "a.db"))
    proc = subprocess.run([sys.executable, "-m", "sentrycoin.cli", "run", "--exchange", "ftx", "--symbols", "BTC-USD"],
                          capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 2
    assert "ftx" in proc.stderr and "Traceback" not in proc.stderr


def test_mock_fallback_switches_an_unreachable_venue_to_the_labelled_simulator(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    proc, port = _start(tmp_path, "--scenario", "flash_crash", "--speed", "25", env_extra={
        "EXCHANGE": "binance", "SYMBOLS": "BTC-USDT",
        "BINANCE_WS_URL": f"ws://127.0.0.1:{dead}/stream", "BINANCE_REST_URL": f"http://127.0.0.1:{dead}/api/v3/depth",
        "MOCK_FALLBACK": "true", "MOCK_FALLBACK_AFTER_S": "1",
    })
    try:
        status = _get(port, "/status")[1]
        assert status["mode"] == "live" and status["books"][0]["source"] == "live"

        def switched():
            books = _get(port, "/status")[1]["books"]
            return books if books[0]["source"] == "simulated" and books[0]["book_valid"] else None

        books = _wait_for(switched, 30)
        assert books and books[0]["exchange"] == "binance" and books[0]["symbol"] == "BTC-USDT"
        # Every book is simulated now: the run says so, and names the venue it keeps probing.
        status = _get(port, "/status")[1]
        assert status["mode"] == "simulated" and [f["venue"] for f in status["fallback"]] == ["binance"]
        assert status["fallback"][0]["last_error"] == "connection refused"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            assert 'mode="simulated"' in resp.read().decode()
        assert _wait_for(lambda: _get(port, "/status")[1]["books"][0]["alerts"], 60), "no alert after fallback"
        alerts = _get(port, "/alerts")[1]["alerts"]
        assert alerts and all(a["source"] == "simulated" for a in alerts)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    assert "switched to the SIMULATED market" in err
    assert "[SIMULATED]" in out
