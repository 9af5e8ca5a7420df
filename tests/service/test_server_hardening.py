"""HTTP surface: security headers on every response, no token in any log line, one
rate-limited line per broken request, ACCESS_LOG, /alerts paging, /health and the store."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from sentrycoin.logs import OneLineServerErrors, redact_url_secrets, setup_logging
from tests.service.alert_doubles import RecordingNotifier, make_event
from tests.service.conftest import SrvMonitor

TOKEN = "s3cret-status-token-4242"


pytestmark = pytest.mark.usefixtures("restore_logging")


async def test_security_headers_on_every_response(srv_http, srv_make_market) -> None:
    serve, session = srv_http
    base = await serve(SrvMonitor([srv_make_market()]), token=TOKEN)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    for path, headers, status in (("/health", {}, None), ("/status", {}, 401), ("/status", auth, 200),
                                  ("/", auth, 200), ("/static/app.js", auth, 200), ("/nope", auth, 404),
                                  ("/alerts?limit=0", auth, 400)):
        async with session.get(base + path, headers=headers) as resp:
            if status is not None:
                assert resp.status == status, path
            assert resp.headers["X-Content-Type-Options"] == "nosniff", path
            assert resp.headers["X-Frame-Options"] == "DENY", path
            assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"], path
            assert resp.headers["Server"] == "sentrycoin", path  # no aiohttp/Python version


async def test_oversized_request_is_one_redacted_rate_limited_line(srv_http, srv_make_market,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    serve, _ = srv_http
    base = await serve(SrvMonitor([srv_make_market()]), token=TOKEN)
    host, port = base.rsplit("/", 1)[-1].split(":")
    caplog.set_level(logging.DEBUG)

    async def oversized() -> bytes:
        reader, writer = await asyncio.open_connection(host, int(port))
        line = f"GET /status?token={TOKEN}&pad={'x' * 9000} HTTP/1.1\r\nHost: x\r\n\r\n"
        writer.write(line.encode())
        await writer.drain()
        answer = await reader.read(200)
        writer.close()
        return answer

    for _ in range(12):
        answer = await oversized()
        assert answer.startswith(b"HTTP/1.") and b" 400 " in answer.split(b"\r\n")[0]
        assert TOKEN.encode() not in answer and b"aiohttp/" not in answer  # no echo, no version
        assert b"X-Content-Type-Options: nosniff" in answer and b"Server: sentrycoin" in answer
    server_lines = [r for r in caplog.records if r.name.startswith("aiohttp")]
    assert TOKEN not in caplog.text
    assert all(r.exc_info is None and "\n" not in r.getMessage() for r in server_lines)
    assert 1 <= len(server_lines) <= 5  # burst of 5 per minute: 12 junk requests do not flood the log
    assert all(len(r.getMessage()) < 400 for r in server_lines)


def test_one_line_filter_counts_what_it_drops() -> None:
    f = OneLineServerErrors(burst=2, window_s=3600)
    records = []
    for i in range(5):
        try:
            raise ValueError(f"bad line GET /x?token={TOKEN}-{i}")
        except ValueError:
            import sys
            records.append(logging.LogRecord("aiohttp.server", logging.ERROR, __file__, 1, "Error handling request",
                                             None, sys.exc_info()))
    passed = [r for r in records if f.filter(r)]
    assert len(passed) == 2 and f.suppressed_total == 3
    assert all(TOKEN not in r.getMessage() and r.exc_info is None for r in passed)
    assert "ValueError" in passed[0].getMessage()


def test_redaction_covers_query_bearer_and_registered_secrets() -> None:
    from sentrycoin.logs import register_secret

    register_secret("zz-registered-secret-zz")
    text = redact_url_secrets("GET /a?x=1&token=abc&status_token=def Bearer ghi zz-registered-secret-zz")
    assert "abc" not in text and "def" not in text and "ghi" not in text and "zz-registered" not in text
    assert "x=1" in text


async def test_access_log_setting_lets_lines_through_redacted(srv_http, srv_make_market, capsys) -> None:
    serve, session = srv_http
    base = await serve(SrvMonitor([srv_make_market()]), token=TOKEN)
    setup_logging("WARNING", "text", access_log=True)
    async with session.get(f"{base}/health?token={TOKEN}") as resp:
        assert resp.status in (200, 503)  # the test market has no valid book
    await asyncio.sleep(0.05)
    err = capsys.readouterr().err
    assert '"GET /health?token=***"' in err and TOKEN not in err
    setup_logging("INFO", "text", access_log=False)  # default: no access lines
    async with session.get(f"{base}/health") as resp:
        assert resp.status in (200, 503)
    await asyncio.sleep(0.05)
    assert '"GET /health' not in capsys.readouterr().err


async def test_alerts_pages_with_a_cursor(srv_http, srv_make_market, srv_alert_manager) -> None:
    serve, session = srv_http
    manager = srv_alert_manager
    for i in range(5):
        manager.submit(make_event(event_ms=1_700_000_000_000 + i))
    await manager.store.flush()
    base = await serve(SrvMonitor([srv_make_market()], alert_manager=manager))
    seen, cursor = [], None
    for _ in range(5):
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        async with session.get(f"{base}/alerts", params=params) as resp:
            doc = await resp.json()
        seen += [a["event_ms"] for a in doc["alerts"]]
        assert all(a["episode_id"] for a in doc["alerts"])
        cursor = doc["next_cursor"]
        if cursor is None:
            break
    assert seen == [1_700_000_000_000 + i for i in (4, 3, 2, 1, 0)]
    async with session.get(f"{base}/alerts", params={"cursor": "yesterday"}) as resp:
        assert resp.status == 400 and "cursor" in (await resp.json())["error"]


async def test_health_names_a_store_problem_and_503_only_when_delivery_is_impossible(
        srv_http, srv_make_market, tmp_path: Path) -> None:
    from sentrycoin.alerts import AlertManager
    from sentrycoin.store import AlertStore

    serve, session = srv_http
    store = AlertStore(tmp_path / "a.db")
    gate = asyncio.Event()
    manager = AlertManager(store, [RecordingNotifier("rec", gate=gate)], max_in_memory=2)
    await manager.start()
    market = srv_make_market()
    from tests.service.conftest import srv_load_book
    srv_load_book(market, 10.0, 10.0)
    base = await serve(SrvMonitor([market], alert_manager=manager))
    try:
        async with session.get(f"{base}/health") as resp:
            healthy = await resp.json()
            assert resp.status == 200 and healthy["status"] == "ok" and healthy["problems"] == []
        store.close()  # the store fails from now on
        manager.submit(make_event(event_ms=1))
        for _ in range(200):
            if manager.store_problem():
                break
            await asyncio.sleep(0.01)
        async with session.get(f"{base}/health") as resp:
            body = await resp.json()
            assert resp.status == 200  # alerts are still delivered (from memory)
            assert body["status"] == "degraded" and body["reason"].startswith("alert store:")
            assert [p["kind"] for p in body["problems"]] == ["alert_store"]
        manager.submit(make_event(event_ms=2))
        manager.submit(make_event(event_ms=3))  # memory full and nothing written: dropped
        async with session.get(f"{base}/health") as resp:
            body = await resp.json()
            assert resp.status == 503 and body["status"] == "unavailable" and "dropped" in body["reason"]
            assert any(p["kind"] == "alert_delivery" and p["fatal"] for p in body["problems"])
    finally:
        gate.set()
        manager.send_grace_s = 0.5
        await manager.stop(drain_timeout_s=0.5)


async def test_no_store_call_runs_on_the_event_loop_thread(srv_http, srv_make_market, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The issue: SQLite on the loop froze feeds and /health behind a locked database or a
    big /alerts scan.  Every AlertStore method the running monitor calls (submit's write,
    delivery updates, /alerts, the dashboard's outcomes, outcome tracking, the restart
    reload) must run on another thread."""
    import threading

    from sentrycoin.alerts import AlertManager, OutcomeTracker
    from sentrycoin.server.live import LiveHub
    from sentrycoin.store import AlertStore

    calls: list[tuple[str, str]] = []
    for name in ("save_alert", "recent_page", "recent", "outcome_summary", "pending_alerts",
                 "save_outcome_for_key", "unfinished_outcomes", "prune"):
        original = getattr(AlertStore, name)

        def spy(self, *args, __name=name, __original=original, **kwargs):  # type: ignore[no-untyped-def]
            calls.append((__name, threading.current_thread().name))
            return __original(self, *args, **kwargs)

        monkeypatch.setattr(AlertStore, name, spy)
    store = AlertStore(tmp_path / "a.db")
    store.insert_alert(make_event(event_ms=5), ["rec"])  # left pending by a previous run: reloaded
    calls.clear()
    loop_thread = threading.current_thread().name
    rec = RecordingNotifier("rec")
    clock = {"ms": 1_700_000_000_000}
    manager = AlertManager(store, [rec])
    tracker = OutcomeTracker(manager.store, lambda ex, sym: 100.0, clock_ms=lambda: clock["ms"])
    manager.outcomes = tracker
    await manager.start()
    serve, session = srv_http
    market = srv_make_market()
    base = await serve(SrvMonitor([market], alert_manager=manager))
    try:
        manager.submit(make_event(event_ms=1_700_000_000_000))
        await manager.drain()
        clock["ms"] += 61_000
        tracker.tick()  # a horizon passed: the outcome is saved
        async with session.get(f"{base}/alerts") as resp:
            assert resp.status == 200 and (await resp.json())["count"] == 2
        hub = LiveHub(SrvMonitor([market], alert_manager=manager))
        assert await hub.outcomes() is not None
        await manager.store.flush()
    finally:
        await manager.stop()
    names = {n for n, _ in calls}
    assert {"save_alert", "recent_page", "outcome_summary", "pending_alerts", "recent",
            "save_outcome_for_key", "unfinished_outcomes"} <= names, names
    assert all(thread != loop_thread for _, thread in calls), [c for c in calls if c[1] == loop_thread]
