"""Two real `sentrycoin run` replicas sharing one real Redis, as a user would deploy them.

Both watch the same simulated markets (same seed, same crash).  Each alert
episode must reach the user's webhook exactly once; when one replica dies the
other keeps alerting.
"""

from __future__ import annotations

import http.server
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest


class Hook(http.server.BaseHTTPRequestHandler):
    received: list[dict] = []
    lock = threading.Lock()

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with self.lock:
            self.received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def webhook():
    Hook.received = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", Hook
    server.shutdown()


def _replica(tmp_path: Path, name: str, redis_url: str, hook_url: str, scenario: str,
             cooldown_minutes: str) -> subprocess.Popen:
    env = dict(os.environ, REDIS_URL=redis_url, REPLICA_ID=name, WEBHOOK_URL=hook_url,
               SENTRY_DB=str(tmp_path / f"{name}.db"), COOLDOWN_MINUTES=cooldown_minutes,
               SIM_SYMBOLS="BTC-USDT", LOG_LEVEL="WARNING")
    for key in ("EXCHANGE", "SYMBOLS", "SYMBOL", "TELEGRAM_BOT_TOKEN", "TELEGRAM_CHAT_ID"):
        env.pop(key, None)
    return subprocess.Popen(
        [sys.executable, "-m", "sentrycoin.cli", "run", "--no-http", "--scenario", scenario,
         "--seed", "7", "--speed", "25"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _stop(proc: subprocess.Popen) -> str:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=15)
    return out


def _wait(cond, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return False


def test_two_replicas_send_each_episode_once(tmp_path: Path, redis_server, webhook) -> None:
    url, hook = webhook
    a = _replica(tmp_path, "replica-a", redis_server.url, url, "flash_crash", "5")
    b = _replica(tmp_path, "replica-b", redis_server.url, url, "flash_crash", "5")
    try:
        # Both replicas detect the crash (each prints its own console line)...
        assert _wait(lambda: len(hook.received) >= 1, 60), "no alert reached the webhook"
        time.sleep(3.0)  # let the slower replica detect and try to claim too
    finally:
        out_a, out_b = _stop(a), _stop(b)
    assert "ALERT" in out_a and "ALERT" in out_b, "both replicas should have detected the crash"
    # ...but the user hears about each (symbol, severity) episode once.
    sent = Counter((m["symbol"], m["severity"]) for m in hook.received)
    assert sent and all(n == 1 for n in sent.values()), sent
    # Each replica's alert history says truthfully who sent what: one replica
    # `delivered` each message, the other `suppressed` its copy.
    states: Counter[str] = Counter()
    for name in ("replica-a", "replica-b"):
        db = sqlite3.connect(tmp_path / f"{name}.db")
        try:
            states.update(row[0] for row in db.execute("SELECT state FROM deliveries WHERE notifier = 'webhook'"))
        finally:
            db.close()
    assert states["delivered"] == len(hook.received), states
    assert states["suppressed"] >= 1 and states["pending"] == 0 and states["failed"] == 0, states


def test_survivor_keeps_alerting_after_a_replica_dies(tmp_path: Path, redis_server, webhook) -> None:
    url, hook = webhook
    # `mixed` crashes every couple of simulated minutes; at 25x speed and a 3 s
    # cooldown, episodes keep coming.
    a = _replica(tmp_path, "replica-a", redis_server.url, url, "mixed", "0.05")
    b = _replica(tmp_path, "replica-b", redis_server.url, url, "mixed", "0.05")
    try:
        assert _wait(lambda: len(hook.received) >= 1, 90), "no alert before the kill"
        a.kill()
        a.wait(timeout=10)
        before = len(hook.received)
        assert _wait(lambda: len(hook.received) > before, 120), "the surviving replica sent nothing more"
    finally:
        if a.poll() is None:
            a.kill()
        _stop(b)
